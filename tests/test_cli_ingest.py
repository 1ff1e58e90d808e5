"""`shopfunnel ingest` end to end: bad input gives a clear message, exit code 1 and an
unchanged store; --on-error skip loads the rest and writes the rejects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.store.store import Store

HEADER = "event_id,ts,event,anonymous_id"


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def good_csv(path: Path, n: int = 99, first: int = 2) -> Path:
    """A CSV whose data rows are lines 2..n (the header is line 1)."""
    rows = [HEADER] + [
        f"e{i},2024-03-01T12:{i % 60:02d}:00Z,page_view,p{i % 7}" for i in range(first, n + 1)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store that already holds 3 events, so 'unchanged' is a real check."""
    path = tmp_path / "shop.duckdb"
    seed = good_csv(tmp_path / "seed.csv", n=4)
    assert run("ingest", seed, "--db", path).exit_code == 0
    return path


def stored(db: Path) -> tuple[int, list[str]]:
    with Store(db, read_only=True) as store:
        ids = sorted(store.events()["event_id"])
    return len(ids), ids


def test_one_bad_timestamp_on_line_57_fails_names_the_line_and_writes_nothing(tmp_path, db) -> None:
    path = good_csv(tmp_path / "events.csv")
    lines = path.read_text().splitlines()
    lines[56] = "e57,2024-03-01 25:61:00,page_view,p1"
    path.write_text("\n".join(lines) + "\n")
    before = stored(db)
    result = run("ingest", path, "--db", db)
    assert result.exit_code == 1
    assert "events.csv:57" in result.output and "'ts'" in result.output
    assert "Traceback" not in result.output
    assert stored(db) == before

    rejects = tmp_path / "rejects.csv"
    result = run("ingest", path, "--db", db, "--on-error", "skip", "--rejects", rejects)
    assert result.exit_code == 0, result.output
    count, ids = stored(db)
    # 98 data rows, 3 of them (e2..e4) already stored, e57 rejected.
    assert count == 3 + 98 - 3 - 1 and "e57" not in ids
    with open(rejects, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["column"], r["value"]) for r in rows] == [
        ("57", "ts", "2024-03-01 25:61:00")
    ]


def test_the_default_reject_file_sits_next_to_the_input(tmp_path, db) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"{HEADER}\ne9,2024-03-01T12:00:00Z,page_view,a\ne10,soon,page_view,a\n")
    result = run("ingest", path, "--db", db, "--on-error", "skip")
    assert result.exit_code == 0
    text = (tmp_path / "events.csv.rejects.csv").read_text()
    assert "events.csv,3,ts" in text


def _parquet_bytes(tmp_path: Path) -> bytes:
    p = tmp_path / "real.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(p)
    return p.read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "extra", "message"),
    [
        ("parquet.csv", "PARQUET", [], "is a Parquet file"),
        (
            "events.csv",
            f"{HEADER}\ne1,2024-03-01,page_view,a\n",
            ["--format", "xml"],
            "unknown format 'xml'",
        ),
        (
            "events.csv",
            f"{HEADER},colour\ne1,2024-03-01,page_view,a,red\n",
            [],
            "unknown column(s) 'colour'",
        ),
        (
            "events.csv",
            '{"ts": "2024-03-01", "event": "x"}\n',
            ["--format", "csv"],
            "looks like JSON",
        ),
        ("events.csv", "", [], "is empty"),
        ("events.csv", f"{HEADER}\n", [], "has a header but no rows"),
        ("events.csv", "LATIN1", [], "events.csv:2: is not utf-8 text"),
        (
            "events.csv",
            f"{HEADER}\ne1,2024-03-01,page_view,a\ne2,2024-03-01,page_view\n",
            [],
            "events.csv:3: column '(row)': has 3 field(s), the header has 4",
        ),
        (
            "events.csv",
            f"{HEADER}\ne1,2024-03-01,page_view,a\n",
            ["--on-error", "maybe"],
            "--on-error 'maybe' is not valid",
        ),
        (
            "events.csv",
            f"{HEADER}\ne1,2024-03-01,page_view,a\n",
            ["--format", "ga4"],
            "events.csv:2: column '(row)': is not valid JSON",
        ),
        (
            "events.csv",
            f"{HEADER}\ne1,2024-03-01,page_view,a\n",
            ["--format", "rees46"],
            "is not a REES46 file",
        ),
    ],
)
def test_bad_input_gives_a_clear_message_exit_1_and_an_unchanged_store(
    tmp_path, db, name, content, extra, message
) -> None:
    path = tmp_path / name
    if content == "PARQUET":
        path.write_bytes(_parquet_bytes(tmp_path))
    elif content == "LATIN1":
        path.write_bytes(f"{HEADER}\ne1,2024-03-01,page_view,caf\u00e9\n".encode("latin-1"))
    else:
        path.write_text(content)
    before = stored(db)
    result = run("ingest", path, "--db", db, *extra)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert stored(db) == before


