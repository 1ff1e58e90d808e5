"""GA4-style default channel grouping, from UTM values and the referrer.

Rules are GA4's manual-traffic rules (``docs/events.md``), evaluated in order; the first
match wins (one rule is ours: source or medium ``referral_program`` is the store's referral
programme, channel ``referral program``, tried right after ``direct``), and a visit that matches nothing is ``unassigned``. Source, medium and
campaign are trimmed and lower-cased before matching (GA4 does not document case
handling; we choose case-insensitive). A visit with no UTM source takes its source from
the referrer's host (medium ``referral``); a referrer on the page's own host is internal
navigation and is ignored; no UTM and no referrer is ``direct``.

The source lists are a compact copy of the best-known sites in each of Google's source
categories (search, social, shopping, video), written here from public knowledge.
Google publishes the full list as a spreadsheet; replacing these tuples with it needs
no other change (entries with a dot are hosts, the others bare names).
"""

from __future__ import annotations

from dataclasses import dataclass

SEARCH_SOURCES = (
    "google",
    "bing",
    "yahoo",
    "duckduckgo",
    "baidu",
    "yandex",
    "ecosia",
    "ask",
    "naver",
    "seznam",
    "qwant",
    "startpage",
    "brave",
    "aol",
    "sogou",
    "daum",
    "so.com",
    "360.cn",
    "search.yahoo.com",
    "lens.google.com",
    "go.mail.ru",
)
SOCIAL_SOURCES = (
    "facebook",
    "fb",
    "instagram",
    "ig",
    "twitter",
    "x",
    "t.co",
    "linkedin",
    "lnkd.in",
    "pinterest",
    "reddit",
    "tiktok",
    "snapchat",
    "tumblr",
    "quora",
    "threads",
    "whatsapp",
    "messenger",
    "vk",
    "weibo",
    "discord",
    "telegram",
    "line",
    "kakao",
    "fb.me",
    "m.facebook.com",
    "l.facebook.com",
    "lm.facebook.com",
    "l.instagram.com",
    "medium.com",
)
SHOPPING_SOURCES = (
    "google shopping",
    "igshopping",
    "shopping.google.com",
    "amazon",
    "ebay",
    "etsy",
    "walmart",
    "alibaba",
    "aliexpress",
    "shopzilla",
    "pricegrabber",
    "idealo",
    "apps.shopify.com",
    "checkout.shopify.com",
    "checkout.stripe.com",
    "shopping.naver.com",
)
VIDEO_SOURCES = (
    "youtube",
    "vimeo",
    "twitch",
    "dailymotion",
    "wistia",
    "youtu.be",
    "netflix",
    "hulu",
    "disneyplus",
    "iqiyi",
    "fast.wistia.net",
)

# The UTM source (or medium) of a referral programme's links: its own channel.
REFERRAL_PROGRAM = "referral_program"

PAID_MEDIUM = r"^(.*cp.*|ppc|retargeting|paid.*)$"
SHOPPING_CAMPAIGN = r"^(.*(([^a-df-z]|^)shop|shopping).*)$"

CHANNELS = (
    "direct",
    "referral program",
    "cross-network",
    "paid shopping",
    "paid search",
    "paid social",
    "paid video",
    "display",
    "paid other",
    "organic shopping",
    "organic social",
    "organic video",
    "organic search",
    "referral",
    "email",
    "affiliates",
    "audio",
    "sms",
    "mobile push notifications",
    "unassigned",
)


@dataclass(frozen=True)
class ChannelRule:
    """One channel and the SQL condition over ``src``, ``med`` and ``camp`` that selects it."""

    channel: str
    condition: str


def _in_list(values: tuple[str, ...]) -> str:
    """SQL: the source (``src``, with its ``brand`` label) is on the list ``values``.

    A bare name (``google``) matches a source equal to it or a host whose brand label
    is it (``www.google.co.uk``, ``google.com``); a host entry (``l.facebook.com``) matches
    that host and its subdomains. Google's own list holds both kinds and is matched
    exactly; the brand rule lets a short list cover each site's country domains.
    """
    names = [v for v in values if "." not in v]
    hosts = [v for v in values if "." in v]
    quoted = ", ".join(_lit(v) for v in values)
    parts = [f"src IN ({quoted})"]
    if names:
        parts.append(f"brand IN ({', '.join(_lit(v) for v in names)})")
    parts += [f"ends_with(src, {_lit('.' + h)})" for h in hosts]
    return "(" + " OR ".join(parts) + ")"


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Second-level labels under which a country domain registers names (google.co.uk).
_SECOND_LEVEL = ("co", "com", "org", "net", "ne", "or", "ac", "gov", "edu", "go", "gob")


