"""Build and check the items the SDK queues: events, exposures, predictions, labels.

Checks run in two places so that the caller's thread stays cheap:

* ``build_*`` run on the caller's thread: type, length and pattern checks that
  cost well under a microsecond each. They raise :class:`InvalidItemError`.
* :func:`prepare` runs on the sender thread just before batching: it turns
  timestamps into ISO 8601 strings and JSON-encodes ``properties`` to check
  they are strict JSON of at most 8 KB. JSON is never encoded on the caller's
  thread.

Exposures logged by ``assign`` are queued as bare tuples
``(experiment, unit_id, variant, unix_time)`` (:func:`exposure_tuple`): their
fields come from the validated config and the already checked unit id, so the
caller's thread builds nothing else; the sender gives them their id (128
random bits in hex: the server keys exposures by experiment and unit, the id
only names the item) and ISO timestamp, to the millisecond (events count
from a unit's exposure minus a clock-skew tolerance of a minute: finer is
not needed, and consecutive exposures then share one formatted timestamp),
and writes their JSON text directly (:func:`encode_batch`).

The rules mirror DESIGN.md "Domain words" (and ``experiments/domain.py``,
which the SDK does not import so that it depends on nothing but the
assignment package, httpx and the standard library).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from experiments.sdk.errors import InvalidItemError

EVENT_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
EXPERIMENT_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
UNIT_ID_MAX = 256
TEXT_MAX = 128  # variant keys, model names and caller-supplied ids
PROPERTIES_MAX_BYTES = 8192

Item = dict[str, Any]


def new_id() -> str:
    """A random UUID version 4 in canonical form (RFC 9562 §5.4).

    Same bits as ``str(uuid.uuid4())`` (122 random bits from ``os.urandom``,
    version 4, variant 10xx) at about two thirds of its cost, which matters on
    the caller's thread. ``os.urandom`` keeps no state in the process, so a
    forked child never repeats its parent's ids.
    """
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


_VARIANT_NIBBLE = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def new_ids(count: int) -> list[str]:
    """``count`` UUID4s like :func:`new_id`, from one ``os.urandom`` call (sender side)."""
    raw = os.urandom(16 * count).hex()
    nibble = _VARIANT_NIBBLE
    ids = []
    for start in range(0, 32 * count, 32):
        h = raw[start : start + 32]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{nibble[h[16]]}{h[17:20]}-{h[20:]}")
    return ids


def _invalid(kind: str, message: str) -> InvalidItemError:
    return InvalidItemError(message, kind=kind)


def check_unit_id(kind: str, unit_id: object) -> str:
    """Return ``unit_id`` if it is a string of 1 to 256 characters."""
    if type(unit_id) is not str or not 0 < len(unit_id) <= UNIT_ID_MAX:
        raise _invalid(kind, f"unit_id: must be a string of 1 to {UNIT_ID_MAX} characters")
    return unit_id


def _check_text(kind: str, field: str, value: object) -> str:
    if type(value) is not str or not 0 < len(value) <= TEXT_MAX:
        raise _invalid(kind, f"{field}: must be a string of 1 to {TEXT_MAX} characters")
    return value


def _check_experiment(kind: str, experiment: object) -> str:
    if type(experiment) is not str or EXPERIMENT_KEY_RE.fullmatch(experiment) is None:
        raise _invalid(kind, "experiment: must match [a-z0-9][a-z0-9_-]{0,63}")
    return experiment


def _check_number(kind: str, field: str, value: object, *, allow_bool: bool = False) -> float:
    if type(value) is float:
        number = value
    elif isinstance(value, int | float) and (allow_bool or not isinstance(value, bool)):
        number = float(value)
    else:
        raise _invalid(kind, f"{field}: must be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise _invalid(kind, f"{field}: must be finite, got {number}")
    return number


def _check_timestamp(kind: str, timestamp: datetime | None) -> datetime:
    if timestamp is None:
        return datetime.now(UTC)
    if not isinstance(timestamp, datetime):
        raise _invalid(kind, "timestamp: must be a datetime")
    if timestamp.utcoffset() is None:
        raise _invalid(kind, "timestamp: must be timezone-aware (naive datetimes are ambiguous)")
    return timestamp


def build_event(
    event_id: str,
    name: str,
    unit_id: str,
    value: float,
    timestamp: datetime | None,
    properties: Mapping[str, Any] | None,
) -> Item:
    """Check an event's fields and build its queue item."""
    if type(name) is not str or EVENT_NAME_RE.fullmatch(name) is None:
        raise _invalid("events", "name: must match [A-Za-z0-9_.:-]{1,128}")
    if properties is None:
        props: dict[str, Any] = {}
    elif isinstance(properties, Mapping):
        props = dict(properties)  # shallow copy: later changes by the caller do not leak in
    else:
        raise _invalid("events", "properties: must be a mapping (JSON object)")
    return {
        "event_id": _check_text("events", "event_id", event_id),
        "unit_id": check_unit_id("events", unit_id),
        "name": name,
        "value": _check_number("events", "value", value),
        "timestamp": _check_timestamp("events", timestamp),
        "properties": props,
    }


def build_exposure(
    exposure_id: str,
    experiment: str,
    unit_id: str,
    variant: str,
    timestamp: datetime | None,
) -> Item:
    """Check an exposure's fields and build its queue item."""
    return {
        "exposure_id": _check_text("exposures", "exposure_id", exposure_id),
        "unit_id": check_unit_id("exposures", unit_id),
        "experiment": _check_experiment("exposures", experiment),
        "variant": _check_text("exposures", "variant", variant),
        "timestamp": _check_timestamp("exposures", timestamp),
    }


