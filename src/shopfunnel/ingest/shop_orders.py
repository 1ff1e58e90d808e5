"""Store-platform order webhooks (WooCommerce, Shopify) → canonical ``purchase`` and
``refund`` events.

A platform sends the whole order on every change (created, paid, updated, refunded), and
retries a delivery it thinks failed, so the events are keyed by the **order**, not by the
delivery: the purchase of order 727 is ``woocommerce:727:purchase`` whichever webhook
carried it, and each refund is ``woocommerce:727:refund:<refund id>``. The store keeps the
first event of an id, so ``order.created`` followed by ``order.updated``, or the same
delivery twice, adds one purchase.

**When an order is a purchase.** WooCommerce: status ``processing``, ``completed``,
``on-hold`` or ``refunded``, or a ``date_paid_gmt`` (``pending``, ``failed``,
``cancelled`` and drafts are not purchases yet; the paid update makes them one). Shopify:
topic ``orders/paid``, or ``financial_status`` ``authorized``, ``paid``,
``partially_paid``, ``partially_refunded`` or ``refunded``. A later edit of the order
does not change the stored purchase.

**Columns** (both platforms):

=================  =====================================================================
``ts``             Woo ``date_paid_gmt`` else ``date_created_gmt`` (UTC without a zone);
                   Shopify ``processed_at`` else ``created_at`` (with the shop's offset)
``user_id``        the platform's customer id; for a guest, the e-mail trimmed and
                   lower-cased (as the order-export importer does); else none
``anonymous_id``   the storefront visitor's id when the order carries it (Woo order meta
                   or Shopify note attribute ``shopfunnel_anonymous_id``: the purchase then
                   joins that visitor's sessions), else the ``user_id``
``order_id``       the platform's order id (``number``/``name`` go in properties)
``value``          GA4's definition, items after discounts without shipping and tax: Woo
                   ``total − shipping_total − total_tax``; Shopify ``subtotal_price`` (less
                   ``total_tax`` when ``taxes_included``)
``currency``       the order's currency
``items``          line items: ``item_id`` = SKU, else the product id; ``item_name``;
                   ``price`` (unit price); ``quantity``
``country``        billing country
``utm_*``,         Shopify: from ``landing_site``'s query and ``referring_site``; Woo: the
``referrer``       order-attribution meta (``_wc_order_attribution_utm_source`` …) if present
``properties``     ``platform``, ``order_number``, ``status``, ``email``, ``phone``,
                   ``coupon`` (the discount code(s), comma-separated, GA4's ``coupon``),
                   ``discount``, ``shipping``, ``tax``, ``total``, ``test`` (Shopify)
=================  =====================================================================

Refunds: Woo ``refunds[]`` (``value`` = −``total``; time = the order's
``date_modified_gmt``); Shopify ``refunds[]`` of the order, or a ``refunds/create`` body
(``value`` = the refunded line items' subtotal, else the successful refund transactions;
items = the refunded line items). A ``refunds/create`` body names only its order: its
customer is looked up in the store (:func:`order_owner`).

A payload that is not an order (no id, unreadable money or time) raises
:class:`~shopfunnel.errors.InputError` naming the field.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from shopfunnel.errors import InputError
from shopfunnel.ingest.segment import parse_timestamp
from shopfunnel.store.store import Store

Platform = Literal["woocommerce", "shopify"]
PLATFORMS: tuple[str, ...] = ("woocommerce", "shopify")
ANONYMOUS_ID_KEY = "shopfunnel_anonymous_id"
WOO_PAID_STATUSES = frozenset({"processing", "completed", "on-hold", "refunded"})
SHOPIFY_PAID_STATUSES = frozenset(
    {"authorized", "paid", "partially_paid", "partially_refunded", "refunded"}
)
WOO_ATTRIBUTION = {
    "utm_source": "_wc_order_attribution_utm_source",
    "utm_medium": "_wc_order_attribution_utm_medium",
    "utm_campaign": "_wc_order_attribution_utm_campaign",
    "referrer": "_wc_order_attribution_referrer",
}

#: ``owner(order_id) -> (user_id, anonymous_id)`` of an order already in the store, or None.
Owner = Callable[[str], tuple[str | None, str | None] | None]


# -- small readers ----------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None


def _money(value: Any, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"order field {field!r} must be an amount, got {type(value).__name__}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InputError(f"order field {field!r} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise InputError(f"order field {field!r} is not a finite amount: {value!r}")
    return amount


def _time(value: Any, field: str) -> str:
    try:
        return parse_timestamp(value).isoformat()
    except (ValueError, TypeError, OverflowError):
        raise InputError(
            f"order field {field!r} is not a time: {value!r} (ISO 8601 expected)"
        ) from None


def _order_id(payload: Mapping[str, Any], field: str = "id") -> str:
    order_id = _text(payload.get(field))
    if order_id is None:
        raise InputError(f"the payload has no {field!r}: it is not an order")
    return order_id


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _email(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _amount_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.01'))}"


def _item(item_id: Any, name: Any, price: Any, quantity: Any) -> dict[str, Any]:
    qty = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else None
    unit = _money(price, "line_items.price")
    return {
        "item_id": _text(item_id),
        "item_name": html.unescape(_text(name) or "") or None,
        "item_category": None,
        "price": None if unit is None else float(unit),
        "quantity": qty,
    }


def _coupon(lines: Any) -> str | None:
    """The codes of an order's discount lines, comma-separated (GA4's ``coupon``)."""
    codes = [_text(line.get("code")) for line in lines or [] if isinstance(line, Mapping)]
    return ",".join(code for code in codes if code) or None


def _properties(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


def _event(
    event: str,
    event_id: str,
    ts: str,
    order: str,
    who: tuple[str | None, str | None],
    value: Decimal | None,
    currency: str | None,
    items: list[dict[str, Any]] | None,
    properties: dict[str, Any],
    **columns: str | None,
) -> dict[str, Any]:
    user_id, anonymous_id = who
    return {
        "event_id": event_id,
        "ts": ts,
        "event": event,
        "anonymous_id": anonymous_id or user_id,
        "user_id": user_id,
        "order_id": order,
        "value": _amount_text(value),
        "currency": (currency or "").upper() or None,
        "items": items or None,
        "properties": properties,
        **columns,
    }


# -- WooCommerce ------------------------------------------------------------------------------
def woocommerce_events(
    order: Mapping[str, Any], *, topic: str | None = None
) -> list[dict[str, Any]]:
    """The canonical events of one WooCommerce order webhook (see the module docstring).

    ``topic`` is the ``X-WC-Webhook-Topic`` header; ``order.deleted`` gives no events.
    """
    if not isinstance(order, Mapping):
        raise InputError("the WooCommerce payload must be a JSON object (the order)")
    if topic == "order.deleted":
        return []
    order_id = _order_id(order)
    meta = {
        m.get("key"): m.get("value") for m in order.get("meta_data") or [] if isinstance(m, Mapping)
    }
    billing = _mapping(order.get("billing"))
    customer = order.get("customer_id")
    email = _email(billing.get("email"))
    user_id = str(customer) if customer not in (None, 0, "0", "") else email
    anonymous_id = _text(meta.get(ANONYMOUS_ID_KEY)) or _text(meta.get("_" + ANONYMOUS_ID_KEY))
    who = (user_id, anonymous_id or user_id or f"woocommerce-order:{order_id}")
    total = _money(order.get("total"), "total")
    shipping = _money(order.get("shipping_total"), "shipping_total") or Decimal(0)
    tax = _money(order.get("total_tax"), "total_tax") or Decimal(0)
    currency = _text(order.get("currency"))
    properties = _properties(
        platform="woocommerce",
        order_number=_text(order.get("number")),
        status=_text(order.get("status")),
        email=email,
        phone=_text(billing.get("phone")),
        coupon=_coupon(order.get("coupon_lines")),
        discount=_amount_text(_money(order.get("discount_total"), "discount_total")),
        shipping=_amount_text(shipping),
        tax=_amount_text(tax),
        total=_amount_text(total),
        payment_method=_text(order.get("payment_method")),
    )
    columns = {name: _text(meta.get(key)) for name, key in WOO_ATTRIBUTION.items()}
    columns["country"] = _text(billing.get("country"))
    events = []
    status = _text(order.get("status"))
    if status in WOO_PAID_STATUSES or _text(order.get("date_paid_gmt")):
        when = order.get("date_paid_gmt") or order.get("date_created_gmt")
        field = "date_paid_gmt" if order.get("date_paid_gmt") else "date_created_gmt"
        items = [
            _item(
                li.get("sku") or li.get("product_id"),
                li.get("name"),
                li.get("price"),
                li.get("quantity"),
            )
            for li in order.get("line_items") or []
            if isinstance(li, Mapping)
        ]
        value = None if total is None else total - shipping - tax
        events.append(
            _event(
                "purchase",
                f"woocommerce:{order_id}:purchase",
                _time(when, field),
                order_id,
                who,
                value,
                currency,
                items,
                properties,
                **columns,
            )
        )
    refunds = [r for r in order.get("refunds") or [] if isinstance(r, Mapping)]
    if refunds:
        when = order.get("date_modified_gmt") or order.get("date_created_gmt")
        ts = _time(when, "date_modified_gmt")
        for refund in refunds:
            refund_id = _order_id(refund)
            amount = _money(refund.get("total"), "refunds.total")
            events.append(
                _event(
                    "refund",
                    f"woocommerce:{order_id}:refund:{refund_id}",
                    ts,
                    order_id,
                    who,
                    None if amount is None else abs(amount),
                    currency,
                    None,
                    {
                        **properties,
                        "refund_id": refund_id,
                        **_properties(reason=_text(refund.get("reason") or refund.get("refund"))),
                    },
                    **columns,
                )
            )
    return events


# -- Shopify ----------------------------------------------------------------------------------
def _shopify_who(order: Mapping[str, Any], order_id: str) -> tuple[str | None, str | None]:
    customer = _mapping(order.get("customer"))
    email = _email(order.get("email") or order.get("contact_email") or customer.get("email"))
    user_id = _text(customer.get("id")) or email
    notes = {
        n.get("name"): n.get("value")
        for n in order.get("note_attributes") or []
        if isinstance(n, Mapping)
    }
    anonymous_id = _text(notes.get(ANONYMOUS_ID_KEY))
    return user_id, anonymous_id or user_id or f"shopify-order:{order_id}"


def _shopify_refund(
    refund: Mapping[str, Any],
    order_id: str,
    who: tuple[str | None, str | None],
    currency: str | None,
    properties: dict[str, Any],
    columns: dict[str, str | None],
) -> dict[str, Any]:
    refund_id = _order_id(refund)
    lines = [r for r in refund.get("refund_line_items") or [] if isinstance(r, Mapping)]
    items, subtotal = [], Decimal(0)
    for line in lines:
        li = _mapping(line.get("line_item"))
        items.append(
            _item(
                li.get("sku") or li.get("product_id"),
                li.get("title") or li.get("name"),
                li.get("price"),
                line.get("quantity"),
            )
        )
        subtotal += _money(line.get("subtotal"), "refund_line_items.subtotal") or Decimal(0)
    if lines:
        value: Decimal | None = subtotal
    else:
        value = sum(
            (
                _money(t.get("amount"), "transactions.amount") or Decimal(0)
                for t in refund.get("transactions") or []
                if isinstance(t, Mapping)
                and t.get("kind") == "refund"
                and t.get("status") == "success"
            ),
            Decimal(0),
        )
    when = refund.get("processed_at") or refund.get("created_at")
    tx_currency = next(
        (
            t.get("currency")
            for t in refund.get("transactions") or []
            if isinstance(t, Mapping) and t.get("currency")
        ),
        None,
    )
    return _event(
        "refund",
        f"shopify:{order_id}:refund:{refund_id}",
        _time(when, "refunds.created_at"),
        order_id,
        who,
        value,
        currency or _text(tx_currency),
        items,
        {**properties, "refund_id": refund_id},
        **columns,
    )


def shopify_events(
    payload: Mapping[str, Any], *, topic: str, owner: Owner | None = None
) -> list[dict[str, Any]]:
    """The canonical events of one Shopify webhook (``X-Shopify-Topic`` = ``topic``): an
    ``orders/…`` topic carries the order, ``refunds/create`` one refund. ``owner`` finds the
    customer of a refund's order in the store (:func:`order_owner`)."""
    if not isinstance(payload, Mapping):
        raise InputError("the Shopify payload must be a JSON object")
    if topic == "refunds/create":
        order_id = _order_id(payload, "order_id")
        found = owner(order_id) if owner is not None else None
        who = found or (None, f"shopify-order:{order_id}")
        return [_shopify_refund(payload, order_id, who, None, {"platform": "shopify"}, {})]
    if not topic.startswith("orders/") or topic == "orders/delete":
        return []
    order_id = _order_id(payload)
    who = _shopify_who(payload, order_id)
    customer = _mapping(payload.get("customer"))
    billing = _mapping(payload.get("billing_address"))
    currency = _text(payload.get("currency"))
    subtotal = _money(payload.get("subtotal_price"), "subtotal_price")
    tax = _money(payload.get("total_tax"), "total_tax") or Decimal(0)
    shipping_set = _mapping(payload.get("total_shipping_price_set"))
    shipping = _money(
        _mapping(shipping_set.get("shop_money")).get("amount"), "total_shipping_price_set"
    )
    properties = _properties(
        platform="shopify",
        order_number=_text(payload.get("name")),
        status=_text(payload.get("financial_status")),
        email=_email(payload.get("email") or payload.get("contact_email") or customer.get("email")),
        phone=_text(payload.get("phone") or customer.get("phone") or billing.get("phone")),
        coupon=_coupon(payload.get("discount_codes")),
        discount=_amount_text(_money(payload.get("total_discounts"), "total_discounts")),
        shipping=_amount_text(shipping),
        tax=_amount_text(tax),
        total=_amount_text(_money(payload.get("total_price"), "total_price")),
        test=True if payload.get("test") is True else None,
    )
    landing = _text(payload.get("landing_site")) or ""
    query = parse_qs(urlsplit(landing).query)
    columns: dict[str, str | None] = {
        name: _text(query[name][0]) if query.get(name) else None
        for name in ("utm_source", "utm_medium", "utm_campaign")
    }
    columns |= {
        "referrer": _text(payload.get("referring_site")),
        "country": _text(billing.get("country_code")),
    }
    events = []
    paid = topic == "orders/paid" or payload.get("financial_status") in SHOPIFY_PAID_STATUSES
    if paid:
        when = payload.get("processed_at") or payload.get("created_at")
        items = [
            _item(
                li.get("sku") or li.get("product_id") or li.get("variant_id"),
                li.get("title") or li.get("name"),
                li.get("price"),
                li.get("quantity"),
            )
            for li in payload.get("line_items") or []
            if isinstance(li, Mapping)
        ]
        value = subtotal
        if value is not None and payload.get("taxes_included") is True:
            value -= tax
        events.append(
            _event(
                "purchase",
                f"shopify:{order_id}:purchase",
                _time(when, "processed_at"),
                order_id,
                who,
                value,
                currency,
                items,
                properties,
                **columns,
            )
        )
    for refund in payload.get("refunds") or []:
        if isinstance(refund, Mapping):
            events.append(_shopify_refund(refund, order_id, who, currency, properties, columns))
    return events


def order_events(
    platform: Platform, payload: Mapping[str, Any], *, topic: str | None, owner: Owner | None = None
) -> list[dict[str, Any]]:
    """The canonical events of one webhook of ``platform`` (``woocommerce`` or ``shopify``)."""
    if platform == "woocommerce":
        return woocommerce_events(payload, topic=topic)
    if platform == "shopify":
        if not topic:
            raise InputError("a Shopify webhook needs its X-Shopify-Topic header")
        return shopify_events(payload, topic=topic, owner=owner)
    raise InputError(f"platform {platform!r} is not known: use one of {', '.join(PLATFORMS)}")


def order_owner(store: Store, order_id: str) -> tuple[str | None, str | None] | None:
    """``(user_id, anonymous_id)`` of the stored purchase of ``order_id``, or None."""
    rows = store.db.rows(
        "SELECT user_id, anonymous_id FROM events WHERE order_id = ? AND event = 'purchase' "
        "ORDER BY ts LIMIT 1",
        [order_id],
    )
    return (rows[0][0], rows[0][1]) if rows else None
