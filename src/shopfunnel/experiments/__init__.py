"""Experiments and holdouts: who saw which variant, and did it change the funnel?

- :mod:`~shopfunnel.experiments.statistics`: the sufficient statistics of an arm
  (:class:`Proportion`, :class:`Mean`, :class:`Ratio`, :class:`Adjusted` for CUPED).
- :mod:`~shopfunnel.experiments.compare`: :func:`compare_arms` with the frequentist
  (:func:`welch_t_test`) or Bayesian (:func:`bayesian_test`) engine, equal to GrowthBook's gbstats.
- :mod:`~shopfunnel.experiments.srm`: :func:`srm_check`, the sample-ratio-mismatch test.
- :mod:`~shopfunnel.experiments.assignment`: :func:`assign_variant` and :func:`in_holdout`,
  GrowthBook's hash v2, the same in the tracking snippet.
- :mod:`~shopfunnel.experiments.metrics`: what is measured per exposed person
  (:func:`conversion`, :func:`revenue_per_visitor`, :func:`average_order_value`,
  :func:`retention`, :func:`refund_rate`); :func:`analyze_experiment` reads an experiment
  from the store's exposures, :func:`holdout_lift` a holdout.

Definitions of every statistic: docs/experiments.md.
"""

from shopfunnel.experiments.analysis import ExperimentReport, analyze_experiment
from shopfunnel.experiments.assignment import assign_variant, in_holdout
from shopfunnel.experiments.bayesian import BayesianResult, bayesian_test
from shopfunnel.experiments.compare import compare_arms
from shopfunnel.experiments.exposures import list_experiments
from shopfunnel.experiments.frequentist import FrequentistResult, welch_t_test
from shopfunnel.experiments.holdout import HoldoutLift, holdout_lift
from shopfunnel.experiments.metrics import (
    Metric,
    average_order_value,
    conversion,
    refund_rate,
    retention,
    revenue_per_visitor,
)
from shopfunnel.experiments.srm import SrmResult, srm_check
from shopfunnel.experiments.statistics import Adjusted, Mean, Proportion, Ratio, cuped, cuped_theta

__all__ = [
    "Adjusted",
    "BayesianResult",
    "ExperimentReport",
    "FrequentistResult",
    "HoldoutLift",
    "Mean",
    "Metric",
    "Proportion",
    "Ratio",
    "SrmResult",
    "analyze_experiment",
    "assign_variant",
    "average_order_value",
    "bayesian_test",
    "compare_arms",
    "conversion",
    "cuped",
    "cuped_theta",
    "holdout_lift",
    "in_holdout",
    "list_experiments",
    "refund_rate",
    "retention",
    "revenue_per_visitor",
    "srm_check",
    "welch_t_test",
]
