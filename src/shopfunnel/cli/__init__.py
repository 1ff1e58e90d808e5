"""The ``shopfunnel`` command line. Each module registers its commands on :data:`app`."""

from __future__ import annotations

from shopfunnel.cli import (  # noqa: F401  (each module registers its commands)
    audiences,
    customers,
    data,
    datasets,
    demo,
    diagnose,
    funnel,
    report,
    sample,
    serve,
    stages,
)
from shopfunnel.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
