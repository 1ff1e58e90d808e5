"""On the sample store, each built-in audience is the same set of persons as a direct query of
the events written here, apart from the package: pandas over the raw events instead of the
package's SQL, the gap and CLV formulas written out again. Where a figure is itself a fitted
or calibrated number (the stage thresholds, the BG/NBD and Gamma-Gamma parameters) the test
takes it from the module that is tested for it elsewhere, and recomputes everything around it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from shopfunnel.audiences.builtins import builtin_audiences, prospect_stages, slug
from shopfunnel.audiences.saved import audience_members
from shopfunnel.customers.clv import BetaGeoModel, GammaGammaModel
from shopfunnel.model import Model
from shopfunnel.sample import generate_sample
from shopfunnel.stages.placement import placement
from shopfunnel.store.store import Store

MODEL = Model()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("aud") / "sample.duckdb"
    with Store(path) as store:
        store.load(generate_sample(150_000, seed=3))
    return str(path)


@pytest.fixture(scope="module")
def events(sample: str) -> pd.DataFrame:
    with Store(sample, read_only=True) as store:
        return store.db.df(
            "SELECT person_id, ts, event, order_id, CAST(value AS DOUBLE) AS value FROM events"
        )


@pytest.fixture(scope="module")
def as_of(events: pd.DataFrame) -> pd.Timestamp:
    return events["ts"].max()


def audience(sample: str, name: str) -> set[str]:
    with Store(sample, read_only=True) as store:
        return set(audience_members(store, name, model=MODEL)["person_id"])


def abandoners(
    events: pd.DataFrame, as_of: pd.Timestamp, did: set[str], without: set[str]
) -> set[str]:
    """Latest `did` event in the last 30 days at least an hour old, no `without` event since."""
    recent = events[(events["ts"] >= as_of - pd.Timedelta(days=30)) & (events["ts"] <= as_of)]
    last = recent[recent["event"].isin(did)].groupby("person_id")["ts"].max()
    last = last[last <= as_of - pd.Timedelta(hours=1)]
    later = events[events["event"].isin(without)].merge(
        last.rename("t"), left_on="person_id", right_index=True
    )
    followed = set(later[(later["ts"] >= later["t"]) & (later["ts"] <= as_of)]["person_id"])
    return set(last.index) - followed


def orders_of(events: pd.DataFrame) -> pd.DataFrame:
    buys = events[(events["event"] == "purchase") & events["order_id"].notna()].sort_values("ts")
    return buys.groupby("order_id").agg(
        person_id=("person_id", "first"),
        ts=("ts", "first"),
        value=("value", lambda v: v.fillna(0).sum()),
    )


def test_the_sample_has_something_in_every_built_in(sample: str) -> None:
    for built in builtin_audiences(MODEL):
        found = audience(sample, built.name)
        assert len(found) >= 5, built.name


def test_abandoned_carts_checkouts_and_browsers_equal_a_direct_query(sample, events, as_of) -> None:
    assert audience(sample, "abandoned-carts") == abandoners(
        events, as_of, {"add_to_cart"}, {"purchase"}
    )
    assert audience(sample, "abandoned-checkouts") == abandoners(
        events, as_of, {"begin_checkout"}, {"purchase"}
    )
    assert audience(sample, "browse-abandoners") == abandoners(
        events, as_of, {"view_item"}, {"add_to_cart", "begin_checkout", "purchase"}
    )


def test_one_time_buyers_equal_persons_with_one_order_id(sample, events) -> None:
    per = orders_of(events).groupby("person_id").size()
    assert audience(sample, "one-time-buyers") == set(per[per == 1].index)


def test_stalled_stages_equal_prospects_idle_past_their_stage_threshold(
    sample, events, as_of
) -> None:
    with Store(sample, read_only=True) as store:
        thresholds = placement(store, model=MODEL).thresholds.set_index("stage")
    period = events[(events["ts"] > as_of - pd.Timedelta(days=365)) & (events["ts"] <= as_of)]
    stage_of = {e: i for i, s in enumerate(MODEL.stages) for e in s.events}
    idx = period["event"].map(stage_of).fillna(0).astype(int)  # any event is awareness
    furthest = idx.groupby(period["person_id"]).max()
    buyers = set(period[period["event"] == "purchase"]["person_id"])
    idle = (as_of - events[events["ts"] <= as_of].groupby("person_id")["ts"].max()) / pd.Timedelta(
        days=1
    )
    for k, name in enumerate(MODEL.stage_names):
        if name not in prospect_stages(MODEL):
            continue
        row = thresholds.loc[name]
        at_k = [p for p in furthest[furthest == k].index if p not in buyers]
        expected = {
            p for p in at_k if row["stalled_after_days"] < idle[p] <= row["gone_after_days"]
        }
        assert audience(sample, f"stalled-{slug(name)}") == expected, name


def test_lapsed_customers_equal_a_direct_gap_computation(sample, events, as_of) -> None:
    orders = orders_of(events).sort_values(["person_id", "ts"])
    day = pd.Timedelta(days=1)
    gaps = orders.groupby("person_id")["ts"].diff().dropna() / day
    store_gap = float(np.quantile(gaps, 0.8)) if len(gaps) >= 20 else 90.0
    per = orders.groupby("person_id")["ts"].agg(["size", "min", "max"])
    own = (per["max"] - per["min"]) / day / (per["size"] - 1) * -math.log(1 - 0.8)
    usual = own.where(per["size"] >= 3, store_gap)
    since = (as_of - per["max"]) / day
    assert audience(sample, "lapsed-customers") == set(per.index[since > usual])


def test_vip_equals_the_top_tenth_by_expected_value_written_out(sample, events, as_of) -> None:
    orders = orders_of(events)
    days = (
        orders.assign(day=orders["ts"].dt.normalize()).groupby(["person_id", "day"])["value"].sum()
    )
    days = days.reset_index().sort_values(["person_id", "day"])
    end = as_of.normalize()
    first = days.groupby("person_id")["day"].transform("min")
    days["repeat"] = days["value"].where(days["day"] != first)
    g = days.groupby("person_id")
    summary = pd.DataFrame(
        {
            "frequency": g["day"].size() - 1,
            "recency": (g["day"].max() - g["day"].min()) / pd.Timedelta(days=7),
            "T": (end - g["day"].min()) / pd.Timedelta(days=7),
        }
    )
    summary["monetary_value"] = (g["repeat"].sum() / summary["frequency"].clip(lower=1)).where(
        summary["frequency"] > 0, 0.0
    )
    r, alpha, a, b = BetaGeoModel().fit(summary).params_
    p, q, gamma = GammaGammaModel().fit(summary).params_
    x, t_x, T, t = summary["frequency"], summary["recency"], summary["T"], 52.0
    term = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, t / (alpha + T + t)
    )
    alive = np.where(
        x > 0, 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)), 1.0
    )
    purchases = (a + b + x - 1) / (a - 1) * term * alive
    spend = p * (gamma + x * summary["monetary_value"].where(x > 0, 0)) / (p * x + q - 1)
    value = (purchases * spend).sort_values(ascending=False)
    cut = value.iloc[math.ceil(0.1 * len(value)) - 1]
    expected = set(value.index[value >= cut * (1 - 1e-12)])
    assert audience(sample, "vip") == expected
    assert len(expected) >= math.ceil(0.1 * len(value))  # more only by ties at the cut
