"""Funnels: ordered, strict and any-order conversion between steps within a window.

:mod:`.api` (the ``funnel`` function and ``Step``), :mod:`.engine` (the plan and the
timeline and SQL strategies), :mod:`.kernel` (the compiled per-person pass),
:mod:`.result` (``FunnelResult``: steps, breakdown, trend, dropped persons),
:mod:`.spark` (the same kernel on Apache Spark).
"""

from __future__ import annotations

from shopfunnel.funnel.api import Step, funnel

__all__ = ["Step", "funnel"]
