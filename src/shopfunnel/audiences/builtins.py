"""The audiences ready on any store: abandoned carts, checkouts and browsing, the prospects
stalled at each stage of the model before ordering, lapsed customers, VIPs by CLV and
one-time buyers (definitions in ``docs/audiences.md``; the rule kinds in
:mod:`shopfunnel.audiences.definitions`)."""

from __future__ import annotations

import re

from shopfunnel.audiences.definitions import (
    AbandonedRule,
    Audience,
    ClvRule,
    LapsedRule,
    OrdersRule,
    StageRule,
)
from shopfunnel.model import Model

CART_EVENTS = ("add_to_cart",)
CHECKOUT_EVENTS = ("begin_checkout",)
ORDER_EVENTS = ("purchase",)
VIEW_EVENTS = ("view_item",)
BROWSE_EXITS = ("add_to_cart", "begin_checkout", "purchase")


def slug(text: str) -> str:
    """A stage name as part of an audience name: lower case, runs of other characters as '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "stage"


def prospect_stages(model: Model) -> list[str]:
    """The model's stages before the first one reached only by ordering (a stage with the
    ``purchase`` event or ``min_orders``): the stages where prospects stand and can stall.
    Customers are never *stalled* (they lapse), so later stages have no stalled list."""
    names = []
    for stage in model.stages:
        if stage.min_orders is not None or any(e in ORDER_EVENTS for e in stage.events):
            break
        names.append(stage.name)
    return names


def builtin_audiences(model: Model | None = None) -> list[Audience]:
    """The audiences ready on any store (definitions in docs/audiences.md)."""
    model = model or Model()
    made = [
        Audience(
            name="abandoned-carts",
            source="builtin",
            description="added to cart in the last 30 days, no purchase since, for at least 1 hour",
            rule=AbandonedRule(did=CART_EVENTS, without=ORDER_EVENTS, after="1h", lookback="30d"),
        ),
        Audience(
            name="abandoned-checkouts",
            source="builtin",
            description="began checkout in the last 30 days, no purchase since, for at least 1 hour",
            rule=AbandonedRule(
                did=CHECKOUT_EVENTS, without=ORDER_EVENTS, after="1h", lookback="30d"
            ),
        ),
        Audience(
            name="browse-abandoners",
            source="builtin",
            description="viewed a product in the last 30 days, no cart, checkout or purchase "
            "since, for at least 1 hour",
            rule=AbandonedRule(did=VIEW_EVENTS, without=BROWSE_EXITS, after="1h", lookback="30d"),
        ),
    ]
    for stage in prospect_stages(model):
        made.append(
            Audience(
                name=f"stalled-{slug(stage)}",
                source="builtin",
                description=f"prospects stalled at {stage}: away longer than is usual for the stage",
                rule=StageRule(stage=stage, status=("stalled",)),
            )
        )
    made += [
        Audience(
            name="lapsed-customers",
            source="builtin",
            description="customers past their usual gap between orders (lapsed or gone)",
            rule=LapsedRule(gap_multiplier=1.0),
        ),
        Audience(
            name="vip",
            source="builtin",
            description="the top 10% of customers by expected value over the next 52 weeks (CLV)",
            rule=ClvRule(top_share=0.1),
        ),
        Audience(
            name="one-time-buyers",
            source="builtin",
            description="customers with exactly one order",
            rule=OrdersRule(min_orders=1, max_orders=1),
        ),
    ]
    return made