def exposure_tuple(experiment: str, unit_id: str, variant: str, at: float) -> tuple[Any, ...]:
    """The queue form of an exposure found by ``assign`` (checked already; see module docs)."""
    return (experiment, unit_id, variant, at)


def build_prediction(
    prediction_id: str,
    experiment: str,
    unit_id: str,
    variant: str,
    model: str,
    score: float,
    timestamp: datetime | None,
) -> Item:
    """Check a prediction's fields and build its queue item."""
    return {
        "prediction_id": _check_text("predictions", "prediction_id", prediction_id),
        "unit_id": check_unit_id("predictions", unit_id),
        "experiment": _check_experiment("predictions", experiment),
        "variant": _check_text("predictions", "variant", variant),
        "model": _check_text("predictions", "model", model),
        "score": _check_number("predictions", "score", score),
        "timestamp": _check_timestamp("predictions", timestamp),
    }


def build_label(prediction_id: str, label: float, timestamp: datetime | None) -> Item:
    """Check a label's fields and build its queue item (``True``/``False`` mean 1/0)."""
    return {
        "prediction_id": _check_text("labels", "prediction_id", prediction_id),
        "label": _check_number("labels", "label", label, allow_bool=True),
        "timestamp": _check_timestamp("labels", timestamp),
    }


def exposure_document(item: tuple[Any, ...]) -> Item:
    """An exposure tuple as a readable mapping (for error reports; not sent)."""
    experiment, unit_id, variant, at = item
    return {
        "unit_id": unit_id,
        "experiment": experiment,
        "variant": variant,
        "timestamp": _millisecond_text(int(at * 1000)),
    }


def item_document(item: Any) -> Item:
    """Any queued item as a mapping, for error reports."""
    return exposure_document(item) if type(item) is tuple else dict(item)


_MIDDLES: dict[tuple[str, str], str] = {}


def _middle(experiment: str, variant: str) -> str:
    """The JSON text between an exposure's unit id and its timestamp value, cached."""
    if len(_MIDDLES) > 10_000:
        _MIDDLES.clear()
    text = _MIDDLES[(experiment, variant)] = (
        f',"experiment":{encode_basestring_ascii(experiment)},'
        f'"variant":{encode_basestring_ascii(variant)},"timestamp":"'
    )
    return text


_SECONDS: dict[int, str] = {}


def _millisecond_text(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fff000+00:00`` of a Unix time in milliseconds."""
    second, fraction = divmod(ms, 1000)
    prefix = _SECONDS.get(second)
    if prefix is None:
        if len(_SECONDS) > 1000:
            _SECONDS.clear()
        prefix = _SECONDS[second] = datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S."
        )
    return f"{prefix}{fraction:03d}000+00:00"


def encode_batch(kind: str, items: Sequence[Any]) -> tuple[list[str], list[InvalidItemError]]:
    """Encode a batch of queued items as JSON texts, one per item (sender thread only).

    Exposure tuples from ``assign`` are written directly (their keys come from
    the config, the unit id is escaped by the standard library's C encoder),
    with ids from one ``os.urandom`` call: an order of magnitude cheaper than
    building and dumping a dict each. Other items go through :func:`prepare`
    and ``json.dumps``; the invalid ones become errors.

    Returns:
        The JSON texts of the valid items, in order, and the errors of the others.
    """
    texts: list[str] = []
    errors: list[InvalidItemError] = []
    fast = sum(1 for item in items if type(item) is tuple)
    raw = os.urandom(16 * fast).hex() if fast else ""
    at_id = 0
    escape = encode_basestring_ascii
    middles = _MIDDLES
    last_ms, stamp = -1, ""
    for item in items:
        if type(item) is tuple:
            experiment, unit_id, variant, at = item
            ms = int(at * 1000)
            if ms != last_ms:  # consecutive exposures mostly share their millisecond
                last_ms, stamp = ms, _millisecond_text(ms)
            middle = middles.get((experiment, variant)) or _middle(experiment, variant)
            texts.append(
                f'{{"exposure_id":"{raw[at_id : at_id + 32]}","unit_id":{escape(unit_id)}'
                f'{middle}{stamp}"}}'
            )
            at_id += 32
            continue
        try:
            payload = prepare(kind, item)
            texts.append(json.dumps(payload, separators=(",", ":"), allow_nan=False))
        except InvalidItemError as exc:
            errors.append(exc)
        except (TypeError, ValueError) as exc:
            errors.append(
                InvalidItemError(f"{kind}: not JSON-able ({exc})", kind=kind, items=[dict(item)])
            )
    return texts, errors


def prepare(kind: str, item: Item) -> Item:
    """Turn a queued item into its JSON-ready payload (sender thread only).

    Raises:
        InvalidItemError: ``properties`` is not strict JSON or exceeds 8 KB.
    """
    payload = dict(item)
    payload["timestamp"] = item["timestamp"].isoformat()
    properties = item.get("properties")
    if properties:
        try:
            encoded = json.dumps(properties, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidItemError(
                f"properties: must be JSON-able ({exc})", kind=kind, items=[payload]
            ) from exc
        size = len(encoded.encode("utf-8"))
        if size > PROPERTIES_MAX_BYTES:
            raise InvalidItemError(
                f"properties: {size} bytes as JSON, at most {PROPERTIES_MAX_BYTES} allowed",
                kind=kind,
                items=[payload],
            )
    return payload
