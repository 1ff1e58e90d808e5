"""The exceptions shopfunnel raises.

Every error derives from one root, so a caller can catch them all::

    ShopfunnelError
    ├── ConfigError        a setting, argument or model file is wrong (fix the call)
    │   └── UnknownNameError  a funnel names an event or key the data does not have
    ├── InputError         a source file cannot be read as events (fix the file or the mapping)
    │   └── ValidationError  some rows break the event schema; ``rejects`` lists them
    └── StoreError         the database cannot be opened or is not a shopfunnel store

Messages name the bad value, what is allowed, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass


class ShopfunnelError(Exception):
    """Root of every error shopfunnel raises on purpose."""


class ConfigError(ShopfunnelError):
    """A setting, argument or model file is not valid."""


class UnknownNameError(ConfigError):
    """A funnel names an event, filter key, breakdown or held property that no event has
    (a misspelling would otherwise count zero or put everyone under "(none)")."""


class InputError(ShopfunnelError):
    """A source cannot be read as events."""


@dataclass(frozen=True)
class Reject:
    """One rejected source row: where it is and why."""

    source: str
    line: int
    column: str
    reason: str
    value: str | None = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (value {self.value!r})"
        return f"{self.source}:{self.line}: column {self.column!r}: {self.reason}{shown}"


class ValidationError(InputError):
    """Rows of a source break the event schema. Nothing was written."""

    def __init__(self, message: str, rejects: list[Reject]):
        super().__init__(message)
        self.rejects = rejects


class StoreError(ShopfunnelError):
    """The store cannot be opened or used."""
