"""Channel grouping: GA4's ordered first-match rules, lower-casing, referrer inference.

Each expected channel below is read off the rule table in REFERENCES §3 by hand.
"""

from __future__ import annotations

import pytest

from shopfunnel.store.channels import CHANNELS, channel_sql, rules
from shopfunnel.store.db import Database
from shopfunnel.store.store import Store


@pytest.fixture(scope="module")
def channel():
    db = Database(":memory:")
    sql = (
        f"SELECT {channel_sql('s', 'm', 'c', 'r', 'p')} "
        "FROM (VALUES (?, ?, ?, ?, ?)) t(s, m, c, r, p)"
    )

    def of(source=None, medium=None, campaign=None, referrer=None, page=None) -> str:
        return db.scalar(sql, [source, medium, campaign, referrer, page])

    yield of
    db.close()


# One case per row of the table, each chosen so that it matches that row and no earlier one.
TABLE_ROWS = [
    # 1 Direct: source exactly (direct) and medium (none) / (not set)
    ("direct", dict(source="(direct)", medium="(none)")),
    ("direct", dict(source="(direct)", medium="(not set)")),
    # ours (ADR 0121): the store's referral programme, whatever the medium
    ("referral program", dict(source="referral_program", medium="referral")),
    ("referral program", dict(source="friend", medium="referral_program")),
    ("referral program", dict(source="Referral_Program", medium="cpc")),
    # 2 Cross-network: campaign contains cross-network (beats a paid search source)
    ("cross-network", dict(source="google", medium="cpc", campaign="spring-cross-network")),
    # 3 Paid shopping: shopping source, or shopping campaign, with a paid medium
    ("paid shopping", dict(source="amazon", medium="cpc")),
    ("paid shopping", dict(source="google", medium="cpc", campaign="summer shopping")),
    # 4 Paid search
    ("paid search", dict(source="bing", medium="ppc")),
    # 5 Paid social
    ("paid social", dict(source="facebook", medium="paid_social")),
    # 6 Paid video
    ("paid video", dict(source="youtube", medium="cpv")),
    # 7 Display: display media; cpm also matches the paid regex, but rule 7 precedes 8
    ("display", dict(source="dv360", medium="banner")),
    ("display", dict(source="adnetwork", medium="cpm")),
    # 8 Paid other: paid medium, source on no list
    ("paid other", dict(source="adnetwork", medium="retargeting")),
    # 9 Organic shopping: shopping source or campaign, medium not paid
    ("organic shopping", dict(source="etsy", medium="referral")),
    ("organic shopping", dict(source="newsletter", medium="email", campaign="shop-week")),
    # 10 Organic social: social source, or a social medium
    ("organic social", dict(source="instagram", medium="story")),
    ("organic social", dict(source="forum", medium="social-network")),
    # 11 Organic video: video source, or medium containing video
    ("organic video", dict(source="vimeo", medium="embed")),
    ("organic video", dict(source="partner", medium="in-video")),
    # 12 Organic search: search source, or medium exactly organic
    ("organic search", dict(source="duckduckgo")),
    ("organic search", dict(source="partner", medium="organic")),
    # 13 Referral
    ("referral", dict(source="blog", medium="referral")),
    ("referral", dict(source="blog", medium="link")),
    ("referral", dict(source="ios", medium="app")),
    # 14 Email: by source or by medium
    ("email", dict(source="newsletter", medium="email")),
    ("email", dict(source="e-mail", medium="weekly")),
    # 15 Affiliates
    ("affiliates", dict(source="partner", medium="affiliate")),
    # 16 Audio
    ("audio", dict(source="spotify-ads", medium="audio")),
    # 17 SMS
    ("sms", dict(source="sms", medium="text")),
    ("sms", dict(source="twilio", medium="sms")),
    # 18 Mobile push notifications
    ("mobile push notifications", dict(source="app", medium="web-push")),
    ("mobile push notifications", dict(source="app", medium="mobile-alert")),
    ("mobile push notifications", dict(source="app", medium="notification")),
    # 19 Unassigned: a source with no medium matches nothing
    ("unassigned", dict(source="newsletter")),
    ("unassigned", dict(source="partner", medium="affiliates")),
]


