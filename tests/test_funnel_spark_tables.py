"""The funnel's tables counted on Spark (shopfunnel.funnel.spark_tables): the local engine's
tables to the bit, the drill-downs the same, and no per-unit array in the driver."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shopfunnel import funnel
from shopfunnel.sample import generate_sample

pytest.importorskip("pyspark")

from shopfunnel.funnel.spark import SparkEngine  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]

STEPS = ["view_item", "add_to_cart", "begin_checkout", "purchase"]


@pytest.fixture(scope="module")
def sample_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("spark_tables") / "sample.parquet"
    pq.write_table(generate_sample(20_000, seed=8), path)
    return str(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": "2d"},
        {"window": "1d", "count_by": "session", "by": "channel", "trend": "week"},
        {"window": "3d", "order": "strict", "by": "device", "attribution": "last"},
        {"window": "3d", "order": "any", "by": "channel", "attribution": "per_step", "top": 2},
    ],
)
def test_every_table_and_drill_down_equals_the_local_engine(spark, sample_path, kwargs) -> None:
    local = funnel(sample_path, STEPS, **kwargs)
    remote = funnel(SparkEngine(spark, sample_path, store_rules=False), STEPS, **kwargs)
    assert remote._drill is not None and remote._reached.size == 0  # nothing gathered
    assert remote.to_dict() == local.to_dict()  # times to the bit, breakdown, trend
    pd.testing.assert_frame_equal(remote.steps, local.steps, check_exact=True)
    for step in (None, 2, 4):
        pd.testing.assert_frame_equal(
            remote.time_to_convert(step), local.time_to_convert(step), check_exact=True
        )
    for k in (1, 3):
        pd.testing.assert_frame_equal(remote.dropped(k), local.dropped(k))
