"""Deterministic bucketing: ``bucket(salt, unit_id)`` in ``0..9999``.

Formula (hash version 1; README.md gives it byte by byte)::

    message = UTF-8(salt) || 0x00 || UTF-8(unit_id)
    value   = XXH64(message, seed=0)          # unsigned 64-bit integer
    bucket  = value mod 10000

XXH64 was chosen over BLAKE2b and MD5 by measurement (``benchmarks/bench_assignment.py``:
a whole ``bucket()`` call takes about a third of the BLAKE2b time in CPython, the hash
alone about an eighth), with the uniformity the tests check. XXH3 is a little faster
still, but XXH64 has ports in every common language. The modulo bias is
(2**64 mod 10000) / 2**64 ≈ 8e-14 per bucket: negligible.

Entering an experiment and choosing its variant hash with different salts derived
from the experiment salt (:func:`traffic_salt`, :func:`variant_salt`), so the two
draws are independent and ramping traffic never moves a unit to another variant.
"""

from __future__ import annotations

import xxhash

HASH_VERSION = 1
"""Bumped whenever any step of the formula changes (units would be reshuffled)."""

BUCKETS = 10_000
"""Buckets per hash space: a share of 0.0001 is the finest traffic step."""

SEPARATOR = b"\x00"
"""Between salt and unit id; salts may not contain it, so the message is unambiguous."""


def hash64(message: bytes) -> int:
    """Return the unsigned 64-bit XXH64 (seed 0) of ``message``.

    Args:
        message: The bytes to hash.

    Returns:
        An integer in ``0 .. 2**64 - 1`` (XXH64's canonical big-endian digest read as
        an unsigned integer).
    """
    return xxhash.xxh64_intdigest(message)


def message_prefix(salt: str) -> bytes:
    """Encode the constant part of the hashed message once: ``UTF-8(salt) || 0x00``.

    Args:
        salt: The salt; must not contain a NUL character.

    Returns:
        The prefix to pass to :func:`bucket_prefixed`.

    Raises:
        ValueError: If ``salt`` contains a NUL character.
    """
    if "\x00" in salt:
        raise ValueError("salt: must not contain a NUL character")
    return salt.encode("utf-8") + SEPARATOR


def bucket_prefixed(prefix: bytes, unit_id: bytes) -> int:
    """Bucket from a :func:`message_prefix` and a UTF-8 unit id (the hot path).

    Args:
        prefix: ``UTF-8(salt) || 0x00``.
        unit_id: UTF-8 unit id.

    Returns:
        ``XXH64(prefix || unit_id) mod 10000``.
    """
    return xxhash.xxh64_intdigest(prefix + unit_id) % BUCKETS


def bucket(salt: str, unit_id: str) -> int:
    """Map a unit to one of 10,000 buckets, stably across processes and machines.

    Args:
        salt: Names the hash space (an experiment's derived salt, a layer or the
            holdout); must not contain a NUL character.
        unit_id: The unit's identifier.

    Returns:
        ``XXH64(UTF-8(salt) || 0x00 || UTF-8(unit_id), seed=0) mod 10000``.

    Raises:
        ValueError: If ``salt`` contains a NUL character.
    """
    return bucket_prefixed(message_prefix(salt), unit_id.encode("utf-8"))


def traffic_salt(salt: str) -> str:
    """Salt of the draw that decides whether a unit enters an experiment (no layer).

    Args:
        salt: The experiment's salt.

    Returns:
        ``"traffic:" + salt``.
    """
    return "traffic:" + salt


def variant_salt(salt: str) -> str:
    """Salt of the draw that chooses a unit's variant.

    Args:
        salt: The experiment's salt.

    Returns:
        ``"variant:" + salt``.
    """
    return "variant:" + salt
