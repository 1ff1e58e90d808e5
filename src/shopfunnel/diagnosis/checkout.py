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
    ``shipping``, ``payment``, ``purchase``; open funnel) and checkout properties."""
    if levels.spark is not None:  # on Spark: the same rows from Spark SQL
        from shopfunnel.store import spark_diagnosis as sd

        return sd.checkout_rows(store.df, levels.spark.kept(), PAYMENT_FAILED_EVENT)
    failed = "(e.event = 'add_payment_info' AND json_extract_string(e.properties, '$.payment_failed') = 'true') OR e.event = ?"
    return store.db.df(
        f"""
        SELECT l.{levels.session_column} AS session_id, CAST(l.device AS VARCHAR) AS device,
               bool_or(e.event IN ('begin_checkout', 'add_shipping_info', 'add_payment_info', ?, 'purchase')) AS checkout,
               bool_or(e.event IN ('add_shipping_info', 'add_payment_info', ?, 'purchase')) AS shipping,
               bool_or(e.event IN ('add_payment_info', ?, 'purchase')) AS payment,
               bool_or(e.event = 'purchase') AS purchase,
               bool_or({failed}) FILTER (WHERE e.event IN ('add_payment_info', ?)) AS payment_failed,
               any_value(json_extract_string(e.properties, '$.checkout_type')) FILTER (WHERE e.event = 'begin_checkout') AS checkout_type,
               max(TRY_CAST(json_extract_string(e.properties, '$.shipping_cost') AS DOUBLE)) FILTER (WHERE e.event = 'add_shipping_info') AS shipping_cost
        FROM {levels.table} l JOIN events e ON l.{levels.session_column} = {levels.events_session}
        WHERE e.event IN ('begin_checkout', 'add_shipping_info', 'add_payment_info', ?, 'purchase') AND NOT l.excluded
        GROUP BY l.{levels.session_column}, l.device
        HAVING bool_or(e.event IN ('begin_checkout', 'add_shipping_info', 'add_payment_info', ?))
        """,
        [PAYMENT_FAILED_EVENT] * 3
        + [PAYMENT_FAILED_EVENT, PAYMENT_FAILED_EVENT]
        + [PAYMENT_FAILED_EVENT] * 2,
    )


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
    cs = checkout_sessions(store, levels)
    if cs.empty:
        return (
            pd.DataFrame(),
            [],
            [*notes, "checkout journey: no session entered checkout in the window"],
        )
    failures_measured = failure_event or bool(cs["payment_failed"].notna().any())
    journey = []
    for device, grp in [("all", cs), *cs.groupby("device")]:
        n = len(grp)
        rows = [(step, int(grp[flag].sum())) for step, _, flag in steps]
        if failures_measured:
            failed = int(grp["payment_failed"].fillna(False).astype(bool).sum())
            at = next((i for i, (step, _) in enumerate(rows) if step == "purchase"), len(rows))
            rows.insert(at, ("payment failed", failed))
        for step, reached in rows:
            journey.append(
                {
                    "device": device,
                    "step": step,
                    "sessions": reached,
                    "share_of_checkouts": reached / n if n else float("nan"),
                }
            )
    tests = []  # (metric, label, x1, n1, x2, n2, step, segment text)
    paid = cs[cs["payment"]]
    if failures_measured and len(paid):
        failed = paid["payment_failed"].fillna(False).astype(bool)
        tests.append(
            (
                "payment_failed",
                "sessions whose payment failed",
                int(paid.loc[failed, "purchase"].sum()),
                int(failed.sum()),
                int(paid.loc[~failed, "purchase"].sum()),
                int((~failed).sum()),
                "purchase",
                "payment_failed=true",
                f"{int(failed.sum()):,} of {len(paid):,} sessions that gave payment info ({pct(failed.mean())}) had a failed payment",
            )
        )
    else:
        notes.append(
            "checkout journey: no payment_failed property on add_payment_info, payment failures not measured"
        )
    if cs["checkout_type"].notna().any():
        for ctype, grp in cs.groupby("checkout_type"):
            rest = cs[cs["checkout_type"].notna() & (cs["checkout_type"] != ctype)]
            tests.append(
                (
                    "checkout_type",
                    f"{ctype} checkouts",
                    int(grp["purchase"].sum()),
                    len(grp),
                    int(rest["purchase"].sum()),
                    len(rest),
                    "purchase",
                    f"checkout_type={ctype}",
                    f"{len(grp):,} checkouts were {ctype} ({pct(len(grp) / cs['checkout_type'].notna().sum())})",
                )
            )
    else:
        notes.append(
            "checkout journey: no checkout_type property on begin_checkout, guest and account checkout not compared"
        )
    shipped = cs[cs["shipping"] & cs["shipping_cost"].notna()]
    if len(shipped):
        cost = shipped["shipping_cost"] > 0
        tests.append(
            (
                "shipping_cost",
                "sessions shown a shipping cost",
                int(shipped.loc[cost, "purchase"].sum()),
                int(cost.sum()),
                int(shipped.loc[~cost, "purchase"].sum()),
                int((~cost).sum()),
                "purchase",
                "shipping_cost>0",
                f"{int(cost.sum()):,} of {len(shipped):,} sessions that gave shipping info were shown a cost",
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
