"""The public API is what `shopfunnel/__init__.py` re-exports: sorted, complete, importable."""

from __future__ import annotations

import shopfunnel


def test_all_is_sorted_and_unique() -> None:
    assert shopfunnel.__all__ == sorted(set(shopfunnel.__all__))


def test_every_public_name_is_importable() -> None:
    for name in shopfunnel.__all__:
        assert getattr(shopfunnel, name) is not None, name


def test_every_error_derives_from_the_one_root() -> None:
    errors = [getattr(shopfunnel, n) for n in shopfunnel.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, shopfunnel.ShopfunnelError) for e in errors)
