"""The five-stage model: where each person is (awareness → retention), whether they are
moving, and how persons flow between stages over time.

Modules: :mod:`.placement` (stage and status per person), :mod:`.summary` (persons per
stage and status, and the flow between two dates), :mod:`.orders` (each person's orders),
:mod:`.evidence` (the per-person facts, from the sorted timeline or by SQL),
:mod:`.status` (active, stalled, lapsed, gone: thresholds from the store's own returns),
:mod:`.gaps` (the gaps between a customer's orders behind lapsed and gone).
"""

from __future__ import annotations

from shopfunnel.stages.placement import (
    StagePlacement,
    persons,
    place_persons,
    placement,
    placements,
)
from shopfunnel.stages.summary import stage_flow, stage_summary, stage_transitions

__all__ = [
    "StagePlacement",
    "persons",
    "place_persons",
    "placement",
    "placements",
    "stage_flow",
    "stage_summary",
    "stage_transitions",
]
