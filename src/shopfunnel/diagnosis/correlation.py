"""Correlation analysis: what is over-represented among sessions that dropped at a step.

For the transition into step ``k`` (sessions that reached ``k-1``; converters reached
``k``, droppers did not), every **feature** a session can carry before step ``k`` is
tested: an event that is not a funnel step (``remove_from_cart``, ``view_promotion``,
``search``…), or a property value ``key=value`` on any event of the session that is not
a step at or beyond ``k`` (so properties of the purchase itself never explain the
purchase). Property keys with more than ``max_values`` distinct values (ids, prices) are
left out.

For each (step, feature) the 2×2 table is ``[[converted with, dropped with], [converted
without, dropped without]]``; its odds ratio with Woolf's 95% interval, and Fisher's
exact p-value when an expected count is under 5 (:func:`shopfunnel.diagnosis.stats.odds_ratio`).
All p-values are Benjamini–Hochberg adjusted together. A finding is a feature with
q < alpha, odds ratio below 1 (associated with dropping), carried by at least
``min_sessions`` entering sessions, whose conversion is at least 10% (relative) below
the sessions without it. Features carried by exactly the same sessions at a step
(``shipping_cost=5.95`` and ``shipping_tier=standard``) give one finding. This is
association, not cause.
"""

from __future__ import annotations

import pandas as pd

from shopfunnel.diagnosis.findings import finding, pct
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.stats import benjamini_hochberg, odds_ratio
from shopfunnel.store.db import JSON_POINTER_SQL

CORRELATION_COLUMNS = [
    "step",
    "feature",
    "kind",
    "key",
    "value",
    "with_converted",
    "with_dropped",
    "without_converted",
    "without_dropped",
    "rate_with",
    "rate_without",
    "odds_ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "method",
    "q_value",
]


def feature_counts(store, levels: SessionLevels, max_values: int = 12) -> pd.DataFrame:
    """Sessions per (feature, earliest step index of the events carrying it, session level)."""
    steps = [s.event for s in levels.steps]
    if levels.spark is not None:  # on Spark: the same counts from Spark SQL
        from shopfunnel.store import spark_diagnosis as sd

        return sd.feature_counts(store.df, levels.spark.kept(), steps, max_values)
    case = " ".join(f"WHEN ? THEN {i + 1}" for i in range(len(steps)))
    step_idx = f"CASE e.event {case} ELSE 0 END" if steps else "0"
    if levels.feature_events is not None:
        return _feature_counts_marked(store, levels, step_idx, steps, max_values)
    return store.db.df(
        f"""
        WITH ev AS (
            SELECT l.{levels.session_column} AS session_id, l.level, e.event, {step_idx} AS step_idx, e.properties
            FROM events e JOIN {levels.table} l ON l.{levels.session_column} = {levels.events_session}
            WHERE NOT l.excluded AND (e.properties IS NOT NULL OR ({step_idx} = 0 AND e.event <> 'page_view'))
        ),
        props AS (
            SELECT session_id, level, step_idx, key, json_extract_string(properties, {JSON_POINTER_SQL.format(key="key")}) AS value
            FROM (SELECT session_id, level, step_idx, properties, unnest(json_keys(properties)) AS key
                  FROM ev WHERE properties IS NOT NULL AND json_type(properties) = 'OBJECT')
        ),
        low_card AS (SELECT key FROM props GROUP BY key HAVING count(DISTINCT value) <= ?),
        feat AS (
            SELECT session_id, level, 'event' AS kind, event AS key, NULL AS value, min(step_idx) AS first_step
            FROM ev WHERE step_idx = 0 AND event <> 'page_view' GROUP BY ALL
            UNION ALL
            SELECT session_id, level, 'property', key, value, min(step_idx)
            FROM props WHERE key IN (SELECT key FROM low_card) AND value IS NOT NULL GROUP BY ALL
        )
        SELECT kind, key, value, first_step, level, count(*) AS sessions
        FROM feat
        GROUP BY ALL
        """,
        [*steps, *steps, max_values],
    )


def _feature_counts_marked(
    store, levels: SessionLevels, step_idx: str, steps: list[str], max_values: int
) -> pd.DataFrame:
    """:func:`feature_counts` of a table whose ``features`` column marks the events each
    session has (:mod:`shopfunnel.store.session_facts`): the event features are counted
    from it, and only the events with properties are joined (the same rows as the SQL)."""
    names = levels.feature_events or []
    marked = ""
    params: list = [*steps, max_values]
    if names:
        values = ", ".join("(?, ?)" for _ in names)
        marked = f"""
        UNION ALL
        SELECT 'event', f.name, NULL, 0, g.level, sum(g.n)::BIGINT
        FROM (SELECT level, features, count(*) AS n FROM {levels.table} WHERE NOT excluded GROUP BY ALL) g
        JOIN (VALUES {values}) f(bit, name) ON (g.features >> f.bit::UBIGINT) & 1 = 1
        GROUP BY ALL"""
        params += [v for bit, name in enumerate(names) for v in (bit, name)]
    return store.db.df(
        f"""
        WITH ev AS (
            SELECT l.{levels.session_column} AS session_id, l.level, {step_idx} AS step_idx, e.properties
            FROM events e JOIN {levels.table} l ON l.{levels.session_column} = {levels.events_session}
            WHERE NOT l.excluded AND e.properties IS NOT NULL
        ),
        props AS (
            SELECT session_id, level, step_idx, key, json_extract_string(properties, {JSON_POINTER_SQL.format(key="key")}) AS value
            FROM (SELECT session_id, level, step_idx, properties, unnest(json_keys(properties)) AS key
                  FROM ev WHERE json_type(properties) = 'OBJECT')
        ),
        low_card AS (SELECT key FROM props GROUP BY key HAVING count(DISTINCT value) <= ?),
        feat AS (
            SELECT session_id, level, 'property' AS kind, key, value, min(step_idx) AS first_step
            FROM props WHERE key IN (SELECT key FROM low_card) AND value IS NOT NULL GROUP BY ALL
        )
        SELECT kind, key, value, first_step, level, count(*) AS sessions
        FROM feat
        GROUP BY ALL{marked}
        """,
        params,
    )


