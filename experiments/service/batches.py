r"""Validate an ingest batch in one pass, within limits both databases can store.

The hot path (:func:`validate_body`) decodes and type-checks the whole request
body with one msgspec call (``Decoder(EventsBody).decode(body)``), with
``properties`` kept as its raw JSON text (``msgspec.Raw``), which is checked
on bytes and stored as sent. msgspec was chosen over pydantic's
``TypeAdapter.validate_json`` by measurement (``benchmarks/bench_validation.py``).
msgspec stops at the first error, so a batch it refuses is decoded again with
orjson and checked by the pydantic models, which name every bad item (and,
should the two ever disagree, the pydantic verdict wins). Batches given as
Python lists (the CLI's simulation) take the pydantic path directly.

Then the hardening rules, the same on both paths (:func:`check_items`), so that
an accepted item never fails in SQLite or PostgreSQL:

- text (ids, unit ids, names, keys) holds no NUL character (PostgreSQL ``text``
  cannot store U+0000);
- a timestamp has a UTC offset within ±15:59 (PostgreSQL's limit) and lies
  between 1970-01-01T00:00:00Z and ``max_future_seconds`` after now;
- numbers are finite doubles;
- ``properties`` is a JSON object of at most ``max_properties_bytes`` bytes of
  JSON text and ``max_properties_depth`` levels of nesting, in valid UTF-8, with
  no NUL character and no number beyond a double's range (``jsonb`` refuses
  ``\\u0000``, and Python reads ``1e400`` back as infinity).

A problem names the item by index and path (``events[3].unit_id: must not
contain NUL characters``); any problem rejects the whole batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import msgspec
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from experiments.config import Settings
from experiments.domain import EVENT_NAME_RE, UNIT_ID_MAX
from experiments.errors import FieldProblem, InvalidInputError
from experiments.service.specs import pydantic_problems

ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
ID_MAX = 64
KEY_MAX = 64
MODEL_MAX = 128
MAX_OFFSET = timedelta(hours=15, minutes=59)
"""PostgreSQL's ``timestamptz`` input accepts UTC offsets up to ±15:59."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
DOUBLE_MAX = 1.7976931348623157e308

# -- pydantic models: the Python-list path and the messages of refused batches --------

