"""The step syntax a marketer types reads back exactly, and says where a text is wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfunnel.errors import ConfigError
from shopfunnel.funnel.api import Step
from shopfunnel.funnel.syntax import format_step, parse_exclusion, parse_steps


def test_plain_event_names_are_steps() -> None:
    assert parse_steps("view_item, add_to_cart,purchase") == [
        Step("view_item"),
        Step("add_to_cart"),
        Step("purchase"),
    ]


def test_filters_in_brackets_with_any_of_values() -> None:
    steps = parse_steps("view_item[item_category=shoes|boots, device=mobile],purchase")
    assert steps[0] == Step("view_item", {"item_category": ("shoes", "boots"), "device": "mobile"})
    assert steps[1] == Step("purchase")


def test_quoted_keys_and_values_keep_commas_brackets_and_quotes() -> None:
    steps = parse_steps('view_item["utm campaign"="spring, sale", "a\\"b"="[x]"]')
    assert steps == [Step("view_item", {"utm campaign": "spring, sale", 'a"b': "[x]"})]


@pytest.mark.parametrize(
    "text, where",
    [
        ("view_item[", "character 11"),
        ("view_item[a=1", "',' or ']'"),
        ("view_item[a]", "'='"),
        ("a,,b", "an event name"),
        ('view_item["open', 'closing "'),
        ("a]b", "',' between steps"),
    ],
)
def test_a_malformed_text_names_the_position_and_what_was_expected(text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        parse_steps(text)


def test_a_key_twice_in_one_step_is_refused() -> None:
    with pytest.raises(ConfigError, match="twice"):
        parse_steps("view_item[a=1, a=2]")


def test_exclusions_between_all_steps_or_a_span() -> None:
    assert parse_exclusion("refund", 4) == (Step("refund"), 1, 4)
    assert parse_exclusion("remove_from_cart[item_category=shoes]:2-3", 4) == (
        Step("remove_from_cart", {"item_category": "shoes"}),
        2,
        3,
    )
    with pytest.raises(ConfigError, match="1 ≤ FROM < TO ≤ 3"):
        parse_exclusion("refund:3-2", 3)
    with pytest.raises(ConfigError, match="FROM-TO"):
        parse_exclusion("refund:x", 3)


text = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() == s and s)


@given(
    event=text,
    where=st.dictionaries(
        text, st.one_of(text, st.lists(text, min_size=2, max_size=3).map(tuple)), max_size=3
    ),
)
def test_any_step_written_by_format_step_reads_back_the_same(event: str, where: dict) -> None:
    step = Step(event, where)
    assert parse_steps(format_step(step)) == [step]


def test_event_names_may_hold_spaces_as_segment_names_do() -> None:
    assert parse_steps("Product Viewed, Order Completed") == [
        Step("Product Viewed"),
        Step("Order Completed"),
    ]
