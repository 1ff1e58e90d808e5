"""The diagnosis on Spark gives the store's diagnosis, from the same raw files.

Spark reads the sample store's raw events (no ``person_id``), applies the store's load
rules and computes the diagnosis's inputs in Spark SQL (the sessions table, order counts,
checkout sessions, correlation counts: ``store/spark_diagnosis.py``); the local diagnosis
functions run on them. The reference is a DuckDB Store loaded from the same file: the
findings, incidents, gaps and every table of the diagnosis must be equal (compared as the
JSON the command line prints).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shopfunnel.diagnosis.diagnose import diagnose
from shopfunnel.store.store import Store

pytest.importorskip("pyspark")

from spark_samples import raw_and_store  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]


@pytest.fixture(scope="module")
def sample(spark, tmp_path_factory):
    """The sample store's raw file, the DuckDB store loaded from it, the file on Spark."""
    folder = tmp_path_factory.mktemp("spark_diagnosis")
    with raw_and_store(spark, folder, 40_000, seed=11) as (path, db, _store, events):
        yield path, db, events


def rounded(data: object) -> object:
    """JSON with floats to 9 significant digits (a sum of order values depends on the
    order of the rows, which neither engine fixes)."""
    return json.loads(
        json.dumps(data, default=str), parse_float=lambda text: float(f"{float(text):.9g}")
    )


def test_diagnosis_on_spark_equals_the_stores_findings_incidents_and_gaps(sample) -> None:
    _, db, events = sample
    with Store(db, read_only=True) as store:
        local = diagnose(store).to_dict()
    remote = diagnose(events).to_dict()
    assert local["sessions"] > 1000 and local["orders"] > 50
    assert len(local["findings"]) > 0 and len(local["correlations"]) > 0
    assert len(local["checkout"]) > 0
    for key in local:
        assert rounded(remote[key]) == rounded(local[key]), key


def test_diagnose_with_engine_spark_prints_what_the_store_gives(sample) -> None:
    from shopfunnel.cli import app

    path, db, _ = sample

    def run(*args: str) -> object:
        result = CliRunner().invoke(app, ["diagnose", *args, "--format", "json", "--top", "50"])
        assert result.exit_code == 0, result.output
        return rounded(json.loads(result.stdout))

    assert run("--engine", "spark", "--events", path) == run("--db", db)
