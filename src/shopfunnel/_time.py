"""Times as the store keeps them: naive UTC (helpers for the analyses)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd

from shopfunnel.errors import ConfigError


def naive_utc(values: Any) -> pd.Series:
    """A datetime Series in UTC without a zone: zoned values are converted to UTC first,
    naive values are taken as UTC already."""
    series = pd.to_datetime(pd.Series(values))
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def naive_utc_timestamp(value: Any) -> pd.Timestamp:
    """One point in time as a naive UTC timestamp (a zoned value is converted to UTC)."""
    ts = pd.Timestamp(value)
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def point_in_time(value: datetime | date | str, what: str) -> datetime:
    """One point in time as a naive UTC datetime, as the stage model and the audiences read
    it: a date (or a date-only string) means the end of that day; a zoned time is converted
    to UTC. ``what`` names the value in the error."""
    if isinstance(value, str):
        text = value.strip()
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{what} {value!r} is not a date: write e.g. 2024-03-15 or 2024-03-15T12:00"
            ) from exc
        if len(text) == 10:  # a date alone
            ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    elif isinstance(value, datetime):
        ts = pd.Timestamp(value)
    elif isinstance(value, date):
        ts = pd.Timestamp(value) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    else:
        raise ConfigError(f"{what} {value!r} is not a date or a datetime")
    if ts is pd.NaT:
        raise ConfigError(f"{what} {value!r} is not a date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()
