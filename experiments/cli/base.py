"""What every ``xp`` command shares: settings, the unit of work, error handling.

Exit codes: 0 success; 2 bad input (one line on stderr naming it); 1 anything
else. With ``--format json`` stdout holds exactly one JSON document; logs and
progress bars go to stderr.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from experiments.config import Settings, load_settings
from experiments.errors import ConfigError, InvalidInputError, NotFoundError, XpError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

F = TypeVar("F", bound=Callable[..., Any])


def now() -> datetime:
    """The current time, UTC-aware (one place, so commands agree)."""
    return datetime.now(UTC)


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Map domain errors to exit codes: bad input and unknown names → 2, others → 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InvalidInputError, NotFoundError, ConfigError) as exc:
            fail(exc.message, 2)
        except XpError as exc:
            fail(exc.message, 1)

    return wrapper  # type: ignore[return-value]


class State:
    """Settings loaded once per invocation, on first use."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The merged settings; a bad config exits 2 with its message."""
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                fail(exc.message, 2)
        assert self._settings is not None
        return self._settings


@contextmanager
def unit_of_work(settings: Settings) -> Iterator[Session]:
    """A session whose work is committed when the block succeeds (the CLI owns it)."""
    from experiments.storage.engine import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    session = make_session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        engine.dispose()


pass_state = click.make_pass_decorator(State, ensure=True)
