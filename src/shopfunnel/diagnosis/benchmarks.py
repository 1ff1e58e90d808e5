"""Published funnel benchmarks and the comparison of a store with them.

The defaults (with their sources) are package data in ``benchmarks.toml``; a store
overrides or adds benchmarks in the ``[benchmarks]`` section of ``shopfunnel.toml``.
All of them are **per session** (the published figures are), computed from
:class:`shopfunnel.diagnosis.session_levels.SessionLevels`.

A benchmark gives a finding when the store is worse than it *and* the whole 95% Wilson
interval of the store's rate lies on the worse side (the gap is not noise), *and* the
relative gap is at least ``min_relative_gap`` (10%): a store 2% under an industry
average is average.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from shopfunnel.diagnosis.settings_sections import user_section
from shopfunnel.diagnosis.stats import one_sample_p
from shopfunnel.errors import ConfigError


@dataclass(frozen=True)
class Benchmark:
    """A published rate: ``numerator / denominator`` sessions (or 1 minus it when
    ``complement``), optionally on one ``device``; ``direction`` says which way is better."""

    key: str
    label: str
    numerator: str
    denominator: str
    value: float
    direction: Literal["higher", "lower"] = "higher"
    complement: bool = False
    device: str | None = None
    source: str = ""
    enabled: bool = True


_FIELDS = {
    "label",
    "numerator",
    "denominator",
    "value",
    "direction",
    "complement",
    "device",
    "source",
    "enabled",
}


def default_benchmarks() -> dict[str, dict[str, Any]]:
    text = (
        resources.files("shopfunnel.diagnosis")
        .joinpath("benchmarks.toml")
        .read_text(encoding="utf-8")
    )
    return tomllib.loads(text)


def load_benchmarks(model: Any = None) -> list[Benchmark]:
    """The defaults with the model file's ``[benchmarks]`` applied.

    ``[benchmarks] purchase_rate = 0.025`` replaces a value; a table replaces or adds a
    benchmark field by field (a new one needs numerator, denominator and value).
    """
    merged = default_benchmarks()
    for key, override in user_section(model, "benchmarks").items():
        if isinstance(override, int | float) and not isinstance(override, bool):
            if key not in merged:
                raise ConfigError(
                    f"[benchmarks] {key} = {override}: there is no benchmark {key!r} to give a value to. "
                    f"Known: {', '.join(sorted(merged))}; add a new one as a table with numerator, denominator and value"
                )
            merged[key] = {**merged[key], "value": float(override), "source": "shopfunnel.toml"}
        elif isinstance(override, dict):
            unknown = set(override) - _FIELDS
            if unknown:
                raise ConfigError(
                    f"[benchmarks.{key}]: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_FIELDS))}"
                )
            merged[key] = {**merged.get(key, {}), **override}
            if "source" not in override and key not in default_benchmarks():
                merged[key]["source"] = "shopfunnel.toml"
        else:
            raise ConfigError(
                f"[benchmarks] {key} = {override!r}: give a number (the rate) or a table"
            )
    out = []
    for key, spec in merged.items():
        missing = {"numerator", "denominator", "value"} - set(spec)
        if missing:
            raise ConfigError(f"[benchmarks.{key}] needs {', '.join(sorted(missing))}")
        value = float(spec["value"])
        if not 0 <= value <= 1 or math.isnan(value):
            raise ConfigError(
                f"[benchmarks.{key}] value = {value}: a rate between 0 and 1 (0.033 for 3.3%)"
            )
        if spec.get("direction", "higher") not in ("higher", "lower"):
            raise ConfigError(
                f"[benchmarks.{key}] direction = {spec['direction']!r}: use 'higher' or 'lower'"
            )
        out.append(
            Benchmark(
                key=key,
                label=spec.get("label", key),
                numerator=spec["numerator"],
                denominator=spec["denominator"],
                value=value,
                direction=spec.get("direction", "higher"),
                complement=bool(spec.get("complement", False)),
                device=spec.get("device"),
                source=spec.get("source", ""),
                enabled=bool(spec.get("enabled", True)),
            )
        )
    return out


def compare_with_benchmarks(
    levels,
    benchmarks: list[Benchmark],
    *,
    start=None,
    end=None,
    min_relative_gap: float = 0.10,
    confidence: float = 0.95,
) -> tuple[list[dict], list[dict]]:
    """Compare the store's session rates with each benchmark.

    Returns ``(table, findings)``: ``table`` has one dict per benchmark (key, label,
    value, reference, ci_low, ci_high, sessions, status ``worse``/``better``/``in line``/
    ``not measurable`` with a reason), ``findings`` the benchmarks the store is
    significantly and materially worse at (see the module docstring).
    """
    from shopfunnel.diagnosis.findings import downstream_rate, finding, pct
    from shopfunnel.diagnosis.stats import wilson_interval

    names = levels.step_names
    all_counts = levels.counts(start=start, end=end)
    by_device = levels.counts(by=["device"], start=start, end=end)
    table, findings = [], []
    K = len(levels.steps)
    for b in benchmarks:
        if not b.enabled:
            continue
        row = {
            "key": b.key,
            "label": b.label,
            "reference": b.value,
            "source": b.source,
            "direction": b.direction,
            "value": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "sessions": 0,
            "status": "not measurable",
            "reason": "",
        }
        if b.numerator not in names or b.denominator not in names:
            missing = [s for s in (b.numerator, b.denominator) if s not in names]
            row["reason"] = f"the store records no {', '.join(missing)} step"
            table.append(row)
            continue
        num, den = names.index(b.numerator), names.index(b.denominator)
        counts = all_counts
        if b.device is not None:
            counts = by_device[by_device["device"] == b.device]
        if counts.empty or int(counts[f"n{den}"].sum()) == 0:
            row["reason"] = (
                f"no sessions{' on ' + b.device if b.device else ''} reached {b.denominator}"
            )
            table.append(row)
            continue
        x, n = int(counts[f"n{num}"].sum()), int(counts[f"n{den}"].sum())
        lo, hi = wilson_interval(x, n, confidence)
        value = x / n
        if b.complement:
            value, lo, hi = 1 - value, 1 - hi, 1 - lo
        row.update(value=value, ci_low=lo, ci_high=hi, sessions=n)
        worse = value < b.value if b.direction == "higher" else value > b.value
        sure = hi < b.value if b.direction == "higher" else lo > b.value
        material = abs(value - b.value) >= min_relative_gap * b.value
        row["status"] = (
            "worse"
            if worse and sure and material
            else ("better" if not worse and material else "in line")
        )
        table.append(row)
        if row["status"] != "worse":
            continue
        # one-sample score test of the session rate against the benchmark (agrees with Wilson)
        p0 = 1 - b.value if b.complement else b.value
        p = one_sample_p(x, n, p0)
        units = n * abs(value - b.value)
        # the units lost are sessions at the numerator step (purchases for an abandonment rate)
        step_idx = num
        downstream = downstream_rate(counts, step_idx, K)
        step = levels.steps[step_idx - 1] if step_idx > 0 else None
        seg = f"device={b.device}" if b.device else "all traffic"
        findings.append(
            finding(
                kind="benchmark",
                stage=step.stage if step else "awareness",
                step=names[step_idx],
                segment=seg,
                metric=b.key,
                value=value,
                reference=b.value,
                gap=value - b.value,
                ci_low=lo - b.value,
                ci_high=hi - b.value,
                p_value=p,
                units_lost=units,
                downstream_rate=downstream,
                entering=n,
                start=start,
                end=end,
                source=b.source,
                title=f"{b.label[0].upper() + b.label[1:]} is {pct(value)} against a benchmark of {pct(b.value)}",
                evidence=(
                    f"{pct(value)} of {n:,} sessions{' on ' + b.device if b.device else ''} ({b.label}; 95% CI "
                    f"{pct(lo)}–{pct(hi)}) against {pct(b.value)} published by {b.source}."
                ),
                audience={
                    "stage": step.audience_stage if step else "awareness",
                    "status": "stalled",
                    **({"device": b.device} if b.device else {}),
                },
            )
        )
    return table, findings
