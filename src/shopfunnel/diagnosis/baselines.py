"""The store against itself: period over period, and each segment against the rest.

Both compare session conversion between consecutive steps (the transition into step
``k``: sessions that reached ``k`` over sessions that reached ``k-1``; see
:mod:`shopfunnel.diagnosis.session_levels`).

**Period over period**: the last ``period_days`` days before ``as_of`` against the
``period_days`` before them. Each transition gets the pooled two-proportion z-test and
Newcombe's interval for the change; p-values are Holm-adjusted over the steps (a handful
of planned comparisons). A finding needs an adjusted p below ``alpha`` and a relative
drop of at least ``min_relative_change``. Traffic (sessions) is compared with an exact
conditional test: given the two periods' total, current sessions are
Binomial(total, 1/2) under "no change" (equal-length periods).

**Segments**: over the diagnosis window, for each value of device, channel, campaign and
country with at least ``min_sessions`` sessions entering the step, the segment's rate
against the rest of the traffic (all other values pooled), pooled z-test, Newcombe
interval; Benjamini–Hochberg over every (dimension, value, step) tested. A step is
flagged with q < ``alpha``, a lower rate than the rest and a relative gap of at least
``min_relative_gap``; each segment gives one finding, at its flagged step with the most
revenue at stake, and names its other flagged steps in the evidence.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from shopfunnel.diagnosis.findings import downstream_rate, finding, pct
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.stats import (
    benjamini_hochberg,
    holm,
    newcombe_interval,
    scipy_stats,
    two_proportion_ztest,
)

SEGMENT_DIMS = ("device", "channel", "campaign", "country")


def period_over_period(
    levels: SessionLevels,
    as_of: datetime,
    period_days: int = 28,
    *,
    alpha: float = 0.05,
    min_relative_change: float = 0.05,
) -> tuple[list[dict], list[dict]]:
    """``(table, findings)``: each transition's rate now and before, change, interval, p-values."""
    cur0, prev0 = as_of - timedelta(days=period_days), as_of - timedelta(days=2 * period_days)
    cur = levels.counts(start=cur0, end=as_of)
    prev = levels.counts(start=prev0, end=cur0)
    K = len(levels.steps)
    names = levels.step_names
    if cur.empty or prev.empty or int(prev["n0"].iloc[0]) == 0 or int(cur["n0"].iloc[0]) == 0:
        return [
            {
                "step": "visit",
                "reason": f"needs sessions in both the last {period_days} days and the {period_days} before",
            }
        ], []
    c, p = cur.iloc[0], prev.iloc[0]
    table = []
    tot = int(c["n0"] + p["n0"])
    p_traffic = (
        float(scipy_stats().binomtest(int(c["n0"]), tot, 0.5).pvalue) if tot else float("nan")
    )
    table.append(
        {
            "step": "visit",
            "metric": "sessions",
            "current": int(c["n0"]),
            "previous": int(p["n0"]),
            "value": float(c["n0"]),
            "reference": float(p["n0"]),
            "change": (c["n0"] - p["n0"]) / max(p["n0"], 1),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "p_value": p_traffic,
        }
    )
    for k in range(1, K + 1):
        x1, n1, x2, n2 = (
            float(c[f"n{k}"]),
            float(c[f"n{k - 1}"]),
            float(p[f"n{k}"]),
            float(p[f"n{k - 1}"]),
        )
        r1 = x1 / n1 if n1 else float("nan")
        r2 = x2 / n2 if n2 else float("nan")
        lo, hi = newcombe_interval(x1, n1, x2, n2)
        t = two_proportion_ztest(x1, n1, x2, n2)
        table.append(
            {
                "step": names[k],
                "metric": f"{names[k - 1]} → {names[k]}",
                "current": int(x1),
                "previous": int(x2),
                "entering": int(n1),
                "entering_previous": int(n2),
                "value": r1,
                "reference": r2,
                "change": r1 - r2,
                "ci_low": lo,
                "ci_high": hi,
                "p_value": t.p_value,
            }
        )
    adj = holm([r["p_value"] for r in table[1:]])
    for r, a in zip(table[1:], adj, strict=True):
        r["p_adjusted"] = float(a)
    table[0]["p_adjusted"] = table[0]["p_value"]
    findings = []
    period = f"the last {period_days} days against the {period_days} before"
    t0 = table[0]
    if t0["p_value"] < alpha and t0["change"] <= -min_relative_change:
        findings.append(
            finding(
                kind="traffic_change",
                stage="awareness",
                step="visit",
                segment="all traffic",
                metric="sessions",
                value=t0["value"],
                reference=t0["reference"],
                gap=t0["value"] - t0["reference"],
                p_value=t0["p_value"],
                units_lost=t0["reference"] - t0["value"],
                downstream_rate=float(c[f"n{K}"]) / max(float(c["n0"]), 1.0),
                entering=t0["value"],
                start=cur0,
                end=as_of,
                title=f"Traffic fell {pct(-t0['change'])} period over period",
                evidence=f"{int(t0['value']):,} sessions in {period}, against {int(t0['reference']):,} (exact test p = {t0['p_value']:.2g}).",
                audience={"stage": "awareness", "status": "lapsed"},
            )
        )
    for k, r in enumerate(table[1:], start=1):
        if not (
            r["p_adjusted"] < alpha
            and r["change"] < 0
            and -r["change"] >= min_relative_change * r["reference"]
        ):
            continue
        step = levels.steps[k - 1]
        findings.append(
            finding(
                kind="period_change",
                stage=step.stage,
                step=step.name,
                segment="all traffic",
                metric=r["metric"],
                value=r["value"],
                reference=r["reference"],
                gap=r["change"],
                ci_low=r["ci_low"],
                ci_high=r["ci_high"],
                p_value=r["p_adjusted"],
                units_lost=r["entering"] * (r["reference"] - r["value"]),
                downstream_rate=downstream_rate(c, k, K),
                entering=r["entering"],
                start=cur0,
                end=as_of,
                title=f"{r['metric']} fell from {pct(r['reference'])} to {pct(r['value'])}",
                evidence=(
                    f"{pct(r['value'])} of {r['entering']:,} sessions went from {names[k - 1]} to {names[k]} in {period} "
                    f"({pct(r['reference'])} before; change {pct(r['change'])}, 95% CI {pct(r['ci_low'])} to {pct(r['ci_high'])}, "
                    f"Holm-adjusted p = {r['p_adjusted']:.2g})."
                ),
                audience={"stage": step.audience_stage, "status": "stalled"},
            )
        )
    return table, findings