def correlation_findings(
    store,
    levels: SessionLevels,
    *,
    alpha: float = 0.05,
    min_sessions: int = 30,
    min_relative_gap: float = 0.10,
    max_values: int = 12,
    skip_keys: set[str] | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """``(table, findings)``: every (step, feature) tested, and the ones tied to dropping.

    ``skip_keys`` leaves out property keys another analysis already reports (the checkout
    analysis's ``payment_failed``…), so one fact is not two findings.
    """
    K = len(levels.steps)
    names = levels.step_names
    if K == 0:
        return pd.DataFrame(columns=CORRELATION_COLUMNS), []
    fc = feature_counts(store, levels, max_values)
    totals = levels.counts()
    rows = []
    if not fc.empty:
        for k in range(1, K + 1):
            entering, converted = int(totals[f"n{k - 1}"].sum()), int(totals[f"n{k}"].sum())
            sub = fc[(fc["first_step"] < k) & (fc["level"] >= k - 1)]
            if sub.empty:
                continue
            sub = sub.assign(conv=sub["level"] >= k)
            grouped = (
                sub.groupby(["kind", "key", "value", "conv"], dropna=False)["sessions"]
                .sum()
                .unstack("conv", fill_value=0)
            )
            for (kind, key, value), r in grouped.iterrows():
                a, b = int(r.get(True, 0)), int(r.get(False, 0))
                c, d = converted - a, (entering - converted) - b
                if a + b < min_sessions or c + d < min_sessions:
                    continue
                o = odds_ratio(a, b, c, d)
                feature = key if kind == "event" else f"{key}={value}"
                rows.append(
                    {
                        "step": names[k],
                        "k": k,
                        "feature": feature,
                        "kind": kind,
                        "key": key,
                        "value": value,
                        "with_converted": a,
                        "with_dropped": b,
                        "without_converted": c,
                        "without_dropped": d,
                        "rate_with": a / (a + b),
                        "rate_without": c / (c + d) if c + d else float("nan"),
                        "odds_ratio": o.estimate,
                        "ci_low": o.ci_low,
                        "ci_high": o.ci_high,
                        "p_value": o.p_value,
                        "method": o.method,
                    }
                )
    if not rows:
        return pd.DataFrame(columns=CORRELATION_COLUMNS), []
    table = pd.DataFrame(rows)
    table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy())
    findings = []
    skip = skip_keys or set()
    # features carried by exactly the same sessions (shipping_cost=5.95 and shipping_tier=standard)
    # are one fact: report the first, and none of those another analysis already reports
    seen = {
        (r.k, r.with_converted, r.with_dropped)
        for r in table.itertuples(index=False)
        if r.key in skip
    }
    for r in table.sort_values(["q_value", "feature"]).itertuples(index=False):
        if not (
            r.q_value < alpha
            and r.odds_ratio < 1
            and r.rate_without - r.rate_with >= min_relative_gap * r.rate_without
        ):
            continue
        if r.key in skip or (r.k, r.with_converted, r.with_dropped) in seen:
            continue
        seen.add((r.k, r.with_converted, r.with_dropped))
        step = levels.steps[r.k - 1]
        n_with = r.with_converted + r.with_dropped
        down = (
            1.0
            if r.k == K
            else float(totals[f"n{K}"].sum()) / max(float(totals[f"n{r.k}"].sum()), 1.0)
        )
        what = f"the event {r.feature}" if r.kind == "event" else r.feature
        findings.append(
            finding(
                kind="correlation",
                stage=step.stage,
                step=step.name,
                segment=f"sessions with {r.feature}",
                metric=r.key,
                value=r.rate_with,
                reference=r.rate_without,
                gap=r.rate_with - r.rate_without,
                ci_low=r.ci_low,
                ci_high=r.ci_high,
                p_value=float(r.q_value),
                units_lost=n_with * (r.rate_without - r.rate_with),
                downstream_rate=down,
                entering=n_with,
                title=f"Sessions with {r.feature} drop before {step.name} (odds ratio {r.odds_ratio:.2f})",
                evidence=(
                    f"Of {n_with:,} sessions at {names[r.k - 1]} with {what}, {pct(r.rate_with)} reached {step.name}, against "
                    f"{pct(r.rate_without)} without it (odds ratio {r.odds_ratio:.2f}, 95% CI {r.ci_low:.2f}–{r.ci_high:.2f}, "
                    f"Benjamini–Hochberg q = {r.q_value:.2g}); an association, not proof of cause."
                ),
                audience={"stage": step.audience_stage, "status": "stalled", "filter": r.feature},
            )
        )
    return table.drop(columns="k")[CORRELATION_COLUMNS], findings
