"""Deterministic, sticky assignment: which variant a person sees, the same everywhere.

A person's variant in an experiment is a pure function of the experiment's key and the
person's id, so the storefront (the tracking snippet, ``/sdk.js``) and the server agree
without storing anything, and a returning person always sees the same variant.

The hash is GrowthBook's documented version 2 (its SDK specification; the test vectors in
tests/experiments/test_assignment.py are the SDKs' own):

1. ``fnv1a32(s)``: 32-bit FNV-1a (offset basis ``0x811C9DC5``, prime ``0x01000193``) over the
   string's UTF-16 code units, as JavaScript's ``charCodeAt`` reads them (for ids of ASCII
   characters, the bytes; ADR 0101 says why code units);
2. ``hash_unit(seed, value) = (fnv1a32(str(fnv1a32(seed + value))) mod 10000) / 10000``: a
   number in [0, 1) in steps of 0.0001;
3. the arms' weights cut [0, 1) into consecutive ranges (``bucket_ranges``) and the person
   falls in the range holding their number (``choose_variant``).

The seed is the experiment's key. A holdout (:func:`in_holdout`) hashes with the seed
``"holdout:" + key``, so a holdout and an experiment sharing a key are independent.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from shopfunnel.errors import ConfigError

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
HOLDOUT_SEED = "holdout:"


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of ``text`` over its UTF-16 code units (JavaScript's ``charCodeAt``)."""
    data = text.encode("utf-16-le", "surrogatepass")
    h = FNV_OFFSET
    for unit in struct.unpack(f"<{len(data) // 2}H", data):
        h = ((h ^ unit) * FNV_PRIME) & 0xFFFFFFFF
    return h


def hash_unit(seed: str, value: str) -> float:
    """GrowthBook's hash version 2: ``(fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000``."""
    return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000


def bucket_ranges(
    count: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """GrowthBook's ``getBucketRanges``: arm ``i`` holds ``[start_i, start_i + coverage·w_i)``
    where ``start_i`` is the sum of the weights before it. Coverage is clamped to [0, 1];
    weights that are missing, of the wrong length, or not summing to 1 ± 0.01 become equal."""
    coverage = min(1.0, max(0.0, coverage))
    equal = [1 / count] * count
    shares = list(weights) if weights is not None and len(weights) == count else equal
    total = 0.0
    for w in shares:
        total += w
    if total < 0.99 or total > 1.01:
        shares = equal
    ranges, cumulative = [], 0.0
    for w in shares:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return ranges


def choose_variant(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """The index of the range holding ``n`` (start included, end excluded), or -1."""
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return -1


def _id(value: str | int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(
            f"{what}={value!r}: use a string (or a whole number), as the "
            "snippet's String(id) would write it"
        )
    return str(value)


def check_weights(weights: Sequence[float] | int) -> list[float]:
    """The arms' shares: a count of equal arms, or shares ≥ 0 summing to 1 (± 1e-6, so every
    hash value, at most 0.9999, falls in an arm)."""
    if isinstance(weights, bool) or not isinstance(weights, int | Sequence):
        raise ConfigError(
            f"weights={weights!r}: give a number of arms (2) or their shares (0.5, 0.5)"
        )
    if isinstance(weights, int):
        if weights < 2:
            raise ConfigError(
                f"{weights} arms: an experiment has at least 2 (control and one variant)"
            )
        return [1 / weights] * weights
    shares = [float(w) for w in weights]
    total = 0.0
    for w in shares:
        total += w
    if len(shares) < 2 or any(not 0 <= w <= 1 for w in shares) or abs(total - 1) > 1e-6:
        raise ConfigError(
            f"weights={shares!r}: give one share per arm (at least 2), each "
            "between 0 and 1, summing to 1, e.g. 0.5,0.5 or 0.8,0.2"
        )
    return shares


def assign_variant(key: str, person_id: str | int, weights: Sequence[float] | int = 2) -> int:
    """The variant (0 = control, 1, 2, …) of ``person_id`` in the experiment ``key``.

    ``weights`` is the number of equal arms or each arm's share (summing to 1). The same key,
    id and weights give the same variant in any process, and in the snippet's
    ``shopfunnel.assign(key, id, weights)``.
    """
    if not isinstance(key, str) or not key:
        raise ConfigError(f"experiment key={key!r}: use a non-empty string, e.g. 'checkout-v2'")
    shares = check_weights(weights)
    n = hash_unit(key, _id(person_id, "person_id"))
    return choose_variant(n, bucket_ranges(len(shares), 1.0, shares))


def in_holdout(key: str, person_id: str | int, share: float) -> bool:
    """True when ``person_id`` is in the holdout of ``key``: the fixed ``share`` (0-1) of an
    audience that never receives the message (a flow, an offer), so its lift can be read.

    ``hash_unit("holdout:" + key, person_id) < share``: sticky, and nested as the share grows
    (a person held out at 5% is held out at 10%)."""
    if not isinstance(key, str) or not key:
        raise ConfigError(f"holdout key={key!r}: use a non-empty string, e.g. 'winback-flow'")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"holdout share={share!r}: use a number between 0 and 1, e.g. 0.1")
    return hash_unit(HOLDOUT_SEED + key, _id(person_id, "person_id")) < share
