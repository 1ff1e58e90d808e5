"""The batch conversion of Segment / RudderStack messages gives exactly what converting
each message on its own gives: the same events, and the same refusals with the same
reasons (the per-message function is the reference)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.ingest.segment import EVENT_NAMES, MessageError, parse_timestamp, to_canonical
from shopfunnel.ingest.segment_bulk import _timestamp, encode_properties, to_canonical_many
from shopfunnel.server.events import EventError, incoming, incoming_many

RECEIVED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
odd = st.one_of(
    st.none(), st.just(""), st.booleans(), st.integers(-5, 5), st.just({}), st.just([1])
)


def mostly(good, bad=odd, one_in: int = 8):
    """``good``, and once in ``one_in`` draws ``bad``."""
    return st.sampled_from(range(one_in)).flatmap(lambda i: bad if i == 0 else good)


text_or_odd = mostly(
    st.one_of(st.sampled_from(["a1", "u-7", "sku-1", "x" * 9000, " "]), st.text(max_size=6))
)
names = mostly(
    st.one_of(
        st.sampled_from(
            [
                *EVENT_NAMES,
                "Checkout Step Completed",
                "Signed Up",
                "checkoutStep2",
                "Experiment Viewed",
                "  ",
            ]
        ),
        st.text(max_size=10),
    )
)
hostile_keys = st.one_of(
    st.text(max_size=6),
    st.sampled_from(
        ['"', "\\", "\u2028", "\x00", "é", "𝄞", "__proto__", "a.b", "$[0]", "' OR 1=1"]
    ),
)
utc_times = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2300, 1, 1))
offsets = st.sampled_from(["", "Z", "+00:00", "+02:00", "-05:30", "+14:00", "+0200", "-23:59"])


@st.composite
def iso_texts(draw):
    """Times as clients write them (toISOString, seconds only, offsets), some of them
    broken by one changed character."""
    ts = draw(utc_times)
    shape = draw(st.sampled_from(["js", "seconds", "micro", "minutes", "date"]))
    text = {
        "js": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}",
        "seconds": ts.strftime("%Y-%m-%dT%H:%M:%S"),
        "micro": ts.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "minutes": ts.strftime("%Y-%m-%d %H:%M"),
        "date": ts.strftime("%Y-%m-%d"),
    }[shape] + draw(offsets)
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.sampled_from(list("Z+-.: T0x9\u0660"))) + text[at + 1 :]
    return text


times = mostly(
    st.one_of(
        st.sampled_from(
            [
                "2024-03-01T10:00:00.123Z",
                "2024-03-01T10:00:00+02:00",
                "2024-03-01 10:00",
                "2024-03-01",
                "1969-12-31T23:59:59Z",
                "2300-01-01T00:00:00Z",
                "not a time",
                " 2024-03-01T10:00:00Z ",
                "2024-03-01T10:00:00.123456789Z",
            ]
        ),
        st.integers(-10, 2**40),
        st.floats(-1e3, 1e13, allow_nan=False),
        iso_texts(),
    )
)
urls = mostly(
    st.one_of(
        st.sampled_from(
            [
                "https://shop.example/p/1",
                "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=mugs",
                "https://shop.example/?%75tm_source=encoded",
                "https://shop.example/?utm_source=&utm_medium=x",
                "http://[bad",
                "/relative?utm_campaign=a+b",
            ]
        ),
        st.text(max_size=12),
    )
)
agents = mostly(
    st.one_of(
        st.sampled_from(
            [
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) Mobile/15E148",
                "Mozilla/5.0 (Linux; Android 14; SM-X710) Chrome/120",
                "Mozilla/5.0 (iPad; CPU OS 17_2)",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120",
            ]
        ),
        st.text(max_size=8),
    )
)
numbers = mostly(
    st.one_of(st.floats(-1e5, 1e5, allow_nan=False, allow_infinity=False), st.integers(-10, 10**4)),
    st.one_of(
        st.floats(-1e17, 1e17, allow_nan=False),
        st.integers(-10, 10**17),
        st.sampled_from(["12.5", " 3 ", "abc", "", "nan", "1e20"]),
        odd,
    ),
    one_in=5,
)


def _maybe(draw, key: str, strategy, out: dict, p_absent: float = 0.4) -> None:
    if draw(st.sampled_from(range(100))) >= p_absent * 100:
        out[key] = draw(strategy)


@st.composite
def product(draw):
    if draw(st.integers(0, 19)) == 0:
        return draw(odd)
    out: dict = {}
    for key, strategy in (
        ("product_id", text_or_odd),
        ("sku", text_or_odd),
        ("id", text_or_odd),
        ("name", text_or_odd),
        ("category", text_or_odd),
        ("price", numbers),
        ("quantity", st.one_of(st.integers(-3, 5), st.just(2.5), st.just(2.0), numbers)),
        ("brand", json_value),
    ):
        _maybe(draw, key, strategy, out)
    return out


@st.composite
def properties(draw):
    if draw(st.integers(0, 12)) == 0:
        return draw(odd)
    out: dict = {}
    for key, strategy in (
        ("order_id", text_or_odd),
        ("currency", st.one_of(st.sampled_from(["eur", "USD", "ß"]), text_or_odd)),
        ("revenue", numbers),
        ("value", numbers),
        ("total", numbers),
        ("products", st.one_of(st.lists(product(), max_size=3), odd)),
        ("product_id", text_or_odd),
        ("name", text_or_odd),
        ("price", numbers),
        ("quantity", numbers),
        ("payment_method", text_or_odd),
        ("shipping_method", text_or_odd),
        ("session_id", text_or_odd),
        ("url", urls),
        ("referrer", urls),
        ("experiment_id", text_or_odd),
        ("variation_id", text_or_odd),
        ("exp_variant_string", st.sampled_from(["OPT-abc-1", "x"])),
        ("extra", json_value),
        ("source_event", text_or_odd),
        ("group_id", json_value),
    ):
        _maybe(draw, key, strategy, out, p_absent=0.7)
    if draw(st.integers(0, 3)) == 0:
        out.update(draw(st.dictionaries(hostile_keys, json_value, max_size=3)))
    return out


@st.composite
def context(draw):
    if draw(st.integers(0, 12)) == 0:
        return draw(odd)
    out: dict = {}
    _maybe(
        draw,
        "page",
        st.one_of(st.fixed_dictionaries({}, optional={"url": urls, "referrer": urls}), odd),
        out,
    )
    _maybe(
        draw,
        "campaign",
        st.one_of(
            st.fixed_dictionaries(
                {}, optional={"source": text_or_odd, "medium": text_or_odd, "name": text_or_odd}
            ),
            odd,
        ),
        out,
    )
    _maybe(
        draw,
        "device",
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "type": st.one_of(
                        st.sampled_from(["Mobile", "tablet", "DESKTOP", "tv"]), text_or_odd
                    )
                },
            ),
            odd,
        ),
        out,
    )
    _maybe(draw, "userAgent", agents, out)
    _maybe(
        draw,
        "location",
        st.one_of(st.fixed_dictionaries({}, optional={"country": text_or_odd}), odd),
        out,
    )
    _maybe(draw, "sessionId", text_or_odd, out, p_absent=0.8)
    return out


@st.composite
def message(draw):
    if draw(st.integers(0, 30)) == 0:
        return draw(st.one_of(odd, st.text(max_size=3)))
    out: dict = {
        "type": draw(
            mostly(
                st.sampled_from(["track"] * 4 + ["page", "screen", "identify", "alias", "group"]),
                st.one_of(odd, st.just("batch")),
                one_in=20,
            )
        )
    }
    for key, strategy, p_absent in (
        ("event", names, 0.05),
        ("messageId", text_or_odd, 0.1),
        ("anonymousId", mostly(st.sampled_from(["a1", "a2", "anon-3"])), 0.1),
        ("userId", text_or_odd, 0.6),
        ("previousId", text_or_odd, 0.8),
        ("groupId", json_value, 0.8),
        ("name", text_or_odd, 0.6),
        ("timestamp", times, 0.2),
        ("originalTimestamp", times, 0.8),
        ("sentAt", times, 0.8),
        ("receivedAt", times, 0.8),
        ("context", context(), 0.2),
        ("properties", properties(), 0.2),
        ("traits", properties(), 0.5),
    ):
        _maybe(draw, key, strategy, out, p_absent)
    if draw(st.integers(0, 7)) == 0:  # keys a message should not have: ignored
        out.update(draw(st.dictionaries(hostile_keys, json_value, max_size=2)))
    return out


def reference(messages, ctx):
    out = []
    for m in messages:
        try:
            out.append(to_canonical(m, received_at=RECEIVED, context=ctx))
        except MessageError as exc:
            out.append(("refused", exc.column, exc.reason))
        except (TypeError, ValueError, OverflowError) as exc:
            out.append(("error", type(exc).__name__, str(exc)))
    return out


def bulk(messages, ctx):
    return [
        ("refused", r.column, r.reason)
        if isinstance(r, MessageError)
        else ("error", type(r).__name__, str(r))
        if isinstance(r, Exception)
        else r
        for r in to_canonical_many(messages, received_at=RECEIVED, context=ctx)
    ]


def _same(a, b) -> bool:  # NaN-free by construction, but keep float comparison exact
    return orjson.dumps(a, default=str) == orjson.dumps(b, default=str)


batches = st.lists(message(), max_size=12)
batch_contexts = st.one_of(st.none(), context().filter(lambda c: isinstance(c, dict)))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches, batch_contexts)
def test_a_batch_converts_exactly_as_each_message_alone(messages, ctx):
    assert _same(bulk(messages, ctx), reference(messages, ctx))


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches, batch_contexts)
def test_many_batches_convert_exactly_as_each_message_alone(messages, ctx):
    assert _same(bulk(messages, ctx), reference(messages, ctx))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(message(), min_size=1, max_size=12),
    st.one_of(st.none(), context().filter(lambda c: isinstance(c, dict))),
    st.sampled_from([200, 32 * 1024]),
)
def test_the_collector_accepts_and_refuses_a_batch_as_it_would_each_event(messages, ctx, limit):
    accepted, rejected = [], []
    for index, m in enumerate(messages):  # the collector's former loop, one event at a time
        try:
            if isinstance(m, dict) and len(orjson.dumps(m)) > limit:
                raise EventError(f"the event is larger than {limit} bytes", "event")
            accepted.append(incoming(m, received_at=RECEIVED, context=ctx))
        except EventError as exc:
            rejected.append({"index": index, "field": exc.column, "reason": exc.reason})
        except (TypeError, ValueError, OverflowError) as exc:
            rejected.append({"index": index, "field": "event", "reason": f"cannot be read: {exc}"})
    got = incoming_many(messages, received_at=RECEIVED, context=ctx, max_event_bytes=limit)
    assert _same(got, (accepted, rejected))


def test_values_repeated_across_a_batch_are_converted_per_message():
    ua_phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) Mobile/15E148"
    base = {"type": "track", "anonymousId": "a", "timestamp": "2024-03-01T10:00:00Z"}
    messages = [
        {
            **base,
            "event": "Product Viewed",
            "properties": {"product_id": "s1", "price": 2, "currency": "eur"},
            "context": {"userAgent": ua_phone, "page": {"url": "https://s.example/?utm_source=x"}},
        },
        {
            **base,
            "event": "Product Viewed",
            "properties": {"product_id": "s2", "price": 3},
            "context": {
                "userAgent": ua_phone,
                "device": {"type": "Tablet"},
                "page": {"url": "https://s.example/?utm_source=x"},
            },
        },
        {**base, "event": "Checkout Step Completed", "properties": {"payment_method": "card"}},
        {**base, "event": "Checkout Step Completed", "properties": {"shipping_method": "ups"}},
        {**base, "event": "Product Viewed", "properties": {"price": math.inf}},
    ]
    got = bulk(messages, {"userAgent": "Mozilla/5.0 (Windows NT 10.0)"})
    assert [g["device"] if isinstance(g, dict) else g[0] for g in got] == [
        "mobile",
        "tablet",
        "desktop",
        "desktop",
        "refused",
    ]
    assert [g["event"] for g in got[:4]] == [
        "view_item",
        "view_item",
        "add_payment_info",
        "add_shipping_info",
    ]
    assert got[0]["currency"] == "EUR" and got[1]["currency"] is None
    assert got[0]["utm_source"] == got[1]["utm_source"] == "x"
    assert _same(got, reference(messages, {"userAgent": "Mozilla/5.0 (Windows NT 10.0)"}))


# -- the two per-field fast paths, each against the reference it replaces ------------------


def _nested(inner):
    return st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_keys, inner, max_size=3))


property_values = st.recursive(
    st.one_of(
        json_scalar,
        st.floats(),  # NaN and infinities too: json.dumps writes them, so must the copy
        st.datetimes(),  # not JSON: both write str(value)
        st.decimals(allow_nan=False, places=2),
    ),
    _nested,
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(hostile_keys, property_values, max_size=6))
def test_properties_are_written_as_json_dumps_writes_them(props):
    assert encode_properties(props) == json.dumps(props, default=str, ensure_ascii=False)


def test_a_circular_property_fails_as_json_dumps_does_and_leaves_the_encoder_usable():
    loop: dict = {"a": 1}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        json.dumps(loop, default=str, ensure_ascii=False)
    with pytest.raises(ValueError, match="Circular reference"):
        encode_properties(loop)
    assert encode_properties({"b": [1, {"c": None}]}) == '{"b": [1, {"c": null}]}'


def _outcome(parse, value):
    try:
        return parse(value)
    except Exception as exc:  # noqa: BLE001 - the kind of error is what is compared
        return type(exc).__name__


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(iso_texts(), times))
def test_times_are_read_as_the_reference_reads_them(value):
    assert _outcome(_timestamp, value) == _outcome(parse_timestamp, value)


def test_a_javascript_time_is_utc_and_one_past_the_range_is_refused():
    assert _timestamp("2024-03-01T10:00:00.123Z") == datetime(2024, 3, 1, 10, 0, 0, 123000)
    assert _timestamp("2024-03-01T23:30:00-01:00") == datetime(2024, 3, 2, 0, 30)
    with pytest.raises(ValueError):
        _timestamp("2201-01-01T00:00:00.000Z")
    with pytest.raises(ValueError):
        _timestamp("2024-02-30T00:00:00.000Z")


def test_a_python_sdk_time_with_a_zero_offset_is_the_same_utc_time():
    # segment-analytics-python writes datetime.isoformat() of UTC times: "+00:00" (its own
    # fast path; the property test above draws this offset among others, broken ones too)
    assert _timestamp("2026-12-04T22:11:57.417+00:00") == datetime(2026, 12, 4, 22, 11, 57, 417000)
    assert _timestamp("2026-12-04T22:11:57.417123+00:00") == parse_timestamp(
        "2026-12-04T22:11:57.417123+00:00"
    )
    assert _timestamp("2026-12-04T22:11+00:00") == datetime(2026, 12, 4, 22, 11)
    for broken in (
        "2201-01-01T00:00:00+00:00",
        "2024-02-30T00:00:00+00:00",
        "2024-03-01T10:00:00Z+00:00",
    ):
        assert _outcome(_timestamp, broken) == _outcome(parse_timestamp, broken) == "ValueError"
