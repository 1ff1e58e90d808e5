"""``shopfunnel serve``: the HTTP collector, tracking snippet, dashboard and JSON API.

Modules: :mod:`.app` (the app factory), :mod:`.collector` (event intake),
:mod:`.events` (per-event checks), :mod:`.spool` (durable, fsynced log),
:mod:`.writer` (background loads into the store), :mod:`.auth` (password, keys,
sessions), :mod:`.limits` (rate limits), :mod:`.api` (JSON API) and :mod:`.dashboard`.
"""

from shopfunnel.server.app import create_app
from shopfunnel.server.auth import create_write_key, hash_password

__all__ = ["create_app", "create_write_key", "hash_password"]
