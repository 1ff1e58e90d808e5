# shopfunnel: the two commands of the README, and the pieces they stand on.
# `make demo`  builds a sample store in shopfunnel.duckdb and shows its funnel (installs first).
# `make test`  installs everything the tests need (Python packages, Chromium) and runs them all.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Tests run on every core (pytest-xdist); Spark's and the browser's tests each stay on one
# worker (tests/conftest.py groups them), so each starts once. PYTEST_WORKERS=0: in one process.
PYTEST_WORKERS ?= auto

.PHONY: demo test install install-test browser lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e .

install-test: $(PY) browser
	$(PY) -m pip install --quiet -e '.[dev]'

# Browser tests drive Debian's Chromium through Playwright (Playwright cannot download its own here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: install
	$(VENV)/bin/shopfunnel demo

test: install-test
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests
	$(PY) -m mypy
	SHOPFUNNEL_HYPOTHESIS=gate $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(PY)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests
	$(PY) -m mypy

bench: install-test
	PYTHONPATH=src $(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) shopfunnel.duckdb shopfunnel.duckdb.wal shopfunnel.duckdb.timeline report.html out
