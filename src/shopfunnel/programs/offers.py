"""Offers: tiered discounts, free shipping and time-limited deals as named rules.

An **offer** has a name, a rule, a period ``[starts_at, ends_at)`` (a time-limited offer is
any offer with a short period), an audience (who qualifies: :mod:`.audience`) and a unique
code per person (:mod:`.codes`). The **rule** is the one ``whatif`` replays
(:mod:`shopfunnel.diagnosis.whatif`): tiers ``THRESHOLD:PERCENT`` (an order of value ``v``
gets the rate of the highest tier whose threshold is at most ``v``; an order exactly at a
threshold qualifies) and/or free shipping from a threshold, with the ``shipping_fee`` the
store would otherwise charge. Thresholds apply to the order's value before the discount.

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

**Near-threshold carts** (:func:`near_threshold`): open carts (:func:`shopfunnel.audiences.abandoned_carts`)
whose value is below a threshold of the rule by at most ``within``: ``short = threshold −
cart_value``, ``0 < short ≤ within``; the nearest threshold above the cart is the one
named. A cart exactly at a threshold already has it and is measured against the next one.
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
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shopfunnel._time import naive_utc_timestamp
from shopfunnel.diagnosis.whatif import (
    Tier,
    breakeven,
    format_tiers,
    parse_tiers,
    tier_for,
    validate_tiers,
)
from shopfunnel.errors import ConfigError
from shopfunnel.programs.audience import AudienceSpec, audience_text, qualifying_persons
from shopfunnel.programs.codes import code_uses, issue_codes, offer_codes
from shopfunnel.programs.tables import ensure_tables, has_table
from shopfunnel.store.store import Store

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HALF_CENT = 0.005
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Offer:
    """A named rule with a period and an audience (see the module docstring)."""

    name: str
    starts_at: datetime
    ends_at: datetime
    tiers: tuple[Tier, ...] = ()
    free_shipping_from: float | None = None
    shipping_fee: float | None = None
    audience: str = "all"
    description: str = ""
    created_at: datetime | None = None
    holdout: float = 0.0

    def __post_init__(self) -> None:
        check_name(self.name)
        if (
            isinstance(self.holdout, bool)
            or not isinstance(self.holdout, int | float)
            or not (0 <= self.holdout < 1)
        ):
            raise ConfigError(
                f"holdout={self.holdout!r} is not valid: give the share of the audience that "
                "gets no code, from 0 (nobody) up to but not including 1 (e.g. 0.1)"
            )
        if not self.tiers and self.free_shipping_from is None:
            raise ConfigError(
                f"offer {self.name!r} has no rule: give tiers (e.g. 100:5,300:10) "
                "and/or a free-shipping threshold"
            )
        if self.tiers:
            object.__setattr__(self, "tiers", tuple(validate_tiers(list(self.tiers))))
        if self.free_shipping_from is not None:
            if self.free_shipping_from < 0:
                raise ConfigError(
                    f"free-shipping threshold {self.free_shipping_from!r} is not valid: "
                    "give an order value ≥ 0"
                )
            if self.shipping_fee is None or self.shipping_fee < 0:
                raise ConfigError(
                    "free shipping needs the shipping fee the store would charge "
                    "(--shipping-fee 5.95): it is the cost of each free shipment"
                )
        if self.ends_at <= self.starts_at:
            raise ConfigError(
                f"offer {self.name!r} ends ({self.ends_at:%Y-%m-%d %H:%M}) before it "
                f"starts ({self.starts_at:%Y-%m-%d %H:%M}): give an end after the start"
            )

    @property
    def rule(self) -> str:
        """The rule for people: ``5% off from 100, 10% off from 300; free shipping from 75``."""
        parts = []
        if self.tiers:
            parts.append(
                ", ".join(f"{t.rate * 100:g}% off from {t.threshold:g}" for t in self.tiers)
            )
        if self.free_shipping_from is not None:
            parts.append(f"free shipping from {self.free_shipping_from:g}")
        return "; ".join(parts)

    def thresholds(self) -> list[tuple[float, str]]:
        """Every threshold of the rule with what it gives, by threshold."""
        gives: dict[float, list[str]] = {}
        for t in self.tiers:
            gives.setdefault(t.threshold, []).append(f"{t.rate * 100:g}% off")
        if self.free_shipping_from is not None:
            gives.setdefault(self.free_shipping_from, []).append("free shipping")
        return [(t, " and ".join(what)) for t, what in sorted(gives.items())]

    def discount_on(self, gross: float) -> float:
        """The discount an order of value ``gross`` (before the discount) gets."""
        tier = tier_for(gross, self.tiers)
        return 0.0 if tier is None else round(gross * tier.rate, 2)

    def gross_from_paid(self, paid: float) -> float:
        """The value before the discount of an order that paid ``paid`` under this rule
        (highest tier first, to half a cent; see the module docstring)."""
        for tier in sorted(self.tiers, key=lambda t: t.threshold, reverse=True):
            gross = paid / (1 - tier.rate)
            if gross >= tier.threshold - HALF_CENT:
                return gross
        return paid

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rule": self.rule,
            "tiers": format_tiers(self.tiers) if self.tiers else None,
            "free_shipping_from": self.free_shipping_from,
            "shipping_fee": self.shipping_fee,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "audience": self.audience,
            "description": self.description,
            "created_at": self.created_at,
            "holdout": self.holdout,
        }


def check_name(name: str) -> str:
    """A program name: a letter or digit, then up to 63 letters, digits, ``_``, ``.``, ``-``."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(
            f"name {name!r} is not valid: start with a letter or digit, then up to 63 "
            "letters, digits, '_', '.' or '-' (e.g. spring-tiers)"
        )
    return name


