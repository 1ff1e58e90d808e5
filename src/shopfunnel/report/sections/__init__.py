"""Section builders: analysis results (DataFrames) in, a :class:`Section` out.

Each builder is a small pure function, testable without a store. A builder whose data
cannot support it returns a section with a short ``note`` instead of raising, so a thin
or young store still gets a whole report.
"""

from shopfunnel.report.sections.checkout import checkout_section
from shopfunnel.report.sections.customers import cohort_section, rfm_section, whatif_section
from shopfunnel.report.sections.diagnosis import (
    INCIDENT_KINDS,
    audience_of,
    diagnosis_section,
    finding_headline,
    finding_period,
    tactics_of,
)
from shopfunnel.report.sections.experiments import experiments_section
from shopfunnel.report.sections.funnel import (
    breakdown_section,
    steps_section,
    time_to_convert_section,
    trend_section,
)
from shopfunnel.report.sections.programs import programs_section
from shopfunnel.report.sections.stages import (
    stage_colour,
    stage_distribution_section,
    stage_flow_section,
    stage_funnel_section,
)
from shopfunnel.report.sections.store import activity_section, overview_section

__all__ = [
    "INCIDENT_KINDS",
    "activity_section",
    "audience_of",
    "breakdown_section",
    "checkout_section",
    "cohort_section",
    "diagnosis_section",
    "experiments_section",
    "finding_headline",
    "finding_period",
    "overview_section",
    "programs_section",
    "rfm_section",
    "stage_colour",
    "stage_distribution_section",
    "stage_flow_section",
    "stage_funnel_section",
    "steps_section",
    "tactics_of",
    "time_to_convert_section",
    "trend_section",
    "whatif_section",
]
