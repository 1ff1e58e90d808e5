"""The store: the canonical event schema, the DuckDB file and its one SQL gateway, and the
sorted timeline beside it.

Everything else reads events through here; only :mod:`shopfunnel.ingest` and the live
collector write them. Modules: :mod:`.schema` (the canonical event), :mod:`.db` (the SQL
gateway: parameters and quoting), :mod:`.store` (the Store: loading, info, tables),
:mod:`.staged` (what a load takes and gives), :mod:`.checks` (what a staged value must pass),
:mod:`.prepare` (typed rows with sessions, channels and ids filled in; the first load),
:mod:`.identities` (identity stitching), :mod:`.channels` (channel grouping at load), :mod:`.timeline` (events sorted by person), :mod:`.timeline_select` (a funnel's rows of it),
:mod:`.segments` (each load's sorted delta), :mod:`.live` (the timeline extended by
the deltas, compacted).
"""

from __future__ import annotations

from shopfunnel.store.store import LoadResult, Store

__all__ = ["LoadResult", "Store"]
