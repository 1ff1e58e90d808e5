"""Offers: tiered discounts, free shipping and time-limited deals as named rules.

An **offer** has a name, a rule, a period ``[starts_at, ends_at)`` (a time-limited offer is
any offer with a short period), an audience (who qualifies: :mod:`.audience`) and a unique
code per person (:mod:`.codes`). The **rule** is the one ``whatif`` replays
(:mod:`shopfunnel.diagnosis.whatif`): tiers ``THRESHOLD:PERCENT`` (an order of value ``v``
gets the rate of the highest tier whose threshold is at most ``v``; an order exactly at a
threshold qualifies) and/or free shipping from a threshold, with the ``shipping_fee`` the
store would otherwise charge. Thresholds apply to the order's value before the discount.

What an offer did is measured in :mod:`.offer_results`; the carts just short of its next
threshold are listed by :mod:`.offer_carts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from shopfunnel._time import naive_utc_timestamp
from shopfunnel.diagnosis.whatif import (
    Tier,
    format_tiers,
    parse_tiers,
    tier_for,
    validate_tiers,
)
from shopfunnel.errors import ConfigError
from shopfunnel.programs.audience import AudienceSpec, audience_text, qualifying_persons
from shopfunnel.programs.codes import issue_codes, offer_codes
from shopfunnel.programs.tables import ensure_tables, has_table
from shopfunnel.store.store import Store

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HALF_CENT = 0.005


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
