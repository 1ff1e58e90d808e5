"""The ``shopfunnel`` command line. Each module registers its commands on :data:`app`."""

from __future__ import annotations

from shopfunnel.cli import (
    audiences,  # noqa: F401  (registers commands)
    customers,  # noqa: F401  (registers commands)
    data,  # noqa: F401  (registers commands)
    datasets,  # noqa: F401  (registers commands)
    diagnose,  # noqa: F401  (registers commands)
    funnel,  # noqa: F401  (registers commands)
    sample,  # noqa: F401  (registers commands)
    stages,  # noqa: F401  (registers commands)
)
from shopfunnel.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
