"""The model file: defaults without a file, custom stages from TOML, and clear error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from shopfunnel.errors import ConfigError
from shopfunnel.model import DEFAULT_FUNNEL_STEPS, Model, load_model, model_from_dict

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shopfunnel.toml"


def write(tmp_path: Path, text: str, name: str = "shopfunnel.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_model(path)
    return str(exc.value)


def test_defaults_work_with_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = load_model()
    assert model.source is None
    assert model.stage_names == ["Awareness", "Interest", "Decision", "Purchase", "Retention"]
    by_name = {s.name: s for s in model.stages}
    assert {"page_view", "session_start", "view_promotion", "select_promotion"} <= set(
        by_name["Awareness"].events
    )
    assert {
        "view_item_list",
        "select_item",
        "view_item",
        "search",
        "view_search_results",
        "quiz_complete",
    } <= set(by_name["Interest"].events)
    assert set(by_name["Decision"].events) == {
        "add_to_cart",
        "view_cart",
        "add_to_wishlist",
        "begin_checkout",
        "add_shipping_info",
        "add_payment_info",
    }
    assert by_name["Purchase"].events == ("purchase",)
    assert by_name["Retention"].min_orders == 2
    assert (
        model.funnel.steps
        == DEFAULT_FUNNEL_STEPS
        == ("view_item", "add_to_cart", "begin_checkout", "purchase")
    )
    assert model.funnel.window_seconds == 7 * 86400
    assert model.placement.lookback_seconds == 365 * 86400


def test_load_model_without_a_path_reads_shopfunnel_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[funnel]\nwindow = "2d"\n')
    monkeypatch.chdir(tmp_path)
    model = load_model()
    assert model.funnel.window_seconds == 2 * 86400
    assert model.source == "shopfunnel.toml"
    assert model.stage_names[0] == "Awareness"  # sections not given keep their defaults


def test_a_missing_explicit_path_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml.*does not exist"):
        load_model(tmp_path / "nope.toml")


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[funnel]\nsteps = [view_item]\n")
    assert "shopfunnel.toml" in message and "not valid TOML" in message and "line 2" in message


def test_custom_stages_replace_the_defaults_and_move_events(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[stages]]
        name = "Browse"
        events = ["page_view", "view_item", "view_cart"]

        [[stages]]
        name = "Buy"
        events = ["purchase"]

        [[stages]]
        name = "Loyal"
        min_orders = 3
        description = "three orders"
        """,
    )
    model = load_model(path)
    assert model.stage_names == ["Browse", "Buy", "Loyal"]
    assert model.event_stage() == {"page_view": 0, "view_item": 0, "view_cart": 0, "purchase": 1}
    assert model.stages[2].min_orders == 3 and model.stages[2].events == ()
    assert model.stage_index("LOYAL") == 2


def test_an_unknown_key_in_a_stage_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[[stages]]\nname = "A"\nevnts = ["page_view"]\n')
    assert "shopfunnel.toml: stages[0].evnts: unknown key" in message
    assert "allowed keys are name, events, min_orders, description" in message


def test_an_unknown_key_in_a_known_section_is_an_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[funnel]\nwindw = "7d"\n')
    assert "funnel.windw: unknown key; allowed keys are steps, window" in message


def test_an_event_in_two_stages_names_both(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        '[[stages]]\nname = "A"\nevents = ["page_view"]\n'
        '[[stages]]\nname = "B"\nevents = ["purchase", "page_view"]\n',
    )
    assert "'page_view' is in both 'A' and 'B'" in message and "stages:" in message


def test_stage_names_must_differ_ignoring_case(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        '[[stages]]\nname = "Buy"\nevents = ["a"]\n[[stages]]\nname = "buy"\nevents = ["b"]\n',
    )
    assert "'buy' is used twice" in message


def test_a_stage_needs_events_or_min_orders(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[[stages]]\nname = "Empty"\n')
    assert "stages[0]" in message and "neither events nor min_orders" in message


def test_stage_names_used_by_the_flow_are_reserved(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[[stages]]\nname = "Lapsed"\nevents = ["a"]\n')
    assert "stages[0].name" in message and "reserved" in message


def test_min_orders_must_be_at_least_one(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[[stages]]\nname = "A"\nmin_orders = 0\n')
    assert "stages[0].min_orders" in message and "greater than or equal to 1" in message


def test_bad_durations_and_quantiles_say_what_is_allowed(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[placement]\nlookback = "5x"\nstalled_quantile = 1.5\n')
    assert "placement.lookback: '5x' is not a duration" in message and "'7d'" in message
    assert "placement.stalled_quantile: Input should be less than 1" in message


def test_no_stages_at_all_is_an_error() -> None:
    with pytest.raises(ConfigError, match="x.toml: stages: give at least one stage"):
        model_from_dict({"stages": []}, source="x.toml")


def test_unknown_top_level_sections_are_kept_and_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[benchmarks]\ncart_abandonment = 0.70\n[playbook]\nenabled = true\n")
    model = load_model(path)
    assert model.unknown_sections() == ["benchmarks", "playbook"]
    assert model.sections["benchmarks"] == {"cart_abandonment": 0.70}


class Benchmarks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cart_abandonment: float = 0.7019


def test_a_module_reads_its_own_section_with_its_own_class(tmp_path: Path) -> None:
    model = load_model(write(tmp_path, "[benchmarks]\ncart_abandonment = 0.65\n"))
    assert model.section("benchmarks", Benchmarks).cart_abandonment == 0.65
    assert Model().section("benchmarks", Benchmarks).cart_abandonment == 0.7019


def test_a_bad_value_in_a_kept_section_names_file_and_key(tmp_path: Path) -> None:
    model = load_model(write(tmp_path, '[benchmarks]\ncart_abandonment = "high"\n'))
    with pytest.raises(ConfigError, match=r"shopfunnel.toml: benchmarks.cart_abandonment: "):
        model.section("benchmarks", Benchmarks)


def test_unknown_stage_lookup_lists_the_stages() -> None:
    with pytest.raises(
        ConfigError, match="no stage 'checkout': the stages are Awareness, Interest"
    ):
        Model().stage_index("checkout")


def test_the_example_file_loads_and_matches_the_documented_stages() -> None:
    model = load_model(EXAMPLE)
    assert model.stage_names == ["Awareness", "Interest", "Decision", "Purchase", "Retention"]
    assert model.stages[-1].min_orders == 2
    assert model.funnel.steps == DEFAULT_FUNNEL_STEPS
