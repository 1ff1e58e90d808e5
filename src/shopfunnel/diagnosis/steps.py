"""The diagnosis's steps: the events a session reaches on the way to a purchase, each with
the five-stage model stage it moves a person into and the stage of the people who fail to
reach it (see :class:`DiagnosisStep`). :mod:`shopfunnel.diagnosis.session_levels` counts
each session's furthest step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiagnosisStep:
    """One diagnosis step: reaching ``event`` in a session (not a funnel :class:`~shopfunnel.funnel.Step`,
    which is an event with filters: a diagnosis step also names the stages it belongs to).

    ``stage`` is the five-stage model stage that reaching this step moves a person into
    (the stage whose tactics address a gap here); ``audience_stage`` is the stage the
    people who fail to reach it are in (who to target).
    """

    name: str
    event: str
    stage: str
    audience_stage: str


DEFAULT_STEPS: tuple[DiagnosisStep, ...] = (
    DiagnosisStep("product view", "view_item", "interest", "awareness"),
    DiagnosisStep("add to cart", "add_to_cart", "decision", "interest"),
    DiagnosisStep("checkout", "begin_checkout", "decision", "decision"),
    DiagnosisStep("shipping info", "add_shipping_info", "purchase", "decision"),
    DiagnosisStep("payment info", "add_payment_info", "purchase", "decision"),
    DiagnosisStep("purchase", "purchase", "purchase", "decision"),
)
VISIT = "visit"

__all__ = ["DEFAULT_STEPS", "VISIT", "DiagnosisStep"]
