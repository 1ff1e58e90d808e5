"""Times as the store keeps them: naive UTC (private helpers for the customer analyses)."""

from __future__ import annotations

from typing import Any

import pandas as pd


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
