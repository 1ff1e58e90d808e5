"""The retention, rfm, clv, winback and load-dataset commands."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.customers.clv import BetaGeoModel, summary_from_orders
from shopfunnel.customers.retention import retention_summary
from shopfunnel.ingest.datasets import cdnow_orders
from shopfunnel.store.store import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def cdnow_db(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("cli") / "cdnow.duckdb")
    result = runner.invoke(app, ["load-dataset", "cdnow", "--kind", "sample", "--db", db])
    assert result.exit_code == 0, result.output
    assert "6,919" in result.output
    return db


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_load_dataset_is_idempotent(cdnow_db):
    again = run("load-dataset", "cdnow", "--kind", "sample", "--db", cdnow_db)
    assert "added 0" in again
    with Store(cdnow_db, read_only=True) as store:
        assert store.info()["orders"] == 6919


def test_retention_json_holds_every_section_and_the_api_figures(cdnow_db):
    data = json.loads(run("retention", "--db", cdnow_db, "--format", "json"))
    assert set(data) == {"summary", "cohorts", "activity", "orders_per_customer", "gaps"}
    expected = retention_summary(cdnow_orders("sample"))
    assert data["summary"]["customers"] == 2357
    assert data["summary"]["repeat_purchase_rate"] == pytest.approx(expected.repeat_purchase_rate)
    assert data["cohorts"][0] == {
        "cohort": "1997-01-01",
        "period": 0,
        "cohort_size": data["cohorts"][0]["cohort_size"],
        "active": data["cohorts"][0]["cohort_size"],
        "rate": 1.0,
    }


def test_retention_csv_gives_one_table(cdnow_db, tmp_path):
    out = tmp_path / "cohorts.csv"
    runner.invoke(
        app,
        ["retention", "--db", cdnow_db, "--format", "csv", "--period", "week", "--out", str(out)],
    )
    table = pd.read_csv(out)
    assert list(table.columns) == ["cohort", "period", "cohort_size", "active", "rate"]
    summary = pd.read_csv(
        io.StringIO(run("retention", "--db", cdnow_db, "--format", "csv", "--view", "summary"))
    )
    assert int(summary.loc[0, "orders"]) == 6919


def test_retention_table_renders(cdnow_db):
    text = run("retention", "--db", cdnow_db)
    assert "repeat_purchase_rate" in text and "purchase retention by month" in text


def test_rfm_csv_lists_every_customer_with_a_group(cdnow_db):
    table = pd.read_csv(
        io.StringIO(run("rfm", "--db", cdnow_db, "--format", "csv")), dtype={"person_id": str}
    )
    assert len(table) == 2357 and table["person_id"].is_unique
    assert table["group"].notna().all()
    groups = json.loads(run("rfm", "--db", cdnow_db, "--format", "json", "--by-group"))
    assert sum(g["customers"] for g in groups) == 2357
    assert "champions" in run("rfm", "--db", cdnow_db)


def test_clv_json_gives_the_fitted_models_and_every_customer(cdnow_db):
    data = json.loads(
        run(
            "clv",
            "--db",
            cdnow_db,
            "--format",
            "json",
            "--calibration-end",
            "1997-09-30",
            "--horizon",
            "39w",
        )
    )
    assert data["bgnbd"]["r"] == pytest.approx(0.243, rel=0.01)
    assert data["bgnbd"]["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    assert data["gamma_gamma"]["p"] == pytest.approx(6.25, rel=0.01)
    assert len(data["customers"]) == 2357
    first = next(c for c in data["customers"] if c["person_id"] == "1")
    assert first["expected_purchases"] == pytest.approx(1.226, abs=0.001)
    overall = data["holdout"][-1]  # orders after the calibration end check the model
    assert overall["frequency"] == "all" and overall["customers"] == 2357


def test_clv_csv_matches_the_python_api(cdnow_db):
    table = pd.read_csv(
        io.StringIO(run("clv", "--db", cdnow_db, "--format", "csv")), dtype={"person_id": str}
    ).set_index("person_id")
    summary = summary_from_orders(cdnow_orders("sample"))
    model = BetaGeoModel().fit(summary)
    p_alive = model.probability_alive(summary["frequency"], summary["recency"], summary["T"])
    assert table.loc[summary.index, "p_alive"].to_numpy() == pytest.approx(p_alive, rel=1e-6)
    assert "Gamma-Gamma" in run("clv", "--db", cdnow_db)


def test_winback_exports_lapsed_customers(cdnow_db, tmp_path):
    out = tmp_path / "winback.csv"
    run("winback", "--db", cdnow_db, "--format", "csv", "--out", str(out))
    lapsed = pd.read_csv(out)
    assert len(lapsed) > 0 and lapsed["revenue"].is_monotonic_decreasing
    alive = json.loads(run("winback", "--db", cdnow_db, "--rule", "p-alive", "--format", "json"))
    assert all(row["p_alive"] < 0.3 for row in alive)


def test_commands_explain_a_missing_store_or_a_store_without_orders(tmp_path):
    result = runner.invoke(app, ["clv", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 1 and "no store" in result.output
    db = tmp_path / "views.duckdb"
    with Store(db) as store:
        store.load(
            pd.DataFrame(
                {
                    "ts": [pd.Timestamp("2024-01-01", tz="UTC")],
                    "event": ["page_view"],
                    "anonymous_id": ["a"],
                }
            )
        )
    for command in ("retention", "rfm", "clv", "winback"):
        result = runner.invoke(app, [command, "--db", str(db)])
        assert result.exit_code == 1, command
        assert "no orders" in result.output


def test_clv_without_enough_repeat_buyers_still_predicts_purchases(tmp_path):
    db = tmp_path / "few.duckdb"
    csv = tmp_path / "orders.csv"
    rows = ["order_id,customer_id,created_at,total"]
    rows += [f"{i},c{i},2024-01-{i + 1:02d},10" for i in range(8)]
    rows += ["100,c0,2024-02-15,20"]  # one repeat buyer: Gamma-Gamma cannot be fitted
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run("ingest", str(csv), "--format", "orders", "--db", str(db))
    data = json.loads(run("clv", "--db", str(db), "--format", "json"))
    assert "repeat purchase" in data["gamma_gamma"]["error"]
    assert len(data["customers"]) == 8
    assert all(c["expected_value"] is None for c in data["customers"])
    assert all(c["expected_purchases"] >= 0 for c in data["customers"])
    assert "Gamma-Gamma not fitted" in run("clv", "--db", str(db))


def test_verbose_says_how_long_each_phase_took(cdnow_db):
    result = runner.invoke(app, ["--verbose", "rfm", "--db", cdnow_db, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "scoring customers: " in result.stderr and " s" in result.stderr
    quiet = runner.invoke(app, ["rfm", "--db", cdnow_db, "--format", "json"])
    assert "scoring customers: " not in quiet.stderr  # only with --verbose
