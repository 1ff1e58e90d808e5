"""The report shows the store's experiments, and no experiments section when it has none."""

from __future__ import annotations

from conftest import log
from shopfunnel.report import build as build_module
from shopfunnel.report.render import render_section
from shopfunnel.sample import PlantedExperiment, generate_sample


def test_a_store_with_an_experiment_gets_an_experiments_section(store) -> None:
    store.load(generate_sample(60_000, seed=7, experiment=PlantedExperiment(effect=1.0)))
    assert ("experiments", "Experiments", build_module._experiments) in build_module.PLAN
    section = build_module._experiments(build_module.Context(store))
    html = render_section(section)
    assert "checkout-v2" in html and "begin_checkout → purchase" in html
    assert "the split looks as intended" in html


def test_a_store_without_experiments_has_no_experiments_section(store) -> None:
    store.load(log(("p", 0, "page_view")))
    assert build_module._experiments(build_module.Context(store)) is None