def _when(value: datetime | date | str, what: str) -> datetime:
    try:
        return naive_utc_timestamp(value).to_pydatetime()
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{what} {value!r} is not a date: write YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from exc


def create_offer(
    store: Store,
    name: str,
    *,
    starts_at: datetime | date | str,
    ends_at: datetime | date | str | None = None,
    days: float | None = None,
    tiers: str | list[Tier] | None = None,
    free_shipping_from: float | None = None,
    shipping_fee: float | None = None,
    audience: AudienceSpec = "all",
    description: str = "",
    holdout: float = 0.0,
) -> Offer:
    """Record a new offer (definitions in the module docstring). The period ends at
    ``ends_at``, or ``days`` after ``starts_at``. A list of persons as the audience is kept
    in ``program_offer_members``. An existing name is refused. ``holdout``: the share of the
    audience that never gets a code (:func:`held_out`), so the offer's lift can be read."""
    start = _when(starts_at, "start")
    if (ends_at is None) == (days is None):
        raise ConfigError("give the offer's end or its length in days (exactly one)")
    end = _when(ends_at, "end") if ends_at is not None else start + timedelta(days=float(days))  # type: ignore[arg-type]
    parsed = parse_tiers(tiers) if isinstance(tiers, str) else list(tiers or [])
    text = audience_text(audience)
    members = None if isinstance(audience, str) else qualifying_persons(store, audience)
    offer = Offer(
        name,
        start,
        end,
        tuple(parsed),
        free_shipping_from,
        shipping_fee,
        "persons" if members is not None else text,
        description,
        datetime.now().replace(microsecond=0),
        float(holdout),
    )
    ensure_tables(store)
    if store.db.scalar("SELECT count(*) FROM program_offers WHERE name = ?", [name]):
        raise ConfigError(
            f"an offer named {name!r} exists: pick another name (see `shopfunnel offer list`)"
        )
    with store.db.transaction():
        store.db.execute(
            "INSERT INTO program_offers (name, tiers, free_shipping_from, shipping_fee, "
            "starts_at, ends_at, audience, description, created_at, holdout) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                format_tiers(offer.tiers) if offer.tiers else None,
                free_shipping_from,
                shipping_fee,
                start,
                end,
                offer.audience,
                description,
                offer.created_at,
                offer.holdout,
            ],
        )
        if members is not None:
            store.db.register("__members", pd.DataFrame({"offer": name, "person_id": members}))
            try:
                store.db.execute(
                    "INSERT INTO program_offer_members SELECT offer, person_id FROM __members"
                )
            finally:
                store.db.unregister("__members")
    return offer


def _offer_from_row(row: tuple[Any, ...]) -> Offer:
    name, tiers, fs, fee, start, end, audience, description, created = row[:9]
    holdout = float(row[9] or 0.0) if len(row) > 9 else 0.0  # stores from before holdouts
    return Offer(
        name,
        start,
        end,
        tuple(parse_tiers(tiers)) if tiers else (),
        None if fs is None else float(fs),
        None if fee is None else float(fee),
        audience,
        description or "",
        created,
        holdout,
    )


def get_offer(store: Store, name: str) -> Offer:
    """The offer called ``name``; ConfigError naming the offers there are when unknown."""
    rows = (
        store.db.rows("SELECT * FROM program_offers WHERE name = ?", [name])
        if has_table(store, "program_offers")
        else []
    )
    if not rows:
        names = [o.name for o in list_offers(store)]
        there = f"the offers are: {', '.join(names)}" if names else "there are none yet"
        raise ConfigError(
            f"no offer named {name!r} ({there}): create one with `shopfunnel offer create`"
        )
    return _offer_from_row(rows[0])


