"""Incidents the sample generator can plant, so that diagnosis can be tested against a
known truth.

Each incident is a small frozen dataclass; times are UTC. A ``start`` given as a date
means midnight UTC of that day. The text form used by the CLI (``--incident``) is parsed
by :func:`parse_incident` and documented there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from shopfunnel.errors import ConfigError

DEVICES = ("desktop", "mobile", "tablet")
# The funnel levels a session can reach, in order; a session's level is the furthest.
LEVELS = (
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
)
# Steps at which a checkout failure can stop sessions (they still reach the step itself).
FAILURE_STEPS = LEVELS[1:-1]


def to_datetime(value: str | date | datetime, *, what: str = "start") -> datetime:
    """A naive UTC datetime from a date, a datetime or an ISO 8601 string."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{what} {value!r} is not a date or time: write it as 2024-02-10 or "
            "2024-03-01T10:00 (UTC)"
        ) from exc
    return to_datetime(parsed)


class _DaysWindow:
    """An incident from ``start`` for ``days`` days (its ``begin`` and ``end``, UTC)."""

    start: str | date | datetime
    days: float

    @property
    def begin(self) -> datetime:
        return to_datetime(self.start)

    @property
    def end(self) -> datetime:
        return self.begin + timedelta(days=self.days)


class _StepWindow(_DaysWindow):
    """A days window at one funnel ``step`` (its ``level`` in :data:`LEVELS`)."""

    step: str

    @property
    def level(self) -> int:
        return LEVELS.index(self.step)


@dataclass(frozen=True)
class CheckoutFailure(_StepWindow):
    """Checkout broken on one device: from ``start`` for ``days`` days, sessions on
    ``device`` can reach ``step`` but nobody gets past it to purchase (the step's event
    carries ``"checkout_error": true``, and ``"payment_failed": true`` at
    ``add_payment_info``)."""

    start: str | date | datetime
    days: float = 3
    device: str = "mobile"
    step: str = "add_payment_info"

    def __post_init__(self) -> None:
        to_datetime(self.start)
        if self.device not in DEVICES:
            raise ConfigError(
                f"CheckoutFailure device {self.device!r} is not known: use one of "
                f"{', '.join(DEVICES)}"
            )
        if self.step not in FAILURE_STEPS:
            raise ConfigError(
                f"CheckoutFailure step {self.step!r} is not a step sessions can stop at: use "
                f"one of {', '.join(FAILURE_STEPS)}"
            )
        if not self.days > 0:
            raise ConfigError(f"CheckoutFailure days={self.days!r} must be positive")

    def __str__(self) -> str:
        return (
            f"checkout failure on {self.device} at {self.step} from {self.begin:%Y-%m-%d %H:%M} "
            f"for {self.days:g} day(s)"
        )


@dataclass(frozen=True)
class PaymentOutage:
    """The payment provider is down from ``start`` for ``hours`` hours: on every device
    sessions still reach ``begin_checkout``, ``add_shipping_info`` and
    ``add_payment_info`` (with ``"payment_failed": true``) but nobody completes a
    purchase."""

    start: str | date | datetime
    hours: float = 12

    def __post_init__(self) -> None:
        to_datetime(self.start)
        if not self.hours > 0:
            raise ConfigError(f"PaymentOutage hours={self.hours!r} must be positive")

    @property
    def begin(self) -> datetime:
        return to_datetime(self.start)

    @property
    def end(self) -> datetime:
        return self.begin + timedelta(hours=self.hours)

    def __str__(self) -> str:
        return f"payment outage from {self.begin:%Y-%m-%d %H:%M} for {self.hours:g} hour(s)"


@dataclass(frozen=True)
class TrafficSpike(_DaysWindow):
    """A campaign floods the store: from ``start`` for ``days`` days, ``channel`` brings
    ``multiplier`` times its usual new visitors (the extra ones tagged
    ``utm_campaign=campaign``, mostly on mobile), who barely convert."""

    start: str | date | datetime
    days: float = 2
    campaign: str = "flash_promo"
    channel: str = "paid social"
    multiplier: float = 4.0

    def __post_init__(self) -> None:
        from shopfunnel.sample.model import CHANNELS

        to_datetime(self.start)
        if self.channel not in CHANNELS:
            raise ConfigError(
                f"TrafficSpike channel {self.channel!r} is not one the sample store has: use "
                f"one of {', '.join(CHANNELS)}"
            )
        if not self.multiplier > 1:
            raise ConfigError(
                f"TrafficSpike multiplier={self.multiplier!r} must be above 1 (4.0 means four "
                "times the channel's usual new visitors)"
            )
        if not self.days > 0:
            raise ConfigError(f"TrafficSpike days={self.days!r} must be positive")
        if not self.campaign.strip():
            raise ConfigError("TrafficSpike campaign must not be empty")

    def __str__(self) -> str:
        return (
            f"traffic spike of {self.channel} campaign {self.campaign!r} ({self.multiplier:g}x) "
            f"from {self.begin:%Y-%m-%d %H:%M} for {self.days:g} day(s)"
        )