def segment_gaps(
    levels: SessionLevels,
    start: datetime | None,
    end: datetime | None,
    *,
    alpha: float = 0.05,
    min_relative_gap: float = 0.10,
    min_sessions: int = 30,
    top: int = 10,
    dims: tuple[str, ...] = SEGMENT_DIMS,
) -> tuple[list[dict], list[dict]]:
    """``(table, findings)``: every segment × step tested against the rest of the traffic."""
    K = len(levels.steps)
    names = levels.step_names
    rows = []
    for dim in dims:
        df = levels.counts(by=[dim], start=start, end=end, top={dim: top})
        if df.empty:
            continue
        totals = df[[f"n{k}" for k in range(K + 1)]].sum()
        for _, seg in df.iterrows():
            value = seg[dim]
            if value in ("(none)", "other") or len(df) < 2:
                continue
            rest = totals - seg[[f"n{k}" for k in range(K + 1)]]
            for k in range(1, K + 1):
                x1, n1 = float(seg[f"n{k}"]), float(seg[f"n{k - 1}"])
                x2, n2 = float(rest[f"n{k}"]), float(rest[f"n{k - 1}"])
                if n1 < min_sessions or n2 < min_sessions:
                    continue
                t = two_proportion_ztest(x1, n1, x2, n2)
                lo, hi = newcombe_interval(x1, n1, x2, n2)
                rows.append(
                    {
                        "dimension": dim,
                        "value": value,
                        "step": names[k],
                        "k": k,
                        "metric": f"{names[k - 1]} → {names[k]}",
                        "rate": x1 / n1,
                        "rest_rate": x2 / n2,
                        "gap": x1 / n1 - x2 / n2,
                        "ci_low": lo,
                        "ci_high": hi,
                        "entering": int(n1),
                        "p_value": t.p_value,
                        "downstream_rate": downstream_rate(seg, k, K),
                    }
                )
    q = benjamini_hochberg([r["p_value"] for r in rows]) if rows else np.array([])
    flagged: dict[tuple[str, str], list[dict]] = {}
    for r, qv in zip(rows, q, strict=True):
        r["q_value"] = float(qv)
        r["units_lost"] = r["entering"] * (r["rest_rate"] - r["rate"])
        if qv < alpha and r["gap"] < 0 and -r["gap"] >= min_relative_gap * r["rest_rate"]:
            flagged.setdefault((r["dimension"], r["value"]), []).append(r)
    findings = []
    # one finding per segment: its costliest step; the other weak steps are named in the evidence
    for group in flagged.values():
        group.sort(key=lambda r: r["units_lost"] * r["downstream_rate"], reverse=True)
        r, others = group[0], group[1:]
        also = (
            f" It also converts worse at: {', '.join(o['metric'] for o in others)}."
            if others
            else ""
        )
        step = levels.steps[r["k"] - 1]
        seg = f"{r['dimension']}={r['value']}"
        findings.append(
            finding(
                kind="segment_gap",
                stage=step.stage,
                step=step.name,
                segment=seg,
                metric=r["metric"],
                value=r["rate"],
                reference=r["rest_rate"],
                gap=r["gap"],
                ci_low=r["ci_low"],
                ci_high=r["ci_high"],
                p_value=r["q_value"],
                units_lost=r["entering"] * (r["rest_rate"] - r["rate"]),
                downstream_rate=r["downstream_rate"],
                entering=r["entering"],
                start=start,
                end=end,
                title=f"{seg}: {r['metric']} is {pct(r['rate'])} against {pct(r['rest_rate'])} for the rest",
                evidence=(
                    f"{pct(r['rate'])} of {r['entering']:,} {seg} sessions went from {names[r['k'] - 1]} to {r['step']}, "
                    f"against {pct(r['rest_rate'])} for all other traffic (gap {pct(r['gap'])}, 95% CI {pct(r['ci_low'])} to "
                    f"{pct(r['ci_high'])}, Benjamini–Hochberg q = {r['q_value']:.2g}).{also}"
                ),
                audience={
                    "stage": step.audience_stage,
                    "status": "stalled",
                    r["dimension"]: r["value"],
                },
            )
        )
    return rows, findings