def list_offers(store: Store) -> list[Offer]:
    """Every offer, by start then name."""
    if not has_table(store, "program_offers"):
        return []
    return [
        _offer_from_row(r)
        for r in store.db.rows("SELECT * FROM program_offers ORDER BY starts_at, name")
    ]


def offer_persons(
    store: Store, offer: Offer, *, as_of: datetime | date | str | None = None
) -> list[str]:
    """Who qualifies for ``offer``: its listed persons, or its audience spec placed at
    ``as_of`` (default: the offer's start, or the last event if earlier)."""
    if offer.audience == "persons":
        return [
            r[0]
            for r in store.db.rows(
                "SELECT person_id FROM program_offer_members WHERE offer = ? ORDER BY 1",
                [offer.name],
            )
        ]
    if as_of is None:
        last = store.db.scalar("SELECT max(ts) FROM events")
        as_of = offer.starts_at if last is None or offer.starts_at <= last else None
    return qualifying_persons(store, offer.audience, as_of=as_of)


def issue_offer_codes(
    store: Store, name: str, *, prefix: str = "", as_of: datetime | date | str | None = None
) -> pd.DataFrame:
    """A code for every person who qualifies for offer ``name`` (persons holding one keep
    it): ``person_id``, ``code``, ``issued_at`` for all the offer's holders."""
    offer = get_offer(store, name)
    persons = offer_persons(store, offer, as_of=as_of)
    held = set(held_out(offer, persons))
    issue_codes(store, name, [p for p in persons if p not in held], prefix=prefix)
    return offer_codes(store, name)


def holdout_key(offer: Offer) -> str:
    """The key of the offer's holdout in :func:`shopfunnel.experiments.in_holdout`."""
    return f"offer:{offer.name}"


def held_out(offer: Offer, persons: list[str]) -> list[str]:
    """The persons of ``persons`` the offer holds out (never given a code): decided by
    :func:`shopfunnel.experiments.in_holdout` on the offer's key, so the same persons in every
    process and on every re-issue, nested as the share grows."""
    if not offer.holdout:
        return []
    from shopfunnel.experiments.assignment import in_holdout

    key = holdout_key(offer)
    return [p for p in persons if in_holdout(key, p, offer.holdout)]


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


NEAR_COLUMNS = [
    "person_id",
    "cart_value",
    "threshold",
    "reward",
    "short",
    "message",
    "code",
    "carted_at",
    "items",
]


def near_threshold(
    store: Store,
    name: str,
    *,
    within: float,
    after: str | float = "1h",
    lookback: str | float = "30d",
    as_of: pd.Timestamp | str | None = None,
    currency: str | None = None,
) -> pd.DataFrame:
    """Open carts of persons who qualify for offer ``name`` that are at most ``within``
    short of the rule's next threshold (definition in the module docstring), with a line
    for a message (``add USD 12.00 for free shipping``) and the person's code when they
    have one. Carts are :func:`shopfunnel.audiences.abandoned_carts` (``after``,
    ``lookback``, ``as_of`` as there). Sorted by ``short``, smallest first."""
    from shopfunnel.audiences import abandoned_carts
    from shopfunnel.format import money

    if within <= 0:
        raise ConfigError(f"within={within!r} is not valid: give an amount > 0, e.g. 15")
    offer = get_offer(store, name)
    carts = abandoned_carts(store, after=after, lookback=lookback, as_of=as_of)
    if currency is None:
        currency = (
            store.db.scalar(
                "SELECT mode(currency) FROM events WHERE event = 'purchase' AND currency IS NOT NULL"
            )
            or ""
        )
    persons = set(offer_persons(store, offer))
    carts = carts[carts["person_id"].isin(persons)]
    codes = offer_codes(store, name).set_index("person_id")["code"]
    rows = []
    for cart in carts.itertuples():
        value = float(cart.cart_value)
        nxt = next(((t, what) for t, what in offer.thresholds() if t > value + 1e-9), None)
        if nxt is None:
            continue
        short = round(nxt[0] - value, 2)
        if 0 < short <= within + 1e-9:
            rows.append(
                {
                    "person_id": cart.person_id,
                    "cart_value": value,
                    "threshold": nxt[0],
                    "reward": nxt[1],
                    "short": short,
                    "message": f"add {money(short, currency)} for {nxt[1]}",
                    "code": codes.get(cart.person_id),
                    "carted_at": cart.carted_at,
                    "items": cart.items,
                }
            )
    out = pd.DataFrame(rows, columns=NEAR_COLUMNS)
    return out.sort_values(["short", "person_id"], kind="stable").reset_index(drop=True)
