"""Every face writes numbers the same way: rates, counts, money, durations, dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from shopfunnel import format as fmt


def test_rates_durations_and_money_read_as_people_write_them() -> None:
    assert fmt.pct(0.125) == "12.5%"
    assert fmt.duration(45) == "45s"
    assert fmt.duration(136) == "2m 16s"
    assert fmt.duration(12 * 60) == "12m"
    assert fmt.duration(3 * 3600 + 20 * 60) == "3h 20m"
    assert fmt.duration(2 * 86400 + 4 * 3600) == "2d 4h"
    assert fmt.money(1234.5, "USD") == "USD 1,234"
    assert fmt.money(12.5) == "12.50"
    assert fmt.p_value(0.0001) == "p < 0.001"
    assert fmt.p_value(0.0421) == "p = 0.042"
    assert fmt.integer(np.int64(12345)) == "12,345"


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA, pd.NaT])
def test_a_missing_value_reads_as_a_dash_in_every_formatter(missing: object) -> None:
    for f in (
        fmt.pct,
        fmt.integer,
        fmt.number,
        fmt.money,
        fmt.duration,
        fmt.p_value,
        fmt.timestamp,
    ):
        assert f(missing) == "–"
    assert fmt.cell(missing, None) == "–"


def test_times_read_to_the_minute_and_midnight_as_a_date() -> None:
    assert fmt.timestamp(datetime(2024, 3, 1, 12, 5, 33, 123456, tzinfo=UTC)) == "2024-03-01 12:05"
    assert fmt.timestamp(pd.Timestamp("2024-03-01")) == "2024-03-01"
    assert fmt.timestamp(date(2024, 3, 1)) == "2024-03-01"
    assert fmt.cell(pd.Timestamp("2024-03-01 08:00:00.5"), None) == "2024-03-01 08:00"


def test_quantiles_are_named_as_analysts_say_them() -> None:
    assert fmt.percentile(0.9) == "p90"
    assert fmt.percentile(0.5) == "median"
    assert fmt.percentile(0.99) == "p99"
