"""Named audience definitions as typed data: the rules and how they are written (the
built-in audiences are in :mod:`shopfunnel.audiences.builtins`).

An audience is a name, a description and a **rule**. A rule is one of the kinds below
(``kind = "..."``), or a combination of rules and other audiences' names. Every rule is
judged at one instant, ``as_of`` (default: the store's latest event), on the events at or
before it; :mod:`shopfunnel.audiences.evaluate` computes the members and its docstring (and
``docs/audiences.md``) defines each kind exactly.

==============  ===========================================================================
kind            members
==============  ===========================================================================
``stage``       persons at ``stage`` with ``status`` (either may be left out), as placed by
                :func:`shopfunnel.stages.place_persons`
``rfm``         customers in the RFM ``groups`` (:mod:`shopfunnel.customers.rfm`)
``drop_off``    persons who reached funnel step ``step`` and not the next within ``within``
``events``      persons with ``at_least`` (and at most ``at_most``) ``event`` events matching
                ``where`` in the last ``within``
``abandoned``   persons whose latest ``did`` event in the last ``lookback`` is at least
                ``after`` old, with no ``without`` event since
``orders``      persons with ``min_orders``..``max_orders`` orders and revenue in
                ``min_revenue``..``max_revenue``
``clv``         customers by expected value over ``horizon`` (top share or count, a floor)
                and P(alive)
``lapsed``      customers past ``gap_multiplier`` × their usual gap between orders
``all``         persons in every rule or audience of ``of``
``any``         persons in at least one of ``of``
``not``         persons seen up to ``as_of`` who are not in ``rule``
==============  ===========================================================================

In ``shopfunnel.toml`` each audience is a table under ``[audiences]``: its rule's fields
beside ``description``; a name in ``of`` or ``rule`` refers to another audience::

    [audiences.shoe-lovers]
    description = "viewed shoes at least twice in a week"
    kind = "events"
    event = "view_item"
    where = { item_category = "shoes" }
    at_least = 2
    within = "7d"

    [audiences.vip-carts]
    kind = "all"
    of = ["abandoned-carts", "vip"]
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from shopfunnel.customers.rfm import GROUPS as RFM_GROUPS
from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_RULE = "1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit"


def check_name(name: str, what: str = "audience") -> str:
    """``name`` when it is a valid audience or flow name, else ConfigError saying the rule."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(f"{what} name {name!r} is not valid: use {NAME_RULE}, e.g. 'vip-carts'")
    return name


def _duration(value: str | float) -> str | float:
    try:
        parse_duration_seconds(value)
    except ConfigError as exc:
        raise ValueError(
            f"{value!r} is not a duration: write a number and a unit (s, m, h, d or w), "
            "e.g. '4h' or '7d', or a number of seconds"
        ) from exc
    return value


def seconds(value: str | float) -> float:
    """Seconds in a duration written as in the rules (``"4h"``, ``"7d"`` or seconds)."""
    return parse_duration_seconds(value)


def _event_names(value: tuple[str, ...]) -> tuple[str, ...]:
    cleaned = tuple(str(v).strip() for v in value)
    if not cleaned or any(not v for v in cleaned):
        raise ValueError("give at least one event name, none blank")
    return cleaned


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageRule(_Rule):
    """Persons placed at ``stage`` (name, any case) with ``status`` (one or several; any
    status the stage model gives, e.g. active, stalled, lapsed, gone). None means any."""

    kind: Literal["stage"] = "stage"
    stage: str | None = None
    status: tuple[str, ...] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = (value,)
        if value is not None:
            value = tuple(str(v).strip().lower() for v in value)
            if not value or any(not v for v in value):
                raise ValueError("give a status such as 'stalled', or leave status out for any")
        return value


