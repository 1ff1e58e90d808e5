"""The command line starts fast: the top-level help lists every command from a table
without importing the command modules, and that table matches what the modules register."""

from __future__ import annotations

import subprocess
import sys

import typer

from shopfunnel.cli import app
from shopfunnel.cli.application import COMMANDS

HEAVY = ("pandas", "duckdb", "numba", "scipy", "fastapi", "plotly", "pyarrow", "polars")


def registered() -> dict[str, tuple[str, str]]:
    group = typer.main.get_command(app)
    found = {}
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        command = group.commands[name]
        found[name] = (
            info.callback.__module__.rsplit(".", 1)[-1],
            command.get_short_help_str(limit=150),
        )
    for info in app.registered_groups:
        command = group.commands[info.name]
        module = info.typer_instance.registered_commands[0].callback.__module__
        found[info.name] = (module.rsplit(".", 1)[-1], command.get_short_help_str(limit=150))
    return found


def test_the_command_table_names_every_registered_command_with_its_module_and_help() -> None:
    assert registered() == COMMANDS


def imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_import_shopfunnel_loads_no_heavy_library() -> None:
    assert not imported_after("import shopfunnel") & set(HEAVY)


def test_the_top_level_help_loads_no_command_module_and_no_heavy_library() -> None:
    code = (
        "import sys\nsys.argv = ['shopfunnel', '--help']\nfrom shopfunnel.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    loaded = imported_after(code)
    assert not loaded & set(HEAVY)


def test_the_funnel_command_help_loads_no_heavy_library() -> None:
    code = (
        "import sys\nsys.argv = ['shopfunnel', 'funnel', '--help']\nfrom shopfunnel.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert not imported_after(code) & set(HEAVY)


def test_a_misspelt_command_is_refused_with_the_closest_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shopfunnel", "funnl"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "funnel" in result.stderr


def test_verbose_says_how_long_a_command_took(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shopfunnel",
            "-v",
            "sample",
            "--events",
            "200",
            "--out",
            str(tmp_path / "s.parquet"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "took" in result.stderr and "peak memory" in result.stderr


def test_counting_a_funnel_on_a_store_loads_neither_pandas_nor_scipy(tmp_path) -> None:
    """The warm funnel, as table and as JSON, needs numba, DuckDB and Arrow only: pandas,
    scipy.linalg and numpy.ma cost about 0.6 s of every call (ADRs 0157, 0158)."""
    from conftest import command_modules, log
    from shopfunnel.funnel.api import funnel
    from shopfunnel.store.store import Store

    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        store.load(log(("a", 0, "view"), ("a", 1, "buy"), ("b", 0, "view")))
        funnel(store, ["view", "buy"])  # sorts the timeline: the next funnels are warm
    modules = tmp_path / "modules.txt"
    # once first, so numba's cache holds every kernel (a compile imports what a load does not)
    warm = [sys.executable, "-m", "shopfunnel", "funnel", "--db", str(db), "--steps", "view,buy"]
    assert subprocess.run(warm, capture_output=True, text=True).returncode == 0
    for fmt in ("table", "json"):
        run, loaded = command_modules(
            ["funnel", "--db", db, "--steps", "view,buy", "--format", fmt], modules
        )
        assert run.returncode == 0, run.stderr
        assert "2" in run.stdout  # the funnel was printed
        assert "numba" in loaded  # the kernel ran
        assert not loaded & {"pandas", "scipy.linalg", "numpy.ma", "fastapi", "plotly"}, fmt
        # typer from 0.29 parses every option through pydantic (0.15-0.2 s: ADR 0170), and
        # numba's environments of its own implementations are not imported (ADR 0157)
        assert not loaded & {"pydantic", "numba.np.arrayobj"}, fmt


_RUN_WITH_PROBES = """
import atexit, sys
atexit.register(lambda: print("exit handlers ran", file=sys.stderr))
class Probe:
    def __del__(self):
        print("interpreter torn down", file=sys.stderr)
probe = Probe()  # freed only by the interpreter's teardown
sys.argv = ["shopfunnel", *{argv!r}]
from shopfunnel.cli import run
run()
"""


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    code = _RUN_WITH_PROBES.format(argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_a_reading_command_ends_without_the_teardown_and_loses_no_output(tmp_path) -> None:
    """After a reading command (QUICK_EXIT) the program runs the exit handlers, flushes and
    ends: its output, its --out file, --verbose and its exit code are those of a normal exit
    (docs/adr/0171)."""
    import json

    from conftest import log
    from shopfunnel.cli import QUICK_EXIT
    from shopfunnel.store.store import Store

    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        store.load(log(("a", 0, "view"), ("a", 1, "buy"), ("b", 0, "view")))
    args = ["funnel", "--db", str(db), "--steps", "view,buy", "--format", "json"]
    shown = _run(["-v", *args])
    assert shown.returncode == 0, shown.stderr
    assert [s["persons"] for s in json.loads(shown.stdout)["steps"]] == [2, 1]
    assert "took" in shown.stderr and "exit handlers ran" in shown.stderr
    assert "interpreter torn down" not in shown.stderr  # the quick exit happened
    out = tmp_path / "f.json"
    written = _run([*args, "--out", str(out)])
    assert written.returncode == 0, written.stderr
    assert json.loads(out.read_text()) == json.loads(shown.stdout)
    refused = _run(["funnel", "--db", str(tmp_path / "none.duckdb"), "--steps", "view,buy"])
    assert refused.returncode == 1 and "no store at" in refused.stderr
    assert "exit handlers ran" in refused.stderr
    assert {"funnel", "info", "stages", "rfm"} <= QUICK_EXIT and "serve" not in QUICK_EXIT


def test_a_command_that_writes_exits_normally(tmp_path) -> None:
    done = _run(["sample", "--events", "200", "--out", str(tmp_path / "s.parquet")])
    assert done.returncode == 0, done.stderr
    assert "interpreter torn down" in done.stderr and (tmp_path / "s.parquet").exists()


def _hugepage_request_after_run(env_value: str | None) -> str:
    """numpy's huge-page setting in a process that ran the program (``--help``), with
    ``NUMPY_MADVISE_HUGEPAGE`` set by the user to ``env_value`` (None: not set)."""
    import os

    code = (
        "import sys\nimport shopfunnel.cli as c\n"
        "assert 'numpy' not in sys.modules\n"
        "sys.argv = ['shopfunnel', '--help']\n"
        "try:\n    c.run()\nexcept SystemExit:\n    pass\n"
        "from numpy._core import multiarray\n"
        "print(multiarray._get_madvise_hugepage(), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if env_value is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return done.stderr.strip().splitlines()[-1]


def test_the_program_asks_numpy_for_no_huge_pages_unless_the_user_says_otherwise() -> None:
    """docs/adr/0178: set before numpy loads, so numpy reads it; a user's own setting wins."""
    assert _hugepage_request_after_run(None) == "False"
    assert _hugepage_request_after_run("1") == "True"