Id = Annotated[str, Field(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
UnitId = Annotated[str, Field(min_length=1, max_length=UNIT_ID_MAX)]
Name = Annotated[str, Field(pattern=EVENT_NAME_RE.pattern)]
Key = Annotated[str, Field(min_length=1, max_length=KEY_MAX)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventIn(_Item):
    """An event; ``event_id`` is the client's idempotency key."""

    event_id: Id
    unit_id: UnitId
    name: Name
    value: FiniteFloat = 1.0
    timestamp: AwareDatetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ExposureIn(_Item):
    """A unit served a variant; only the first per experiment and unit is kept."""

    unit_id: UnitId
    experiment: Key
    variant: Key
    timestamp: AwareDatetime | None = None
    exposure_id: Id | None = None


class PredictionIn(_Item):
    """A model score for a unit under a variant."""

    prediction_id: Id
    unit_id: UnitId
    experiment: Key
    variant: Key
    model: Annotated[str, Field(min_length=1, max_length=MODEL_MAX)]
    score: FiniteFloat
    timestamp: AwareDatetime | None = None


class LabelIn(_Item):
    """The observed outcome of a prediction (may arrive before the prediction)."""

    prediction_id: Id
    label: FiniteFloat
    timestamp: AwareDatetime | None = None


# -- msgspec structs: the same fields, for the one-call decode of a request body ------

_M = msgspec.Meta
_MId = Annotated[str, _M(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
_MUnit = Annotated[str, _M(min_length=1, max_length=UNIT_ID_MAX)]
_MKey = Annotated[str, _M(min_length=1, max_length=KEY_MAX)]
_MFloat = Annotated[float, _M(ge=-DOUBLE_MAX, le=DOUBLE_MAX)]
_MTime = Annotated[datetime, _M(tz=True)] | None
_EMPTY_RAW = msgspec.Raw(b"{}")


class _Event(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    event_id: _MId
    unit_id: _MUnit
    name: Annotated[str, _M(pattern=EVENT_NAME_RE.pattern)]
    value: _MFloat = 1.0
    timestamp: _MTime = None
    properties: msgspec.Raw = _EMPTY_RAW


class _Exposure(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    unit_id: _MUnit
    experiment: _MKey
    variant: _MKey
    timestamp: _MTime = None
    exposure_id: _MId | None = None


class _Prediction(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    prediction_id: _MId
    unit_id: _MUnit
    experiment: _MKey
    variant: _MKey
    model: Annotated[str, _M(min_length=1, max_length=MODEL_MAX)]
    score: _MFloat
    timestamp: _MTime = None


class _Label(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    prediction_id: _MId
    label: _MFloat
    timestamp: _MTime = None


class _Events(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    events: list[_Event]


class _Exposures(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    exposures: list[_Exposure]


class _Predictions(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    predictions: list[_Prediction]


class _Labels(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    labels: list[_Label]


# kind -> (msgspec decoder of the body, pydantic model of an item, its text fields)
_KINDS: dict[str, tuple[msgspec.json.Decoder[Any], type[_Item], tuple[str, ...]]] = {
    "events": (msgspec.json.Decoder(_Events), EventIn, ("event_id", "unit_id", "name")),
    "exposures": (
        msgspec.json.Decoder(_Exposures),
        ExposureIn,
        ("unit_id", "experiment", "variant", "exposure_id"),
    ),
    "predictions": (
        msgspec.json.Decoder(_Predictions),
        PredictionIn,
        ("prediction_id", "unit_id", "experiment", "variant", "model"),
    ),
    "labels": (msgspec.json.Decoder(_Labels), LabelIn, ("prediction_id",)),
}

T = TypeVar("T")


def _problem(path: str, message: str) -> InvalidInputError:
    return InvalidInputError.from_problems([FieldProblem(path, message)])


def _check_count(field: str, count: int, settings: Settings) -> None:
    if count == 0:
        raise _problem(field, "must not be empty")
    if count > settings.max_batch_items:
        raise _problem(field, f"at most {settings.max_batch_items} items per batch, got {count}")


def _envelope(field: str, body: Any) -> Any:
    """The item list of a decoded body ``{"<field>": [...]}``, or a 400 naming the problem."""
    if not isinstance(body, dict) or field not in body:
        raise _problem(field, f'is required: send {{"{field}": [...]}}')
    extra = sorted(set(body) - {field})
    if extra:
        raise _problem(extra[0], "is not a known field")
    items = body[field]
    if not isinstance(items, list):
        raise _problem(field, "must be a list")
    return items


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def validate_items(kind: str, items: Any, settings: Settings) -> list[Any]:
    """Type-check a Python list of items with the pydantic models (every problem at once).

    Raises:
        InvalidInputError: Naming each bad item by index and field.
    """
    if not isinstance(items, list):
        raise _problem(kind, "must be a list")
    _check_count(kind, len(items), settings)
    model = _KINDS[kind][1]
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    try:
        parsed: list[Any] = adapter.validate_python(items)
    except ValidationError as exc:
        raise InvalidInputError.from_problems(pydantic_problems(exc, prefix=(kind,))) from None
    return parsed


def validate_body(kind: str, body: bytes, settings: Settings) -> list[Any]:
    """Decode and type-check a request body ``{"<kind>": [...]}`` in one msgspec call.

    Returns:
        The items (msgspec structs, or pydantic models when msgspec refused a
        batch that pydantic accepts), to be checked by :func:`check_rows`.

    Raises:
        InvalidInputError: The body is not JSON, not the expected envelope, or
            has invalid items (every one named, from the pydantic models).
    """
    decoder = _KINDS[kind][0]
    try:
        items: list[Any] = getattr(decoder.decode(body), kind)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    else:
        _check_count(kind, len(items), settings)
        return items
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses numbers beyond a double; the standard library reads them as
        # infinities, which the models then name by item and field.
        try:
            document = json.loads(body, parse_constant=_refuse_constant)
        except ValueError:
            raise _problem("", f"the request body is not valid JSON: {exc}") from None
    return validate_items(kind, _envelope(kind, document), settings)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# -- hardening -------------------------------------------------------------------------

_BIG_EXPONENT = re.compile(rb"[0-9][eE][+-]?[0-9]{3,}")
_NOT_FINITE = f"numbers must be finite, at most {DOUBLE_MAX:g} in magnitude"


def _json_depth(value: Any) -> int:
    """Nesting depth of decoded JSON (an object of scalars has depth 1)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            if any("\x00" in key for key in item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def properties_problem(raw: bytes, settings: Settings) -> str | None:
    """Why the JSON text of ``properties`` cannot be stored, or ``None`` if it can.

    Cheap byte tests first (size, first byte, bracket count, escapes); the
    text is decoded only when one of them cannot rule a problem out.
    """
    if len(raw) > settings.max_properties_bytes:
        return f"is {len(raw)} bytes of JSON, at most {settings.max_properties_bytes}"
    if raw[:1] != b"{":
        return "must be a JSON object (a dictionary)"
    suspicious_depth = raw.count(b"{") + raw.count(b"[") > settings.max_properties_depth
    suspicious_nul = b"\\u0000" in raw
    suspicious_number = _BIG_EXPONENT.search(raw) is not None
    if not (suspicious_depth or suspicious_nul or suspicious_number):
        return None
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):
            return _NOT_FINITE
        return f"is not valid JSON ({exc})"
    if suspicious_depth and _json_depth(decoded) > settings.max_properties_depth:
        return f"nests deeper than {settings.max_properties_depth} levels"
    if suspicious_nul and _has_nul(decoded):
        return "must not contain NUL characters (keys or strings)"
    return None


def may_hold_big_numbers(body: bytes) -> bool:
    """Whether any number of ``body`` might lie beyond a double (one scan of the body)."""
    return _BIG_EXPONENT.search(body) is not None


def _time_problem(value: datetime, latest: datetime, settings: Settings) -> str | None:
    offset = value.utcoffset()
    if offset is None:
        return "must have a timezone"
    if abs(offset) > MAX_OFFSET:
        return "UTC offset must be within ±15:59"
    if value < EARLIEST:
        return "must be at or after 1970-01-01T00:00:00Z"
    if value > latest:
        return f"is more than {settings.max_future_seconds} s in the future"
    return None


def check_items(
    kind: str,
    items: Sequence[Any],
    settings: Settings,
    now: datetime,
    *,
    may_hold_nul: bool = True,
    may_hold_big_numbers: bool = True,
) -> list[str] | None:
    r"""Apply the hardening rules to validated items; returns the ``properties`` texts.

    Args:
        kind: ``events``, ``exposures``, ``predictions`` or ``labels``.
        items: Output of :func:`validate_body` or :func:`validate_items`.
        settings: The limits.
        now: The request's clock (for the future bound).
        may_hold_nul: False when the body holds no ``\\u0000`` at all, which
            rules NUL out everywhere without looking.
        may_hold_big_numbers: False when the body holds no number with a
            three-digit exponent (:func:`may_hold_big_numbers`).

    Returns:
        For events, the JSON text of each item's ``properties`` (what is
        stored); ``None`` for the other kinds.

    Raises:
        InvalidInputError: Naming every problem by index and path.
    """
    problems: list[FieldProblem] = []
    latest = now + timedelta(seconds=settings.max_future_seconds)
    text_fields = _KINDS[kind][2]
    texts: list[str] | None = [] if kind == "events" else None
    max_bytes, max_depth = settings.max_properties_bytes, settings.max_properties_depth
    low, high = -MAX_OFFSET, MAX_OFFSET
    for index, item in enumerate(items):
        if may_hold_nul:
            for name in text_fields:
                value = getattr(item, name)
                if value is not None and "\x00" in value:
                    problems.append(
                        FieldProblem(f"{kind}[{index}].{name}", "must not contain NUL characters")
                    )
        timestamp = item.timestamp
        if timestamp is not None:
            offset = timestamp.utcoffset()
            # One chained test for the usual case; the message only when it fails.
            if offset is None or not (low <= offset <= high and EARLIEST <= timestamp <= latest):
                message = _time_problem(timestamp, latest, settings)
                if message:
                    problems.append(FieldProblem(f"{kind}[{index}].timestamp", message))
        if texts is not None:
            properties = item.properties
            message = None
            if isinstance(properties, msgspec.Raw):
                raw = bytes(properties)
                # The byte tests of properties_problem, inline for the usual case.
                if not (
                    len(raw) <= max_bytes
                    and raw[0] == 0x7B  # "{"
                    and raw.count(b"{") + raw.count(b"[") <= max_depth
                    and not (may_hold_nul and b"\\u0000" in raw)
                    and not (may_hold_big_numbers and _BIG_EXPONENT.search(raw))
                ):
                    message = properties_problem(raw, settings)
            else:
                try:  # strict: an infinity must not turn into null on the way
                    raw = json.dumps(properties, allow_nan=False, separators=(",", ":")).encode()
                except ValueError:
                    raw, message = b"{}", _NOT_FINITE
                message = message or properties_problem(raw, settings)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                message = message or "must be valid UTF-8"
                text = ""
            if message:
                problems.append(FieldProblem(f"{kind}[{index}].properties", message))
            texts.append(text)
    if problems:
        raise InvalidInputError.from_problems(problems)
    return texts
