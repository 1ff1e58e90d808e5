"""The built-in audiences on Spark have the store's members, from the same raw files.

Spark reads the sample store's raw events (no ``person_id``), applies the store's load
rules; the persons seen, the orders at ``as_of`` and the ``abandoned`` rule come from Spark
SQL, the placement from its Spark path, and the rules run unchanged
(``audiences/evaluate.py``). The reference is the DuckDB Store loaded from the same file:
every built-in audience must have exactly the same persons, at the latest event and at an
earlier instant, and ``audience show --engine spark`` must print what ``--db`` prints.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shopfunnel.audiences.builtins import builtin_audiences
from shopfunnel.audiences.definitions import EventsRule
from shopfunnel.audiences.lists import profiles
from shopfunnel.audiences.saved import audience_members
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model

pytest.importorskip("pyspark")

from spark_samples import raw_and_store  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]

AS_OF = "2024-03-15 12:00:00"


@pytest.fixture(scope="module")
def sample(spark, tmp_path_factory):
    """The sample store's raw file, the DuckDB store loaded from it, the file on Spark."""
    with raw_and_store(spark, tmp_path_factory.mktemp("spark_audiences"), 30_000, seed=3) as made:
        yield made


@pytest.mark.parametrize("as_of", [None, AS_OF])
def test_every_builtin_audience_on_spark_has_the_stores_members(sample, as_of) -> None:
    _, _, store, events = sample
    model = Model()
    names = [a.name for a in builtin_audiences(model)]
    assert {"abandoned-carts", "vip", "lapsed-customers", "one-time-buyers"} <= set(names)
    sizes = {}
    for name in names:
        local = audience_members(store, name, as_of=as_of, model=model)
        remote = audience_members(events, name, as_of=as_of, model=model)
        assert list(remote["person_id"]) == list(local["person_id"]), name
        sizes[name] = len(local)
    # the comparison is not between empty lists
    assert sizes["abandoned-carts"] > 0 and sizes["one-time-buyers"] > 0 and sizes["vip"] > 0
    assert sum(1 for n in sizes.values() if n > 0) >= len(names) - 2, sizes


def test_profiles_on_spark_equal_the_stores(sample) -> None:
    _, _, store, events = sample
    import pandas as pd

    members = list(audience_members(store, "one-time-buyers")["person_id"])[:50]
    when = pd.Timestamp(AS_OF)
    local = profiles(store, [*members, "nobody"], as_of=when)
    remote = profiles(events, [*members, "nobody"], as_of=when)
    pd.testing.assert_frame_equal(remote, local, check_dtype=False)


def test_an_events_rule_on_spark_is_refused_with_what_to_do(sample) -> None:
    _, _, _, events = sample
    with pytest.raises(ConfigError, match="load the events into a store"):
        audience_members(events, EventsRule(event="view_item", at_least=1, within="7d"))


def test_audience_show_with_engine_spark_prints_what_the_store_gives(sample) -> None:
    from shopfunnel.cli import app

    path, db, _, _ = sample

    def run(*args: str) -> object:
        result = CliRunner().invoke(
            app, ["audience", "show", "lapsed-customers", *args, "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    local = run("--db", db)
    assert len(local) > 0
    assert run("--engine", "spark", "--events", path) == local


def test_audience_refresh_on_spark_says_where_membership_history_lives(sample) -> None:
    from shopfunnel.cli import app

    path, _, _, _ = sample
    result = CliRunner().invoke(
        app, ["audience", "refresh", "vip", "--engine", "spark", "--events", path]
    )
    assert result.exit_code != 0
    assert "audience show NAME" in result.output and "--engine spark" in result.output
