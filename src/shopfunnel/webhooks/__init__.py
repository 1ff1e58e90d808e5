"""Webhooks out of shopfunnel: a durable outbox in the store, signed deliveries with
retries, and the check a receiver runs.

Modules: :mod:`.outbox` (the tables and enqueuing), :mod:`.endpoints` (where entries go),
:mod:`.delivery` (delivery with back-off, retries, status) and
:mod:`.signing` (the headers, HMAC-SHA256 over ``timestamp.body``, the receiver's check).
"""

from __future__ import annotations

from shopfunnel.webhooks.delivery import (
    DeliveryReport,
    RetryPolicy,
    deliver_due,
    delivery_status,
    retry_failed,
)
from shopfunnel.webhooks.endpoints import Endpoint, add_endpoint, list_endpoints, remove_endpoint
from shopfunnel.webhooks.outbox import enqueue, enqueue_audience_changes, enqueue_flow_sends
from shopfunnel.webhooks.signing import SignatureError, signature, verify_signature

__all__ = [
    "DeliveryReport",
    "Endpoint",
    "RetryPolicy",
    "SignatureError",
    "add_endpoint",
    "deliver_due",
    "delivery_status",
    "enqueue",
    "enqueue_audience_changes",
    "enqueue_flow_sends",
    "list_endpoints",
    "remove_endpoint",
    "retry_failed",
    "signature",
    "verify_signature",
]
