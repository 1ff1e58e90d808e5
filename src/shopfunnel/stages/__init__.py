"""The five-stage model: where each person is (awareness → retention), whether they are
moving, and how persons flow between stages over time.

Modules: :mod:`.placement` (stage and status per person, summaries and flows),
:mod:`.gaps` (the usual time between a person's steps and orders).
"""

from __future__ import annotations

from shopfunnel.stages.placement import (
    StagePlacement,
    persons,
    place_persons,
    placement,
    stage_flow,
    stage_summary,
    stage_transitions,
)

__all__ = [
    "StagePlacement",
    "persons",
    "place_persons",
    "placement",
    "stage_flow",
    "stage_summary",
    "stage_transitions",
]
