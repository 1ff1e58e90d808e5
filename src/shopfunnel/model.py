"""The model file, ``shopfunnel.toml``: what the store's funnel and stages are made of.

Defaults work with no file at all. A file only needs the sections it changes::

    [[stages]]                      # the ordered list of stages (replaces the defaults)
    name = "Awareness"
    events = ["page_view", "session_start"]

    [placement]                     # how persons get a stage and a status
    lookback = "365d"

    [funnel]                        # the default funnel
    steps = ["view_item", "add_to_cart", "begin_checkout", "purchase"]
    window = "7d"

The known sections are checked strictly (an unknown key is an error that lists the allowed
keys). Unknown *top-level* sections are kept as they are, in :attr:`Model.sections`, so a
module that owns a section (``[benchmarks]``, ``[playbook]``, ``[audiences]``) can read it
with :meth:`Model.section` and its own typed class, and an older shopfunnel reading a newer
file names the sections it does not use (:meth:`Model.unknown_sections`) instead of failing.

See ``docs/model.md`` for the file format.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError

DEFAULT_FILE = "shopfunnel.toml"

# Names the stage flow uses for states that are not stages.
RESERVED_STAGE_NAMES = ("lapsed", "not seen")

S = TypeVar("S", bound=BaseModel)


class Stage(BaseModel):
    """One stage of the customer journey.

    A person has reached the stage when they have one of its ``events`` or, when
    ``min_orders`` is set, at least that many orders (a retention-like stage:
    ``min_orders = 2`` is "bought again").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    events: tuple[str, ...] = ()
    min_orders: int | None = Field(default=None, ge=1)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name_is_not_reserved(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a stage name cannot be blank")
        if value.lower() in RESERVED_STAGE_NAMES:
            raise ValueError(f"{value!r} is reserved for the stage flow; choose another stage name")
        return value

    @field_validator("events")
    @classmethod
    def _events_are_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(e.strip() for e in value)
        if any(not e for e in cleaned):
            raise ValueError("an event name cannot be blank")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("an event is listed twice")
        return cleaned

    @model_validator(mode="after")
    def _has_a_way_in(self) -> Stage:
        if not self.events and self.min_orders is None:
            raise ValueError(
                f"stage {self.name!r} has neither events nor min_orders: give it events = [...] "
                "or min_orders = N, or nobody could ever reach it"
            )
        return self

    @property
    def key(self) -> str:
        """The name in lower case: how the CLI and :func:`shopfunnel.stages.persons` match it."""
        return self.name.lower()


def default_stages() -> list[Stage]:
    """The five stages of DESIGN.md with GA4's recommended e-commerce event names."""
    return [
        Stage(
            name="Awareness",
            events=(
                "page_view",
                "session_start",
                "first_visit",
                "view_promotion",
                "select_promotion",
            ),
            description="any tracked visit",
        ),
        Stage(
            name="Interest",
            events=(
                "view_item_list",
                "select_item",
                "view_item",
                "search",
                "view_search_results",
                "quiz_complete",
            ),
            description="looked at products",
        ),
        Stage(
            name="Decision",
            events=(
                "add_to_cart",
                "view_cart",
                "add_to_wishlist",
                "begin_checkout",
                "add_shipping_info",
                "add_payment_info",
            ),
            description="chose something",
        ),
        Stage(name="Purchase", events=("purchase",), description="bought"),
        Stage(
            name="Retention",
            events=("referral_purchase",),
            min_orders=2,
            description="bought again (a second order) or referred a buyer",
        ),
    ]


class Placement(BaseModel):
    """How persons are placed in a stage and given a status (see :mod:`shopfunnel.stages.placement`
    and :mod:`shopfunnel.stages.status`).

    Prospects (no order in the period) are *active*, *stalled* or *gone* by the time since
    their last visit, against the store's return gaps at their stage (``visit_gap``,
    ``stalled_quantile``, ``gone_quantile``, ``min_returns``, with ``stalled_after`` and
    ``gone_after`` for stores with too few returns). Customers are *active*, *lapsed* or
    *gone* by the time since their last order, against their usual gap between orders
    (``lapsed_quantile``, ``gone_quantile``, ``min_gaps``, ``lapsed_after``,
    ``customer_gone_after``, ``own_gap_min_orders``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: str | float = "365d"
    visit_gap: str | float = "30m"
    stalled_quantile: float = Field(default=0.8, gt=0, lt=1)
    gone_quantile: float = Field(default=0.95, gt=0, lt=1)
    min_returns: int = Field(default=20, ge=1)
    stalled_after: str | float = "7d"
    gone_after: str | float = "28d"
    min_stalled_after: str | float | None = None
    lapsed_quantile: float = Field(default=0.8, gt=0, lt=1)
    min_gaps: int = Field(default=20, ge=1)
    lapsed_after: str | float = "90d"
    customer_gone_after: str | float = "180d"
    own_gap_min_orders: int = Field(default=3, ge=2)

    @field_validator(
        "lookback",
        "visit_gap",
        "stalled_after",
        "gone_after",
        "lapsed_after",
        "customer_gone_after",
        "min_stalled_after",
    )
    @classmethod
    def _is_duration(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            _check_duration(value)
        return value

    @model_validator(mode="after")
    def _gone_comes_after_stalled_and_lapsed(self) -> Placement:
        for name in ("stalled_quantile", "lapsed_quantile"):
            if not self.gone_quantile > getattr(self, name):
                raise ValueError(
                    f"gone_quantile ({self.gone_quantile}) must be greater than {name} "
                    f"({getattr(self, name)}): gone is further out than stalled or lapsed"
                )
        for short, long in (
            ("stalled_after", "gone_after"),
            ("lapsed_after", "customer_gone_after"),
        ):
            if not parse_duration_seconds(getattr(self, long)) > parse_duration_seconds(
                getattr(self, short)
            ):
                raise ValueError(
                    f"{long} ({getattr(self, long)!r}) must be longer than {short} "
                    f"({getattr(self, short)!r})"
                )
        return self

    @property
    def lookback_seconds(self) -> float:
        return parse_duration_seconds(self.lookback)

    @property
    def visit_gap_seconds(self) -> float:
        return parse_duration_seconds(self.visit_gap)

    @property
    def stalled_after_seconds(self) -> float:
        return parse_duration_seconds(self.stalled_after)

    @property
    def gone_after_seconds(self) -> float:
        return parse_duration_seconds(self.gone_after)

    @property
    def min_stalled_after_seconds(self) -> float:
        """The floor under every stage's stalled threshold (0 when not set)."""
        return (
            0.0
            if self.min_stalled_after is None
            else parse_duration_seconds(self.min_stalled_after)
        )

    @property
    def lapsed_after_seconds(self) -> float:
        return parse_duration_seconds(self.lapsed_after)

    @property
    def customer_gone_after_seconds(self) -> float:
        return parse_duration_seconds(self.customer_gone_after)


DEFAULT_FUNNEL_STEPS = ("view_item", "add_to_cart", "begin_checkout", "purchase")


class FunnelSection(BaseModel):
    """The store's default funnel: event names in order, and the conversion window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[str, ...] = Field(default=DEFAULT_FUNNEL_STEPS, min_length=1)
    window: str | float = "7d"

    @field_validator("window")
    @classmethod
    def _is_duration(cls, value: str | float) -> str | float:
        _check_duration(value)
        return value

    @property
    def window_seconds(self) -> float:
        return parse_duration_seconds(self.window)


def _check_duration(value: str | float) -> None:
    try:
        parse_duration_seconds(value)
    except ConfigError as exc:
        raise ValueError(
            f"{value!r} is not a duration: write a number and a unit (s, m, h, d or w), "
            "e.g. '30m' or '7d', or a number of seconds"
        ) from exc


class Model(BaseModel):
    """The whole model file. Every section has defaults, so ``Model()`` is the default model.

    Unknown top-level sections are allowed and kept (see :attr:`sections`).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    stages: tuple[Stage, ...] = Field(default_factory=lambda: tuple(default_stages()))
    placement: Placement = Field(default_factory=Placement)
    funnel: FunnelSection = Field(default_factory=FunnelSection)

    _source: str | None = PrivateAttr(default=None)

    @field_validator("stages")
    @classmethod
    def _stages_are_consistent(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        if not stages:
            raise ValueError("give at least one stage")
        seen: dict[str, str] = {}
        for stage in stages:
            if stage.key in seen:
                raise ValueError(
                    f"stage name {stage.name!r} is used twice (names are compared without case)"
                )
            seen[stage.key] = stage.name
        owner: dict[str, str] = {}
        for stage in stages:
            for event in stage.events:
                if event in owner:
                    raise ValueError(
                        f"event {event!r} is in both {owner[event]!r} and {stage.name!r}: an "
                        "event belongs to one stage; remove it from one of them"
                    )
                owner[event] = stage.name
        return stages

    # -- reading the model ------------------------------------------------------------
    @property
    def source(self) -> str | None:
        """The file the model was read from, or None for the defaults."""
        return self._source

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage_index(self, name: str) -> int:
        """Position of the stage called ``name`` (without case); ConfigError if there is none."""
        wanted = name.strip().lower()
        for i, stage in enumerate(self.stages):
            if stage.key == wanted:
                return i
        raise ConfigError(
            f"no stage {name!r}: the stages are {', '.join(self.stage_names)}"
            + (f" (from {self._source})" if self._source else " (the defaults)")
        )

    def event_stage(self) -> dict[str, int]:
        """Event name → index of the stage it belongs to."""
        return {e: i for i, s in enumerate(self.stages) for e in s.events}

    @property
    def sections(self) -> dict[str, Any]:
        """Top-level sections this version does not define, kept as read from the file."""
        return dict(self.model_extra or {})

    def unknown_sections(self) -> list[str]:
        """Names of the kept sections, for a note such as "[playbook] is not used here"."""
        return sorted(self.sections)

    def section(self, name: str, cls: type[S]) -> S:
        """Parse the kept section ``[name]`` with ``cls`` (its defaults when it is absent).

        This is how a module owns a section without editing this file::

            class Benchmarks(BaseModel): ...
            bench = load_model().section("benchmarks", Benchmarks)

        A bad value raises ConfigError naming the file, the key and what is allowed.
        """
        raw = self.sections.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{self._source or DEFAULT_FILE}: {name}: must be a table ([{name}]), "
                f"got {type(raw).__name__}"
            )
        try:
            return cls.model_validate(raw)
        except PydanticValidationError as exc:
            raise ConfigError(
                _explain(exc, self._source or DEFAULT_FILE, cls, prefix=(name,))
            ) from exc


def load_model(path: str | Path | None = None) -> Model:
    """Read the model file.

    ``path=None`` reads ``shopfunnel.toml`` in the current directory when there is one and
    returns the defaults when there is not. An explicit path that does not exist is a
    :class:`ConfigError`, as is a file that is not valid TOML or breaks the rules above;
    the message names the file, the key and what is allowed.
    """
    if path is None:
        candidate = Path(DEFAULT_FILE)
        if not candidate.is_file():
            return Model()
        path = candidate
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"model file {str(path)!r} does not exist: check the path, or leave out --model "
            "to use the defaults (see docs/model.md for the format)"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the model file {path}: {exc}") from exc
    return model_from_dict(data, source=str(path))


def model_from_dict(data: dict[str, Any], *, source: str = "<model>") -> Model:
    """A :class:`Model` from parsed TOML (or any dict), with errors that name ``source``."""
    try:
        model = Model.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError(_explain(exc, source, Model)) from exc
    model._source = source
    return model


# -- error messages --------------------------------------------------------------------
def _explain(
    exc: PydanticValidationError, source: str, root: type[BaseModel], prefix: tuple[Any, ...] = ()
) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = _dotted(prefix + loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(root, loc[:-1])
            msg = "unknown key" + (f"; allowed keys are {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            msg = "is required"
        lines.append(f"{source}: {key or '(top level)'}: {msg}")
    return "\n".join(lines) + "\nSee docs/model.md for the model file format."


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by walking ``loc`` down from ``root``."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))