def rules() -> tuple[ChannelRule, ...]:
    """GA4's manual-traffic rules, in GA4's order (REFERENCES §3); first match wins."""
    search = _in_list(SEARCH_SOURCES)
    social = _in_list(SOCIAL_SOURCES)
    shopping = _in_list(SHOPPING_SOURCES)
    video = _in_list(VIDEO_SOURCES)
    paid = f"regexp_full_match(med, '{PAID_MEDIUM}')"
    shop_camp = f"regexp_full_match(camp, '{SHOPPING_CAMPAIGN}')"
    return (
        ChannelRule("direct", "src = '(direct)' AND med IN ('(not set)', '(none)')"),
        # Not GA4's: the store's own referral programme (ADR 0121), before any GA4 rule so
        # that its links keep their channel whatever medium they carry.
        ChannelRule(
            "referral program", f"src = {_lit(REFERRAL_PROGRAM)} OR med = {_lit(REFERRAL_PROGRAM)}"
        ),
        ChannelRule("cross-network", "contains(camp, 'cross-network')"),
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
        ChannelRule("organic video", f"{video} OR contains(med, 'video')"),
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
            # "OR source = firebase" is recalled from the current article, unconfirmed.
            "ends_with(med, 'push') OR contains(med, 'mobile') OR contains(med, 'notification') "
            "OR src = 'firebase'",
        ),
    )


def _host(url: str) -> str:
    """SQL: the lower-cased host of a URL expression, without ``www.``; NULL if none."""
    return (
        f"nullif(regexp_extract(lower(trim(coalesce({url}, ''))), "
        "'^(?:[a-z][a-z0-9+.-]*://)?(?:www\\.)?([^/:?#@ ]+)', 1), '')"
    )


def channel_sql(
    source: str, medium: str, campaign: str, referrer: str, page: str | None = None
) -> str:
    """A SQL expression giving the channel from SQL expressions for the UTM values, the
    referrer and (optionally) the page's URL.

    Source, medium and campaign are trimmed and lower-cased. Without a UTM source, the
    referrer's host is the source, with medium ``referral`` when no UTM medium is
    given; the rules then place a search engine, social network, shopping or video
    site by its host, as GA4 does. A referrer on the page's own host is internal
    navigation, not a referral, and is ignored. No UTM source and no (external)
    referrer is ``(direct)`` / ``(none)``, hence ``direct``.
    """
    ref_host = _host(referrer)
    if page is not None:
        ref_host = f"CASE WHEN {ref_host} = {_host(page)} THEN NULL ELSE {ref_host} END"
    utm_src = f"nullif(lower(trim({source})), '')"
    src = f"coalesce({utm_src}, ref_host, '(direct)')"
    med = (
        f"coalesce(nullif(lower(trim({medium})), ''), CASE WHEN {utm_src} IS NULL AND ref_host "
        "IS NOT NULL THEN 'referral' END, '(none)')"
    )
    camp = f"coalesce(lower(trim({campaign})), '')"
    second = ", ".join(_lit(v) for v in _SECOND_LEVEL)
    brand = (
        "CASE WHEN len(labels) >= 3 AND labels[-2] IN (" + second + ") AND length(labels[-1]) = 2 "
        "THEN labels[-3] WHEN len(labels) >= 2 THEN labels[-2] ELSE src END"
    )
    cases = " ".join(f"WHEN {r.condition} THEN '{r.channel}'" for r in rules())
    return (
        f"(SELECT CASE {cases} ELSE 'unassigned' END FROM ("
        f"SELECT src, med, camp, {brand} AS brand FROM ("
        f"SELECT src, med, camp, string_split(src, '.') AS labels FROM ("
        f"SELECT {src} AS src, {med} AS med, {camp} AS camp FROM ("
        f"SELECT {ref_host} AS ref_host)))))"
    )
