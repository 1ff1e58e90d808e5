"""The checkout journey: begin_checkout → add_shipping_info → add_payment_info → purchase.

Per session (the diagnosis window, :mod:`shopfunnel.diagnosis.session_levels`, leaving out the
sessions inside a detected incident), over sessions that began checkout:

- **journey**: sessions at each checkout step, overall and per device, with the share of
  checkout starters that reached it;
- **payment failures**: sessions whose ``add_payment_info`` carries
  ``properties.payment_failed = true``; their purchase rate against the other sessions
  that gave payment info;
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


def checkout_sessions(store, levels: SessionLevels) -> pd.DataFrame:
    """One row per session that began checkout: device, reached flags and checkout properties."""
    return store.db.df(
        f"""
        SELECT l.session_id, l.device,
               bool_or(e.event = 'add_shipping_info') OR bool_or(e.event IN ('add_payment_info', 'purchase')) AS shipping,
               bool_or(e.event IN ('add_payment_info', 'purchase')) AS payment,
               bool_or(e.event = 'purchase') AS purchase,
               bool_or(json_extract_string(e.properties, '$.payment_failed') = 'true') FILTER (WHERE e.event = 'add_payment_info') AS payment_failed,
               any_value(json_extract_string(e.properties, '$.checkout_type')) FILTER (WHERE e.event = 'begin_checkout') AS checkout_type,
               max(TRY_CAST(json_extract_string(e.properties, '$.shipping_cost') AS DOUBLE)) FILTER (WHERE e.event = 'add_shipping_info') AS shipping_cost
        FROM {levels.table} l JOIN events e USING (session_id)
        WHERE e.event IN ('begin_checkout', 'add_shipping_info', 'add_payment_info', 'purchase') AND NOT l.excluded
        GROUP BY l.session_id, l.device
        HAVING bool_or(e.event = 'begin_checkout')
        """
    )


def checkout_findings(store, levels: SessionLevels, *, alpha: float = 0.05, min_relative_gap: float = 0.10,
                      min_sessions: int = 30) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """``(journey, findings, notes)``; see the module docstring."""
    notes: list[str] = []
    if not any(s.event == "begin_checkout" for s in levels.steps):
        return pd.DataFrame(), [], ["checkout journey: the store has no begin_checkout events"]
    cs = checkout_sessions(store, levels)
    if cs.empty:
        return pd.DataFrame(), [], ["checkout journey: no session began checkout in the window"]
    journey = []
    for device, grp in [("all", cs), *cs.groupby("device")]:
        n = len(grp)
        for step, col in (("checkout", None), ("shipping info", "shipping"), ("payment info", "payment"), ("purchase", "purchase")):
            reached = n if col is None else int(grp[col].sum())
            journey.append({"device": device, "step": step, "sessions": reached, "share_of_checkouts": reached / n if n else float("nan")})
    tests = []  # (metric, label, x1, n1, x2, n2, step, segment text)
    paid = cs[cs["payment"]]
    if cs["payment_failed"].notna().any() and len(paid):
        failed = paid["payment_failed"].fillna(False).astype(bool)
        tests.append(("payment_failed", "sessions whose payment failed", int(paid.loc[failed, "purchase"].sum()), int(failed.sum()),
                      int(paid.loc[~failed, "purchase"].sum()), int((~failed).sum()), "purchase", "payment_failed=true",
                      f"{int(failed.sum()):,} of {len(paid):,} sessions that gave payment info ({pct(failed.mean())}) had a failed payment"))
    else:
        notes.append("checkout journey: no payment_failed property on add_payment_info, payment failures not measured")
    if cs["checkout_type"].notna().any():
        for ctype, grp in cs.groupby("checkout_type"):
            rest = cs[cs["checkout_type"].notna() & (cs["checkout_type"] != ctype)]
            tests.append(("checkout_type", f"{ctype} checkouts", int(grp["purchase"].sum()), len(grp), int(rest["purchase"].sum()),
                          len(rest), "purchase", f"checkout_type={ctype}", f"{len(grp):,} checkouts were {ctype} ({pct(len(grp) / cs['checkout_type'].notna().sum())})"))
    else:
        notes.append("checkout journey: no checkout_type property on begin_checkout, guest and account checkout not compared")
    shipped = cs[cs["shipping"] & cs["shipping_cost"].notna()]
    if len(shipped):
        cost = shipped["shipping_cost"] > 0
        tests.append(("shipping_cost", "sessions shown a shipping cost", int(shipped.loc[cost, "purchase"].sum()), int(cost.sum()),
                      int(shipped.loc[~cost, "purchase"].sum()), int((~cost).sum()), "purchase", "shipping_cost>0",
                      f"{int(cost.sum()):,} of {len(shipped):,} sessions that gave shipping info were shown a cost"))
    else:
        notes.append("checkout journey: no shipping_cost property on add_shipping_info, shipping cost not compared")
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
        findings.append(finding(
            kind="checkout", stage="purchase", step=step, segment=seg, metric=metric, value=r1, reference=r2, gap=r1 - r2,
            ci_low=lo, ci_high=hi, p_value=float(p), units_lost=n1 * (r2 - r1), downstream_rate=1.0, entering=n1,
            title=f"Checkout: {label} buy at {pct(r1)} against {pct(r2)}",
            evidence=(f"{context}; {pct(r1)} of them bought, against {pct(r2)} of the other {n2:,} "
                      f"(gap {pct(r1 - r2)}, 95% CI {pct(lo)} to {pct(hi)}, Holm-adjusted p = {p:.2g})."),
            audience={"stage": "decision", "status": "stalled", "filter": seg},
        ))
    return pd.DataFrame(journey), findings, notes
