"""Assignment is GrowthBook's hash v2, sticky across processes, the same in the served
snippet (run under node) as in Python, and balanced within sampling error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from shopfunnel.errors import ConfigError
from shopfunnel.experiments import assignment
from shopfunnel.experiments.assignment import (
    assign_variant,
    bucket_ranges,
    choose_variant,
    hash_unit,
    in_holdout,
)
from shopfunnel.experiments.srm import srm_check
from shopfunnel.server.app import STATIC

# GrowthBook's SDK test cases (packages/sdk-js/test/cases.json, "hash" with version 2)
HASH_V2 = [
    ("seed", "a", 0.0505),
    ("seed", "b", 0.2696),
    ("foo", "ab", 0.2575),
    ("foo", "def", 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 0.124),
    ("90850943850283058242805", "123", 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 0.0128),
]
# ... and "getBucketRange": (count, coverage, weights) -> ranges
BUCKET_RANGES = [
    ((2, 1, None), [(0, 0.5), (0.5, 1)]),
    ((2, 0.5, None), [(0, 0.25), (0.5, 0.75)]),
    ((4, 1, None), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ((2, 1, [0.4, 0.6]), [(0, 0.4), (0.4, 1)]),
    ((3, 0.2, [0.2, 0.3, 0.5]), [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ((2, -0.2, None), [(0, 0), (0.5, 0.5)]),
    ((2, 1.5, None), [(0, 0.5), (0.5, 1)]),
    ((2, 1, [0.4, 0.1]), [(0, 0.5), (0.5, 1)]),
    ((4, 1, [0.4, 0.4, 0.2]), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ((2, 1, [0.4, 0.5999]), [(0, 0.4), (0.4, 0.9999)]),
]


@pytest.mark.parametrize(("seed", "value", "expected"), HASH_V2)
def test_hash_equals_growthbooks_v2_test_vectors(seed: str, value: str, expected: float) -> None:
    assert hash_unit(seed, value) == expected


@pytest.mark.parametrize(("args", "expected"), BUCKET_RANGES)
def test_bucket_ranges_equal_growthbooks_test_vectors(args, expected) -> None:
    flat = [x for r in bucket_ranges(*args) for x in r]
    assert flat == pytest.approx([x for r in expected for x in r])


def test_a_hash_at_a_range_end_goes_to_the_next_arm() -> None:
    ranges = bucket_ranges(2)
    assert choose_variant(0.4999, ranges) == 0
    assert choose_variant(0.5, ranges) == 1
    assert choose_variant(0.3, bucket_ranges(2, 0.5)) == -1  # outside the covered share


def test_assignment_is_the_same_in_another_process() -> None:
    ids = [f"person-{i}" for i in range(200)]
    here = [assign_variant("checkout-v2", i, 3) for i in ids]
    code = (
        "import json,sys\nfrom shopfunnel.experiments.assignment import assign_variant\n"
        "print(json.dumps([assign_variant('checkout-v2', i, 3) for i in json.load(sys.stdin)]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(ids),
        text=True,
        capture_output=True,
        check=True,
        env=env,
    ).stdout
    assert json.loads(out) == here


NODE_HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const stored = {};
const script = {getAttribute: (k) => ({"data-write-key": "sfk_test", "data-auto-page": "false"})[k] || null,
                src: "http://collector.test/sdk.js"};
const window = {localStorage: {getItem: (k) => stored[k] || null, setItem: (k, v) => { stored[k] = v; }},
                addEventListener: () => {}};
const sandbox = {window, URL, URLSearchParams, setTimeout: () => 0, clearTimeout: () => {},
  location: {href: "http://shop.test/", search: "", host: "shop.test", protocol: "http:"},
  navigator: {userAgent: "node"}, fetch: () => new Promise(() => {}),
  document: {currentScript: script, cookie: "", referrer: "", addEventListener: () => {},
             querySelector: () => script}};
vm.runInNewContext(fs.readFileSync(input.sdk, "utf8"), sandbox);
const sf = window.shopfunnel;
const out = {assign: input.cases.map(([k, id, w]) => sf.assign(k, id, w)),
             holdout: input.holdouts.map(([k, id, s]) => sf.inHoldout(k, id, s))};
out.experiment = [sf.experiment("checkout-v2"), sf.experiment("checkout-v2"), sf.experiment("banner", [0.2, 0.8])];
out.anonymousId = sf.anonymousId();
out.queue = JSON.parse(stored["sf_q"] || "[]");
console.log(JSON.stringify(out));
"""