def repeat_purchases(
    store,
    as_of: datetime,
    period_days: int = 28,
    *,
    alpha: float = 0.05,
    min_relative_change: float = 0.10,
) -> tuple[list[dict], list[dict]]:
    """Retention, period over period: the share of orders that are a customer's repeat order.

    An order is a **repeat order** when the same person has an earlier order (at any time
    before it, in the whole store). The share of repeat orders among the orders of the
    last ``period_days`` days before ``as_of`` is compared with the ``period_days`` before
    them: pooled two-proportion z-test and Newcombe interval. A ``retention`` finding
    needs p < ``alpha`` and a relative drop of at least ``min_relative_change``; its
    units lost are repeat orders (``orders now × (share before − share now)``), each worth
    an order, so the downstream rate is 1.
    """
    cur0, prev0 = as_of - timedelta(days=period_days), as_of - timedelta(days=2 * period_days)
    rows = store.db.rows(
        """
        WITH o AS (SELECT person_id, ts, row_number() OVER (PARTITION BY person_id ORDER BY ts, order_id) > 1 AS repeat
                   FROM orders WHERE ts < ?)
        SELECT ts >= ? AS current, count(*) AS orders, count(*) FILTER (WHERE repeat) AS repeats
        FROM o WHERE ts >= ? GROUP BY ALL
        """,
        [as_of, cur0, prev0],
    )
    got = {bool(r[0]): (int(r[1]), int(r[2])) for r in rows}
    (n1, x1), (n2, x2) = got.get(True, (0, 0)), got.get(False, (0, 0))
    table = [
        {
            "metric": "repeat order share",
            "current": x1,
            "orders": n1,
            "previous": x2,
            "orders_previous": n2,
            "value": x1 / n1 if n1 else float("nan"),
            "reference": x2 / n2 if n2 else float("nan"),
        }
    ]
    if not n1 or not n2:
        table[0]["reason"] = (
            f"needs orders in both the last {period_days} days and the {period_days} before"
        )
        return table, []
    t = two_proportion_ztest(x1, n1, x2, n2)
    lo, hi = newcombe_interval(x1, n1, x2, n2)
    r1, r2 = x1 / n1, x2 / n2
    table[0].update(change=r1 - r2, ci_low=lo, ci_high=hi, p_value=t.p_value)
    if not (t.p_value < alpha and r1 < r2 and (r2 - r1) >= min_relative_change * r2):
        return table, []
    return table, [
        finding(
            kind="retention",
            stage="retention",
            step="purchase",
            segment="customers",
            metric="repeat order share",
            value=r1,
            reference=r2,
            gap=r1 - r2,
            ci_low=lo,
            ci_high=hi,
            p_value=t.p_value,
            units_lost=n1 * (r2 - r1),
            downstream_rate=1.0,
            entering=n1,
            start=cur0,
            end=as_of,
            title=f"Repeat orders fell from {pct(r2)} to {pct(r1)} of orders",
            evidence=(
                f"{x1:,} of {n1:,} orders in the last {period_days} days came from returning customers ({pct(r1)}), "
                f"against {x2:,} of {n2:,} ({pct(r2)}) in the {period_days} days before (change {pct(r1 - r2)}, "
                f"95% CI {pct(lo)} to {pct(hi)}, p = {t.p_value:.2g})."
            ),
            audience={"stage": "purchase", "status": "lapsed"},
        )
    ]
