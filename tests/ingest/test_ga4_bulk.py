"""The GA4 importer's bulk path (DuckDB, a block of lines at a time) stages exactly what the
row-by-row reference stages: the same rows in every column, the same rejects (line,
column, reason, value), and event ids that group the rows the same way (the ids
themselves changed: docs/adr/0078)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ga4 import PURCHASE, SESSION, TS, event

from shopfunnel.ingest import ga4, ga4_bulk
from shopfunnel.ingest.ga4 import read_ga4, read_ga4_reference


def assert_same_staging(path: Path, *, ids: bool = True) -> None:
    """Same rows in every column and same rejects; with ``ids``, event ids that group the
    rows as the reference's do (rows without identity fields: docs/adr/0168)."""
    bulk, ref = read_ga4(path), read_ga4_reference(path)
    assert [(r.line, r.column, r.reason, r.value) for r in bulk.rejects] == [
        (r.line, r.column, r.reason, r.value) for r in ref.rejects
    ]
    assert bulk.table.schema == ref.table.schema
    b, r = bulk.table.to_pylist(), ref.table.to_pylist()
    assert len(b) == len(r)
    pairs = set()
    for got, want in zip(b, r, strict=True):
        pairs.add((got.pop("event_id"), want.pop("event_id")))
        for row in (got, want):
            row["properties"] = None if row["properties"] is None else json.loads(row["properties"])
        assert got == want
    # one bulk id per reference id and back: the same rows are the same event
    assert not ids or len({p[0] for p in pairs}) == len({p[1] for p in pairs}) == len(pairs)


def write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


FIXTURE_ROWS = [
    PURCHASE,
    event("page_view", TS, session="1710511960"),
    event(
        "view_item", str(TS + 1), session=None, params={"ga_session_id": {"int_value": 1710511960}}
    ),
    event(
        "add_to_cart",
        f"{TS + 2}",
        session=None,
        params={
            "ga_session_id": {"int_value": "1710511960"},
            "value": {"int_value": "60"},
            "currency": {"string_value": "EUR"},
        },
    ),
    event("begin_checkout", float(TS + 3), params={"value": {"float_value": "12.5"}}),
    event(
        "view_item",
        TS + 2_000_000,
        collected_traffic_source={"manual_source": "newsletter", "manual_medium": "email"},
    ),
    event(
        "page_view",
        TS,
        collected_traffic_source={
            "manual_source": "facebook",
            "manual_medium": "paid_social",
            "manual_campaign_name": "launch",
        },
        traffic_source={"source": "google", "medium": "organic"},
    ),
    event(
        "page_view",
        TS,
        pseudo="a",
        params={"source": {"string_value": "partner"}, "medium": {"string_value": "affiliate"}},
    ),
    event("page_view", TS, pseudo="b", params={"gclid": {"string_value": "Cj0KCQ"}}),
    event(
        "purchase",
        TS,
        params={"transaction_id": {"string_value": "(not set)"}},
        ecommerce={"transaction_id": "(not set)", "purchase_revenue": "30"},
    ),
    event("refund", TS + 1, ecommerce={"transaction_id": "T-9", "refund_value": 12.0}),
    event(
        "view_item",
        TS,
        items=[
            {"item_id": 7, "price": "n/a", "quantity": "99999999999"},
            {"item_name": "Cap", "price": "12.5", "quantity": 1.0},
            "not an item",
        ],
    ),
    event(
        "experiment_impression", TS, params={"exp_variant_string": {"string_value": "OPT-AbC-12-1"}}
    ),
    event(
        "experiment_viewed",
        TS,
        pseudo="p2",
        params={
            "experiment_id": {"string_value": "checkout-v2"},
            "variation_id": {"string_value": "1"},
        },
    ),
    event("page_view", TS + 5, params={"dup": {"string_value": "x"}})
    | {
        "event_params": [
            {"key": "k", "value": {"string_value": "1"}},
            {"key": "k", "value": {"int_value": "2"}},
        ]
    },
    event("page_view", TS + 6)
    | {"event_params": {"ga_session_id": {"int_value": SESSION}, "plain": "v"}},
    event("page_view", TS + 7)
    | {"event_params": json.dumps([{"key": "a", "value": {"string_value": "b"}}])},
    event("page_view", TS + 8, params={"plain": "value", "n": {"double_value": 2}}),
    event(
        "purchase",
        TS + 9,
        params={"shipping_value": {"double_value": 1.0}},
        ecommerce={"shipping_value": 2.5, "tax_value": None},
    ),
]
BAD_LINES = [
    '{"event_timestamp": 1710513005123456, "event_name": ',
    json.dumps(event("", TS)),
    json.dumps({"event_name": "page_view", "user_pseudo_id": "p1"}),
    json.dumps(event("page_view", "yesterday")),
    json.dumps(event("page_view", 1710513005)),
    "",
    "[1, 2]",
    "  ",
    '"just text"',
]


def test_the_fixture_rows_stage_as_the_reference_stages_them(tmp_path: Path) -> None:
    assert_same_staging(write(tmp_path / "ga.json", FIXTURE_ROWS))


def test_bad_rows_are_rejected_by_line_as_the_reference_rejects_them(tmp_path: Path) -> None:
    rows = [FIXTURE_ROWS[1], *BAD_LINES, FIXTURE_ROWS[2]]
    path = write(tmp_path / "ga.json", rows)
    assert_same_staging(path)
    assert [r.line for r in read_ga4(path).rejects] == [2, 3, 4, 5, 6, 8, 10]