# Steps whose conversion a ConversionDrop can lower (a session reaches them from the one before).
DROP_STEPS = LEVELS[1:]
SEGMENT_KEYS = ("device", "channel", "country")


@dataclass(frozen=True)
class ConversionDrop(_StepWindow):
    """A step converts worse for a while, for everyone or one segment: from ``start`` for
    ``days`` days, sessions that reach the step before ``step`` go on to ``step`` with
    ``keep`` times their usual probability (0.76 takes 85% to about 65%; 0 stops
    everyone), and those that would have gone on stop there instead. A drop at
    ``purchase`` is a payment failure: the stopped sessions' ``add_payment_info`` carries
    ``"payment_failed": true``. ``segment`` limits it to sessions with that ``device``,
    ``channel`` or ``country`` (e.g. ``{"device": "mobile"}``; empty: all traffic). Applied
    to the sessions that start inside the window."""

    start: str | date | datetime
    days: float = 30
    step: str = "add_payment_info"
    keep: float = 0.5
    segment: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        from shopfunnel.sample.model import CHANNELS, COUNTRIES

        to_datetime(self.start)
        if isinstance(self.segment, dict):
            object.__setattr__(self, "segment", tuple(sorted(self.segment.items())))
        if self.step not in DROP_STEPS:
            raise ConfigError(
                f"ConversionDrop step {self.step!r} is not a step sessions move on to: use one "
                f"of {', '.join(DROP_STEPS)}"
            )
        if not self.days > 0:
            raise ConfigError(f"ConversionDrop days={self.days!r} must be positive")
        if not 0 <= self.keep < 1:
            raise ConfigError(
                f"ConversionDrop keep={self.keep!r} must be at least 0 and below 1 (the share of "
                "the usual conversion left: 0.76 takes 85% to about 65%)"
            )
        known = {"device": DEVICES, "channel": CHANNELS, "country": COUNTRIES}
        for key, value in self.segment:
            if key not in known:
                raise ConfigError(
                    f"ConversionDrop segment {key!r} is not known: use {', '.join(SEGMENT_KEYS)}"
                )
            if value not in known[key]:
                raise ConfigError(
                    f"ConversionDrop {key} {value!r} is not one the sample store has: use one of "
                    f"{', '.join(known[key])}"
                )

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.segment) or "all traffic"
        return (
            f"conversion drop into {self.step} to {self.keep:g}x on {where} from "
            f"{self.begin:%Y-%m-%d %H:%M} for {self.days:g} day(s)"
        )


Incident = CheckoutFailure | PaymentOutage | TrafficSpike | ConversionDrop

INCIDENT_SYNTAX = """\
checkout-failure:START[:DAYS[:DEVICE[:STEP]]]   checkout broken on DEVICE (default 3 days,
    mobile, add_payment_info): nobody on that device gets past STEP to purchase.
payment-outage:START[:HOURS]                  no purchases at all for HOURS (default 12h).
traffic-spike:START[:DAYS[:CAMPAIGN[:CHANNEL[:MULTIPLIER]]]]   a campaign (default 2 days,
    flash_promo, paid social, 4x) brings visitors who barely convert.
conversion-drop:START[:DAYS[:STEP[:KEEP[:SEGMENT]]]]   STEP converts at KEEP times its usual
    rate (default 30 days, add_payment_info, 0.5) on SEGMENT (device=mobile, channel=email,
    country=DE, a device name alone, or all; default all).
START is a UTC date or time: 2024-02-10 or 2024-03-01T10:00. DAYS may end in d, HOURS in h.
Examples: checkout-failure:2024-02-10:3:mobile  payment-outage:2024-03-01T10:00:12h
traffic-spike:2024-03-20:2:flash_promo:paid social:4
conversion-drop:2024-03-01:30:add_payment_info:0.76:device=mobile"""


