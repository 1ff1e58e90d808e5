"""Other tools' exposure events arrive as the canonical ``experiment_exposure`` with
``experiment`` and ``variant`` properties."""

from __future__ import annotations

import json
from pathlib import Path

from shopfunnel.ingest import read
from shopfunnel.ingest.exposures import as_exposure
from shopfunnel.ingest.segment import to_canonical
from shopfunnel.store.store import Store

TS_US = 1710513005123456


def ga4_row(name: str, params: dict, pseudo: str = "p1") -> dict:
    return {
        "event_timestamp": TS_US,
        "event_name": name,
        "user_pseudo_id": pseudo,
        "event_params": [{"key": "ga_session_id", "value": {"int_value": "1710511960"}}]
        + [{"key": k, "value": {"string_value": v}} for k, v in params.items()],
    }


def test_ga4_optimize_impression_and_growthbook_viewed_become_exposures(tmp_path: Path) -> None:
    path = tmp_path / "ga4.json"
    rows = [
        ga4_row("experiment_impression", {"exp_variant_string": "OPT-AbC-12-1"}),
        ga4_row(
            "experiment_viewed", {"experiment_id": "checkout-v2", "variation_id": "1"}, pseudo="p2"
        ),
        ga4_row("page_view", {}),
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    store = Store(":memory:")
    store.load_staged(read(path, format="ga4"))
    got = store.db.rows("SELECT event, properties FROM events ORDER BY anonymous_id, event")
    exposures = [json.loads(p) for e, p in got if e == "experiment_exposure"]
    assert [(x["experiment"], x["variant"], x["source_event"]) for x in exposures] == [
        ("OPT-AbC-12", "1", "experiment_impression"),
        ("checkout-v2", "1", "experiment_viewed"),
    ]
    assert ("page_view", None) in got


def test_segment_experiment_viewed_becomes_an_exposure() -> None:
    e = to_canonical(
        {
            "type": "track",
            "event": "Experiment Viewed",
            "anonymousId": "a1",
            "messageId": "m1",
            "timestamp": "2024-03-01T10:00:00Z",
            "properties": {
                "experiment_id": "hero",
                "experiment_name": "Hero image",
                "variation_id": 2,
                "variation_name": "Blue",
            },
        }
    )
    props = json.loads(e["properties"])
    assert e["event"] == "experiment_exposure"
    assert (props["experiment"], props["variant"]) == ("hero", "2")
    assert props["source_event"] == "Experiment Viewed" and props["variation_name"] == "Blue"


def test_the_snippets_own_exposure_is_kept_as_it_is() -> None:
    assert as_exposure("experiment_exposure", {"experiment": "k", "variant": "0"}) == (
        "experiment_exposure",
        {"experiment": "k", "variant": "0"},
    )


def test_other_events_are_untouched() -> None:
    assert as_exposure("purchase", {"experiment": "k"}) == ("purchase", {"experiment": "k"})
