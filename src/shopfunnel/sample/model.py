"""The sample store's parameters: channels, devices, countries, the catalogue and the
conversion model. Everything here is data; :mod:`shopfunnel.sample.engine` runs it.

Conversion is a chain of six steps per session (see :data:`STEPS`). The probability of
taking step *k* given the previous one is ``sigmoid(INTERCEPTS[k] + sum of effects)``,
where the effects (log-odds) come from the session's channel, device, whether the
visitor is returning, logged in, a customer, has a cart waiting, the weekday, the
shipping cost shown and the checkout type. The intercepts are calibrated (with
``benchmarks/calibrate_sample.py``) so that, over all sessions of a default sample,
the rates match the published figures in :data:`TARGETS`.
"""

from __future__ import annotations

import numpy as np

# -- funnel levels ------------------------------------------------------------------
# A session's level: 0 landed (page views, maybe product lists), 1 viewed a product,
# 2 added to cart, 3 began checkout, 4 gave shipping, 5 gave payment, 6 purchased.
STEPS = (
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
)

# Share of sessions reaching each level (SaleCycle 2017 via Smart Insights: 48% of
# sessions view a product, 14.5% add to cart, 3.3% buy). The checkout split of the
# cart → purchase conversion (22.8% of carting sessions buy, i.e. 77% abandonment
# per session, close to Baymard's 70.19% average documented cart abandonment) follows
# the usual shape: about 45% of carting sessions start checkout, most who give shipping
# go on to pay.
TARGETS = {
    "view_item": 0.48,
    "add_to_cart": 0.145,
    "begin_checkout": 0.066,
    "add_shipping_info": 0.051,
    "add_payment_info": 0.040,
    "purchase": 0.033,
}

# Calibrated log-odds intercepts of the six conditional steps (see module docstring).
INTERCEPTS = np.array([-0.255, -1.110, -0.430, 1.295, 1.520, 1.600])

# -- channels -------------------------------------------------------------------------
CHANNELS = (
    "organic search",
    "paid search",
    "paid social",
    "organic social",
    "direct",
    "referral",
    "email",
    "display",
    "affiliates",
    "organic video",
)
# Where new visitors come from, and returning visitors.
NEW_MIX = np.array([0.28, 0.13, 0.15, 0.08, 0.14, 0.05, 0.03, 0.06, 0.04, 0.04])
RETURN_MIX = np.array([0.20, 0.08, 0.08, 0.05, 0.32, 0.03, 0.18, 0.03, 0.02, 0.01])
# Log-odds effect of the channel on each of the six steps: email and search bring
# visitors with intent, social, display and video bring browsers.
CHANNEL_EFFECT = np.array(
    [
        [0.25, 0.15, 0.10, 0.00, 0.00, 0.00],  # organic search
        [0.30, 0.10, 0.05, 0.00, 0.00, 0.00],  # paid search
        [-0.45, -0.55, -0.30, -0.10, -0.05, 0.00],  # paid social
        [-0.40, -0.40, -0.20, -0.10, 0.00, 0.00],  # organic social
        [0.10, 0.20, 0.20, 0.05, 0.00, 0.00],  # direct
        [0.00, 0.05, 0.00, 0.00, 0.00, 0.00],  # referral
        [0.50, 0.45, 0.30, 0.10, 0.05, 0.00],  # email
        [-0.70, -0.60, -0.30, -0.10, 0.00, 0.00],  # display
        [0.10, 0.10, 0.10, 0.00, 0.00, 0.00],  # affiliates
        [-0.30, -0.40, -0.20, -0.10, 0.00, 0.00],  # organic video
    ]
)

