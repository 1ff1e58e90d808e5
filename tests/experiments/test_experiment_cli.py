"""``shopfunnel experiment compare`` and ``srm``: the same figures as the Python API and
gbstats, refusals as a JSON ``error``, bad numbers as a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopfunnel.cli import app

runner = CliRunner()
FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "gbstats_reference.json").read_text(encoding="utf-8")
)


def run_json(*args: str) -> dict:
    result = runner.invoke(app, ["experiment", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def arm(kind: str, a: dict) -> str:
    if kind == "proportion":
        return f"{a['n']}:{a['conversions']}"
    if kind == "mean":
        return f"{a['n']}:{a['sum']!r}:{a['sum_squares']!r}"
    num, den = a["numerator"], a["denominator"]
    return (
        f"{a['n']}:{num['sum']!r}:{num['sum_squares']!r}:{den['sum']!r}:"
        f"{den['sum_squares']!r}:{a['sum_of_products']!r}"
    )


CASES = [c for c in FIXTURE["comparisons"] if c["kind"] != "cuped"]


@pytest.mark.parametrize(
    "case", CASES[::5], ids=lambda c: f"{c['kind']}-{c['engine']}-{c['difference']}"
)
def test_compare_json_equals_gbstats(case: dict) -> None:
    out = run_json(
        "compare",
        "--metric",
        case["kind"],
        "--control",
        arm(case["kind"], case["control"]),
        "--treatment",
        arm(case["kind"], case["treatment"]),
        "--engine",
        case["engine"],
        "--difference",
        case["difference"],
        "--confidence",
        str(case["confidence"]),
        "--better",
        case["better"],
        "--min-units",
        "2",
    )
    assert out["error"] is None
    for key, value in case["gbstats"].items():
        if isinstance(value, float):
            assert out[key] == pytest.approx(value, rel=1e-4, abs=1e-4), key


def test_frequentist_json_has_the_documented_keys() -> None:
    out = run_json(
        "compare",
        "--metric",
        "proportion",
        "--control",
        "5000:250",
        "--treatment",
        "5100:300",
        "--engine",
        "frequentist",
        "--difference",
        "relative",
    )
    assert {"expected", "ci_lower", "ci_upper", "p_value", "error"} <= set(out)
    assert out["ci_lower"] < out["expected"] < out["ci_upper"]


def test_bayesian_json_has_the_documented_keys() -> None:
    out = run_json(
        "compare",
        "--metric",
        "mean",
        "--control",
        "3407:1396.87:52377.9767",
        "--treatment",
        "3461:2422.7:134698.29",
        "--engine",
        "bayesian",
    )
    assert {
        "expected",
        "ci_lower",
        "ci_upper",
        "chance_to_win",
        "risk_control",
        "risk_treatment",
        "error",
    } <= set(out)


def test_no_conversions_in_control_gives_an_error_not_a_crash() -> None:
    out = run_json(
        "compare", "--metric", "proportion", "--control", "1000:0", "--treatment", "1000:12"
    )
    assert "no conversions in control" in out["error"]
    assert out["expected"] is None and out["p_value"] is None


def test_the_table_says_the_result_in_a_sentence() -> None:
    result = runner.invoke(
        app, ["experiment", "compare", "--control", "5000:250", "--treatment", "5100:300"]
    )
    assert result.exit_code == 0
    assert "+17.65%" in result.stdout and "p = 0.072" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--control", "5000:x", "--treatment", "5100:300"], "CONVERSIONS='x' is not a number"),
        (["--control", "5000", "--treatment", "5100:300"], "USERS:CONVERSIONS"),
        (
            ["--control", "5000:6000", "--treatment", "5100:300"],
            "conversions must be between 0 and n",
        ),
        (["--metric", "mean", "--control", "100:50:20", "--treatment", "100:50:30"], "sum²/n"),
    ],
)
def test_bad_numbers_are_refused_with_what_to_write(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["experiment", "compare", *args])
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize("case", FIXTURE["srm"], ids=lambda c: str(c["users"]))
def test_srm_json_p_value_equals_gbstats(case: dict) -> None:
    args = ["srm", "--users", ",".join(map(str, case["users"]))]
    if case["weights"]:
        args += ["--weights", ",".join(map(str, case["weights"]))]
    out = run_json(*args)
    assert out["p_value"] == pytest.approx(case["gbstats"]["p_value"], rel=1e-4, abs=1e-4)


def test_srm_flags_a_broken_split() -> None:
    assert run_json("srm", "--users", "5000,5400")["mismatch"] is True
    result = runner.invoke(app, ["experiment", "srm", "--users", "5000,5100", "--weights", "0.5"])
    assert result.exit_code == 1 and "one weight per arm" in result.output


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> str:
    from shopfunnel.sample import PlantedExperiment, generate_sample
    from shopfunnel.store.store import Store

    db = str(tmp_path_factory.mktemp("exp") / "shop.duckdb")
    with Store(db) as store:
        store.load(generate_sample(40_000, seed=2, experiment=PlantedExperiment(effect=1.0)))
    return db


def test_list_shows_the_experiments_in_the_store(sample_db: str) -> None:
    out = runner.invoke(app, ["experiment", "list", "--db", sample_db, "--format", "json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert row["experiment"] == "checkout-v2" and row["variants"] == "0,1"


def test_show_gives_the_same_numbers_as_the_python_api(sample_db: str) -> None:
    from shopfunnel.experiments import analyze_experiment
    from shopfunnel.experiments.metrics import parse_metric
    from shopfunnel.store.store import Store

    out = run_json(
        "show",
        "checkout-v2",
        "--db",
        sample_db,
        "--metric",
        "add_payment_info>purchase",
        "--metric",
        "revenue_per_visitor",
        "--engine",
        "bayesian",
        "--min-units",
        "20",
    )
    with Store(sample_db, read_only=True) as store:
        report = analyze_experiment(
            store,
            "checkout-v2",
            [parse_metric("add_payment_info>purchase"), parse_metric("revenue_per_visitor")],
            engine="bayesian",
            min_units=20,
        )
    assert out["control"] == "0" and out["srm"]["p_value"] == pytest.approx(report.srm.p_value)
    got = {r["metric"]: r["chance_to_win"] for r in out["results"]}
    assert got == pytest.approx(
        dict(zip(report.results["metric"], report.results["chance_to_win"], strict=True))
    )


def test_show_table_warns_of_thin_data_and_names_the_variants(sample_db: str) -> None:
    result = runner.invoke(
        app, ["experiment", "show", "checkout-v2", "--db", sample_db, "--metric", "retention:30"]
    )
    assert result.exit_code == 0, result.output
    assert "Persons: 0 " in result.stdout and "minimum sample" in result.stdout


def test_show_an_unknown_experiment_says_what_to_do(sample_db: str) -> None:
    result = runner.invoke(app, ["experiment", "show", "nope", "--db", sample_db])
    assert result.exit_code == 1 and "experiment list" in result.output
