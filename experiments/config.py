"""Settings: ``config/default.toml`` < file named by ``XP_CONFIG`` < ``XP_<KEY>``.

This module is the only code in xp that reads ``os.environ``. Everything else
receives a frozen :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.domain import Correction
from experiments.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "default.toml"
ENV_PREFIX = "XP_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _unit_interval(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else "must be >= 0 and < 1"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _probability(value: float) -> str | None:
    return None if 0.5 < value < 1.0 else "must be > 0.5 and < 1"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _database_url(value: str) -> str | None:
    if value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        return None
    return "must be a sqlite:/// or postgresql:// URL"


@dataclass(frozen=True)
class Settings:
    """Every xp setting, typed; the documentation of each is in default.toml."""

    database_url: str = field(
        default="sqlite:///instance/xp.sqlite3", metadata={"check": _database_url}
    )
    secret_key: str = ""
    instance_path: str = "instance"
    clock_skew_seconds: int = field(default=60, metadata={"check": _non_negative})
    holdout_fraction: float = field(default=0.0, metadata={"check": _unit_interval})
    holdout_salt: str = "xp-global-holdout"
    max_batch_items: int = field(default=10000, metadata={"check": _positive})
    max_body_bytes: int = field(default=5 * 1024 * 1024, metadata={"check": _positive})
    max_properties_bytes: int = field(default=8192, metadata={"check": _positive})
    max_properties_depth: int = field(default=8, metadata={"check": _positive})
    max_future_seconds: int = field(default=86400, metadata={"check": _non_negative})
    bayes_prior_sd: float = field(default=0.3, metadata={"check": _non_negative})
    bayes_win_probability: float = field(default=0.95, metadata={"check": _probability})
    correction: str = field(
        default="holm", metadata={"check": _one_of(*(c.value for c in Correction))}
    )
    host: str = "127.0.0.1"
    port: int = field(default=8000, metadata={"check": _positive})
    workers: int = field(default=2, metadata={"check": _positive})
    log_level: str = field(default="INFO", metadata={"check": _one_of(*_LOG_LEVELS)})

    @property
    def instance_dir(self) -> Path:
        """The instance folder as an absolute path (created on demand)."""
        return Path(self.instance_path).resolve()

    def resolved_secret_key(self) -> str:
        """The configured secret key, or one generated once into the instance folder."""
        if self.secret_key:
            return self.secret_key
        path = self.instance_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        # O_EXCL: two workers starting at once agree on one key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value: Any = int(raw)
        elif kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        else:
            if not isinstance(raw, str):
                raise ValueError
            value = raw
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} = {raw!r}: must be {kind}") from None
    check = _FIELDS[name].metadata.get("check")
    problem = check(value) if check else None
    if problem:
        raise ConfigError(f"{source}: {name} = {raw!r}: {problem}")
    return value


def _build(values: Mapping[str, Any], source: str) -> Settings:
    return Settings(**{name: _coerce(name, raw, source) for name, raw in values.items()})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r}")
    return data


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the defaults, the ``XP_CONFIG`` file and ``XP_*`` variables.

    Raises:
        ConfigError: naming the unknown key or the bad value and where it came from.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    files = [DEFAULT_CONFIG_PATH]
    if env.get("XP_CONFIG"):
        files.append(Path(env["XP_CONFIG"]))
    for path in files:
        for key, raw in _read_toml(path).items():
            values[key] = raw
            sources[key] = str(path)
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "XP_CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in _FIELDS:
            values[key] = raw
            sources[key] = f"environment variable {name}"
    for key, raw in values.items():
        _coerce(key, raw, sources[key])
    return _build(values, source="settings")
