"""Shared test helpers: tiny event logs built inside the tests."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

# A pytest-xdist worker inherits COLUMNS=80 from its launcher. Rich reads COLUMNS once, when
# the command line's consoles are created (at the first import of shopfunnel.cli.output),
# and would keep 80 for every later test, whatever width a test asks for. Tests that care
# set COLUMNS themselves (CliRunner's env, monkeypatch).
os.environ.pop("COLUMNS", None)
# Spark commands keep prepared events in a cache dir: never the user's own in tests
if "SHOPFUNNEL_SPARK_CACHE" not in os.environ:
    _spark_cache = tempfile.mkdtemp(prefix="shopfunnel-spark-cache-")
    os.environ["SHOPFUNNEL_SPARK_CACHE"] = _spark_cache
    # removed when this test process ends (each xdist worker has its own)
    atexit.register(shutil.rmtree, _spark_cache, ignore_errors=True)

from shopfunnel.store.store import Store  # noqa: E402

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)

# Property tests explore new random cases on a developer's machine; the gate (`make test`,
# `.ci/run`) runs the same number of cases from a fixed seed, so a landing is never refused
# by a case nobody has seen before (docs/adr/0079). A failure found while exploring is
# kept as an explicit example in the test.
settings.register_profile("gate", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("SHOPFUNNEL_HYPOTHESIS", "explore"))


def log(*rows: tuple, **columns: list) -> pd.DataFrame:
    """Events as (person, minutes after T0, event[, extra dict]) tuples."""
    records = []
    for i, row in enumerate(rows):
        person, minutes, event, *rest = row
        rec = {
            "event_id": f"e{i}",
            "ts": T0 + timedelta(minutes=minutes),
            "event": event,
            "anonymous_id": person,
        }
        if rest:
            rec.update(rest[0])
        records.append(rec)
    return pd.DataFrame(records)


@pytest.fixture
def store() -> Store:
    s = Store(":memory:")
    yield s
    s.close()


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole run (starting one takes 15–30 s); the
    Spark tests share it, and it stops when the run ends."""
    pytest.importorskip("pyspark")
    from shopfunnel.store.spark import local_spark_session

    session = local_spark_session("local[2]", shuffle_partitions=4)
    yield session
    session.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``pytest -n N --dist loadgroup`` (``make test``: docs/adr/0172), the tests that
    share one Spark session run in one worker, and the browser tests in one worker, so
    each starts its JVM or its Chromium once; the rest spread over every worker."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "spark" in fixtures or "spark" in item.path.name:
            item.add_marker(pytest.mark.xdist_group("spark"))
        elif "chromium" in fixtures or "open_page" in fixtures:
            item.add_marker(pytest.mark.xdist_group("browser"))


# Headless Chromium fixtures (`chromium`, `open_page`) for tests marked `browser`.
pytest_plugins = ["browser"]


def command_modules(args: list[str], out: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``shopfunnel ARGS`` in a new Python process (its ``main``, a nonzero exit an
    assertion) and return the run and the modules it had imported at the end (written to
    ``out``)."""
    code = (
        f"import sys\nsys.argv = ['shopfunnel', *{[str(a) for a in args]!r}]\n"
        "from shopfunnel.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        f"open({str(out)!r}, 'w').write(' '.join(sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return run, set(out.read_text().split()) if out.exists() else set()
