"""The playbook as data: the seed's tactics per stage, matching, overrides."""

from __future__ import annotations

import pytest

from shopfunnel.diagnosis.playbook import STAGES, load_playbook
from shopfunnel.errors import ConfigError


def test_every_stage_has_the_seeds_tactics_each_with_a_why_and_triggers():
    pb = load_playbook({})
    names = {stage: [t.name.lower() for t in pb.tactics if t.stage == stage] for stage in STAGES}
    for stage, words in {
        "awareness": ["social ads", "seo", "video", "webinar"],
        "interest": ["site optimisation", "quiz", "social proof", "retargeting"],
        "decision": ["time-limited", "tiered discount", "live chat", "cart abandoners"],
        "purchase": ["free shipping", "money-back", "guest checkout", "payment options"],
        "retention": ["giveaway", "preview", "email", "referral"],
    }.items():
        for word in words:
            assert any(word in n for n in names[stage]), (stage, word)
    assert all(t.why and t.triggers for t in pb.tactics)


def test_a_payment_failure_finding_gets_payment_options_not_free_shipping():
    pb = load_playbook({})
    keys = [t.key for t in pb.for_finding("checkout", "purchase", "purchase", "payment_failed")]
    assert keys == ["payment_options"]


def test_an_incident_is_fixed_first():
    pb = load_playbook({})
    assert pb.for_finding("incident", "purchase", "purchase", "x")[0].key == "fix_incident"


def test_the_model_file_can_switch_a_tactic_off_and_add_one():
    pb = load_playbook(
        {
            "playbook": {
                "fix_incident": {"enabled": False},
                "sms": {"stage": "retention", "why": "Texts get read", "triggers": ["retention"]},
            }
        }
    )
    assert pb.for_finding("incident", "purchase", "purchase")[0].key != "fix_incident"
    assert "sms" in [t.key for t in pb.for_finding("retention", "retention", limit=10)]


@pytest.mark.parametrize(
    "section",
    [
        {"x": 1},
        {"x": {"stage": "nowhere", "why": "w", "triggers": []}},
        {"live_chat": {"colour": "red"}},
    ],
)
def test_a_bad_playbook_override_is_a_config_error(section):
    with pytest.raises(ConfigError):
        load_playbook({"playbook": section})