def test_a_missing_file_is_named(tmp_path, db) -> None:
    before = stored(db)
    result = run("ingest", tmp_path / "nope.csv", "--db", db)
    assert result.exit_code == 1
    assert "no file at" in result.output and "nope.csv" in result.output
    assert stored(db) == before


def test_a_second_bad_file_leaves_the_first_loaded_and_stops(tmp_path, db) -> None:
    ok = good_csv(tmp_path / "ok.csv", n=10, first=5)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\nx1,never,page_view,a\n")
    result = run("ingest", ok, bad, "--db", db)
    assert result.exit_code == 1 and "bad.csv:2" in result.output
    assert stored(db)[0] == 3 + 6


def test_map_flags_and_a_toml_mapping_file_load_renamed_columns(tmp_path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(
        "when,what,cookie\n2024-03-01T12:00:00Z,page_view,a\n2024-03-01T12:05:00Z,view_item,a\n"
    )
    flags = tmp_path / "flags.duckdb"
    result = run(
        "ingest",
        path,
        "--db",
        flags,
        "--map",
        "ts=when",
        "--map",
        "event=what",
        "--map",
        "anonymous_id=cookie",
    )
    assert result.exit_code == 0, result.output
    toml = tmp_path / "mapping.toml"
    toml.write_text('[columns]\nts = "when"\nevent = "what"\nanonymous_id = "cookie"\n')
    from_file = tmp_path / "file.duckdb"
    assert run("ingest", path, "--db", from_file, "--mapping-file", toml).exit_code == 0
    assert stored(flags) == stored(from_file) and stored(flags)[0] == 2


def test_a_broken_mapping_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text("when,what,cookie\n2024-03-01T12:00:00Z,page_view,a\n")
    toml = tmp_path / "mapping.toml"
    toml.write_text("[columns\nts = when\n")
    result = run("ingest", path, "--db", tmp_path / "x.duckdb", "--mapping-file", toml)
    assert result.exit_code == 1 and "cannot read the mapping file" in result.output
    result = run("ingest", path, "--db", tmp_path / "x.duckdb", "--map", "ts")
    assert result.exit_code == 1 and "write canonical=source" in result.output


def test_ga4_and_rees46_formats_load_through_the_cli(tmp_path) -> None:
    ga = tmp_path / "events_20240315.json"
    ga.write_text(
        json.dumps(
            {
                "event_timestamp": "1710513005123456",
                "event_name": "page_view",
                "user_pseudo_id": "p1",
                "event_params": [{"key": "ga_session_id", "value": {"int_value": "1710511960"}}],
            }
        )
        + "\n"
    )
    rees = tmp_path / "2019-Nov.csv"
    rees.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,"
        "user_id,user_session\n2019-11-01 00:00:00 UTC,view,1,2,,,9.99,7,s1\n"
    )
    db = tmp_path / "x.duckdb"
    assert run("ingest", ga, "--db", db, "--format", "ga4").exit_code == 0
    assert run("ingest", rees, "--db", db, "--format", "rees46").exit_code == 0
    info = json.loads(run("info", "--db", db, "--format", "json").stdout)
    assert info["events_by_name"] == {"page_view": 1, "view_item": 1}
    # the formats are also recognised from the files themselves
    sniffed = tmp_path / "y.duckdb"
    assert run("ingest", ga, rees, "--db", sniffed).exit_code == 0
    assert json.loads(run("info", "--db", sniffed, "--format", "json").stdout)["events"] == 2


