"""The sample store's catalogue and page paths (the same for every seed)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa

from shopfunnel.sample import model as m


@dataclass(frozen=True)
class Catalogue:
    """Products: id, name, category, price, and a popularity CDF within each category."""

    item_id: pa.Array
    item_name: pa.Array
    item_category: pa.Array
    category: np.ndarray  # category index per product
    price_cents: np.ndarray
    cdf: np.ndarray  # category index + within-category cumulative popularity
    pages: pa.Array  # every page path, see _page_table


@cache
def catalogue() -> Catalogue:
    """The fixed catalogue (the same for every seed): 8 categories × 40 products, prices
    log-normal around each category's median, popularity Zipf-like within a category."""
    rng = np.random.default_rng(20240101)
    ids, names, cats, prices, cdf = [], [], [], [], []
    for c, cat in enumerate(m.CATEGORIES):
        nouns = m._NOUNS[cat]
        weights = 1.0 / np.arange(1, m.PRODUCTS_PER_CATEGORY + 1) ** 1.05
        cdf.append(c + np.cumsum(weights) / weights.sum())
        for j in range(m.PRODUCTS_PER_CATEGORY):
            noun = nouns[j % len(nouns)]
            adjective = m._ADJECTIVES[(j // len(nouns)) % len(m._ADJECTIVES)]
            ids.append(f"SKU-{c + 1}{j + 1:03d}")
            names.append(f"{adjective} {noun}")
            cats.append(c)
            price = m.CATEGORY_MEDIAN_PRICE[c] * np.exp(rng.normal(0.0, 0.45))
            prices.append(max(round(price) - 0.01, 3.99))
    cdf_all = np.concatenate(cdf)
    cdf_all[
        np.arange(len(m.CATEGORIES)) * m.PRODUCTS_PER_CATEGORY + m.PRODUCTS_PER_CATEGORY - 1
    ] = np.arange(len(m.CATEGORIES)) + 1.0
    slugs = [
        "/products/" + f"{n}-{i}".lower().replace(" ", "-") for n, i in zip(names, ids, strict=True)
    ]
    pages = (
        GENERIC_PAGES
        + tuple(f"/collections/{c}" for c in m.CATEGORIES)
        + tuple(slugs)
        + FIXED_PAGES
    )
    return Catalogue(
        item_id=pa.array(ids, pa.string()),
        item_name=pa.array(names, pa.string()),
        item_category=pa.array([m.CATEGORIES[c] for c in cats], pa.string()),
        category=np.array(cats, dtype=np.int64),
        price_cents=np.round(np.array(prices) * 100).astype(np.int64),
        cdf=cdf_all,
        pages=pa.array(pages, pa.string()),
    )


GENERIC_PAGES = ("/", "/search", "/sale", "/about", "/blog/style-guide", "/collections/all")
FIXED_PAGES = (
    "/cart",
    "/checkout",
    "/checkout/shipping",
    "/checkout/payment",
    "/checkout/thank-you",
)


def page_offsets() -> tuple[int, int, int]:
    n_products = len(m.CATEGORIES) * m.PRODUCTS_PER_CATEGORY
    collections = len(GENERIC_PAGES)
    products = collections + len(m.CATEGORIES)
    fixed = products + n_products
    return collections, products, fixed
