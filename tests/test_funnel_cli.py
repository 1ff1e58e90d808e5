"""``shopfunnel funnel`` on a tiny store: table, JSON, CSV and the drop-out export."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import log
from shopfunnel.cli import app
from shopfunnel.store.store import Store

STEPS = "view_item,add_to_cart,purchase"


def _store(tmp_path) -> str:
    path = str(tmp_path / "shop.duckdb")
    with Store(path) as store:
        store.load(
            log(
                ("p", 0, "view_item"),
                ("p", 1, "add_to_cart"),
                ("p", 2, "purchase"),
                ("q", 0, "view_item"),
                ("q", 5, "add_to_cart"),
                ("r", 0, "view_item"),
            )
        )
    return path


def test_funnel_command_prints_each_step_with_conversion_and_drop_off(tmp_path):
    result = CliRunner().invoke(
        app, ["funnel", "--db", _store(tmp_path), "--steps", STEPS], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    assert "add_to_cart" in result.output and "66.7%" in result.output
    assert "-1" not in result.output  # a drop-off is a count of persons lost, never negative


def test_funnel_command_json_has_a_steps_list(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "funnel",
            "--db",
            _store(tmp_path),
            "--steps",
            STEPS,
            "--format",
            "json",
            "--by",
            "channel",
            "--trend",
            "week",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(s["step"], s["event"], s["persons"]) for s in data["steps"]] == [
        (1, "view_item", 3),
        (2, "add_to_cart", 2),
        (3, "purchase", 1),
    ]
    assert data["trend"] and data["breakdown"]


def test_funnel_command_writes_the_persons_who_dropped(tmp_path):
    out = tmp_path / "persons.csv"
    result = CliRunner().invoke(
        app,
        ["funnel", "--db", _store(tmp_path), "--steps", STEPS, "--dropped", "2", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("person_id,reached_at") and lines[1].startswith("q,")


def test_funnel_command_explains_a_bad_order(tmp_path):
    result = CliRunner().invoke(
        app, ["funnel", "--db", _store(tmp_path), "--steps", STEPS, "--order", "sideways"]
    )
    assert result.exit_code == 1
    assert "ordered, strict, any" in result.output


def _counts(tmp_path, *args: str) -> list[int]:
    result = CliRunner().invoke(
        app, ["funnel", "--db", str(tmp_path / "f.duckdb"), *args, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    return [s["persons"] for s in json.loads(result.output)["steps"]]


def test_step_filters_exclusions_held_property_optional_steps_and_open_entry(tmp_path):
    with Store(str(tmp_path / "f.duckdb")) as store:
        store.load(
            log(
                # p: shoes, cart, purchase; q: boots, removes, then buys; r: enters at the cart
                ("p", 0, "view_item", {"properties": '{"cat": "shoes", "cart id": "c1"}'}),
                ("p", 1, "add_to_cart", {"properties": '{"cart id": "c1"}'}),
                ("p", 2, "purchase", {"properties": '{"cart id": "c1"}'}),
                ("q", 0, "view_item", {"properties": '{"cat": "boots", "cart id": "c2"}'}),
                ("q", 1, "add_to_cart", {"properties": '{"cart id": "c2"}'}),
                ("q", 2, "remove_from_cart", {"properties": '{"cart id": "c2"}'}),
                ("q", 3, "purchase", {"properties": '{"cart id": "c9"}'}),
                ("r", 0, "add_to_cart"),
                ("r", 1, "purchase"),
            )
        )
    assert _counts(tmp_path, "--steps", "view_item,add_to_cart,purchase") == [2, 2, 2]
    assert _counts(tmp_path, "--steps", "view_item[cat=shoes],add_to_cart,purchase") == [1, 1, 1]
    assert _counts(tmp_path, "--steps", "view_item[cat=shoes|boots],add_to_cart") == [2, 2]
    assert _counts(
        tmp_path, "--steps", "view_item,add_to_cart,purchase", "--exclude", "remove_from_cart"
    ) == [2, 2, 1]
    assert _counts(
        tmp_path, "--steps", "view_item,add_to_cart,purchase", "--exclude", "remove_from_cart:1-2"
    ) == [2, 2, 2]
    assert _counts(tmp_path, "--steps", "view_item,add_to_cart,purchase", "--hold", "cart id") == [
        2,
        2,
        1,
    ]
    assert _counts(tmp_path, "--steps", "view_item,add_to_cart,purchase", "--open") == [2, 3, 3]
    assert _counts(
        tmp_path, "--steps", "view_item,remove_from_cart,purchase", "--optional", "2"
    ) == [2, 1, 2]


def test_a_malformed_step_text_is_a_clear_error(tmp_path):
    _store(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "funnel",
            "--db",
            str(tmp_path / "shop.duckdb"),
            "--steps",
            "view_item[cat=shoes,purchase",
        ],
    )
    assert result.exit_code == 1
    assert "expected" in result.output and "character" in result.output


def test_csv_with_a_breakdown_and_a_trend_writes_every_table(tmp_path):
    import csv
    import io

    result = CliRunner().invoke(
        app,
        [
            "funnel",
            "--db",
            _store(tmp_path),
            "--steps",
            STEPS,
            "--format",
            "csv",
            "--by",
            "channel",
            "--trend",
            "week",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    tables = [r["table"] for r in rows]
    assert tables.count("steps") == 3 and "breakdown" in tables and "trend" in tables
    steps = [r for r in rows if r["table"] == "steps"]
    assert [int(r["persons"]) for r in steps] == [3, 2, 1]
    assert {"channel", "period"} <= set(rows[0])


def _two_day_store(tmp_path) -> str:
    # p's attempts start on two days and reach the same purchase: each day counts it
    path = str(tmp_path / "days.duckdb")
    with Store(path) as store:
        store.load(
            log(
                ("p", 11 * 60, "view_item"),
                ("p", 13 * 60, "view_item"),
                ("p", 14 * 60, "purchase"),
                ("q", 13 * 60, "view_item"),
            )
        )
    return path


def test_trend_table_says_periods_do_not_add_up_and_ends_with_the_funnel_as_its_total(tmp_path):
    import csv
    import io

    db = _two_day_store(tmp_path)
    args = [
        "funnel",
        "--db",
        db,
        "--steps",
        "view_item,purchase",
        "--window",
        "1d",
        "--trend",
        "day",
    ]
    table = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "periods do not add up" in table.output
    lines = [line for line in table.output.splitlines() if "purchase" in line]
    assert [line.split("│")[1].strip() for line in lines[-3:]] == [
        "2024-03-01",
        "2024-03-02",
        "total",
    ]
    data = json.loads(CliRunner().invoke(app, [*args, "--format", "json"]).output)
    purchases = [(r["period"], r["persons"]) for r in data["trend"] if r["step"] == 2]
    assert purchases == [("2024-03-01", 1), ("2024-03-02", 1), ("total", 1)]
    assert "do not add up" in data["trend_note"]
    rows = list(
        csv.DictReader(io.StringIO(CliRunner().invoke(app, [*args, "--format", "csv"]).output))
    )
    assert [
        (r["period"], r["persons"]) for r in rows if r["table"] == "trend" and r["step"] == "2"
    ] == [("2024-03-01", "1"), ("2024-03-02", "1"), ("total", "1")]
    assert [r["conversions"] for r in rows if r["table"] == "total_conversions"] == ["3", "1"]
