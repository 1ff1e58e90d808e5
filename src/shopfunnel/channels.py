"""GA4-style default channel grouping, from UTM values and the referrer.

Rules are evaluated in order and the first match wins, as GA4 does; a visit that
matches nothing is ``unassigned``. Inputs are lower-cased before matching (GA4 does
not document case handling; we choose case-insensitive). A visit with no UTM source
takes its source from the referrer's host; no UTM and no referrer is ``direct``.

The source lists are a compact copy of the best-known hosts in each of Google's source
categories (search, social, shopping, video), written here from public knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass

SEARCH_SOURCES = (
    "google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "ask", "naver",
    "seznam", "qwant", "startpage", "brave", "aol", "sogou",
)
SOCIAL_SOURCES = (
    "facebook", "fb", "instagram", "ig", "twitter", "x", "t.co", "linkedin", "lnkd.in",
    "pinterest", "reddit", "tiktok", "snapchat", "tumblr", "quora", "threads", "whatsapp",
    "messenger", "vk", "weibo", "discord", "telegram", "m.facebook.com", "l.facebook.com",
)
SHOPPING_SOURCES = (
    "google shopping", "shopping.google", "amazon", "ebay", "etsy", "walmart", "shopzilla",
    "pricegrabber", "idealo", "shopify",
)
VIDEO_SOURCES = ("youtube", "vimeo", "twitch", "dailymotion", "wistia", "youtu.be")

PAID_MEDIUM = r"^(.*cp.*|ppc|retargeting|paid.*)$"
SHOPPING_CAMPAIGN = r"^(.*(([^a-df-z]|^)shop|shopping).*)$"

CHANNELS = (
    "direct", "cross-network", "paid shopping", "paid search", "paid social", "paid video",
    "display", "paid other", "organic shopping", "organic social", "organic video",
    "organic search", "referral", "email", "affiliates", "audio", "sms",
    "mobile push notifications", "unassigned",
)


@dataclass(frozen=True)
class ChannelRule:
    """One channel and the SQL condition over ``src``, ``med`` and ``camp`` that selects it."""

    channel: str
    condition: str


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    # A source matches a list entry exactly or as a host (www.google.com, google.co.uk).
    return (
        f"({column} IN ({quoted}) OR list_has_any(string_split({column}, '.'), [{quoted}]))"
    )


def rules() -> tuple[ChannelRule, ...]:
    search = _in_list("src", SEARCH_SOURCES)
    social = _in_list("src", SOCIAL_SOURCES)
    shopping = _in_list("src", SHOPPING_SOURCES)
    video = _in_list("src", VIDEO_SOURCES)
    paid = f"regexp_matches(med, '{PAID_MEDIUM}')"
    shop_camp = f"regexp_matches(camp, '{SHOPPING_CAMPAIGN}')"
    return (
        ChannelRule("direct", "src = '(direct)' AND med IN ('(not set)', '(none)')"),
        ChannelRule("cross-network", "camp LIKE '%cross-network%'"),
        ChannelRule("paid shopping", f"({shopping} OR {shop_camp}) AND {paid}"),
        ChannelRule("paid search", f"{search} AND {paid}"),
        ChannelRule("paid social", f"{social} AND {paid}"),
        ChannelRule("paid video", f"{video} AND {paid}"),
        ChannelRule("display", "med IN ('display', 'banner', 'expandable', 'interstitial', 'cpm')"),
        ChannelRule("paid other", paid),
        ChannelRule("organic shopping", f"{shopping} OR {shop_camp}"),
        ChannelRule(
            "organic social",
            f"{social} OR med IN ('social', 'social-network', 'social-media', 'sm', "
            "'social network', 'social media')",
        ),
        ChannelRule("organic video", f"{video} OR regexp_matches(med, '^(.*video.*)$')"),
        ChannelRule("organic search", f"{search} OR med = 'organic'"),
        ChannelRule("referral", "med IN ('referral', 'app', 'link')"),
        ChannelRule(
            "email",
            "src IN ('email', 'e-mail', 'e_mail', 'e mail') "
            "OR med IN ('email', 'e-mail', 'e_mail', 'e mail')",
        ),
        ChannelRule("affiliates", "med = 'affiliate'"),
        ChannelRule("audio", "med = 'audio'"),
        ChannelRule("sms", "src = 'sms' OR med = 'sms'"),
        ChannelRule(
            "mobile push notifications",
            "med LIKE '%push' OR med LIKE '%mobile%' OR med LIKE '%notification%' "
            "OR src = 'firebase'",
        ),
    )


def channel_sql(source: str, medium: str, campaign: str, referrer: str) -> str:
    """A SQL expression giving the channel from four SQL expressions.

    Without a UTM source, the referrer's host is the source and the medium is
    ``referral`` (or ``organic``/``social`` when the host is a search engine or social
    network, as GA4 infers); with neither it is ``(direct)`` / ``(none)``.
    """
    host = (
        f"nullif(lower(regexp_extract(coalesce({referrer}, ''), "
        "'^(?:[a-z]+://)?(?:www\\.)?([^/:?#]+)', 1)), '')"
    )
    src = f"coalesce(nullif(lower(trim({source})), ''), {host}, '(direct)')"
    med = (
        f"coalesce(nullif(lower(trim({medium})), ''), CASE WHEN nullif(lower(trim({source})), '')"
        f" IS NULL AND {host} IS NOT NULL THEN 'referral' END, '(none)')"
    )
    camp = f"coalesce(lower(trim({campaign})), '')"
    cases = " ".join(f"WHEN {r.condition} THEN '{r.channel}'" for r in rules())
    # A referral from a search engine or social network counts as organic search/social.
    body = (
        f"CASE WHEN med = 'referral' AND {_in_list('src', SEARCH_SOURCES)} THEN 'organic search' "
        f"WHEN med = 'referral' AND {_in_list('src', SOCIAL_SOURCES)} THEN 'organic social' "
        f"{cases} ELSE 'unassigned' END"
    )
    return f"(SELECT {body} FROM (SELECT {src} AS src, {med} AS med, {camp} AS camp))"