# Traffic sources per channel: (utm_source, utm_medium, utm_campaign, referrer, weight).
# Each combination is classified to its channel by shopfunnel.store.channels (tested).
SOURCES: dict[str, tuple[tuple[str | None, str | None, str | None, str | None, float], ...]] = {
    "organic search": (
        (None, None, None, "https://www.google.com/", 0.85),
        (None, None, None, "https://www.bing.com/", 0.10),
        (None, None, None, "https://duckduckgo.com/", 0.05),
    ),
    "paid search": (
        ("google", "cpc", "brand_search", None, 0.50),
        ("google", "cpc", "generic_search", None, 0.35),
        ("bing", "cpc", "generic_search", None, 0.15),
    ),
    "paid social": (
        ("facebook", "paid_social", "spring_collection", None, 0.45),
        ("instagram", "paid_social", "retargeting", None, 0.35),
        ("tiktok", "paid_social", "creators", None, 0.20),
    ),
    "organic social": (
        (None, None, None, "https://l.facebook.com/", 0.40),
        (None, None, None, "https://www.instagram.com/", 0.30),
        (None, None, None, "https://www.pinterest.com/", 0.20),
        (None, None, None, "https://t.co/", 0.10),
    ),
    "direct": ((None, None, None, None, 1.0),),
    "referral": (
        (None, None, None, "https://www.thegiftguide.net/best-gifts", 0.50),
        (None, None, None, "https://blog.stylepicks.com/reviews", 0.30),
        (None, None, None, "https://www.trustpilot.com/review", 0.20),
    ),
    "email": (
        ("newsletter", "email", "weekly_newsletter", None, 0.75),
        ("newsletter", "email", "winback", None, 0.25),
    ),
    "display": (
        ("criteo", "display", "retargeting", None, 0.60),
        ("google", "display", "prospecting", None, 0.40),
    ),
    "affiliates": (
        ("awin", "affiliate", "partners", None, 0.60),
        ("rakuten", "affiliate", "partners", None, 0.40),
    ),
    "organic video": ((None, None, None, "https://www.youtube.com/", 1.0),),
}
# The email a visitor with an abandoned cart receives (chosen instead of RETURN_MIX
# with probability ABANDONED_CART_EMAIL).
ABANDONED_CART_SOURCE = ("klaviyo", "email", "abandoned_cart", None)
ABANDONED_CART_EMAIL = 0.25

# -- devices, countries, time -----------------------------------------------------------
DEVICES = ("desktop", "mobile", "tablet")
DEVICE_MIX_WEEKDAY = np.array([0.40, 0.53, 0.07])
DEVICE_MIX_WEEKEND = np.array([0.30, 0.63, 0.07])
# Mobile converts worse at checkout (Baymard: 85.65% mobile cart abandonment vs 70.19%
# overall); desktop better.
DEVICE_EFFECT = np.array(
    [
        [0.05, 0.10, 0.35, 0.20, 0.20, 0.15],  # desktop
        [0.00, -0.05, -0.35, -0.20, -0.20, -0.15],  # mobile
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # tablet
    ]
)
OTHER_DEVICE = 0.15  # a returning session on another device than the visitor's first

COUNTRIES = (
    "US",
    "GB",
    "DE",
    "CA",
    "FR",
    "AU",
    "NL",
    "ES",
    "IT",
    "SE",
    "IE",
    "BR",
    "JP",
    "IN",
    "MX",
)
COUNTRY_MIX = np.array(
    [0.40, 0.12, 0.09, 0.07, 0.06, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02, 0.02, 0.02, 0.02, 0.01]
)
# The store ships from the US in USD: visitors from further away give up more at
# checkout (international shipping, duties, currency), most in Brazil, India and Mexico.
COUNTRY_CHECKOUT_EFFECT = np.array(
    [
        0.10,
        0.00,
        -0.05,
        0.00,
        -0.05,
        -0.10,
        -0.05,
        -0.10,
        -0.10,
        -0.05,
        0.00,
        -0.70,
        -0.40,
        -0.70,
        -0.60,
    ]
)
CURRENCY = "USD"

# Visits by weekday (Mon..Sun): busiest early in the week, fewest on Saturday.
WEEKDAY_WEIGHT = np.array([1.06, 1.04, 1.02, 1.00, 0.93, 0.84, 1.00])
WEEKEND_EFFECT = np.array([0.00, -0.05, -0.10, 0.00, 0.00, 0.00])
# Visits by hour of day (UTC): low at night, lunch bump, evening peak.
HOUR_WEIGHT = np.array(
    [
        0.45,
        0.30,
        0.22,
        0.18,
        0.18,
        0.25,
        0.45,
        0.75,
        1.00,
        1.10,
        1.15,
        1.20,
        1.30,
        1.25,
        1.15,
        1.10,
        1.10,
        1.20,
        1.40,
        1.60,
        1.70,
        1.55,
        1.15,
        0.75,
    ]
)

# -- visitors and journeys --------------------------------------------------------------
WARMUP_DAYS = 60  # visitors start arriving this long before the sample's start
HAS_ACCOUNT = 0.08  # new visitors who already have an account (old customers)
LOGGED_IN = 0.60  # a visitor with an account is logged in in a session
RETURNING_EFFECT = np.array([0.20, 0.20, 0.15, 0.00, 0.00, 0.00])
LOGGED_IN_EFFECT = np.array([0.20, 0.25, 0.35, 0.30, 0.20, 0.10])
CUSTOMER_EFFECT = np.array([0.40, 0.70, 0.50, 0.20, 0.10, 0.05])
CART_WAITING_EFFECT = np.array([0.30, 0.60, 0.50, 0.10, 0.00, 0.00])
# After a session: probability of coming back and mean gap in days, by what happened.
RETURN_AFTER_BROWSE = (0.30, 6.0)
RETURN_AFTER_CART = (0.50, 2.0)
RETURN_AFTER_PURCHASE = (0.70, 30.0)  # a customer comes back for more, weeks later
RETURN_CUSTOMER = (0.55, 10.0)  # a customer's browsing session that bought nothing
MAX_SESSIONS = 60
MAX_ORDERS = 6