def run_snippet(cases: list, holdouts: list) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    payload = json.dumps({"sdk": str(STATIC / "sdk.js"), "cases": cases, "holdouts": holdouts})
    out = subprocess.run(
        [node, "-e", NODE_HARNESS], input=payload, text=True, capture_output=True, check=True
    ).stdout
    return json.loads(out)


IDS = (
    [f"person-{i}" for i in range(300)]
    + [str(i) for i in range(300)]
    + ["", "ÄÖÜ-é", "名前", "emoji-😀", "a" * 200, "user@example.com", 'q"uote\\back']
)
WEIGHTS = [2, 3, [0.5, 0.5], [0.8, 0.2], [0.1, 0.3, 0.6]]


def test_snippet_and_python_assign_the_same_variants() -> None:
    cases = [
        [key, pid, w]
        for key in ("checkout-v2", "free-shipping-banner")
        for pid in IDS
        for w in WEIGHTS
    ]
    holdouts = [["winback-flow", pid, share] for pid in IDS for share in (0.05, 0.5)]
    js = run_snippet(cases, holdouts)
    assert js["assign"] == [assign_variant(*c) for c in cases]
    assert js["holdout"] == [in_holdout(*h) for h in holdouts]
    assert set(js["assign"]) == {0, 1, 2}


def test_snippet_experiment_tracks_one_exposure_per_key() -> None:
    js = run_snippet([], [])
    control_or_variant, again, banner = js["experiment"]
    assert control_or_variant == again == assign_variant("checkout-v2", js["anonymousId"])
    assert banner == assign_variant("banner", js["anonymousId"], [0.2, 0.8])
    exposures = [(e["event"], e["properties"]) for e in js["queue"]]
    assert exposures == [
        ("experiment_exposure", {"experiment": "checkout-v2", "variant": str(control_or_variant)}),
        ("experiment_exposure", {"experiment": "banner", "variant": str(banner)}),
    ]


@pytest.mark.parametrize("weights", [2, [0.8, 0.2], 3])
def test_assignment_of_100000_persons_passes_the_srm_check(weights) -> None:
    shares = assignment.check_weights(weights)
    counts = Counter(assign_variant("checkout-v2", f"p{i}", weights) for i in range(100_000))
    users = [counts[v] for v in range(len(shares))]
    assert srm_check(users, shares).p_value > 0.001, users


def test_holdout_share_is_kept_nested_and_independent_of_the_experiment() -> None:
    ids = [f"p{i}" for i in range(20_000)]
    at_5 = {i for i in ids if in_holdout("checkout-v2", i, 0.05)}
    at_10 = {i for i in ids if in_holdout("checkout-v2", i, 0.10)}
    assert at_5 <= at_10
    assert srm_check([len(at_10), len(ids) - len(at_10)], [0.1, 0.9]).p_value > 0.001
    # held-out persons split between the same key's variants like everyone else
    variants = Counter(assign_variant("checkout-v2", i) for i in at_10)
    assert srm_check([variants[0], variants[1]]).p_value > 0.001


@pytest.mark.parametrize(
    "bad",
    [
        lambda: assign_variant("", "p1"),
        lambda: assign_variant("k", "p1", 1),
        lambda: assign_variant("k", "p1", [0.5, 0.6]),
        lambda: assign_variant("k", "p1", [1.2, -0.2]),
        lambda: assign_variant("k", 1.5),
        lambda: in_holdout("k", "p1", 1.5),
    ],
)
def test_bad_assignment_arguments_raise_config_error(bad) -> None:
    with pytest.raises(ConfigError):
        bad()
