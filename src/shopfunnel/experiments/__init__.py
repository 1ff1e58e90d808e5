"""Experiments and holdouts: who saw which variant, and did it change the funnel?

- :mod:`~shopfunnel.experiments.statistics`: the sufficient statistics of an arm
  (:class:`Proportion`, :class:`Mean`, :class:`Ratio`, :class:`Adjusted` for CUPED).
- :mod:`~shopfunnel.experiments.compare`: :func:`compare_arms` with the frequentist
  (:func:`welch_t_test`) or Bayesian (:func:`bayesian_test`) engine, equal to GrowthBook's gbstats.
- :mod:`~shopfunnel.experiments.srm`: :func:`srm_check`, the sample-ratio-mismatch test.
- :mod:`~shopfunnel.experiments.assignment`: :func:`assign_variant` and :func:`in_holdout`,
  GrowthBook's hash v2, the same in the tracking snippet.

Definitions of every statistic: docs/experiments.md.
"""

from shopfunnel.experiments.assignment import assign_variant, in_holdout
from shopfunnel.experiments.bayesian import BayesianResult, bayesian_test
from shopfunnel.experiments.compare import compare_arms
from shopfunnel.experiments.frequentist import FrequentistResult, welch_t_test
from shopfunnel.experiments.srm import SrmResult, srm_check
from shopfunnel.experiments.statistics import Adjusted, Mean, Proportion, Ratio, cuped, cuped_theta

__all__ = [
    "Adjusted",
    "BayesianResult",
    "FrequentistResult",
    "Mean",
    "Proportion",
    "Ratio",
    "SrmResult",
    "assign_variant",
    "bayesian_test",
    "compare_arms",
    "cuped",
    "cuped_theta",
    "in_holdout",
    "srm_check",
    "welch_t_test",
]
