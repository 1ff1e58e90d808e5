"""The ``shopfunnel`` command line.

Each module registers its commands on the Typer ``app``; :func:`main` imports only the
module of the command being run (:data:`shopfunnel.cli.application.COMMANDS`), so the
command line starts in a blink and a command pays only for the libraries it uses.
``from shopfunnel.cli import app`` gives the application with every command loaded.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from shopfunnel.cli.application import COMMANDS, load_all_commands, load_command_module


def _command_name(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main() -> None:
    from shopfunnel.cli.application import app

    name = _command_name(sys.argv[1:])
    if name in COMMANDS:
        load_command_module(name)
    elif name is not None:
        load_all_commands()  # a misspelt command: every name loaded, so the error can suggest one
    app()


# Commands that read the store and print (or write with ``--out``, closing the file): when
# one of them has finished, the process ends without tearing the interpreter down.
QUICK_EXIT = frozenset(
    {"funnel", "stages", "persons", "flow", "diagnose", "whatif", "retention", "rfm", "clv"}
    | {"info", "person"}
)


def run() -> NoReturn:
    """The ``shopfunnel`` program: :func:`main`, then the exit. After a command of
    :data:`QUICK_EXIT` the process runs its exit handlers, flushes its output and ends at
    once (``os._exit``), skipping the interpreter's teardown: freeing every module of numba,
    LLVM, DuckDB and Arrow one object at a time took 0.15-0.2 s of CPU after a 10M-event
    funnel, longer than printing it (docs/adr/0171). Other commands, and any run with Spark,
    exit normally.

    Before any of numpy is loaded, it asks numpy not to request huge pages for its large
    arrays (``NUMPY_MADVISE_HUGEPAGE=0``, unless the user set it): where the kernel
    compacts memory for such a request when the page is first touched (THP ``defrag`` set
    to ``madvise``, a common default), a command that allocates its arrays once and reads
    them once paid more in that than it gained (docs/adr/0178)."""
    import os

    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    name = _command_name(sys.argv[1:])
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if name not in QUICK_EXIT or "pyspark" in sys.modules:
        sys.exit(code)
    _exit_now(code)


def _exit_now(code: object) -> NoReturn:
    import atexit
    import contextlib
    import os

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as Python does for sys.exit("message")
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # a closed pipe: nothing more can be written to it
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def __getattr__(name: str) -> Any:
    if name == "app":
        from shopfunnel.cli.application import app

        load_all_commands()
        return app
    raise AttributeError(f"module 'shopfunnel.cli' has no attribute {name!r}")


__all__ = ["app", "main", "run"]
