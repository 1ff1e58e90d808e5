"""What the session-6 splits (ADR 0148) promise beyond moving code: a public name that moved
still imports from its old module, and the one records converter of the funnel's tables
gives JSON values whatever a column holds."""

from __future__ import annotations

import json
import math
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from shopfunnel._time import point_in_time
from shopfunnel.errors import ConfigError
from shopfunnel.funnel.tables import frame_columns, records


def test_the_stage_summaries_still_import_from_stages_placement() -> None:
    import shopfunnel
    from shopfunnel.stages import summary
    from shopfunnel.stages.placement import NOT_SEEN, stage_flow, stage_summary, stage_transitions

    assert stage_flow is summary.stage_flow is shopfunnel.stage_flow
    assert stage_summary is summary.stage_summary is shopfunnel.stage_summary
    assert stage_transitions is summary.stage_transitions is shopfunnel.stage_transitions
    assert NOT_SEEN == "not seen"


def test_a_name_that_never_was_in_stages_placement_is_still_an_attribute_error() -> None:
    import importlib

    placement = importlib.import_module("shopfunnel.stages.placement")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        placement.nothing  # noqa: B018


def test_records_turn_nan_numpy_scalars_and_times_into_json_values() -> None:
    cols = {
        "step": np.array([1, 2], dtype=np.int64),
        "name": ["view", "buy"],
        "rate": np.array([0.5, math.nan]),
        "mixed": [np.int64(3), np.float64("nan")],  # NumPy scalars inside a list
        "at": [pd.Timestamp("2024-03-04"), datetime(2024, 3, 5, 12, 30)],
    }
    got = records(cols)
    assert got == [
        {"step": 1, "name": "view", "rate": 0.5, "mixed": 3, "at": "2024-03-04T00:00:00"},
        {"step": 2, "name": "buy", "rate": None, "mixed": None, "at": "2024-03-05T12:30:00"},
    ]
    assert type(got[0]["step"]) is int and type(got[0]["mixed"]) is int
    json.dumps(got)  # nothing left that JSON cannot write


def test_records_of_a_dataframe_read_its_columns_as_python_values() -> None:
    df = pd.DataFrame(
        {"period": ["2024-03-04", "total"], "persons": [4, 7], "conversion": [0.25, np.nan]}
    )
    assert records(frame_columns(df)) == [
        {"period": "2024-03-04", "persons": 4, "conversion": 0.25},
        {"period": "total", "persons": 7, "conversion": None},
    ]


def test_point_in_time_reads_a_date_as_the_end_of_that_day_and_a_zone_as_utc() -> None:
    end_of_day = datetime(2024, 3, 15, 23, 59, 59, 999999)
    assert point_in_time("2024-03-15", "as_of") == end_of_day
    assert point_in_time(date(2024, 3, 15), "as_of") == end_of_day
    assert point_in_time("2024-03-15T12:00", "as_of") == datetime(2024, 3, 15, 12)
    assert point_in_time("2024-03-15T12:00+02:00", "as_of") == datetime(2024, 3, 15, 10)
    with pytest.raises(ConfigError, match="as_of 'soon' is not a date"):
        point_in_time("soon", "as_of")
