"""What an offer did, on what really happened (the offer itself: :mod:`.offers`).

**The result of an offer** (:func:`offer_result`), on what really happened. *Holders* are
the persons with a code of the offer; a *redeemed order* is an order that redeemed one of
its codes (the first use inside the period: :mod:`.codes`).

- ``codes_issued``, ``codes_redeemed``; ``redemption_rate = codes_redeemed / codes_issued``.
- ``reuses`` (uses of an already redeemed code, which the checkout should have refused),
  ``uses_outside_period``, ``redeemed_by_other`` (redemptions whose buyer is not the holder).
- ``redeemed_orders``; ``revenue_redeemed`` (Σ purchase ``value``, what buyers paid);
  ``discount_given`` (Σ discount: ``properties.discount`` of the order when it has one,
  else inferred from the rule: the paid value ``p`` came from a value ``g = p / (1 − r)``
  before the discount, taking the highest tier whose threshold ``g`` reaches, to half a
  cent); ``gross_redeemed = revenue_redeemed + discount_given``.
- ``shipping_absorbed = shipping_fee ×`` redeemed orders whose value before the discount
  is at least the free-shipping threshold (0 without free shipping).
- ``cost = discount_given + shipping_absorbed``.
- **Comparable non-redeemers**: holders who redeemed no code of the offer, and their orders
  inside the period. They qualified for the same offer over the same weeks and did not use
  it, so the comparison holds the audience and the season constant (it does not remove
  self-selection: redeemers chose to use the code; the difference is a description, not
  the offer's effect). ``mean_value_redeemed`` (paid) and ``mean_gross_redeemed`` (before
  the discount) against ``mean_value_comparable``; ``gross_difference =
  mean_gross_redeemed − mean_value_comparable`` with a 95% Welch interval
  (``difference ± 1.96·√(s₁²/n₁ + s₂²/n₂)``, sample variances; NaN with fewer than two
  orders on a side).
- **Break-even uplift**, as ``whatif`` computes it (:func:`~shopfunnel.diagnosis.whatif.breakeven`)
  but on the real cost: ``N`` = all orders of holders inside the period, ``R`` = their
  value before discounts (Σ value + discount given), ``uplift = cost / (m·R − cost)``:
  how much the holders' orders (or order value) had to grow for the offer to pay for
  itself at gross margin ``m`` (1 when not given).

- **Lift over the holdout** (only for an offer created with ``holdout`` > 0): a fixed share
  of the audience never gets a code (:func:`held_out`: GrowthBook's hash of the person and
  ``offer:<name>``, so sticky and the same in every process). Unlike the comparison with
  non-redeemers, this is the offer's causal effect (an intention-to-treat estimate: every
  holder counts, redeemed or not). ``held_out_persons``; for revenue per person
  (``revenue_per_person_lift``) and the share who bought (``purchase_rate_lift``), counted
  from the offer's start to its end: the relative difference holders / held out − 1 with its
  95% interval (``_low``, ``_high``) and two-sided p-value (``_p``), by
  :func:`shopfunnel.experiments.holdout_lift` (Welch, delta method; refused with a note when
  an arm is too small).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shopfunnel.diagnosis.whatif import breakeven
from shopfunnel.programs.codes import code_uses, offer_codes
from shopfunnel.programs.offers import (
    HALF_CENT,
    Offer,
    get_offer,
    held_out,
    holdout_key,
    offer_persons,
)
from shopfunnel.store.store import Store

Z95 = 1.959963984540054


@dataclass
class OfferResult:
    """What an offer did: ``summary`` (figures of the module docstring), ``uses`` (every
    order carrying a code of the offer, with its use) and ``notes``."""

    offer: Offer
    summary: dict[str, Any]
    uses: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"offer": self.offer.to_dict(), "summary": self.summary, "notes": self.notes}


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return diff, diff - Z95 * se, diff + Z95 * se


def offer_result(store: Store, name: str, *, gross_margin: float | None = None) -> OfferResult:
    """The result of offer ``name`` on the store's events (figures defined in the module
    docstring)."""
    offer = get_offer(store, name)
    uses = code_uses(store, name, offer.starts_at, offer.ends_at)
    codes = offer_codes(store, name)
    notes: list[str] = []
    redeemed = uses[uses["use"] == "redeemed"].drop_duplicates("order_id").copy()
    paid = redeemed["value"].astype(float).fillna(0.0)
    given = redeemed["discount"].astype(float)
    inferred = given.isna()
    if inferred.any():
        gross_guess = paid.map(offer.gross_from_paid)
        given = given.where(~inferred, (gross_guess - paid).round(2))
        notes.append(
            f"{int(inferred.sum())} redeemed order(s) carry no properties.discount: their "
            "discount is inferred from the rule"
        )
    redeemed["discount_given"] = given.to_numpy()
    redeemed["gross"] = (paid + given).to_numpy()
    fs = offer.free_shipping_from
    shipped_free = int((redeemed["gross"] >= fs - HALF_CENT).sum()) if fs is not None else 0
    shipping_absorbed = shipped_free * (offer.shipping_fee or 0.0)
    discount_given = float(given.sum())
    cost = discount_given + shipping_absorbed

    holders = set(codes["person_id"])
    redeemers = set(redeemed["holder_person_id"])
    holder_orders = store.db.df(
        "SELECT order_id, person_id, CAST(value AS DOUBLE) AS value FROM orders "
        "WHERE ts >= ? AND ts < ?",
        [offer.starts_at, offer.ends_at],
    )
    holder_orders = holder_orders[holder_orders["person_id"].isin(holders)]
    discount_by_order = redeemed.set_index("order_id")["discount_given"]
    holder_orders = holder_orders.assign(
        gross=holder_orders["value"].fillna(0.0)
        + holder_orders["order_id"].map(discount_by_order).fillna(0.0)
    )
    comparable = holder_orders[~holder_orders["person_id"].isin(redeemers)]
    n_orders, gross_revenue = len(holder_orders), float(holder_orders["gross"].sum())
    be, be_notes = breakeven(cost, gross_revenue, n_orders, gross_margin)
    notes += be_notes
    diff, lo, hi = _welch(redeemed["gross"].to_numpy(float), comparable["value"].to_numpy(float))
    n_codes, n_redeemed = len(codes), int(uses.loc[uses["use"] == "redeemed", "code"].nunique())
    if n_codes == 0:
        notes.append(f"no codes issued yet: run `shopfunnel offer codes {name}`")
    summary = {
        "codes_issued": n_codes,
        "codes_redeemed": n_redeemed,
        "redemption_rate": n_redeemed / n_codes if n_codes else math.nan,
        "reuses": int((uses["use"] == "reused").sum()),
        "uses_outside_period": int((uses["use"] == "outside_period").sum()),
        "redeemed_by_other": int((redeemed["person_id"] != redeemed["holder_person_id"]).sum()),
        "redeemed_orders": len(redeemed),
        "revenue_redeemed": float(paid.sum()),
        "discount_given": discount_given,
        "gross_redeemed": float(redeemed["gross"].sum()),
        "orders_shipped_free": shipped_free,
        "shipping_absorbed": shipping_absorbed,
        "cost": cost,
        "mean_value_redeemed": float(paid.mean()) if len(redeemed) else math.nan,
        "mean_gross_redeemed": float(redeemed["gross"].mean()) if len(redeemed) else math.nan,
        "comparable_persons": int(comparable["person_id"].nunique()),
        "comparable_orders": len(comparable),
        "mean_value_comparable": float(comparable["value"].mean()) if len(comparable) else math.nan,
        "gross_difference": diff,
        "gross_difference_low": lo,
        "gross_difference_high": hi,
        "holder_orders": n_orders,
        "holder_gross_revenue": gross_revenue,
        "cost_share_of_revenue": cost / gross_revenue if gross_revenue else math.nan,
        **be,
    }
    if offer.holdout:
        summary.update(_holdout_figures(store, offer, sorted(holders), notes))
    return OfferResult(offer, summary, uses, notes)


HOLDOUT_METRICS = (("revenue_per_person", "revenue"), ("purchase_rate", "purchase"))


def _holdout_figures(
    store: Store, offer: Offer, holders: list[str], notes: list[str]
) -> dict[str, Any]:
    """The offer's lift over its holdout (module docstring): holders against the held-out
    persons of the audience, over the offer's period, per metric of :data:`HOLDOUT_METRICS`."""
    from shopfunnel.experiments import metrics as mx
    from shopfunnel.experiments.holdout import holdout_lift

    held = held_out(offer, offer_persons(store, offer))
    figures: dict[str, Any] = {"holdout_share": offer.holdout, "held_out_persons": len(held)}
    persons = pd.DataFrame({"person_id": holders + held})
    period = (offer.ends_at - offer.starts_at).total_seconds()
    for name, kind in HOLDOUT_METRICS:
        metric = mx.revenue_per_visitor() if kind == "revenue" else mx.conversion("purchase")
        lift = holdout_lift(
            store,
            holdout_key(offer),
            offer.holdout,
            persons,
            metric,
            window=period,
            since=offer.starts_at,
        )
        r = lift.result
        figures |= {
            f"{name}_lift": r.expected,
            f"{name}_lift_low": r.ci_lower,
            f"{name}_lift_high": r.ci_upper,
            f"{name}_lift_p": getattr(r, "p_value", math.nan),
        }
        if r.error:
            notes.append(f"holdout, {name.replace('_', ' ')}: {r.error}")
    if not held:
        notes.append("the holdout holds nobody yet: the audience is too small for its share")
    return figures
