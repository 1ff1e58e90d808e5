"""What a flow is: its fields (trigger, delay, exit, cooldown, lookback, audience, holdout,
schedule, contacts) checked once, the built-in flows, and the model file's ``[flows.NAME]``
that change them or add flows. Who is due a flow, and the record of sends, are in
:mod:`shopfunnel.audiences.flows` (the rules in its docstring).

Built-in flows (``docs/audiences.md``; the model file's ``[flows.NAME]`` changes their
fields or adds flows):

====================  =========================================  ========  ===========  ========
flow                  trigger → exit                             delay     cooldown     lookback
====================  =========================================  ========  ===========  ========
cart-abandonment      add_to_cart, begin_checkout → purchase     4h        7d           7d
browse-abandonment    view_item → add_to_cart, begin_checkout,   4h        7d           7d
                      purchase
post-purchase         purchase → refund                          7d        none         30d
win-back              purchase (last order) → a new order        usual gap 30d          365d
====================  =========================================  ========  ===========  ========
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from shopfunnel.audiences.definitions import Name, Where, check_name, seconds
from shopfunnel.errors import ConfigError
from shopfunnel.model import DEFAULT_FILE, Model, load_model

SECTION = "flows"
USUAL_GAP = "usual_gap"


def _duration(value: str | float) -> str | float:
    try:
        seconds(value)
    except ConfigError as exc:
        raise ValueError(f"{value!r} is not a duration: write e.g. '4h' or '7d'") from exc
    return value


class Flow(BaseModel):
    """A flow's definition (the rules it runs by: :mod:`shopfunnel.audiences.flows`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    trigger: tuple[str, ...] = Field(min_length=1)
    delay: str | float
    exit: tuple[str, ...] = ()
    cooldown: str | float | None = "7d"
    lookback: str | float = "7d"
    where: Where = Field(default_factory=dict)
    audience: str | None = None
    gap_multiplier: float = Field(default=1.0, gt=0)
    holdout: float = Field(default=0.0, ge=0, lt=1)
    schedule: bool = False
    contacts: bool = False
    description: str = ""
    source: Literal["builtin", "model"] = "model"

    @field_validator("trigger", "exit", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        value = (value,) if isinstance(value, str) else tuple(value)
        if any(not str(v).strip() for v in value):
            raise ValueError("an event name cannot be blank")
        return tuple(str(v).strip() for v in value)

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str | float) -> str | float:
        return value if value == USUAL_GAP else _duration(value)

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, value: str | float) -> str | float:
        return _duration(value)

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, value: Any) -> Any:
        if value in (None, 0, "0", "none", False):
            return None
        return _duration(value)

    @model_validator(mode="after")
    def _consistent(self) -> Flow:
        shared = sorted(set(self.trigger) & set(self.exit))
        if shared:
            raise ValueError(
                f"{', '.join(shared)} is both a trigger and an exit: a person's "
                "latest trigger would always exit the flow"
            )
        if self.delay == USUAL_GAP and (self.trigger != ("purchase",) or self.where):
            raise ValueError(
                "delay = 'usual_gap' times a flow from the customer's last order: "
                "use trigger = ['purchase'] and no where"
            )
        return self

    @property
    def delay_text(self) -> str:
        if self.delay == USUAL_GAP:
            return "usual gap" + (f" × {self.gap_multiplier:g}" if self.gap_multiplier != 1 else "")
        return str(self.delay)


def builtin_flows() -> list[Flow]:
    """The flows ready on any store (the table in the module docstring)."""
    return [
        Flow(
            name="cart-abandonment",
            source="builtin",
            trigger=("add_to_cart", "begin_checkout"),
            exit=("purchase",),
            delay="4h",
            cooldown="7d",
            lookback="7d",
            description="added to cart or began checkout, no order within 4 hours",
        ),
        Flow(
            name="browse-abandonment",
            source="builtin",
            trigger=("view_item",),
            exit=("add_to_cart", "begin_checkout", "purchase"),
            delay="4h",
            cooldown="7d",
            lookback="7d",
            description="viewed a product, no cart, checkout or order within 4 hours",
        ),
        Flow(
            name="post-purchase",
            source="builtin",
            trigger=("purchase",),
            exit=("refund",),
            delay="7d",
            cooldown=None,
            lookback="30d",
            description="a week after an order that was not refunded: ask for a review, suggest more",
        ),
        Flow(
            name="win-back",
            source="builtin",
            trigger=("purchase",),
            exit=(),
            delay=USUAL_GAP,
            cooldown="30d",
            lookback="365d",
            description="customers past their usual gap between orders",
        ),
    ]


def all_flows(model: Model | None = None) -> list[Flow]:
    """The built-in flows, with the model file's ``[flows.NAME]`` changes, then its new flows."""
    model = model or load_model()
    raw = model.sections.get(SECTION, {})
    where = model.source or DEFAULT_FILE
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: [{SECTION}] must be a table of flows, e.g. [{SECTION}.vip-carts]"
        )
    flows = {f.name: f for f in builtin_flows()}
    for name, table in raw.items():
        label = f"{where}: [{SECTION}.{name}]"
        check_name(name, "flow")
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: must be a table of the flow's fields (docs/audiences.md)")
        base = flows[name].model_dump(exclude={"source"}) if name in flows else {}
        try:
            flows[name] = Flow.model_validate(
                {
                    **base,
                    **table,
                    "name": name,
                    "source": flows[name].source if name in flows else "model",
                }
            )
        except PydanticValidationError as exc:
            lines = []
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "(flow)"
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = f"unknown field; allowed: {', '.join(_FIELDS)}"
                elif err["type"] == "missing":
                    msg = "is required for a new flow"
                lines.append(f"{label}: {key}: {msg}")
            raise ConfigError("\n".join(lines)) from exc
    return list(flows.values())


_FIELDS = [f for f in Flow.model_fields if f not in ("name", "source")]


def get_flow(name: str, model: Model | None = None) -> Flow:
    """The flow called ``name``; ConfigError listing the flows when there is none."""
    flows = {f.name: f for f in all_flows(model)}
    if name not in flows:
        raise ConfigError(
            f"no flow {name!r}: use one of {', '.join(flows)} "
            f"(or declare it under [{SECTION}.{name}] in {DEFAULT_FILE})"
        )
    return flows[name]
