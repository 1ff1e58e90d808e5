"""shopfunnel's experiment statistics equal GrowthBook's gbstats on the same sufficient
statistics, to 1e-4 (relative to the figure's size when it is above 1).

The figures come from gbstats itself, computed once in a separate environment by
fixtures/make_gbstats_fixtures.py (its docstring says how to re-run it); these tests never
import gbstats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shopfunnel.experiments import Adjusted, Mean, Proportion, Ratio, compare_arms, srm_check

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "gbstats_reference.json").read_text(encoding="utf-8")
)
TOLERANCE = 1e-4


def statistic(kind: str, arm: dict):
    if kind == "proportion":
        return Proportion(arm["n"], arm["conversions"])
    if kind == "mean":
        return Mean(**arm)
    if kind == "ratio":
        return Ratio(
            arm["n"], Mean(**arm["numerator"]), Mean(**arm["denominator"]), arm["sum_of_products"]
        )
    if kind == "cuped":
        return Adjusted(Mean(**arm["post"]), Mean(**arm["pre"]), arm["sum_of_products"])
    raise AssertionError(kind)


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= TOLERANCE * max(1.0, abs(theirs))


def case_id(case: dict) -> str:
    c, t = case["control"], case["treatment"]
    size = f"{c.get('n', c.get('post', {}).get('n'))}v{t.get('n', t.get('post', {}).get('n'))}"
    return (
        f"{case['kind']}-{size}-{case['engine']}-{case['difference']}"
        f"-{case['confidence']}-{case['better']}"
    )


def run(case: dict):
    return compare_arms(
        statistic(case["kind"], case["control"]),
        statistic(case["kind"], case["treatment"]),
        engine=case["engine"],
        difference=case["difference"],
        confidence=case["confidence"],
        better=case["better"],
        min_units=2,
    )


def test_fixture_covers_every_kind_engine_and_difference() -> None:
    seen = {(c["kind"], c["engine"], c["difference"]) for c in FIXTURE["comparisons"]}
    assert seen == {
        (k, e, d)
        for k in ("proportion", "mean", "ratio", "cuped")
        for e in ("frequentist", "bayesian")
        for d in ("relative", "absolute")
    }


@pytest.mark.parametrize("case", FIXTURE["comparisons"], ids=case_id)
def test_comparison_equals_gbstats(case: dict) -> None:
    expected = case["gbstats"]
    assert expected["error"] is None
    result = run(case).to_dict()
    assert result["error"] is None
    for key in (
        "expected",
        "ci_lower",
        "ci_upper",
        "p_value",
        "chance_to_win",
        "risk_control",
        "risk_treatment",
    ):
        if key in expected:
            assert close(result[key], expected[key]), (key, result[key], expected[key])


@pytest.mark.parametrize("case", FIXTURE["refusals"], ids=case_id)
def test_shopfunnel_refuses_what_gbstats_refuses(case: dict) -> None:
    assert case["gbstats"]["error"]
    result = run(case)
    assert result.error
    assert math.isnan(result.expected) and math.isnan(result.ci_lower)


@pytest.mark.parametrize("case", FIXTURE["srm"], ids=lambda c: str(c["users"]))
def test_srm_p_value_equals_gbstats(case: dict) -> None:
    result = srm_check(case["users"], case["weights"])
    assert close(result.p_value, case["gbstats"]["p_value"])
