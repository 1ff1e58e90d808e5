"""The ``shopfunnel`` command line. Each module registers its commands on :data:`app`."""

from __future__ import annotations

from shopfunnel.cli import audiences, data, report  # noqa: F401  (registers commands)
from shopfunnel.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
