"""The ``shopfunnel`` command line.

Each module registers its commands on the Typer ``app``; :func:`main` imports only the
module of the command being run (:data:`shopfunnel.cli.application.COMMANDS`), so the
command line starts in a blink and a command pays only for the libraries it uses.
``from shopfunnel.cli import app`` gives the application with every command loaded.
"""

from __future__ import annotations

import sys
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name == "app":
        from shopfunnel.cli.application import app

        load_all_commands()
        return app
    raise AttributeError(f"module 'shopfunnel.cli' has no attribute {name!r}")


__all__ = ["app", "main"]