@pytest.mark.parametrize(("expected", "utm"), TABLE_ROWS)
def test_each_rule_of_the_ga4_table_gives_its_channel(channel, expected, utm) -> None:
    assert channel(**utm) == expected


def test_every_channel_of_the_table_is_covered_by_a_case() -> None:
    assert {c for c, _ in TABLE_ROWS} == set(CHANNELS)
    assert [r.channel for r in rules()] + ["unassigned"] == list(CHANNELS)


def test_rules_are_first_match_in_table_order(channel) -> None:
    # google/cpc matches both paid search (4) and paid other (8): the earlier wins.
    assert channel("google", "cpc") == "paid search"
    # email source with a paid medium: paid other (8) comes before email (14).
    assert channel("email", "cpc") == "paid other"
    # a social medium with a search source: organic social (10) before organic search (12).
    assert channel("google", "social") == "organic social"


def test_utm_values_are_matched_case_insensitively_and_trimmed(channel) -> None:
    assert channel(" Google ", "CPC") == "paid search"
    assert channel("NewsLetter", "E-Mail") == "email"
    assert channel("google", "cpc", "Spring-CROSS-NETWORK") == "cross-network"


def test_no_utm_and_no_referrer_is_direct(channel) -> None:
    assert channel() == "direct"
    assert channel("", "  ") == "direct"


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.google.com/search?q=tee", "organic search"),
        ("https://www.google.co.uk/", "organic search"),
        ("http://search.yahoo.com/search?p=x", "organic search"),
        ("https://l.facebook.com/l.php?u=x", "organic social"),
        ("https://www.instagram.com/p/1", "organic social"),
        ("https://t.co/abc", "organic social"),
        ("https://m.youtube.com/watch?v=1", "organic video"),
        ("https://www.amazon.de/dp/1", "organic shopping"),
        ("https://checkout.stripe.com/pay/x", "organic shopping"),
        ("https://blog.example.org/post", "referral"),
        ("HTTPS://WWW.GOOGLE.COM/", "organic search"),
        ("https://duckduckgo.com:443/?q=x", "organic search"),
    ],
)
def test_without_utm_the_referrer_host_is_the_source(channel, referrer, expected) -> None:
    assert channel(referrer=referrer) == expected


def test_a_host_that_merely_contains_a_listed_name_is_a_referral(channel) -> None:
    # "x" and "ask" are list entries; these hosts only contain them as substrings or
    # as a subdomain label of an unrelated site.
    assert channel(referrer="https://xerox.com/") == "referral"
    assert channel(referrer="https://taskrabbit.com/") == "referral"
    assert channel(referrer="https://ask.example.org/") == "referral"


def test_a_referrer_from_the_same_site_is_internal_not_a_referral(channel) -> None:
    page = "https://shop.example/cart"
    assert channel(referrer="https://shop.example/product/1", page=page) == "direct"
    assert channel(referrer="https://www.shop.example/", page=page) == "direct"
    assert channel(referrer="https://other.example/", page=page) == "referral"


def test_utm_values_win_over_the_referrer(channel) -> None:
    assert channel("newsletter", "email", referrer="https://www.google.com/") == "email"


def test_a_utm_medium_without_source_uses_the_referrer_host_as_source(channel) -> None:
    assert channel(medium="cpc", referrer="https://www.bing.com/") == "paid search"


def test_the_store_gives_a_session_the_channel_of_its_first_event() -> None:
    import pandas as pd

    with Store(":memory:") as store:
        store.load(
            pd.DataFrame(
                {
                    "ts": ["2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z", "2024-03-01T10:02:00Z"],
                    "event": ["page_view", "page_view", "view_item"],
                    "anonymous_id": ["a", "a", "a"],
                    "session_id": ["s1", "s1", "s1"],
                    "referrer": ["https://www.bing.com/", "https://shop.example/", None],
                    "page": ["https://shop.example/", "https://shop.example/p/1", None],
                }
            )
        )
        assert set(store.events()["channel"]) == {"organic search"}