def _split(text: str) -> tuple[str, list[str]]:
    kind, _, rest = text.strip().partition(":")
    if not rest:
        return kind.strip().lower(), []
    # START may contain ':' (a time); it is the ISO part up to the next field.
    if "T" in rest.split(":", 1)[0] or (len(rest) > 10 and rest[10] == "T"):
        date_part, _, tail = rest.partition("T")
        time_fields = tail.split(":")
        # HH:MM belongs to the time (no seconds); what follows are fields.
        clock = [time_fields[0]]
        rest_fields = time_fields[1:]
        while (
            rest_fields and len(clock) < 2 and rest_fields[0].isdigit() and len(rest_fields[0]) == 2
        ):
            clock.append(rest_fields.pop(0))
        start = f"{date_part}T{':'.join(clock)}"
        return kind.strip().lower(), [start, *rest_fields]
    return kind.strip().lower(), rest.split(":")


def _number(text: str, unit: str, what: str, spec: str) -> float:
    raw = text.strip().lower().removesuffix(unit)
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(
            f"--incident {spec!r}: {what} {text!r} is not a number (e.g. 3{unit})"
        ) from exc


def _segment(text: str) -> tuple[tuple[str, str], ...]:
    """``device=mobile``, ``country=de``, a device name alone, or ``all`` (no segment)."""
    if text.lower() == "all":
        return ()
    key, sep, value = text.partition("=")
    if not sep:  # a device name alone
        key, value = "device", key
    key, value = key.strip().lower(), value.strip()
    return ((key, value.upper() if key == "country" else value.lower()),)


# kind: (class, syntax, the optional fields after START as (keyword, how to read it))
_FORMS: dict[str, tuple[type, str, tuple[tuple[str, Callable[[str, str], object]], ...]]] = {
    "checkout-failure": (
        CheckoutFailure,
        "checkout-failure:START[:DAYS[:DEVICE[:STEP]]]",
        (
            ("days", lambda v, spec: _number(v, "d", "DAYS", spec)),
            ("device", lambda v, spec: v.lower()),
            ("step", lambda v, spec: v.lower()),
        ),
    ),
    "payment-outage": (
        PaymentOutage,
        "payment-outage:START[:HOURS]",
        (("hours", lambda v, spec: _number(v, "h", "HOURS", spec)),),
    ),
    "traffic-spike": (
        TrafficSpike,
        "traffic-spike:START[:DAYS[:CAMPAIGN[:CHANNEL[:MULTIPLIER]]]]",
        (
            ("days", lambda v, spec: _number(v, "d", "DAYS", spec)),
            ("campaign", lambda v, spec: v),
            ("channel", lambda v, spec: v.lower()),
            ("multiplier", lambda v, spec: _number(v, "x", "MULTIPLIER", spec)),
        ),
    ),
    "conversion-drop": (
        ConversionDrop,
        "conversion-drop:START[:DAYS[:STEP[:KEEP[:SEGMENT]]]]",
        (
            ("days", lambda v, spec: _number(v, "d", "DAYS", spec)),
            ("step", lambda v, spec: v.lower()),
            ("keep", lambda v, spec: _number(v, "x", "KEEP", spec)),
            ("segment", lambda v, spec: _segment(v)),
        ),
    ),
}


def parse_incident(spec: str) -> Incident:
    """An incident from its text form (see :data:`INCIDENT_SYNTAX`)."""
    kind, fields = _split(spec)
    fields = [f.strip() for f in fields]
    if not fields or not fields[0]:
        raise ConfigError(
            f"--incident {spec!r} has no start: write e.g. {kind or 'checkout-failure'}:2024-02-10"
        )
    start = to_datetime(fields[0], what=f"--incident {spec!r}: start")
    args = fields[1:]
    if kind not in _FORMS:
        raise ConfigError(
            f"--incident {spec!r}: unknown kind {kind!r}; use checkout-failure, payment-outage, "
            "traffic-spike or conversion-drop"
        )
    cls, syntax, optional = _FORMS[kind]
    if len(args) > len(optional):
        raise ConfigError(f"--incident {spec!r}: too many fields; syntax: {syntax}")
    kw = {
        name: read(value, spec)
        for (name, read), value in zip(optional, args, strict=False)
        if value
    }
    return cls(start, **kw)
