"""The ``shopfunnel`` command line. Each module registers its commands on :data:`app`."""

from __future__ import annotations

<<<<<<< HEAD
from shopfunnel.cli import audiences  # noqa: F401  (registers commands)
from shopfunnel.cli import data  # noqa: F401  (registers commands)
from shopfunnel.cli import sample  # noqa: F401  (registers commands)
from shopfunnel.cli import serve  # noqa: F401  (registers commands)
=======
from shopfunnel.cli import (  # noqa: F401  (each module registers its commands)
    audiences,
    customers,
    data,
    datasets,
    funnel,
    sample,
    stages,
)
>>>>>>> main
from shopfunnel.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
