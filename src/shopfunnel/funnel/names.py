"""No silent zeros: a funnel that names an event, a filter key, a breakdown or a held
property the data does not have is refused, with the closest names the data does have.

A misspelt ``purchse`` counts nobody and a ``by="chanel"`` puts everyone under "(none)";
both look like real answers. :func:`check_names` looks each name up in the events the
engine reads (event names; columns, item fields and ``properties`` keys) and raises
:class:`~shopfunnel.errors.UnknownNameError` for the first unknown one. A caller who means
it (a funnel defined before its events arrive) passes ``allow_unknown=True`` to
:func:`shopfunnel.funnel`.
"""

from __future__ import annotations

import difflib
from typing import Any

from shopfunnel.errors import UnknownNameError
from shopfunnel.store.db import json_pointer
from shopfunnel.store.schema import ITEM_FIELDS

SAMPLE_ROWS = 200_000  # rows read to list property keys for a suggestion


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    shown = close or sorted(known)[:10]
    label = "closest" if close else "known"
    return f"{label}: {', '.join(repr(k) for k in shown)}" if shown else "the events have none"


def check_names(engine: Any, plan: Any) -> None:
    """Refuse a plan naming events or keys the engine's events do not have (see the module
    docstring). Engines without a DuckDB relation (Spark) are not checked."""
    db, relation, columns = (getattr(engine, a, None) for a in ("db", "relation", "columns"))
    if db is None or relation is None or columns is None:
        return
    events = [row[0] for row in db.rows(f"SELECT DISTINCT event FROM {relation}")]
    present = set(events)
    conditions = [*plan.steps, *(c for c, _, _ in plan.exclusions)]
    for cond in conditions:
        if cond.event not in present:
            raise UnknownNameError(
                f"no event is named {cond.event!r} in this store ({_suggest(cond.event, events)}). "
                "Check the spelling; if the event is still to come, pass allow_unknown=True "
                "(--allow-unknown on the command line)."
            )
    keys = [
        (k, "filter key", "no event would match the step")
        for cond in conditions
        for k, _ in cond.where
    ]
    if plan.by is not None:
        keys.append((plan.by, "breakdown", "everyone would fall under '(none)'"))
    if plan.hold is not None:
        keys.append((plan.hold, "held property", "no attempt would count"))
    for key, what, outcome in keys:
        if key in columns and key not in ("items", "properties"):
            continue
        if key in ITEM_FIELDS and "items" in columns:
            continue
        if "properties" in columns and db.scalar(
            f"SELECT 1 FROM {relation} WHERE json_exists(properties, ?) LIMIT 1",
            [json_pointer(key)],
        ):
            continue
        known = [c for c in columns if c not in ("items", "properties")]
        if "items" in columns:
            known += list(ITEM_FIELDS)
        if "properties" in columns:
            known += [
                row[0]
                for row in db.rows(
                    f"SELECT DISTINCT unnest(json_keys(properties)) FROM (SELECT properties FROM "
                    f"{relation} WHERE properties IS NOT NULL AND json_type(properties) = 'OBJECT' "
                    f"LIMIT {SAMPLE_ROWS})"
                )
            ]
        raise UnknownNameError(
            f"the {what} {key!r} is not a column, an item field or a property key of any event "
            f"({_suggest(key, sorted(set(known)))}), so {outcome}. Check the spelling, or "
            "pass allow_unknown=True (--allow-unknown) if it is intended."
        )
