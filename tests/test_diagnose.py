"""diagnose(): findings ranked by revenue at stake, with tactics and audience; the CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from _synthetic import Sim, simulate
from conftest import log
from shopfunnel.cli import app
from shopfunnel.diagnosis.diagnose import Diagnosis, diagnose
from shopfunnel.diagnosis.findings import FINDING_COLUMNS
from shopfunnel.store.store import Store


@pytest.fixture(scope="module")
def broken_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("diag") / "shop.duckdb"
    s = Store(path)
    s.load(
        simulate(Sim(seed=5, days=56, sessions_per_day=700, broken=[(20, 3, "mobile", "purchase")]))
    )
    s.close()
    return path


@pytest.fixture(scope="module")
def result(broken_store) -> Diagnosis:
    with Store(broken_store, read_only=True) as s:
        return diagnose(s, model={})


def test_findings_have_every_column_and_are_ranked_by_revenue_at_stake(result):
    f = result.findings
    assert list(f.columns) == FINDING_COLUMNS
    assert list(f["rank"]) == list(range(1, len(f) + 1))
    money = f["revenue_at_stake"].dropna().tolist()
    assert money == sorted(money, reverse=True)


def test_revenue_at_stake_is_units_lost_times_downstream_times_average_order_value(result):
    f = result.findings.dropna(subset=["revenue_at_stake"])
    expected = f["units_lost"].clip(lower=0) * f["downstream_rate"] * result.average_order_value
    assert f["revenue_at_stake"].tolist() == pytest.approx(expected.tolist())
    assert result.average_order_value == pytest.approx(result.revenue / result.orders)


def test_the_planted_incident_is_a_finding_with_the_fix_tactic_and_its_audience(result):
    inc = result.findings[result.findings["kind"] == "incident"]
    assert len(inc) == 1
    r = inc.iloc[0]
    assert r["segment"] == "device=mobile" and r["step"] == "purchase"
    assert r["tactics"][0]["key"] == "fix_incident"
    assert r["audience"]["device"] == "mobile" and r["audience"]["stage"] == "decision"
    assert "expected" in r["evidence"]


def test_every_finding_names_tactics_evidence_and_audience(result):
    for r in result.findings.itertuples():
        assert r.evidence and r.title and isinstance(r.audience, dict)
        assert isinstance(r.tactics, list)


def test_mobile_is_a_weak_segment_in_the_simulator(result):
    # the simulator's mobile multiplies every step by 0.9 against desktop's 1.05
    assert "device=mobile" in set(
        result.findings.loc[result.findings["kind"] == "segment_gap", "segment"]
    )


def test_to_dict_is_json_and_repr_reads(result):
    d = result.to_dict()
    json.dumps(d, allow_nan=False)
    assert len(d["findings"]) == len(result.findings)
    assert "Diagnosis(" in repr(result) and "1." in repr(result)
    assert set(result.recommendations().columns) >= {"tactic", "why", "audience", "evidence"}


def test_a_store_without_orders_still_diagnoses_with_notes(store):
    store.load(log(("a", 0, "page_view"), ("a", 1, "view_item"), ("b", 2, "page_view")))
    d = diagnose(store, model={})
    assert d.orders == 0 and math.isnan(d.average_order_value)
    assert any("no orders" in n for n in d.notes)
    json.dumps(d.to_dict(), allow_nan=False)


def test_benchmark_overrides_come_from_the_model(broken_store):
    with Store(broken_store, read_only=True) as s:
        d = diagnose(s, model={"benchmarks": {"purchase_rate": 0.5}})
    row = d.benchmarks.set_index("key").loc["purchase_rate"]
    assert row["reference"] == 0.5 and row["status"] == "worse"
    assert "purchase_rate" in set(d.findings["metric"])


def test_cli_diagnose_prints_json_findings(broken_store):
    res = CliRunner().invoke(
        app, ["diagnose", "--db", str(broken_store), "--format", "json", "--top", "3"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data["findings"]) == 3 and data["findings"][0]["rank"] == 1
    assert {"tactics", "audience", "evidence", "revenue_at_stake"} <= set(data["findings"][0])


def test_cli_diagnose_table_shows_recommendations_first(broken_store):
    res = CliRunner().invoke(app, ["diagnose", "--db", str(broken_store), "--top", "2"])
    assert res.exit_code == 0, res.output
    assert res.stdout.index("Recommendations") < res.stdout.index("Evidence")


def test_cli_whatif_tiers_and_free_shipping(broken_store):
    res = CliRunner().invoke(
        app, ["whatif", "--db", str(broken_store), "--tiers", "100:5,300:10", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)["summary"]
    with Store(broken_store, read_only=True) as st:
        o = st.db.df("SELECT value::DOUBLE AS v FROM orders")["v"]
    cost = (o[(o >= 100) & (o < 300)] * 0.05).sum() + (o[o >= 300] * 0.10).sum()
    assert s["cost"] == pytest.approx(cost)
    res = CliRunner().invoke(
        app, ["whatif", "--db", str(broken_store), "--free-shipping", "75", "--shipping-fee", "5"]
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["whatif", "--db", str(broken_store)])
    assert res.exit_code == 1 and "exactly one" in res.output


def test_cli_diagnose_on_a_missing_store_is_a_clean_error(tmp_path):
    res = CliRunner().invoke(app, ["diagnose", "--db", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 1 and "no store" in res.output


def test_recommendations_frame_is_empty_but_shaped_without_findings(store):
    store.load(log(("a", 0, "page_view")))
    rec = diagnose(store, model={}).recommendations()
    assert isinstance(rec, pd.DataFrame) and rec.empty and "tactic" in rec.columns


def test_as_of_limits_the_window_and_accepts_an_aware_time(broken_store):
    from datetime import UTC, datetime, timedelta, timezone

    with Store(broken_store, read_only=True) as s:
        d = diagnose(
            s, model={}, as_of=datetime(2024, 1, 15, 1, 0, tzinfo=timezone(timedelta(hours=1)))
        )
    assert d.end == datetime(2024, 1, 15, 0, 0)  # 01:00 at UTC+1 is midnight UTC
    assert d.start == d.end - timedelta(days=90)
    with Store(broken_store, read_only=True) as s:
        n = s.db.scalar(
            "SELECT count(DISTINCT session_id) FROM events WHERE ts < ?", [datetime(2024, 1, 15)]
        )
    assert d.sessions == n
    assert d.incidents.empty  # the planted failure starts on 2024-01-21, after as_of
    assert UTC is not None


def test_an_empty_store_gives_an_empty_diagnosis_that_says_why(store):
    d = diagnose(store, model={})
    assert d.findings.empty and d.sessions == 0
    assert any("nothing to diagnose" in n for n in d.notes)
    json.dumps(d.to_dict(), allow_nan=False)


def test_audience_persons_narrow_the_stage_to_the_findings_segment_and_filter(store):
    from shopfunnel.diagnosis.diagnose import audience_persons

    store.load(
        log(
            ("a", 0, "page_view", {"device": "mobile"}),
            ("a", 1, "view_item", {"device": "mobile"}),
            ("a", 2, "add_to_cart", {"device": "mobile"}),
            (
                "a",
                3,
                "add_payment_info",
                {"device": "mobile", "properties": '{"payment_failed": true}'},
            ),
            ("b", 0, "page_view", {"device": "desktop"}),
            ("b", 1, "view_item", {"device": "desktop"}),
            ("b", 2, "add_to_cart", {"device": "desktop"}),
            ("c", 0, "page_view", {"device": "mobile"}),
            ("c", 1, "view_item", {"device": "mobile"}),
            ("c", 2, "add_to_cart", {"device": "mobile"}),
        )
    )
    at_decision = audience_persons(store, {"stage": "decision"}, model={}, with_status=False)
    assert set(at_decision["person_id"]) == {"a", "b", "c"}
    mobile = audience_persons(store, {"stage": "decision", "device": "mobile"}, with_status=False)
    assert set(mobile["person_id"]) == {"a", "c"}
    failed = audience_persons(
        store, {"stage": "decision", "filter": "payment_failed=true"}, with_status=False
    )
    assert set(failed["person_id"]) == {"a"}


def test_cli_diagnose_reads_benchmarks_from_a_model_file(broken_store, tmp_path):
    model = tmp_path / "shopfunnel.toml"
    model.write_text("[benchmarks]\npurchase_rate = 0.5\n")
    res = CliRunner().invoke(
        app,
        ["diagnose", "--db", str(broken_store), "--model", str(model), "-f", "json", "--top", "50"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    row = next(b for b in data["benchmarks"] if b["key"] == "purchase_rate")
    assert row["reference"] == 0.5 and row["source"] == "shopfunnel.toml"
    model.write_text("[benchmarks]\npurchase_rate = 'high'\n")
    res = CliRunner().invoke(app, ["diagnose", "--db", str(broken_store), "--model", str(model)])
    assert res.exit_code == 1 and "purchase_rate" in res.output
