"""The ``shopfunnel`` command line. Each module registers its commands on :data:`app`."""

from __future__ import annotations

from shopfunnel.cli import audiences  # noqa: F401  (registers commands)
from shopfunnel.cli import customers  # noqa: F401  (registers commands)
from shopfunnel.cli import data  # noqa: F401  (registers commands)
from shopfunnel.cli import datasets  # noqa: F401  (registers commands)
from shopfunnel.cli import funnel  # noqa: F401  (registers commands)
from shopfunnel.cli import report  # noqa: F401  (registers commands)
from shopfunnel.cli import sample  # noqa: F401  (registers commands)
from shopfunnel.cli import stages  # noqa: F401  (registers commands)
from shopfunnel.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
