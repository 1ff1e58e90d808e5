"""Find the weakest stage: baselines and published benchmarks, gaps between segments,
incidents over time, checkout and correlation evidence, the playbook of tactics that fit,
and what-if replays of incentives.

:mod:`.diagnose` assembles the findings; the other modules each own one kind of evidence.
"""
