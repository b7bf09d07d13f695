"""xp: an A/B experimentation platform that ties ML models to business metrics.

Importing this package loads neither Flask nor SQLAlchemy; ``analyze_frame`` is
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "analyze_frame"]

if TYPE_CHECKING:
    from experiments.stats.frame import analyze_frame


def __getattr__(name: str) -> Any:
    if name == "analyze_frame":
        from experiments.stats.frame import analyze_frame

        return analyze_frame
    raise AttributeError(f"module 'experiments' has no attribute {name!r}")