class RfmRule(_Rule):
    """Customers in one of the RFM ``groups`` (``prospects``: persons with no order)."""

    kind: Literal["rfm"] = "rfm"
    groups: tuple[str, ...] = Field(min_length=1)

    @field_validator("groups", mode="before")
    @classmethod
    def _known_groups(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = (value,)
        unknown = [g for g in value if g not in RFM_GROUPS]
        if unknown:
            raise ValueError(f"RFM group(s) {unknown} not known: use {', '.join(RFM_GROUPS)}")
        return tuple(value)


class DropOffRule(_Rule):
    """Persons who reached funnel step ``step`` (1-based) of ``steps`` (default: the model
    file's funnel) and not step ``step + 1`` within ``within`` (default: the funnel's
    window) of the attempt's start, once that window has passed."""

    kind: Literal["drop_off"] = "drop_off"
    step: int = Field(ge=1)
    steps: tuple[str, ...] | None = None
    within: str | float | None = None
    lookback: str | float | None = None

    @field_validator("within", "lookback")
    @classmethod
    def _is_duration(cls, value: str | float | None) -> str | float | None:
        return None if value is None else _duration(value)

    @field_validator("steps")
    @classmethod
    def _names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _event_names(value)


Where = dict[str, str | int | float | bool | list[str | int | float | bool]]


class EventsRule(_Rule):
    """Persons with at least ``at_least`` (and at most ``at_most``) ``event`` events that
    match ``where`` in the last ``within`` (e.g. viewed category shoes twice in 7 days)."""

    kind: Literal["events"] = "events"
    event: str = Field(min_length=1)
    where: Where = Field(default_factory=dict)
    at_least: int = Field(default=1, ge=1)
    at_most: int | None = Field(default=None, ge=1)
    within: str | float = "30d"

    @field_validator("within")
    @classmethod
    def _is_duration(cls, value: str | float) -> str | float:
        return _duration(value)

    @model_validator(mode="after")
    def _bounds(self) -> EventsRule:
        if self.at_most is not None and self.at_most < self.at_least:
            raise ValueError(f"at_most ({self.at_most}) is below at_least ({self.at_least})")
        return self


class AbandonedRule(_Rule):
    """Persons whose latest ``did`` event (matching ``where``) in the last ``lookback`` is at
    least ``after`` old, with no ``without`` event at or after it: added to cart and did not
    buy, viewed a product and did not add it to the cart."""

    kind: Literal["abandoned"] = "abandoned"
    did: tuple[str, ...]
    without: tuple[str, ...]
    after: str | float = "1h"
    lookback: str | float = "30d"
    where: Where = Field(default_factory=dict)

    @field_validator("did", "without", mode="before")
    @classmethod
    def _names(cls, value: Any) -> tuple[str, ...]:
        return _event_names((value,) if isinstance(value, str) else tuple(value))

    @field_validator("after", "lookback")
    @classmethod
    def _is_duration(cls, value: str | float) -> str | float:
        return _duration(value)


class OrdersRule(_Rule):
    """Persons with between ``min_orders`` and ``max_orders`` orders (the store's ``orders``:
    distinct order ids of purchase events) and revenue between ``min_revenue`` and
    ``max_revenue`` (gross), counting orders in the last ``within`` (default: all)."""

    kind: Literal["orders"] = "orders"
    min_orders: int = Field(default=1, ge=0)
    max_orders: int | None = Field(default=None, ge=0)
    min_revenue: float | None = None
    max_revenue: float | None = None
    within: str | float | None = None

    @field_validator("within")
    @classmethod
    def _is_duration(cls, value: str | float | None) -> str | float | None:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _bounds(self) -> OrdersRule:
        if self.max_orders is not None and self.max_orders < self.min_orders:
            raise ValueError(
                f"max_orders ({self.max_orders}) is below min_orders ({self.min_orders})"
            )
        if (
            self.min_revenue is not None
            and self.max_revenue is not None
            and self.max_revenue < self.min_revenue
        ):
            raise ValueError(
                f"max_revenue ({self.max_revenue}) is below min_revenue ({self.min_revenue})"
            )
        return self


class ClvRule(_Rule):
    """Customers by lifetime value (BG/NBD + Gamma-Gamma over ``horizon``): the top
    ``top_share`` or ``top`` by expected value (ties at the cut all in), those worth at
    least ``min_value``, and P(alive) below ``p_alive_below`` or at least
    ``p_alive_at_least``. Conditions given together must all hold."""

    kind: Literal["clv"] = "clv"
    top_share: float | None = Field(default=None, gt=0, le=1)
    top: int | None = Field(default=None, ge=1)
    min_value: float | None = None
    p_alive_below: float | None = Field(default=None, gt=0, le=1)
    p_alive_at_least: float | None = Field(default=None, ge=0, le=1)
    horizon: str | float = "52w"

    @field_validator("horizon")
    @classmethod
    def _is_duration(cls, value: str | float) -> str | float:
        return _duration(value)

    @model_validator(mode="after")
    def _something(self) -> ClvRule:
        if all(
            v is None
            for v in (
                self.top_share,
                self.top,
                self.min_value,
                self.p_alive_below,
                self.p_alive_at_least,
            )
        ):
            raise ValueError(
                "give at least one of top_share, top, min_value, p_alive_below, p_alive_at_least"
            )
        return self


class LapsedRule(_Rule):
    """Customers whose days since their last order exceed ``gap_multiplier`` × their usual
    gap between orders (:mod:`shopfunnel.stages.gaps`; 1 = the stage model's lapsed or gone)."""

    kind: Literal["lapsed"] = "lapsed"
    gap_multiplier: float = Field(default=1.0, gt=0)


class AllRule(_Rule):
    """Persons in every rule or named audience of ``of``."""

    kind: Literal["all"] = "all"
    of: tuple[Union[Rule, str], ...] = Field(min_length=1)  # noqa: UP007 (forward reference)


class AnyRule(_Rule):
    """Persons in at least one rule or named audience of ``of``."""

    kind: Literal["any"] = "any"
    of: tuple[Union[Rule, str], ...] = Field(min_length=1)  # noqa: UP007


class NotRule(_Rule):
    """Persons with an event at or before ``as_of`` who are not in ``rule`` (a rule or a
    named audience)."""

    kind: Literal["not"] = "not"
    rule: Union[Rule, str]  # noqa: UP007


Rule = Annotated[
    StageRule
    | RfmRule
    | DropOffRule
    | EventsRule
    | AbandonedRule
    | OrdersRule
    | ClvRule
    | LapsedRule
    | AllRule
    | AnyRule
    | NotRule,
    Field(discriminator="kind"),
]
KINDS = (
    "stage",
    "rfm",
    "drop_off",
    "events",
    "abandoned",
    "orders",
    "clv",
    "lapsed",
    "all",
    "any",
    "not",
)
for _cls in (AllRule, AnyRule, NotRule):
    _cls.model_rebuild()
_RULE = TypeAdapter(Rule)


def _valid_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(f"{value!r} is not valid: use {NAME_RULE}")
    return value


#: An audience's or a flow's name, checked against :data:`NAME_PATTERN`.
Name = Annotated[str, AfterValidator(_valid_name)]


class Audience(BaseModel):
    """A named audience: its rule, a description, and where it was defined (``builtin``,
    ``model`` for the model file, ``store`` for one created with ``audience create``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    rule: Rule
    description: str = ""
    source: Literal["builtin", "model", "store"] = "store"

    def references(self) -> list[str]:
        """The names of other audiences this one is made of (directly)."""
        return references(self.rule)


def references(rule: Any) -> list[str]:
    """Audience names a rule refers to, directly (in ``of`` or ``rule``)."""
    if isinstance(rule, str):
        return [rule]
    if isinstance(rule, AllRule | AnyRule):
        return [name for part in rule.of for name in references(part)]
    if isinstance(rule, NotRule):
        return references(rule.rule)
    return []


def parse_rule(data: Any, *, source: str = "the rule") -> Any:
    """A rule from a dict (parsed TOML or JSON), with errors that name the field and say
    what is allowed."""
    if isinstance(data, dict) and "kind" not in data:
        raise ConfigError(
            f"{source}: say which kind of rule it is: kind = one of {', '.join(KINDS)}"
        )
    if isinstance(data, dict) and data.get("kind") not in KINDS:
        raise ConfigError(
            f"{source}: kind {data.get('kind')!r} is not known: use one of "
            f"{', '.join(KINDS)} (docs/audiences.md)"
        )
    try:
        return _RULE.validate_python(data)
    except PydanticValidationError as exc:
        raise ConfigError(_explain(exc, source)) from exc


def rule_json(rule: Any) -> str:
    """The rule as JSON text (how the store keeps it); :func:`parse_rule` reads it back."""
    return _RULE.dump_json(rule, exclude_defaults=False).decode()


def describe(rule: Any) -> str:
    """A one-line summary of a rule, for lists (``abandoned: did add_to_cart …``)."""
    if isinstance(rule, str):
        return rule
    if isinstance(rule, AllRule | AnyRule):
        return f"{rule.kind}(" + ", ".join(describe(p) for p in rule.of) + ")"
    if isinstance(rule, NotRule):
        return f"not({describe(rule.rule)})"
    fields = {
        k: v for k, v in rule.model_dump(exclude_none=True, exclude={"kind"}).items() if v != {}
    }
    return rule.kind + (
        ": " + ", ".join(f"{k}={_short(v)}" for k, v in fields.items()) if fields else ""
    )


def _short(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "|".join(str(v) for v in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def _explain(exc: PydanticValidationError, source: str) -> str:
    errors = []
    for err in exc.errors():
        # drop the union's tags from the location: ("of", 0, "tagged-union[…]", "event") -> of.0.event
        loc = tuple(
            str(p)
            for p in err["loc"]
            if p not in KINDS and not str(p).startswith(("function-", "tagged-union"))
        )
        errors.append((loc, err))
    if len(errors) > 1:  # a wrong rule inside ``of`` also fails as "not a name": keep the rule's
        errors = [(loc, err) for loc, err in errors if loc[-1:] != ("str",)] or errors
        errors = [
            (loc, err)
            for loc, err in errors
            if not any(o != loc and o[: len(loc)] == loc for o, _ in errors)
        ]
    lines = []
    for loc, err in errors:
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (docs/audiences.md lists each kind's fields)"
        elif err["type"] == "missing":
            msg = "is required"
        lines.append(f"{source}: {'.'.join(loc) or '(rule)'}: {msg}")
    return "\n".join(dict.fromkeys(lines))