def test_a_line_that_is_not_utf8_is_rejected_by_its_line_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ga.json"
    good = json.dumps(event("page_view", TS)).encode()
    bad = json.dumps(event("page_view", TS + 1, pseudo="caf\u00e9"), ensure_ascii=False).encode()
    path.write_bytes(
        good + b"\n" + bad.replace("é".encode(), b"\xe9") + b"\n" + good.replace(b"p1", b"p2")
    )
    assert_same_staging(path)
    staged = read_ga4(path)
    assert [(r.line, r.reason) for r in staged.rejects] == [
        (2, "is not UTF-8 text: re-export the table as UTF-8 JSON")
    ]
    assert staged.table.num_rows == 2


def test_lines_are_numbered_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ga4, "BLOCK_BYTES", 700)  # several blocks, a line longer than one
    rows = [*FIXTURE_ROWS, "not json", *FIXTURE_ROWS[1:6]]
    path = write(tmp_path / "ga.json", rows)
    assert_same_staging(path)
    assert [r.line for r in read_ga4(path).rejects] == [len(FIXTURE_ROWS) + 1]
    gz = tmp_path / "ga.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_ga4(gz).table.equals(read_ga4(path).table)


def test_ordinary_export_rows_are_all_mapped_by_the_query_not_the_reference() -> None:
    import pyarrow as pa

    rows = [json.dumps(r) for r in FIXTURE_ROWS[:12]]
    block = pa.table(
        {
            "line": pa.array(range(1, len(rows) + 1), pa.int64()),
            "raw": pa.array(rows, pa.large_string()),
        }
    )
    out = ga4_bulk.convert_block(
        ga4_bulk.connect(),
        block,
        min_us=ga4.MIN_US,
        max_us=ga4.MAX_US,
        mapped=ga4.MAPPED_PARAMS,
        exposure_names=ga4.exposures.SOURCE_NAMES,
    )
    assert out.column("slow").to_pylist() == [False] * 11 + [
        True
    ]  # the last one: an item that is text


# -- random rows ---------------------------------------------------------------------------------
text = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "(not set)",
            "EUR",
            "usd",
            "https://s.example/?a=1",
            "1.5",
            "7",
            "caf\u00e9",
            'a"b',
            "x\\y",
            "  padded ",
        ]
    ),
    st.text(max_size=5),
)
number_text = st.one_of(
    st.integers(-10, 10**12).map(str), st.sampled_from(["1.0", "2.5", " 3 ", "1e3", "x", ""])
)
scalar = st.one_of(
    st.none(), text, st.integers(-(2**31), 2**31), st.floats(-1e6, 1e6, allow_nan=False)
)
param_value = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "string_value": st.one_of(st.none(), text),
            "int_value": st.one_of(st.none(), number_text, st.integers(-5, 10**10)),
            "double_value": st.one_of(
                st.none(), number_text, st.floats(-1e6, 1e6, allow_nan=False)
            ),
            "float_value": st.one_of(st.none(), number_text),
        },
    ),
    scalar,
)
param_keys = st.sampled_from(
    sorted(ga4.MAPPED_PARAMS) + ["gclid", "coupon", "engagement_time_msec", "k"]
)
params = st.lists(st.fixed_dictionaries({"key": param_keys, "value": param_value}), max_size=6)
item = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "item_id": st.one_of(text, st.integers(0, 99)),
            "item_name": text,
            "item_category": text,
            "price": st.one_of(number_text, st.floats(0, 1e4, allow_nan=False), st.none()),
            "quantity": st.one_of(number_text, st.integers(-3, 2**33), st.none()),
        },
    ),
    text,
)
campaign = st.fixed_dictionaries(
    {},
    optional={
        "manual_source": text,
        "manual_medium": text,
        "manual_campaign_name": text,
        "gclid": text,
    },
)
row = st.fixed_dictionaries(
    {
        "event_timestamp": st.one_of(
            st.integers(TS, TS + 10**9),
            st.integers(TS, TS + 10**9).map(str),
            st.sampled_from([None, "soon", 1710513005, float(TS)]),
        ),
        "event_name": st.sampled_from(
            ["page_view", "purchase", "refund", "view_item", "", "experiment_viewed"]
        ),
        "user_pseudo_id": st.sampled_from(["p1", "p2", "", None]),
        "event_params": params,
    },
    optional={
        "user_id": st.sampled_from(["u1", None, ""]),
        "items": st.lists(item, max_size=3),
        "device": st.one_of(st.fixed_dictionaries({"category": text}), text),
        "geo": st.fixed_dictionaries({"country": text}),
        "ecommerce": st.fixed_dictionaries(
            {},
            optional={
                "transaction_id": text,
                "purchase_revenue": st.one_of(number_text, st.floats(0, 1e4)),
                "refund_value": number_text,
                "shipping_value": st.one_of(st.none(), number_text),
                "tax_value": st.floats(0, 100),
            },
        ),
        "collected_traffic_source": campaign,
        "session_traffic_source_last_click": st.fixed_dictionaries(
            {
                "manual_campaign": st.fixed_dictionaries(
                    {}, optional={"source": text, "medium": text, "campaign_name": text}
                )
            }
        ),
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(row, min_size=1, max_size=8))
def test_random_export_rows_stage_as_the_reference_stages_them(tmp_path: Path, rows: list) -> None:
    assert_same_staging(write(tmp_path / "ga.json", rows))
