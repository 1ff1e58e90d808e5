"""The checkout journey: begin_checkout → add_shipping_info → add_payment_info → purchase.

Per session (the diagnosis window, :mod:`shopfunnel.diagnosis.session_levels`, leaving out the
sessions inside a detected incident), over sessions that *entered checkout*:

- **the steps the store has**: whichever of ``begin_checkout``, ``add_shipping_info``,
  ``add_payment_info`` and ``purchase`` the store records (a store without
  ``begin_checkout`` still shows shipping → payment → purchase). A session entered checkout
  when it has any of the pre-purchase checkout events the store records; it *reached* a step
  when it has the step's event or a later checkout event (an open funnel, as in
  :mod:`shopfunnel.diagnosis.session_levels`);
- **journey**: sessions at each step, overall and per device, with the share of the
  sessions that entered checkout; a ``payment failed`` row when failures are recorded;
- **payment failures**: sessions with a failed payment: an ``add_payment_info`` carrying
  ``properties.payment_failed = true``, or a ``payment_failed`` event (which also counts as
  reaching payment info); their purchase rate against the other sessions that gave
  payment info;
- **checkout type**: ``properties.checkout_type`` on ``begin_checkout`` (``guest``,
  ``account``, ``create_account``…); each type's begin_checkout → purchase rate against
  the other types;
- **shipping cost shown**: ``properties.shipping_cost`` on ``add_shipping_info``; sessions
  shown a cost (> 0) against free shipping, add_shipping_info → purchase.

Each comparison is a pooled two-proportion z-test with Newcombe's interval, the family
Holm-adjusted; a finding needs adjusted p < alpha and a rate at least 10% (relative)
below the comparison group. Properties the data does not carry give a note, not a
finding. The shipping comparison is an association: free shipping usually comes with
larger baskets, so the gap mixes the cost with the basket.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopfunnel.diagnosis.findings import finding, pct
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.stats import holm, newcombe_interval, two_proportion_ztest

CHECKOUT_EVENTS = ("begin_checkout", "add_shipping_info", "add_payment_info", "purchase")
PAYMENT_FAILED_EVENT = "payment_failed"
# (journey step, its event, the reached flag of checkout_sessions)
CHECKOUT_STEPS = (
    ("checkout", "begin_checkout", "checkout"),
    ("shipping info", "add_shipping_info", "shipping"),
    ("payment info", "add_payment_info", "payment"),
    ("purchase", "purchase", "purchase"),
)


def checkout_steps(store) -> tuple[list[tuple[str, str, str]], bool]:
    """The checkout steps the store records, in order, and whether it records a
    ``payment_failed`` event."""
    if getattr(store, "on_spark", False):  # shopfunnel.store.spark.SparkEvents
        present = store.event_names()
    else:
        present = {
            r[0]
            for r in store.db.rows(
                "SELECT DISTINCT event FROM events WHERE event IN (?, ?, ?, ?, ?)",
                [*CHECKOUT_EVENTS, PAYMENT_FAILED_EVENT],
            )
        }
    return [s for s in CHECKOUT_STEPS if s[1] in present], PAYMENT_FAILED_EVENT in present


def checkout_sessions(store, levels: SessionLevels) -> pd.DataFrame:
    """One row per session that entered checkout: device, reached flags (``checkout``,
    ``shipping``, ``payment``, ``purchase``; open funnel) and checkout properties
    (``checkout_type``: of the session's earliest ``begin_checkout`` that has one;
    ``shipping_cost``: the largest on its ``add_shipping_info`` events)."""
    return store.db.df(_checkout_sql(levels), _CHECKOUT_PARAMS)


def checkout_counts(store, levels: SessionLevels) -> pd.DataFrame:
    """Sessions (``sessions``) per combination of what :func:`checkout_sessions` gives
    for each, with the shipping cost reduced to whether one was shown (``shown_cost``:
    cost > 0, None when unknown): all the checkout comparisons read. On Spark it is counted
    there (the sessions that entered checkout stay on the cluster)."""
    if levels.spark is not None:  # on Spark: the same counts from Spark SQL
        from shopfunnel.store import spark_diagnosis as sd

        return sd.checkout_counts(store.df, levels.spark.kept(), PAYMENT_FAILED_EVENT)
    return store.db.df(
        f"""
        SELECT device, checkout, shipping, payment, purchase, payment_failed, checkout_type,
               shipping_cost > 0 AS shown_cost, count(*) AS sessions
        FROM ({_checkout_sql(levels)}) GROUP BY ALL ORDER BY ALL
        """,
        _CHECKOUT_PARAMS,
    )


_CHECKOUT_PARAMS = [PAYMENT_FAILED_EVENT] * 7


def _checkout_sql(levels: SessionLevels) -> str:
    failed = "(e.event = 'add_payment_info' AND json_extract_string(e.properties, '$.payment_failed') = 'true') OR e.event = ?"
    return f"""
        SELECT l.{levels.session_column} AS session_id, CAST(l.device AS VARCHAR) AS device,
               bool_or(e.event IN ('begin_checkout', 'add_shipping_info', 'add_payment_info', ?, 'purchase')) AS checkout,
               bool_or(e.event IN ('add_shipping_info', 'add_payment_info', ?, 'purchase')) AS shipping,
               bool_or(e.event IN ('add_payment_info', ?, 'purchase')) AS payment,
               bool_or(e.event = 'purchase') AS purchase,
               bool_or({failed}) FILTER (WHERE e.event IN ('add_payment_info', ?)) AS payment_failed,
               arg_min(json_extract_string(e.properties, '$.checkout_type'), e.ts) FILTER (WHERE e.event = 'begin_checkout' AND json_extract_string(e.properties, '$.checkout_type') IS NOT NULL) AS checkout_type,
               max(TRY_CAST(json_extract_string(e.properties, '$.shipping_cost') AS DOUBLE)) FILTER (WHERE e.event = 'add_shipping_info') AS shipping_cost
        FROM {levels.table} l JOIN events e ON l.{levels.session_column} = {levels.events_session}
        WHERE e.event IN ('begin_checkout', 'add_shipping_info', 'add_payment_info', ?, 'purchase') AND NOT l.excluded
        GROUP BY l.{levels.session_column}, l.device
        HAVING bool_or(e.event IN ('begin_checkout', 'add_shipping_info', 'add_payment_info', ?))
        """


def checkout_findings(
    store,
    levels: SessionLevels,
    *,
    alpha: float = 0.05,
    min_relative_gap: float = 0.10,
    min_sessions: int = 30,
) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """``(journey, findings, notes)``; see the module docstring."""
    notes: list[str] = []
    steps, failure_event = checkout_steps(store)
    if not any(event != "purchase" for _, event, _ in steps):
        return (
            pd.DataFrame(),
            [],
            [
                "checkout journey: the store records none of begin_checkout, add_shipping_info, "
                "add_payment_info, so the checkout cannot be followed step by step"
            ],
        )
    missing = [event for _, event, _ in CHECKOUT_STEPS if event not in {e for _, e, _ in steps}]
    if missing:
        notes.append(
            f"checkout journey: the store records no {', '.join(missing)}; the journey shows the steps it has"
        )
    cs = checkout_counts(store, levels)
    if cs.empty:
        return (
            pd.DataFrame(),
            [],
            [*notes, "checkout journey: no session entered checkout in the window"],
        )

    def n(rows: pd.DataFrame, where: object = None) -> int:
        """Sessions of ``rows`` (where ``where``, a boolean Series, holds)."""
        w = rows["sessions"] if where is None else rows["sessions"][where]
        return int(w.sum())

    failures_measured = failure_event or bool(cs["payment_failed"].notna().any())
    journey = []
    for device, grp in [("all", cs), *cs.groupby("device")]:
        entered = n(grp)
        rows = [(step, n(grp, grp[flag].astype(bool))) for step, _, flag in steps]
        if failures_measured:
            failed = n(grp, grp["payment_failed"].fillna(False).astype(bool))
            at = next((i for i, (step, _) in enumerate(rows) if step == "purchase"), len(rows))
            rows.insert(at, ("payment failed", failed))
        for step, reached in rows:
            journey.append(
                {
                    "device": device,
                    "step": step,
                    "sessions": reached,
                    "share_of_checkouts": reached / entered if entered else float("nan"),
                }
            )
    tests = []  # (metric, label, x1, n1, x2, n2, step, segment text)
    bought = cs["purchase"].astype(bool)
    paid = cs["payment"].astype(bool)
    if failures_measured and n(cs, paid):
        failed = cs["payment_failed"].fillna(False).astype(bool)
        tests.append(
            (
                "payment_failed",
                "sessions whose payment failed",
                n(cs, paid & failed & bought),
                n(cs, paid & failed),
                n(cs, paid & ~failed & bought),
                n(cs, paid & ~failed),
                "purchase",
                "payment_failed=true",
                f"{n(cs, paid & failed):,} of {n(cs, paid):,} sessions that gave payment info ({pct(n(cs, paid & failed) / n(cs, paid))}) had a failed payment",
            )
        )
    else:
        notes.append(
            "checkout journey: no payment_failed property on add_payment_info, payment failures not measured"
        )
    typed = cs["checkout_type"].notna()
    if typed.any():
        for ctype in sorted(cs.loc[typed, "checkout_type"].unique()):
            mine = typed & (cs["checkout_type"] == ctype)
            rest = typed & (cs["checkout_type"] != ctype)
            tests.append(
                (
                    "checkout_type",
                    f"{ctype} checkouts",
                    n(cs, mine & bought),
                    n(cs, mine),
                    n(cs, rest & bought),
                    n(cs, rest),
                    "purchase",
                    f"checkout_type={ctype}",
                    f"{n(cs, mine):,} checkouts were {ctype} ({pct(n(cs, mine) / n(cs, typed))})",
                )
            )
    else:
        notes.append(
            "checkout journey: no checkout_type property on begin_checkout, guest and account checkout not compared"
        )
    shipped = cs["shipping"].astype(bool) & cs["shown_cost"].notna()
    if shipped.any():
        cost = shipped & cs["shown_cost"].fillna(False).astype(bool)
        free = shipped & ~cost
        tests.append(
            (
                "shipping_cost",
                "sessions shown a shipping cost",
                n(cs, cost & bought),
                n(cs, cost),
                n(cs, free & bought),
                n(cs, free),
                "purchase",
                "shipping_cost>0",
                f"{n(cs, cost):,} of {n(cs, shipped):,} sessions that gave shipping info were shown a cost",
            )
        )
    else:
        notes.append(
            "checkout journey: no shipping_cost property on add_shipping_info, shipping cost not compared"
        )
    tests = [t for t in tests if t[3] >= min_sessions and t[5] >= min_sessions]
    pvals = [two_proportion_ztest(t[2], t[3], t[4], t[5]).p_value for t in tests]
    adj = holm(pvals) if tests else np.array([])
    findings = []
    for t, p in zip(tests, adj, strict=True):
        metric, label, x1, n1, x2, n2, step, seg, context = t
        r1, r2 = x1 / n1, x2 / n2
        if not (p < alpha and r1 < r2 and (r2 - r1) >= min_relative_gap * r2):
            continue
        lo, hi = newcombe_interval(x1, n1, x2, n2)
        findings.append(
            finding(
                kind="checkout",
                stage="purchase",
                step=step,
                segment=seg,
                metric=metric,
                value=r1,
                reference=r2,
                gap=r1 - r2,
                ci_low=lo,
                ci_high=hi,
                p_value=float(p),
                units_lost=n1 * (r2 - r1),
                downstream_rate=1.0,
                entering=n1,
                title=f"Checkout: {label} buy at {pct(r1)} against {pct(r2)}",
                evidence=(
                    f"{context}; {pct(r1)} of them bought, against {pct(r2)} of the other {n2:,} "
                    f"(gap {pct(r1 - r2)}, 95% CI {pct(lo)} to {pct(hi)}, Holm-adjusted p = {p:.2g})."
                ),
                audience={"stage": "decision", "status": "stalled", "filter": seg},
            )
        )
    return pd.DataFrame(journey), findings, notes
