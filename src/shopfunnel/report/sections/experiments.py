"""The experiments section: each experiment in the store, its split and its metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from shopfunnel import format as f
from shopfunnel.report.blocks import Section, Table, Text

LEAD = (
    "Each experiment recorded in the store (experiment_exposure events): persons per "
    "variant, whether the split is what was intended, and each metric of the variant "
    "against control, counted in the days after each person's first exposure. A difference "
    "is relative (+5% means 5% more than control); a note says when the data cannot give "
    "one yet."
)


def _difference(value: Any) -> str:
    return "–" if f._missing(value) else f"{float(value) * 100:+.1f}%"


def experiments_section(reports: Sequence[Any]) -> Section:
    """One block per :class:`~shopfunnel.experiments.ExperimentReport` (frequentist,
    relative): a line with the split and the SRM check, then a table of the metrics."""
    blocks: list = []
    for report in reports:
        split = ", ".join(
            f"{v}: {f.integer(n)}"
            for v, n in zip(report.variants["variant"], report.variants["persons"], strict=True)
        )
        srm = report.srm
        verdict = (
            "the split is NOT what was intended (sample ratio mismatch): find the cause "
            "before trusting any result"
            if srm.mismatch
            else "the split looks as intended"
        )
        blocks.append(
            Text(
                f"{report.experiment}: persons per variant {split} (control {report.control}); "
                f"{f.integer(report.multiple_exposures)} left out for seeing several variants; "
                f"{verdict} ({f.p_value(srm.p_value)})."
            )
        )
        rows = []
        for r in report.results.to_dict("records"):
            rows.append(
                {
                    "metric": r["metric"],
                    "variant": str(r["variant"]),
                    "persons (control / variant)": f"{f.integer(r['n_control'])} / {f.integer(r['n_variant'])}",
                    "control": f.number(r["control_mean"]),
                    "variant value": f.number(r["variant_mean"]),
                    "difference": _difference(r["expected"]),
                    "95% interval": (
                        "–"
                        if f._missing(r["ci_lower"])
                        else f"{_difference(r['ci_lower'])} to {_difference(r['ci_upper'])}"
                    ),
                    "p": r["p_value"],
                    "note": "" if f._missing(r["error"]) else str(r["error"]),
                }
            )
        blocks.append(
            Table(
                pd.DataFrame(rows),
                formats={"p": "p"},
                caption=f"{report.experiment}: each variant against control, "
                f"window {report.window} after exposure",
            )
        )
    return Section("experiments", "Experiments", LEAD, tuple(blocks))
