"""Placing everyone on Spark (shopfunnel.stages.spark_placement): the store's placement, with
only counts and the persons asked for coming back to the driver."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.stages.placement import persons, placement
from shopfunnel.stages.summary import stage_flow, stage_summary

pytest.importorskip("pyspark")

from shopfunnel.stages.spark_placement import samples_on_spark  # noqa: E402
from shopfunnel.store.spark_ranks import order_statistics  # noqa: E402
from spark_samples import raw_and_store  # noqa: E402


def values_at_ranks(df, column, ranks):
    return order_statistics(df, column, None, lambda _g, _n: ranks)[1].get(None, {})


def grouped_values_at_ranks(df, column, group, ranks):
    return order_statistics(df, column, group, lambda g, _n: ranks.get(g, ()))[1]


pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]


@pytest.fixture(scope="module")
def sample(spark, tmp_path_factory):
    with raw_and_store(spark, tmp_path_factory.mktemp("spark_placement"), 8_000, seed=11) as made:
        yield made


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=2**16),
            st.integers(min_value=2**31, max_value=2**33),  # across the coarse buckets
            st.integers(min_value=0, max_value=2**46),
        ),
        min_size=1,
        max_size=300,
    ),
    st.data(),
)
def test_values_at_ranks_are_the_sorted_values(spark, values, data) -> None:
    ranks = data.draw(st.lists(st.integers(0, len(values) - 1), min_size=1, max_size=4))
    df = spark.createDataFrame([(v,) for v in values], "v long")
    ordered = sorted(values)
    assert values_at_ranks(df, "v", ranks) == {r: ordered[r] for r in ranks}


def test_a_rank_asked_twice_is_found(spark) -> None:  # found by hypothesis
    df = spark.createDataFrame([(0,), (0,), (5,)], "v long")
    assert values_at_ranks(df, "v", [0, 0, 2]) == {0: 0, 2: 5}


def test_ranks_of_several_groups_come_from_the_same_histograms(spark) -> None:
    rng = np.random.default_rng(7)
    groups = {
        g: [int(v) for v in rng.integers(-(2**40), 2**40, size)]
        for g, size in ((0, 50), (1, 1), (2, 400), (3, 0))
    }
    rows = [(g, v) for g, values in groups.items() for v in values]
    df = spark.createDataFrame(rows, "g int, v long")
    ranks = {0: [0, 25, 49], 1: [0], 2: [3, 200, 399]}
    got = grouped_values_at_ranks(df, "v", "g", ranks)
    sizes, _ = order_statistics(df, "v", "g", lambda _g, _n: ())  # counted by the first pass
    assert sizes == {0: 50, 1: 1, 2: 400}
    assert got == {g: {r: sorted(groups[g])[r] for r in rs} for g, rs in ranks.items()}


def test_samples_on_spark_give_numpys_quantiles_of_the_days(spark) -> None:
    rng = np.random.default_rng(3)
    us = {
        g: rng.integers(1_800_000_000, 30 * 86_400_000_000, size)
        for g, size in ((0, 5_000), (1, 7))
    }
    rows = [(g, int(v)) for g, values in us.items() for v in values]
    df = spark.createDataFrame(rows, "g int, gap long")
    qs = {0: [0.8, 0.95], 1: [0.5, 0.9], 2: [0.8]}
    found = samples_on_spark(df, "gap", "g", qs)
    assert [len(found[g]) for g in (0, 1, 2)] == [5_000, 7, 0]
    for g in (0, 1):
        expected = np.quantile(us[g].astype(float) / 86_400_000_000, qs[g])
        assert found[g].quantile(qs[g]).tobytes() == expected.tobytes()


def test_counts_come_back_and_the_persons_stay_on_spark(sample) -> None:
    _, _, store, events = sample
    remote, local = placement(events), placement(store)
    assert remote.codes is None and remote.frame is not None
    summary = stage_summary(events, placed=remote)
    assert "persons" not in remote.__dict__  # the persons table was never gathered
    assert summary.equals(stage_summary(store, placed=local))
    assert remote.count == len(local.persons)


def test_an_audience_brings_back_only_its_persons(sample) -> None:
    _, _, store, events = sample
    for stage, status in (("interest", "stalled"), ("purchase", None), (None, "gone")):
        got = persons(events, stage, status)
        expected = persons(store, stage, status)
        assert len(got) == len(expected)
        assert got["person_id"].tolist() == expected["person_id"].tolist()
        assert got["status"].tolist() == expected["status"].tolist()


def test_the_flow_is_counted_on_spark(sample) -> None:
    _, _, store, events = sample
    got = stage_flow(events, "2024-02-01", "2024-03-01")
    assert got.equals(stage_flow(store, "2024-02-01", "2024-03-01"))
    assert int(got.to_numpy().sum()) > 0
