"""Numbers formatted for people: percentages, significant digits, p-values.

Pure functions, no I/O. Every function accepts ``None`` (an undefined value in
the report JSON) and non-finite floats, and returns an em dash for them, so a
template never has to test for missing numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DASH = "—"
P_VALUE_FLOOR = 0.001


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_count(value: Any) -> str:
    """An integer count with thousands separators (``12,345``)."""
    number = _finite(value)
    return DASH if number is None else f"{round(number):,}"


def format_number(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits, with thousands separators.

    Very small magnitudes (below 1e-4) use scientific notation so that they do
    not read as zero: ``format_number(0.0000123) == "1.23e-05"``.
    """
    number = _finite(value)
    if number is None:
        return DASH
    if number == 0:
        return "0"
    if abs(number) < 1e-4:
        return f"{number:.{max(digits - 1, 0)}e}"
    magnitude = math.floor(math.log10(abs(number)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{round(number, decimals):,.{decimals}f}"


def format_percent(value: Any, *, signed: bool = False, digits: int = 2) -> str:
    """A fraction as a percentage with ``digits`` decimals (``0.0691`` → ``6.91%``).

    With ``signed``, positive values carry a ``+`` (lifts and differences).
    """
    number = _finite(value)
    if number is None:
        return DASH
    if round(number * 100, digits) == 0:
        # "-0.00%" would read as a harm that is not there.
        return f"{0.0:.{digits}%}"
    return f"{number:+.{digits}%}" if signed else f"{number:.{digits}%}"


def format_p_value(value: Any) -> str:
    """A p-value: three decimals, or ``< 0.001`` below that."""
    number = _finite(value)
    if number is None:
        return DASH
    if number < P_VALUE_FLOOR:
        return "< 0.001"
    return f"{number:.3f}"


def format_interval(pair: Sequence[Any] | None, *, percent: bool = False, digits: int = 3) -> str:
    """A confidence interval ``[low, high]``; percentages are signed."""
    if not pair or len(pair) != 2 or _finite(pair[0]) is None or _finite(pair[1]) is None:
        return DASH
    if percent:
        return f"[{format_percent(pair[0], signed=True)}, {format_percent(pair[1], signed=True)}]"
    return f"[{format_number(pair[0], digits)}, {format_number(pair[1], digits)}]"


def format_signed_number(value: Any, digits: int = 3) -> str:
    """Like :func:`format_number`, with a ``+`` on positive values (differences)."""
    text = format_number(value, digits)
    number = _finite(value)
    return f"+{text}" if number is not None and number > 0 else text


def format_points(value: Any, digits: int = 2) -> str:
    """A difference of two rates in percentage points (``0.007`` → ``+0.70 pp``)."""
    number = _finite(value)
    if number is None:
        return DASH
    if round(number * 100, digits) == 0:
        return f"{0.0:.{digits}f} pp"
    return f"{number * 100:+.{digits}f} pp"


def format_confidence(alpha: float) -> str:
    """The confidence level of an interval at ``alpha`` (``0.05`` → ``95%``)."""
    return f"{round((1 - alpha) * 100, 4):g}%"


def interval_name(method: str, alpha: float) -> str:
    """What the report's intervals are, for labels (``95% CI``, ``95% credible interval``)."""
    level = format_confidence(alpha)
    if method == "bayesian":
        return f"{level} credible interval"
    if method == "sequential":
        return f"{level} always-valid CI"
    return f"{level} CI"
