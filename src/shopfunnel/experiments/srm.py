"""Sample-ratio mismatch: were units split between the arms as the experiment intended?

A χ² goodness-of-fit test of the observed units per arm against the intended weights, as
GrowthBook's ``gbstats.utils.check_srm``: with ``N`` units in all, arm ``i`` is expected to
hold ``E_i = w_i / Σw · N``; ``χ² = Σ (O_i - E_i)² / E_i`` over arms with a positive weight,
with ``k - 1`` degrees of freedom for ``k`` arms; ``p_value = P(χ²_{k-1} > χ²)``.

A small p-value means the split itself is off (a bug in assignment, a redirect that loses
users, bots in one arm), so the experiment's other figures cannot be trusted: GrowthBook
warns below ``p = 0.001`` and so does :attr:`SrmResult.mismatch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from shopfunnel.errors import ConfigError

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    """``p_value`` of the χ² test; ``mismatch`` is True below ``threshold`` (warn: the split is
    not what was intended). ``error`` says why there is no test (no units at all)."""

    users: tuple[int, ...]
    weights: tuple[float, ...]
    expected: tuple[float, ...]
    chi_square: float
    p_value: float
    threshold: float = SRM_THRESHOLD
    error: str | None = None

    @property
    def mismatch(self) -> bool:
        return self.error is None and self.p_value < self.threshold

    def to_dict(self) -> dict[str, object]:
        def plain(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "users": list(self.users),
            "weights": list(self.weights),
            "expected_users": [plain(e) for e in self.expected],
            "chi_square": plain(self.chi_square),
            "p_value": plain(self.p_value),
            "threshold": self.threshold,
            "mismatch": self.mismatch,
            "error": self.error,
        }


def srm_check(
    users: Sequence[int],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """χ² test of ``users`` per arm against ``weights`` (equal when None); see the module
    docstring. Mismatched lengths, negative counts or weights, or weights summing to 0 raise
    ConfigError; no units at all gives a result with ``error`` set."""
    counts = tuple(users)
    if len(counts) < 2:
        raise ConfigError(f"users={list(counts)!r}: give the units of at least two arms")
    for c in counts:
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ConfigError(f"users: {c!r} is not a count of units: use whole numbers ≥ 0")
    shares = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(counts)
    if len(shares) != len(counts):
        raise ConfigError(f"{len(shares)} weights for {len(counts)} arms: give one weight per arm")
    if any(not math.isfinite(w) or w < 0 for w in shares) or sum(shares) <= 0:
        raise ConfigError(
            f"weights={list(shares)!r}: use shares ≥ 0 with a positive sum, e.g. 0.5,0.5"
        )
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold={threshold!r}: use a p-value between 0 and 1, e.g. 0.001")
    total, weight = sum(counts), sum(shares)
    expected = tuple(w / weight * total for w in shares)
    if total == 0:
        nan = float("nan")
        return SrmResult(
            counts,
            shares,
            expected,
            nan,
            nan,
            threshold,
            "no units in any arm: nothing to test yet",
        )
    chi_square = sum((o - e) ** 2 / e for o, e in zip(counts, expected, strict=True) if e > 0)
    p_value = float(stats.chi2.sf(chi_square, len(counts) - 1))
    return SrmResult(counts, shares, expected, float(chi_square), p_value, threshold)
