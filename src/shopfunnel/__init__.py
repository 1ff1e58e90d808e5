"""shopfunnel: see an online store's sales funnel and turn what it finds into action."""

from shopfunnel.errors import (
    ConfigError,
    InputError,
    Reject,
    ShopfunnelError,
    StoreError,
    ValidationError,
)
from shopfunnel.store import LoadResult, Store

__all__ = [
    "ConfigError",
    "InputError",
    "LoadResult",
    "Reject",
    "ShopfunnelError",
    "Store",
    "StoreError",
    "ValidationError",
]
__version__ = "0.1.0"
