"""Audiences: who to reach, kept fresh, and the flows that message them.

Modules: :mod:`.lists` (cart abandoners, contacts, and the CSV, Meta and Google exports),
:mod:`.definitions` (named audience definitions as typed rules, the built-ins, and what
they evaluate to), :mod:`.saved` (where definitions are kept: the model file's
``[audiences]`` and the store), :mod:`.membership` (refresh: who entered and who left,
with a history of entries), :mod:`.flows` (audience + delay + exit rule + cooldown, and
the record of what was sent) and :mod:`.tables` (the tables they keep in the store).
"""

from __future__ import annotations

from shopfunnel.audiences.lists import (
    CONTACT_COLUMNS,
    PLATFORMS,
    NoContactsError,
    Platform,
    abandoned_carts,
    contacts,
    export_audience,
    normalize_email,
    normalize_phone,
    sha256_hex,
)

__all__ = [
    "CONTACT_COLUMNS",
    "PLATFORMS",
    "NoContactsError",
    "Platform",
    "abandoned_carts",
    "contacts",
    "export_audience",
    "normalize_email",
    "normalize_phone",
    "sha256_hex",
]
