"""The xp exception tree.

Domain errors know nothing of HTTP; ``web/errors.py`` maps each ``code`` to a
status, and the CLI maps ``InvalidInputError`` and ``NotFoundError`` to exit 2::

    XpError                       code "error"
    ├── InvalidInputError         code "invalid_input"   (details: field problems)
    ├── NotFoundError             code "not_found"
    ├── ConflictError             code "conflict"        (a refused change)
    │   └── InvalidStateError     code "invalid_state"   (wrong lifecycle status)
    ├── RateLimitedError          code "rate_limited"    (retry_after seconds)
    └── ConfigError               code "config"          (bad settings at start-up)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: where (``variants[1].weight``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, str]:
        """JSON form used in API error details."""
        return {"path": self.path, "message": self.message}


class XpError(Exception):
    """Base of every error xp raises on purpose."""

    code = "error"

    def __init__(self, message: str, details: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[FieldProblem] = list(details or [])


class InvalidInputError(XpError):
    """Input failed validation; ``details`` lists every problem by path."""

    code = "invalid_input"

    @classmethod
    def from_problems(cls, problems: list[FieldProblem]) -> InvalidInputError:
        """Build one error whose message names every problem."""
        return cls("; ".join(str(p) for p in problems), problems)


class NotFoundError(XpError):
    """A named object does not exist."""

    code = "not_found"


class ConflictError(XpError):
    """The change conflicts with the current state (duplicate key, full layer)."""

    code = "conflict"


class InvalidStateError(ConflictError):
    """The object's lifecycle status does not allow this action."""

    code = "invalid_state"


class RateLimitedError(XpError):
    """Too many attempts in a window; ``retry_after`` says when to try again (seconds)."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(XpError):
    """A setting is unknown or has a bad value."""

    code = "config"