def test_a_latin1_file_loads_with_encoding(tmp_path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(f"{HEADER}\ne1,2024-03-01,page_view,caf\u00e9\n".encode("latin-1"))
    db = tmp_path / "x.duckdb"
    assert run("ingest", path, "--db", db, "--encoding", "latin-1").exit_code == 0
    with Store(db, read_only=True) as store:
        assert store.events()["anonymous_id"].tolist() == ["caf\u00e9"]


def test_one_rejects_file_collects_the_rejects_of_every_file(tmp_path, db) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(f"{HEADER}\na1,2024-03-01T12:00:00Z,page_view,a\na2,later,page_view,a\n")
    second.write_text(f"{HEADER}\nb1,sooner,page_view,b\nb2,2024-03-01T12:00:00Z,page_view,b\n")
    rejects = tmp_path / "rejects.csv"
    result = run("ingest", first, second, "--db", db, "--on-error", "skip", "--rejects", rejects)
    assert result.exit_code == 0, result.output
    with open(rejects, newline="") as fh:
        rows = [(Path(r["source"]).name, r["line"], r["value"]) for r in csv.DictReader(fh)]
    assert rows == [("a.csv", "3", "later"), ("b.csv", "2", "sooner")]
    assert stored(db)[0] == 3 + 2


# -- several files in one ingest (ADR 0198) -----------------------------------------------
def day_files(tmp_path: Path) -> list[Path]:
    """Three files in time order: a visit of `a` goes on from the first file into the second,
    `a` signs in as amy in the third, and the second repeats an event of the first."""
    days = {
        "mon.csv": [
            "m1,2024-03-01T23:50:00Z,page_view,a,,google,cpc",
            "m2,2024-03-01T23:55:00Z,view_item,b,,,",
        ],
        "tue.csv": [
            "t1,2024-03-02T00:05:00Z,add_to_cart,a,,,",
            "m2,2024-03-01T23:55:00Z,view_item,b,,,",
        ],
        "wed.csv": [
            "w1,2024-03-03T09:00:00Z,purchase,a,amy,,",
            "w2,2024-03-03T09:01:00Z,page_view,c,,,",
        ],
    }
    paths = []
    for name, rows in days.items():
        path = tmp_path / name
        path.write_text(
            "event_id,ts,event,anonymous_id,user_id,utm_source,utm_medium\n"
            + "\n".join(rows)
            + "\n"
        )
        paths.append(path)
    return paths


def everything(db: Path) -> tuple[list[tuple], list[tuple]]:
    with Store(db, read_only=True) as store:
        events = store.db.rows("SELECT * EXCLUDE (properties) FROM events ORDER BY event_id")
        return events, store.db.rows("SELECT * FROM identities ORDER BY ALL")


def test_files_of_one_ingest_load_together_and_store_what_they_store_one_by_one(tmp_path) -> None:
    files = day_files(tmp_path)
    together_db, apart_db = tmp_path / "together.duckdb", tmp_path / "apart.duckdb"
    result = run("ingest", *files, "--db", together_db)
    assert result.exit_code == 0, result.output
    # one load for the three files: one line, the duplicate counted once
    assert f"{files[0]} … {files[-1]} (3 files): read 6 rows, added 5, 1 already stored" in (
        " ".join(result.output.split())
    )
    for path in files:
        assert run("ingest", path, "--db", apart_db).exit_code == 0
    events, identities = everything(together_db)
    assert (events, identities) == everything(apart_db)
    by_id = {e[0]: e for e in events}
    assert by_id["t1"][5] == by_id["m1"][5]  # the visit across midnight is one session
    assert {by_id[i][-1] for i in ("m1", "t1", "w1")} == {"amy"}  # stitched from the third file


def test_a_group_is_cut_at_a_million_rows_and_where_columns_change(tmp_path, monkeypatch) -> None:
    import shopfunnel.cli.data as data

    monkeypatch.setattr(data, "GROUP_ROWS", 3)  # rows from which a group loads
    files = day_files(tmp_path)
    other = good_csv(tmp_path / "other.csv", n=3)  # other columns: a group of its own
    result = run("ingest", *files, other, "--db", tmp_path / "x.duckdb")
    assert result.exit_code == 0, result.output
    # one line a load (the console may wrap a long line: read it as one text)
    loads = " ".join(result.output.split()).split(" rejected")[:-1]
    assert len(loads) == 3, result.output
    assert f"{files[0]} … {files[1]} (2 files): read 4 rows" in loads[0]
    assert loads[1].strip().startswith(f"{files[2]}: read 2 rows")
    assert loads[2].strip().startswith(f"{other}: read 2 rows")


def test_read_ahead_stages_the_next_files_meanwhile_and_keeps_their_order() -> None:
    import threading
    import time

    from shopfunnel.cli.data import read_ahead

    running, most, lock = 0, 0, threading.Lock()

    def stage(path: Path) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02 * (5 - int(path.stem)))  # later files finish first
        with lock:
            running -= 1
        if path.stem == "3":
            raise OSError("no file at 3")
        return path.stem

    paths = [Path(f"{i}") for i in range(5)]
    got = []
    with pytest.raises(OSError, match="no file at 3"):
        for path, staged in read_ahead(paths, stage):  # type: ignore[arg-type]
            got.append((path.stem, staged))
    assert got == [("0", "0"), ("1", "1"), ("2", "2")]  # every file before the bad one
    assert most == 2  # two files staged at once, never more
