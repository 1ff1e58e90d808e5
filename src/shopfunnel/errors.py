"""The exceptions shopfunnel raises.

Every error derives from one root, so a caller can catch them all::

    ShopfunnelError
    ├── ConfigError        a setting, argument or model file is wrong (fix the call)
    │   └── UnknownNameError  a funnel names an event or key the data does not have
    ├── InputError         a source file cannot be read as events (fix the file or the mapping)
    │   └── ValidationError  some rows break the event schema; ``rejects`` lists them
    └── StoreError         the database cannot be opened or is not a shopfunnel store
        └── SparkDiedError  the Spark JVM died during an analysis (give it more memory)

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


class SparkDiedError(StoreError):
    """The Spark JVM stopped during an analysis: out of memory, or killed. Every query
    after it fails too, so a command stops here rather than go on section by section."""

    def __init__(self) -> None:
        super().__init__(
            "Spark stopped during the analysis (its JVM ran out of memory or died): "
            "give it more memory, with SHOPFUNNEL_SPARK_DRIVER_MEMORY=8g for the local "
            "Spark (default 4g) or spark.driver.memory / spark.executor.memory on a "
            "cluster; see docs/spark.md"
        )


def spark_died(exc: BaseException) -> bool:
    """Whether ``exc`` says the Spark JVM is gone or ran out of memory (not an error in
    the analysis or the data): the connection to it refused or lost, py4j's network
    error, or an ``OutOfMemoryError`` reported back."""
    if isinstance(exc, SparkDiedError | ConnectionError):
        return True
    if type(exc).__name__ == "Py4JNetworkError":
        return True
    return "java.lang.OutOfMemoryError" in str(exc)
