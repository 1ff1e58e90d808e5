"""The correlation's feature counts equal their earlier definition on random logs.

:func:`shopfunnel.diagnosis.correlation.feature_counts` takes each session's level from
the one join of the events with the sessions table (it used to join the features with the
sessions table a second time); :data:`EARLIER` is that earlier query, kept here as the
reference the new one must reproduce row for row.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.diagnosis.correlation import feature_counts
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.store.db import JSON_POINTER_SQL
from shopfunnel.store.store import Store

T0 = datetime(2024, 3, 1, tzinfo=UTC)
EVENTS = [
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_payment_info",
    "purchase",
    "search",
    "view_item_list",
    "add_to_wishlist",
]
PROPERTIES = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["color", "size", "coupon", "a/b~c"]),
        st.sampled_from(["red", "blue", "S", "M", "L", "x", "true"]),
        max_size=3,
    ),
)
EVENT = st.tuples(
    st.integers(0, 7),  # session
    st.integers(0, 600),  # minutes after T0
    st.sampled_from(EVENTS),
    PROPERTIES,
)

EARLIER = f"""
    WITH ev AS (
        SELECT e.session_id, e.event, {{step_idx}} AS step_idx, e.properties
        FROM events e JOIN {{table}} l USING (session_id)
        WHERE NOT l.excluded AND (e.properties IS NOT NULL OR e.event <> 'page_view')
    ),
    props AS (
        SELECT session_id, step_idx, key, json_extract_string(properties, {JSON_POINTER_SQL.format(key="key")}) AS value
        FROM (SELECT session_id, step_idx, properties, unnest(json_keys(properties)) AS key
              FROM ev WHERE properties IS NOT NULL AND json_type(properties) = 'OBJECT')
    ),
    low_card AS (SELECT key FROM props GROUP BY key HAVING count(DISTINCT value) <= ?),
    feat AS (
        SELECT session_id, 'event' AS kind, event AS key, NULL AS value, min(step_idx) AS first_step
        FROM ev WHERE step_idx = 0 AND event <> 'page_view' GROUP BY ALL
        UNION ALL
        SELECT session_id, 'property', key, value, min(step_idx)
        FROM props WHERE key IN (SELECT key FROM low_card) AND value IS NOT NULL GROUP BY ALL
    )
    SELECT f.kind, f.key, f.value, f.first_step, l.level, count(*) AS sessions
    FROM feat f JOIN {{table}} l USING (session_id)
    WHERE NOT l.excluded
    GROUP BY ALL
"""


def earlier_feature_counts(store: Store, levels: SessionLevels, max_values: int) -> pd.DataFrame:
    steps = [s.event for s in levels.steps]
    case = " ".join(f"WHEN ? THEN {i + 1}" for i in range(len(steps)))
    step_idx = f"CASE e.event {case} ELSE 0 END" if steps else "0"
    sql = EARLIER.format(step_idx=step_idx, table=levels.table)
    return store.db.df(sql, [*steps, max_values])


def ordered(df: pd.DataFrame) -> list[tuple]:
    return sorted(
        (tuple(None if pd.isna(v) else v for v in row) for row in df.itertuples(index=False)),
        key=repr,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(EVENT, min_size=1, max_size=40),
    max_values=st.integers(1, 4),
    excluded_minutes=st.one_of(st.none(), st.integers(0, 600)),
)
def test_feature_counts_equal_the_earlier_two_join_query(events, max_values, excluded_minutes):
    df = pd.DataFrame(
        [
            {
                "event_id": f"e{i}",
                "ts": T0 + timedelta(minutes=minutes),
                "event": event,
                "anonymous_id": f"p{session % 3}",
                "session_id": f"s{session}",
                "properties": json.dumps(props) if props is not None else None,
            }
            for i, (session, minutes, event, props) in enumerate(events)
        ]
    )
    with Store(":memory:") as store:
        store.load(df)
        with SessionLevels(store) as levels:
            if excluded_minutes is not None:  # some sessions left out, as after incidents
                start = (T0 + timedelta(minutes=excluded_minutes)).replace(tzinfo=None)
                levels.exclude(start, start + timedelta(hours=2))
            new = feature_counts(store, levels, max_values)
            old = earlier_feature_counts(store, levels, max_values)
    assert list(new.columns) == list(old.columns)
    assert ordered(new) == ordered(old)
