"""A GA4 Parquet export (docs/adr/0193) stages exactly what the row-by-row reference stages.

A Parquet export is mapped by the JSON paths' query over the file's typed columns
(``ga4_parquet.convert_parquet``); the rows it leaves slow are converted by the reference from
the rows as pyarrow reads them. The staging is the reference's: every column (properties as
the same JSON, key order included), rejects with their row numbers, ``line_label="row"``, and
event ids that group the rows as the reference's do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ga4 import TS
from test_ga4_bulk import FIXTURE_ROWS, number_text, param_keys, text, write

from shopfunnel.ingest import ga4, ga4_bulk, ga4_parquet
from shopfunnel.ingest.ga4 import read_ga4, read_ga4_reference


def assert_parquet_stages_as_the_reference(path: Path) -> ga4.Staged:
    bulk, ref = read_ga4(path), read_ga4_reference(path)
    assert bulk.line_label == ref.line_label == "row"
    assert [(r.source, r.line, r.column, r.reason, r.value) for r in bulk.rejects] == [
        (r.source, r.line, r.column, r.reason, r.value) for r in ref.rejects
    ]
    assert bulk.table.schema == ref.table.schema
    assert bulk.table.num_rows == ref.table.num_rows
    for name in bulk.table.column_names:
        if name not in ("event_id", "properties"):
            assert bulk.table.column(name).equals(ref.table.column(name)), name

    def props(staged: ga4.Staged) -> list:  # numbers and escapes as JSON texts may differ
        return [
            None if p is None else json.loads(p, object_pairs_hook=list)
            for p in staged.table.column("properties").to_pylist()
        ]

    assert props(bulk) == props(ref)
    pairs = set(
        zip(
            bulk.table.column("event_id").to_pylist(),
            ref.table.column("event_id").to_pylist(),
            strict=True,
        )
    )
    assert len({p[0] for p in pairs}) == len({p[1] for p in pairs}) == len(pairs)
    return bulk


def slow_rows(path: Path) -> list[int]:
    """The rows (numbered from 1) the query leaves to the reference."""
    import pyarrow.parquet as pq

    out = ga4_parquet.convert_parquet(
        ga4_bulk.connect(), str(path), pq.ParquetFile(path).schema_arrow, **ga4._RULES
    )
    assert out is not None
    return [n for n, s in zip(out["line"].to_pylist(), out["slow"].to_pylist(), strict=True) if s]


def write_parquet(path: Path, rows: list[dict], schema=None, **options) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, **options)
    return path


def as_text(value):
    """A JSON row with every scalar as text (INT64 as BigQuery's JSON writes it); list
    elements that are not records (or params whose value is not one) left out."""
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        kept = [v for v in value if isinstance(v, dict) and isinstance(v.get("value", {}), dict)]
        return [as_text(v) for v in kept]
    return None if value is None else str(value)


def test_the_fixture_rows_as_a_parquet_export_stage_as_the_reference_stages_them(
    tmp_path: Path,
) -> None:
    rows = [
        {**as_text(r), "event_bundle_sequence_id": i}
        for i, r in enumerate(FIXTURE_ROWS, 1)
        if isinstance(r["event_params"], list)  # a text or an object: no Parquet list
    ]
    path = write_parquet(tmp_path / "ga.parquet", rows)
    staged = assert_parquet_stages_as_the_reference(path)
    assert staged.table.num_rows == len(rows)
    # left to the reference: experiment events, a duplicated param key, a param named as an
    # ecommerce field the query writes to properties itself
    keys = [[p["key"] for p in r["event_params"]] for r in rows]
    assert slow_rows(path) == [
        n
        for n, (r, k) in enumerate(zip(rows, keys, strict=True), 1)
        if r["event_name"].startswith("experiment_")
        or len(set(k)) < len(k)
        or "shipping_value" in k
    ]


def test_a_parquet_export_written_by_duckdb_from_json_stages_as_the_reference(
    tmp_path: Path,
) -> None:
    import duckdb

    source = write(tmp_path / "ga.json", FIXTURE_ROWS)
    path = tmp_path / "ga.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json('{source}')) TO '{path}' (FORMAT parquet)")
    assert_parquet_stages_as_the_reference(path)  # JSON-typed columns: the reference's rows


def _value(*extra):
    import pyarrow as pa

    slots = [("string_value", pa.string()), ("int_value", pa.int64())]
    return pa.struct(
        slots + [("float_value", pa.float64()), ("double_value", pa.float64()), *extra]
    )


def _strings(*names):
    import pyarrow as pa

    return pa.struct([(n, pa.string()) for n in names])


def bigquery_schema():
    """GA4's BigQuery export schema (``events_YYYYMMDD``) as its Parquet export has it."""
    import pyarrow as pa

    params = pa.list_(pa.struct([("key", pa.string()), ("value", _value())]))
    i64, f64, s = pa.int64(), pa.float64(), pa.string()
    return pa.schema(
        [
            ("event_date", s),
            ("event_timestamp", i64),
            ("event_name", s),
            ("event_params", params),
            ("event_previous_timestamp", i64),
            ("event_value_in_usd", f64),
            ("event_bundle_sequence_id", i64),
            ("event_server_timestamp_offset", i64),
            ("user_id", s),
            ("user_pseudo_id", s),
            ("privacy_info", _strings("analytics_storage", "ads_storage", "uses_transient_token")),
            (
                "user_properties",
                pa.list_(pa.struct([("key", s), ("value", _value(("set_timestamp_micros", i64)))])),
            ),
            ("user_first_touch_timestamp", i64),
            ("user_ltv", pa.struct([("revenue", f64), ("currency", s)])),
            (
                "device",
                pa.struct(
                    [
                        ("category", s),
                        ("operating_system", s),
                        ("time_zone_offset_seconds", i64),
                        ("web_info", _strings("browser", "browser_version", "hostname")),
                    ]
                ),
            ),
            ("geo", _strings("city", "country", "continent", "region", "sub_continent", "metro")),
            ("traffic_source", _strings("name", "medium", "source")),
            ("stream_id", s),
            ("platform", s),
            ("event_dimensions", _strings("hostname")),
            (
                "ecommerce",
                pa.struct(
                    [("total_item_quantity", i64), ("purchase_revenue_in_usd", f64)]
                    + [(k, f64) for k in ("purchase_revenue", "refund_value")]
                    + [(k, f64) for k in ("shipping_value", "tax_value")]
                    + [("unique_items", i64), ("transaction_id", s)]
                ),
            ),
            (
                "items",
                pa.list_(
                    pa.struct(
                        [("item_id", s), ("item_name", s), ("item_brand", s), ("item_category", s)]
                        + [("price", f64), ("quantity", i64), ("item_revenue", f64)]
                        + [("item_params", params)]
                    )
                ),
            ),
            (
                "collected_traffic_source",
                _strings(
                    "manual_campaign_id",
                    "manual_campaign_name",
                    "manual_source",
                    "manual_medium",
                    "manual_term",
                    "gclid",
                    "dclid",
                    "srsltid",
                ),
            ),
            ("is_active_user", pa.bool_()),
            ("batch_event_index", i64),
            ("batch_page_id", i64),
            ("batch_ordering_id", i64),
            (
                "session_traffic_source_last_click",
                pa.struct(
                    [
                        (
                            "manual_campaign",
                            _strings("campaign_id", "campaign_name", "source", "medium"),
                        ),
                        ("google_ads_campaign", _strings("customer_id", "campaign_name")),
                    ]
                ),
            ),
        ]
    )


def typed_row(i: int, name: str, ts: int | None = None, **fields) -> dict:
    """A row as BigQuery's Parquet export holds it (INT64 as integers)."""
    params = fields.pop("params", {})
    return {
        "event_date": "20240315",
        "event_timestamp": TS + i * 1_000_000 if ts is None else ts,
        "event_name": name,
        "event_params": [
            {"key": "ga_session_id", "value": {"int_value": 1710511960 + i % 3}},
            {"key": "page_location", "value": {"string_value": f"https://shop.example/p/{i}"}},
            {"key": "engagement_time_msec", "value": {"int_value": 1234 + i}},
            *({"key": k, "value": v} for k, v in params.items()),
        ],
        "event_bundle_sequence_id": 1000 + i,
        "batch_page_id": 1710513005000 + i // 4,
        "batch_ordering_id": 1 + i // 4,
        "batch_event_index": i % 4,
        "stream_id": "4179374125",
        "user_pseudo_id": f"{i % 3}.1710511960",
        "privacy_info": {"analytics_storage": "Yes", "ads_storage": "No"},
        "user_properties": [
            {"key": "plan", "value": {"string_value": "pro", "set_timestamp_micros": TS}}
        ],
        "user_ltv": {"revenue": 12.5, "currency": "EUR"},
        "device": {"category": "mobile", "web_info": {"browser": "Chrome"}},
        "geo": {"country": "Germany", "city": "Berlin"},
        "traffic_source": {"name": "(organic)", "medium": "organic", "source": "google"},
        "platform": "WEB",
        "is_active_user": True,
        **fields,
    }


BIGQUERY_ROWS = [
    typed_row(
        0, "session_start", collected_traffic_source={"manual_source": "google", "gclid": "x"}
    ),
    typed_row(
        1, "page_view", params={"page_referrer": {"string_value": "https://www.google.com/"}}
    ),
    typed_row(
        2,
        "view_item",
        items=[{"item_id": "SKU-1", "item_name": "Tee", "price": 25.0, "quantity": 2}],
    ),
    typed_row(
        3,
        "purchase",
        params={
            "transaction_id": {"string_value": "T-1"},
            "value": {"double_value": 59.9},
            "currency": {"string_value": "EUR"},
            "coupon": {"string_value": 'say "hi" \u00e9'},
            "ratio": {"double_value": 1e-05},
            "big": {"float_value": 1e20},
        },
        ecommerce={
            "purchase_revenue": 59.9,
            "shipping_value": 5.0,
            "tax_value": None,
            "unique_items": 1,
        },
        items=[
            {"item_id": "SKU-1", "item_category": "Apparel", "price": 25.0, "quantity": 2},
            {"item_id": "SKU-2", "price": None, "quantity": 3_000_000_000},
        ],
    ),
    typed_row(4, "refund", ecommerce={"transaction_id": "T-1", "refund_value": 12.0}),
    typed_row(
        5,
        "page_view",
        user_id="u-5",
        session_traffic_source_last_click={
            "manual_campaign": {
                "source": "newsletter",
                "medium": "email",
                "campaign_name": "spring",
            }
        },
    ),
    typed_row(
        6,
        "page_view",
        params={"source": {"string_value": "partner"}, "medium": {"string_value": "aff"}},
    ),
    typed_row(
        7, "add_to_cart", device=None, geo={"country": " "}, params={"value": {"int_value": 60}}
    ),
    typed_row(
        8,
        "purchase",
        params={"transaction_id": {"string_value": "(not set)"}},
        ecommerce={"transaction_id": "T-8"},
    ),
]


def test_a_bigquery_typed_parquet_export_is_mapped_by_the_query_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_parquet(tmp_path / "ga.parquet", BIGQUERY_ROWS, schema=bigquery_schema())
    assert slow_rows(path) == []
    assert_parquet_stages_as_the_reference(path)
    monkeypatch.setattr(ga4, "read_ga4_reference", None)  # not called: no row is slow
    monkeypatch.setattr(ga4.ga4_lines, "parquet_rows", None)
    assert read_ga4(path).table.num_rows == len(BIGQUERY_ROWS)


def test_a_bigquery_typed_export_is_read_with_typed_leaves_and_text_where_numbers_are_text(
    tmp_path: Path,
) -> None:
    """Integer and float fields as integers and floats: the mapping reads them as they are
    (docs/adr/0194); one integer field written as text: every leaf is read as text."""
    import pyarrow as pa

    typed = ga4_parquet.parquet_row(bigquery_schema())
    assert typed is not None and typed.typed
    assert 'list_transform(j."event_params"' not in typed.sql  # the params as they are
    as_text = bigquery_schema().set(
        bigquery_schema().get_field_index("event_timestamp"),
        pa.field("event_timestamp", pa.string()),
    )
    text = ga4_parquet.parquet_row(as_text)
    assert text is not None and not text.typed
    rows = [{**row, "event_timestamp": str(row["event_timestamp"])} for row in BIGQUERY_ROWS]
    one = read_ga4(
        write_parquet(tmp_path / "typed.parquet", BIGQUERY_ROWS, schema=bigquery_schema())
    )
    other = read_ga4(write_parquet(tmp_path / "text.parquet", rows, schema=as_text))
    assert one.table.equals(other.table)


def test_float32_fields_read_as_typed_leaves_are_their_doubles_as_the_reference_reads_them(
    tmp_path: Path,
) -> None:
    """A float32 param value, price and revenue are read as their double (0.1f is
    0.10000000149011612), in the mapped ``value`` as in ``properties``."""
    import pyarrow as pa

    f32 = pa.float32()
    value = pa.struct(
        [
            ("string_value", pa.string()),
            ("int_value", pa.int64()),
            ("float_value", f32),
            ("double_value", f32),
        ]
    )
    item = pa.struct([("item_id", pa.string()), ("price", f32), ("quantity", pa.int32())])
    schema = pa.schema(
        [
            ("event_timestamp", pa.int64()),
            ("event_name", pa.string()),
            ("event_bundle_sequence_id", pa.int64()),
            ("user_pseudo_id", pa.string()),
            ("event_params", pa.list_(pa.struct([("key", pa.string()), ("value", value)]))),
            ("ecommerce", pa.struct([("purchase_revenue", f32), ("tax_value", f32)])),
            ("items", pa.list_(item)),
        ]
    )
    rows = [
        {
            "event_timestamp": TS + i,
            "event_name": name,
            "event_bundle_sequence_id": i,
            "user_pseudo_id": "p.1",
            "event_params": [
                {"key": "ga_session_id", "value": {"int_value": 7}},
                {"key": key, "value": {slot: 0.1}},
            ],
            "ecommerce": {"purchase_revenue": 19.99, "tax_value": 0.3},
            "items": [{"item_id": "A", "price": 0.7, "quantity": 3}],
        }
        for i, (name, key, slot) in enumerate(
            [
                ("purchase", "value", "float_value"),
                ("purchase", "value", "double_value"),
                ("purchase", "tip", "float_value"),
                ("page_view", "tip", "double_value"),
            ]
        )
    ]
    path = write_parquet(tmp_path / "f32.parquet", rows, schema=schema)
    row = ga4_parquet.parquet_row(schema)
    assert row is not None and row.typed
    assert slow_rows(path) == []
    staged = assert_parquet_stages_as_the_reference(path)
    assert staged.table.column("value").to_pylist()[:2] == [0.10000000149011612] * 2
    assert (
        staged.table.column("properties").to_pylist()[2]
        == '{"tip": 0.10000000149011612, "tax_value": 0.30000001192092896}'
    )


def bigquery_json_export(path: Path, parquet: Path) -> Path:
    """A Parquet export's rows as BigQuery's JSON export writes them (INT64 as strings,
    nulls left out)."""
    import pyarrow.parquet as pq

    def as_json(value):
        if isinstance(value, dict):
            return {k: as_json(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [as_json(v) for v in value]
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    return write(path, [as_json(r) for r in pq.read_table(parquet).to_pylist()])


def test_a_parquet_exports_event_ids_are_its_json_exports_ids(tmp_path: Path) -> None:
    """The identity fields are the same text whether INT64 is an integer (Parquet) or a
    string (BigQuery's JSON): the same event in both exports is one event (docs/adr/0168)."""
    path = write_parquet(tmp_path / "ga.parquet", BIGQUERY_ROWS, schema=bigquery_schema())
    from_json = read_ga4(bigquery_json_export(tmp_path / "ga.json", path)).table
    assert read_ga4(path).table.equals(from_json)


def test_rows_the_query_cannot_map_go_to_the_reference_with_their_row_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = [
        typed_row(20, "page_view", ts=1710513005),  # seconds: rejected
        typed_row(21, "", ts=None),  # no name: rejected
        {**typed_row(22, "page_view"), "event_timestamp": None},  # no timestamp: rejected
        typed_row(
            23, "experiment_impression", params={"exp_variant_string": {"string_value": "A-1"}}
        ),
        {
            **typed_row(24, "page_view"),
            "event_bundle_sequence_id": None,
            "batch_page_id": None,
            "batch_ordering_id": None,
            "batch_event_index": None,
        },  # no identity: keyed by its repr
        typed_row(
            25, "page_view", params={"currency": {"int_value": 978}}
        ),  # text in a number slot
        typed_row(
            26, "page_view", params={"k": {"int_value": 1}, "K": {}, "k ": {"string_value": None}}
        ),
        typed_row(27, "page_view", params={"dup": {"int_value": 1}}, items=[{}]),  # an empty item
        typed_row(28, "page_view", params={"inf": {"double_value": float("inf")}}),
    ]
    odd[6]["event_params"].append({"key": "k", "value": {"int_value": 2}})  # duplicated key
    rows = [*BIGQUERY_ROWS[:5], *odd, *BIGQUERY_ROWS[5:]]
    path = write_parquet(tmp_path / "ga.parquet", rows, schema=bigquery_schema(), row_group_size=4)
    monkeypatch.setattr(ga4.ga4_lines, "BATCH_ROWS", 3)  # batches within row groups
    staged = assert_parquet_stages_as_the_reference(path)
    assert [r.line for r in staged.rejects] == [6, 7, 8]
    assert slow_rows(path) == list(range(6, 15))
    assert staged.table.column("__line").to_pylist() == [
        n for n in range(1, len(rows) + 1) if n not in (6, 7, 8)
    ]


def varied_schema():
    """Types a Parquet export written by another tool may have: a float timestamp, an
    integer pseudo id, a bool user id, a text device, a dictionary country, a field spelt in
    another case (not the field: the reference reads it as absent), float32 params…"""
    import pyarrow as pa

    value = pa.struct(
        [
            ("string_value", pa.large_string()),
            ("int_value", pa.float64()),
            ("float_value", pa.float32()),
        ]
    )
    return pa.schema(
        [
            ("event_timestamp", pa.float64()),
            ("event_name", pa.string()),
            ("user_pseudo_id", pa.int64()),
            ("user_id", pa.bool_()),
            ("event_bundle_sequence_id", pa.string()),
            ("event_params", pa.large_list(pa.struct([("key", pa.string()), ("value", value)]))),
            (
                "items",
                pa.list_(
                    pa.struct(
                        [
                            ("item_id", pa.int32()),
                            ("price", pa.string()),
                            ("quantity", pa.float64()),
                        ]
                    )
                ),
            ),
            ("device", pa.string()),
            ("geo", pa.struct([("country", pa.dictionary(pa.int32(), pa.string()))])),
            (
                "ecommerce",
                pa.struct(
                    [
                        ("purchase_revenue", pa.int64()),
                        ("shipping_value", pa.float32()),
                        ("transaction_id", pa.int64()),
                    ]
                ),
            ),
            (
                "collected_traffic_source",
                pa.struct([("manual_source", pa.string()), ("Manual_Medium", pa.string())]),
            ),
            ("session_traffic_source_last_click", pa.null()),
        ]
    )


def test_a_varied_parquet_export_stages_as_the_reference_stages_it(tmp_path: Path) -> None:
    def row(i, **fields):
        return {
            "event_timestamp": float(TS + i),
            "event_name": "page_view",
            "user_pseudo_id": 7,
            "event_bundle_sequence_id": str(i),
            "event_params": [{"key": "ga_session_id", "value": {"int_value": 1710511960.0}}],
            **fields,
        }

    rows = [
        row(1),
        row(2, event_timestamp=TS + 0.5),  # a fraction of a µs: rejected
        row(3, event_name=None),  # rejected
        row(4, user_id=True),  # a bool as text: the reference writes True
        row(5, user_pseudo_id=None, event_bundle_sequence_id=None),
        row(6, items=[{"item_id": 7, "price": " 2.5 ", "quantity": 2.0}, None, {"price": "n/a"}]),
        row(7, items=[{"item_id": 8, "quantity": 2.5}]),  # a fraction of an item
        row(8, device="mobile"),  # not a record: no device
        row(9, geo={"country": "Germany"}, ecommerce={"purchase_revenue": 60, "transaction_id": 9}),
        row(10, event_name="purchase", ecommerce={"purchase_revenue": 60, "shipping_value": 0.1}),
        row(11, collected_traffic_source={"manual_source": "google", "Manual_Medium": "cpc"}),
        row(12, event_params=[{"key": "value", "value": {"int_value": 2.5}}]),
        row(13, event_params=[{"key": "n", "value": {"float_value": 0.1}}, None]),
        row(14, event_params=[{"key": "ga_session_id", "value": {"int_value": 2.0**70}}]),
        row(15, event_params=None, items=None, geo=None),
    ]
    path = write_parquet(tmp_path / "ga.parquet", rows, schema=varied_schema())
    staged = assert_parquet_stages_as_the_reference(path)
    assert [r.line for r in staged.rejects] == [2, 3]
    assert slow_rows(path) == [2, 3, 4, 5, 7, 8, 12, 13, 14]


def test_field_names_that_differ_only_by_case_send_the_file_to_the_reference(
    tmp_path: Path,
) -> None:
    import pyarrow as pa

    rows = [{**r, "EVENT_NAME": "x"} for r in BIGQUERY_ROWS]
    schema = bigquery_schema().append(pa.field("EVENT_NAME", pa.string()))
    path = write_parquet(tmp_path / "ga.parquet", rows, schema=schema)
    assert ga4_parquet.parquet_row(schema) is None
    assert_parquet_stages_as_the_reference(path)


def test_an_empty_parquet_export_says_so_as_the_reference_does(tmp_path: Path) -> None:
    from shopfunnel.errors import InputError

    path = write_parquet(tmp_path / "ga.parquet", [], schema=bigquery_schema())
    with pytest.raises(InputError, match="holds no events"):
        read_ga4(path)


# random typed exports: each leaf of a random type (as another tool may write it), some
# fields left out, values of that type (nulls, odd numbers, texts)
_LEAF_TYPES = {  # the types the query maps first, then the ones it leaves to the reference
    "text": ["string", "int64", "float64", "bool_"],
    "string": ["string", "int64"],
    "int": ["int64", "string", "float64", "int32"],
    "float": ["float64", "float32", "string", "int64"],
}
_MAPPED_TYPES = {"text": 2, "string": 1, "int": 4, "float": 4}
# the types of a file the mapping reads with typed leaves (as BigQuery writes its export)
_TYPED_LEAF_TYPES = {
    "text": ["string", "int64"],
    "string": ["string"],
    "int": ["int64", "int32"],
    "float": ["float64", "float32"],
}
_FLOATS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([2.0, 1e20, 1e-05, -0.0, float("inf"), 1e18, 123456789012345678.0, 0.1]),
)


def _one_in(n: int):
    """True about once in ``n`` draws (not at a bound, where hypothesis draws often)."""
    return st.integers(0, n - 1).map(lambda x: x == n // 2)


@st.composite
def _arrow_type(draw, fields, name="", mapped=True, typed=False):
    import pyarrow as pa

    if isinstance(fields, str):
        kind = "string" if name == "event_name" else fields
        types = (
            _TYPED_LEAF_TYPES[kind]
            if typed
            else _LEAF_TYPES[kind][: _MAPPED_TYPES[kind] if mapped else None]
        )
        return getattr(pa, draw(st.sampled_from(types)))()
    if isinstance(fields, list):
        return pa.list_(draw(_arrow_type(fields[0], mapped=mapped, typed=typed)))
    kept = [
        (k, draw(_arrow_type(v, k, mapped, typed)))
        for k, v in fields.items()
        if v != "key"
        and (k in ("event_timestamp", "event_name") or draw(st.integers(0, 7 if typed else 5)))
    ]
    return pa.struct(kept or [("other", pa.string())])  # Parquet has no empty struct


@st.composite
def _value_of(draw, t, name=""):
    """A value of type ``t``; a list's elements, a param's ``value``, the timestamp and the
    name are rarely null, other fields often."""
    import pyarrow as pa

    rare = name in ("", "key", "value", "event_timestamp", "event_name")
    if draw(_one_in(40 if rare else 6)):
        return None
    if pa.types.is_struct(t):
        return {f.name: draw(_value_of(f.type, f.name)) for f in t}
    if pa.types.is_list(t):
        return [draw(_value_of(t.value_type)) for _ in range(draw(st.integers(0, 3)))]
    if name == "event_timestamp":
        us = 1710513005 if draw(_one_in(10)) else TS + draw(st.integers(0, 10**9))
        if pa.types.is_floating(t):
            return us + (0.5 if draw(_one_in(10)) else 0)
        if pa.types.is_int32(t):  # no µs fit: seconds
            return 1710513005
        return str(us) if pa.types.is_string(t) else us
    if pa.types.is_string(t):
        if name == "event_name":
            names = ["page_view", "purchase", "refund", "view_item"] * 3 + ["", "experiment_viewed"]
            return draw(st.sampled_from(names))
        return draw(param_keys if name == "key" else st.one_of(text, number_text))
    if pa.types.is_int64(t):
        return draw(st.integers(-5, 10**12))
    if pa.types.is_int32(t):
        return draw(st.integers(-(2**31), 2**31 - 1))
    if pa.types.is_floating(t) and name in ("int_value", "quantity"):  # mostly whole
        return draw(st.one_of(st.integers(-(10**6), 10**6).map(float), _FLOATS))
    if pa.types.is_floating(t):
        return draw(_FLOATS)
    return draw(st.booleans())


@st.composite
def typed_exports(draw):
    import pyarrow as pa

    kind = draw(st.sampled_from(["typed", "typed", "mapped", "mapped", "any"]))
    schema = pa.schema(
        list(draw(_arrow_type(ga4_bulk.FIELDS, mapped=kind != "any", typed=kind == "typed")))
    )
    schema = schema.append(pa.field("event_bundle_sequence_id", pa.int64()))
    rows = [
        {
            **{f.name: draw(_value_of(f.type, f.name)) for f in list(schema)[:-1]},
            "event_bundle_sequence_id": None if draw(_one_in(4)) else i,
        }
        for i in range(draw(st.integers(1, 6)))
    ]
    return pa.Table.from_pylist(rows, schema=schema)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=typed_exports())
def test_random_typed_parquet_exports_stage_as_the_reference_stages_them(
    tmp_path: Path, table
) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "ga.parquet"
    pq.write_table(table, path)
    assert_parquet_stages_as_the_reference(path)


def test_ingesting_a_ga4_export_from_the_command_line_does_not_import_pandas(
    tmp_path: Path,
) -> None:
    """Neither export path needs pandas, whose import is about 0.2 s of the command (pyarrow
    imports it on ``pa.array``, ``pa.scalar`` and ``to_numpy``)."""
    from conftest import command_modules

    parquet = write_parquet(tmp_path / "ga.parquet", BIGQUERY_ROWS, schema=bigquery_schema())
    exports = {"parquet": parquet, "json": bigquery_json_export(tmp_path / "ga.json", parquet)}
    for kind, path in exports.items():
        db = tmp_path / f"{kind}.duckdb"
        run, loaded = command_modules(
            ["ingest", path, "--format", "ga4", "--db", db], tmp_path / f"{kind}.txt"
        )
        assert run.returncode == 0, run.stderr
        assert "added" in run.stdout, run.stdout
        assert "shopfunnel.ingest.ga4_bulk" in loaded
        assert "pandas" not in loaded, kind
