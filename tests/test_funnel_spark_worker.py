"""The Spark workers' per-partition pass, without Spark: however a partition is cut into
Arrow batches, the units and totals it yields are those of one pass over the whole.

The rows come from the local engine's own query (same columns as Spark's), cut into
batches of a few rows so that persons straddle batches and gathered blocks.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shopfunnel.funnel.api import funnel
from shopfunnel.funnel.engine import FunnelPlan, LocalEngine, StepCondition, count_batch
from shopfunnel.funnel.spark import _PartitionCounter, _schema
from shopfunnel.sample import generate_sample

STEPS = ("view_item", "add_to_cart", "begin_checkout", "purchase")


def plan_for(**kwargs) -> FunnelPlan:
    return FunnelPlan(
        steps=tuple(StepCondition(s) for s in STEPS), window_us=2 * 86_400_000_000, **kwargs
    )


@pytest.fixture(scope="module")
def events() -> pa.Table:
    return generate_sample(5_000, seed=5)


def rows_for(events: pa.Table, plan: FunnelPlan) -> pa.Table:
    engine = LocalEngine(events)
    sql, params = engine.build_sql(plan)
    return engine.db.arrow(sql, params)


def run_worker(rows: pa.Table, plan: FunnelPlan, batch: int, block: int) -> pa.Table:
    batches = rows.to_batches(max_chunksize=batch)
    out = list(_PartitionCounter(plan, block)(iter(batches)))
    return pa.Table.from_batches(out, schema=_schema(plan))


@pytest.mark.parametrize("order", ["ordered", "strict", "any"])
@pytest.mark.parametrize(("batch", "block"), [(7, 10), (7, 1_000_000), (3, 1), (50_000, 5)])
def test_any_cut_into_batches_gives_the_whole_partition_pass(events, order, batch, block):
    plan = plan_for(order=order, by="channel", trend="day")
    rows = rows_for(events, plan)
    labels: dict[int, int] = {}
    whole, totals = count_batch(rows, plan, labels)
    out = run_worker(rows, plan, batch, block)
    kind = out.column("kind").to_numpy()
    units = out.filter(pa.compute.equal(out.column("kind"), 0))
    assert len(units) == len(whole[0]) > 100
    got_totals = np.column_stack([out.column(f"r{k}").to_numpy() for k in range(len(STEPS))])
    np.testing.assert_array_equal(got_totals[kind == 1].sum(axis=0), totals)
    order_whole = np.lexsort((whole[1], whole[0].view(np.int64)))
    o = units.column("o").to_numpy()
    order_got = np.lexsort((units.column("p").to_numpy(), o))
    np.testing.assert_array_equal(o[order_got], whole[0].view(np.int64)[order_whole])
    for g, m in zip("rvn", whole[2:5], strict=True):
        got = np.column_stack([units.column(f"{g}{k}").to_numpy() for k in range(len(STEPS))])
        np.testing.assert_array_equal(got[order_got], m[order_whole])


def test_worker_rows_count_like_the_local_engine(events):
    plan = plan_for()
    out = run_worker(rows_for(events, plan), plan, 7, 10)
    units = out.filter(pa.compute.equal(out.column("kind"), 0))
    reached = [
        int(np.sum(units.column(f"r{k}").to_numpy() != np.iinfo(np.int64).min))
        for k in range(len(STEPS))
    ]
    expected = funnel(events, list(STEPS), window="2d").steps["persons"].tolist()
    assert reached == expected
