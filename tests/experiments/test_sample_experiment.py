"""The sample store can run an experiment with a planted effect, and the analysis finds the
effect when there is one and (mostly) not when there is none."""

from __future__ import annotations

import pandas as pd
import pyarrow.compute as pc
import pytest

from shopfunnel.errors import ConfigError
from shopfunnel.experiments import analyze_experiment, conversion
from shopfunnel.sample import PlantedExperiment, generate_sample
from shopfunnel.store.store import Store

# the step the planted effect acts on: paying after entering payment details
CHECKOUT = conversion("purchase", from_event="add_payment_info")


def without_exposures(table):
    rest = table.filter(pc.not_equal(table["event"], "experiment_exposure"))
    return rest.drop_columns(["event_id"])


def test_an_experiment_without_effect_leaves_every_other_event_as_it_was() -> None:
    plain = generate_sample(30_000, seed=3)
    with_test = generate_sample(30_000, seed=3, experiment=PlantedExperiment(effect=0.0))
    assert without_exposures(with_test).equals(plain.drop_columns(["event_id"]))
    assert with_test.num_rows > plain.num_rows  # the exposures come on top


def test_each_visitor_is_exposed_once_from_the_start_and_the_split_is_balanced() -> None:
    table = generate_sample(60_000, seed=4, experiment=PlantedExperiment(start="2024-02-01"))
    store = Store(":memory:")
    store.load(table)
    report = analyze_experiment(store, "checkout-v2", [conversion("purchase")])
    assert report.multiple_exposures == 0
    assert not report.srm.mismatch
    assert set(report.variants["variant"]) == {"0", "1"}
    assert report.variants["first_exposure"].min() >= pd.Timestamp("2024-02-01")
    assert len(set(table.column("event_id").to_pylist())) == table.num_rows


@pytest.mark.parametrize(
    "bad",
    [
        lambda: PlantedExperiment(step="checkout"),
        lambda: PlantedExperiment(weights=(0.5, 0.6)),
        lambda: PlantedExperiment(key=""),
        lambda: generate_sample(10, experiment=PlantedExperiment(start="2030-01-01")),
    ],
)
def test_bad_experiments_are_refused(bad) -> None:
    with pytest.raises(ConfigError):
        bad()


def checkout_result(seed: int, effect: float, n_events: int):
    table = generate_sample(n_events, seed=seed, experiment=PlantedExperiment(effect=effect))
    store = Store(":memory:")
    store.load(table)
    return analyze_experiment(store, "checkout-v2", [CHECKOUT]).results.iloc[0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_planted_checkout_effect_is_found(seed: int) -> None:
    # 1.0 log-odds at the purchase step: about 84% → 93% of those who enter payment details
    # (expected z ≈ 7 with ~570 persons per arm: missing it at p < 0.01 has odds below 1e-5)
    row = checkout_result(seed, 1.0, 200_000)
    assert row["p_value"] < 0.01 and row["ci_lower"] > 0


@pytest.mark.slow
def test_without_an_effect_few_seeds_find_one() -> None:
    # At α = 0.05, 3 or more "significant" seeds out of 10 happens with probability 1.2%.
    significant = [checkout_result(seed, 0.0, 100_000)["p_value"] < 0.05 for seed in range(21, 31)]
    assert sum(significant) <= 2, significant


def test_the_sample_command_plants_an_experiment(tmp_path) -> None:
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from shopfunnel.cli import app

    out = tmp_path / "s.parquet"
    result = CliRunner().invoke(
        app,
        ["sample", "-n", "20000", "--out", str(out), "--experiment", "checkout-v2:1.0:2024-02-01"],
    )
    assert result.exit_code == 0, result.output
    events = pq.read_table(out).column("event").to_pylist()
    assert events.count("experiment_exposure") == len(events) - 20_000 > 0
    bad = CliRunner().invoke(
        app, ["sample", "-n", "10", "--out", str(out), "--experiment", "checkout-v2:x"]
    )
    assert bad.exit_code == 1 and "EFFECT 'x' is not a number" in bad.output