# -- catalogue ----------------------------------------------------------------------------
CATEGORIES = ("apparel", "shoes", "accessories", "home", "beauty", "electronics", "sports", "kids")
CATEGORY_POPULARITY = np.array([0.24, 0.13, 0.12, 0.13, 0.11, 0.10, 0.10, 0.07])
CATEGORY_MEDIAN_PRICE = np.array([42.0, 85.0, 28.0, 55.0, 24.0, 120.0, 60.0, 26.0])
PRODUCTS_PER_CATEGORY = 40
PREFERRED_CATEGORY = 0.65  # a product viewed is from the visitor's favourite category
_NOUNS = {
    "apparel": (
        "T-Shirt",
        "Linen Shirt",
        "Hoodie",
        "Chinos",
        "Dress",
        "Denim Jacket",
        "Sweater",
        "Polo",
    ),
    "shoes": ("Sneakers", "Boots", "Loafers", "Sandals", "Running Shoes", "Trainers"),
    "accessories": ("Tote Bag", "Belt", "Scarf", "Cap", "Wallet", "Sunglasses"),
    "home": ("Throw Blanket", "Ceramic Mug", "Table Lamp", "Cushion", "Vase", "Candle"),
    "beauty": ("Face Serum", "Hand Cream", "Lip Balm", "Shampoo", "Body Lotion"),
    "electronics": ("Earbuds", "Speaker", "Power Bank", "Smartwatch", "Charger"),
    "sports": ("Yoga Mat", "Water Bottle", "Gym Bag", "Dumbbell Set", "Running Shorts"),
    "kids": ("Plush Bear", "Puzzle", "Kids Hoodie", "Story Book", "Building Blocks"),
}
_ADJECTIVES = (
    "Classic",
    "Everyday",
    "Organic",
    "Premium",
    "Essential",
    "Vintage",
    "Modern",
    "Cosy",
    "Lightweight",
    "Recycled",
)

# Cart and checkout.
EXTRA_CART_LINES = 0.35  # Poisson mean of lines beyond the first
QUANTITY_MIX = np.array([0.86, 0.11, 0.03])  # 1, 2, 3 of a product
REMOVE_FROM_CART = 0.20  # with two or more lines, the last one is removed
FREE_SHIPPING_FROM = 75.0  # order value from which standard shipping is free
SHIPPING_COST = (0.0, 5.95, 12.95)  # free, standard, express
EXPRESS_SHIPPING = 0.10
SHIPPING_COST_EFFECT = -0.55  # on giving payment, when shipping is not free
FREE_SHIPPING_EFFECT = 0.25
CHECKOUT_TYPES = ("account", "guest", "create_account")
CREATE_ACCOUNT_SHARE = 0.28  # of checkouts by visitors not logged in
CREATE_ACCOUNT_EFFECT = -0.60  # on giving shipping (forced account creation hurts)
PAYMENT_TYPES = ("card", "paypal", "apple_pay", "klarna")
PAYMENT_MIX = np.array([0.62, 0.22, 0.11, 0.05])
PAYMENT_FAILED = 0.03  # a payment attempt is declined…
PAYMENT_FAILED_EFFECT = -1.6  # …and then the purchase is much less likely
REFUND_RATE = 0.04  # of orders, refunded 2 to 30 days later (full refund)

# Browsing: Poisson means of extra events per session.
EXTRA_PAGE_VIEWS = 0.9
LIST_VIEWS_BROWSER = 0.6  # product lists seen by a session that views no product
LIST_VIEWS_SHOPPER = 1.0
EXTRA_ITEM_VIEWS = 1.6
SELECT_FROM_LIST = 0.45  # a product view that came from a list click
WISHLIST = 0.05
VIEW_CART = 0.55  # a carting session looks at its cart (always before checkout)

# The extra visitors of a traffic spike barely convert.
SPIKE_EFFECT = np.array([-1.2, -1.8, -1.0, -0.3, 0.0, 0.0])
SPIKE_MOBILE = 0.80
SPIKE_RETURN = 0.05

# Mean seconds before an event of each kind (gap from the previous event in the session).
EVENT_GAP_SECONDS = {
    "page_view": 35,
    "view_item_list": 25,
    "select_item": 8,
    "view_item": 40,
    "add_to_wishlist": 15,
    "add_to_cart": 20,
    "remove_from_cart": 25,
    "view_cart": 20,
    "begin_checkout": 30,
    "add_shipping_info": 70,
    "add_payment_info": 60,
    "purchase": 25,
    "refund": 0,
}
