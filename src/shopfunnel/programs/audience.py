"""Who qualifies for a program: one small function over an audience spec.

An audience spec is one of

- a list (or tuple) of person ids: exactly those persons;
- a text of ``key=value`` conditions joined by commas, all of which must hold:

  =====================  ================================================================
  ``all``                every person in the store
  ``customers``          persons with at least one order
  ``stage=NAME``         persons whose stage is NAME (:func:`shopfunnel.stages.persons`)
  ``status=NAME``        persons with that status: active, stalled, lapsed or gone
  ``rfm=G1|G2``          customers in these RFM groups (:mod:`shopfunnel.customers.rfm`)
  ``persons=ID1|ID2``    exactly these persons (ids may not hold ``,`` or ``|``)
  =====================  ================================================================

  e.g. ``stage=retention,status=active`` or ``rfm=champions|loyal``.

:func:`qualifying_persons` is the only place that reads a spec, so saved audiences can be
added here as one more key without touching the programs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from shopfunnel._time import naive_utc_timestamp
from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store

AudienceSpec = str | Sequence[str]
KEYS = ("all", "customers", "stage", "status", "rfm", "persons")


def audience_text(spec: AudienceSpec) -> str:
    """The spec as the text stored with a program (a list becomes ``persons=…``)."""
    if isinstance(spec, str):
        parse_audience(spec)
        return spec.strip()
    ids = _ids(spec)
    return "persons=" + "|".join(ids)


def parse_audience(text: str) -> dict[str, str]:
    """The conditions of a spec text, checked: ``{"stage": "decision", ...}``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            "the audience is empty: give e.g. 'customers', 'rfm=champions' or "
            "'stage=decision,status=stalled'"
        )
    conditions: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        key, _, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key not in KEYS:
            raise ConfigError(
                f"audience condition {part!r} is not known: use "
                f"{', '.join(KEYS)} (e.g. 'rfm=champions|loyal')"
            )
        if key in ("all", "customers") and value:
            raise ConfigError(f"audience condition {part!r} takes no value: write just {key!r}")
        if key not in ("all", "customers") and not value:
            raise ConfigError(f"audience condition {part!r} needs a value, e.g. {key}=…")
        if key in conditions:
            raise ConfigError(f"audience condition {key!r} is given twice in {text!r}")
        conditions[key] = value
    if "rfm" in conditions:
        from shopfunnel.customers.rfm import GROUPS

        unknown = [g for g in conditions["rfm"].split("|") if g.strip().lower() not in GROUPS]
        if unknown:
            raise ConfigError(f"RFM group(s) {unknown} not known: use {', '.join(GROUPS)}")
    return conditions


def _ids(values: Sequence[str]) -> list[str]:
    ids = sorted({str(v).strip() for v in values if str(v).strip()})
    if not ids:
        raise ConfigError("the audience lists no person: give at least one person id")
    return ids


def qualifying_persons(
    store: Store, audience: AudienceSpec, *, as_of: datetime | date | str | None = None
) -> list[str]:
    """The person ids an audience spec selects (definitions in the module docstring),
    sorted. ``as_of`` places stages, statuses and RFM groups at that time (default: the
    last event). A list of ids is returned as given (deduplicated, sorted), whether or not
    the store has seen them yet."""
    if not isinstance(audience, str):
        return _ids(audience)
    conditions = parse_audience(audience)
    chosen: set[str] | None = None

    def narrow(ids: set[str]) -> None:
        nonlocal chosen
        chosen = ids if chosen is None else chosen & ids

    if "persons" in conditions:
        narrow(set(_ids(conditions["persons"].split("|"))))
    if "all" in conditions:
        narrow({r[0] for r in store.db.rows("SELECT DISTINCT person_id FROM events")})
    if "customers" in conditions:
        narrow(_customers(store, as_of))
    if "stage" in conditions or "status" in conditions:
        from shopfunnel.stages import persons

        placed = persons(store, conditions.get("stage"), conditions.get("status"), as_of=as_of)
        narrow(set(placed["person_id"].astype(str)))
    if "rfm" in conditions:
        narrow(_rfm_members(store, conditions["rfm"], as_of))
    return sorted(chosen or set())


def _customers(store: Store, as_of: datetime | date | str | None) -> set[str]:
    if as_of is None:
        return {r[0] for r in store.db.rows("SELECT DISTINCT person_id FROM orders")}
    end = naive_utc_timestamp(as_of).to_pydatetime()
    return {
        r[0] for r in store.db.rows("SELECT DISTINCT person_id FROM orders WHERE ts < ?", [end])
    }


def _rfm_members(store: Store, groups: str, as_of: datetime | date | str | None) -> set[str]:
    from shopfunnel.customers.rfm import rfm_table

    wanted = {g.strip().lower() for g in groups.split("|")}
    orders = store.db.df("SELECT person_id, ts, CAST(value AS DOUBLE) AS value FROM orders")
    if as_of is not None:
        orders = orders[orders["ts"] < naive_utc_timestamp(as_of)]
    if orders.empty:
        return set()
    table = rfm_table(orders, as_of=as_of)
    return set(table.loc[table["group"].isin(wanted), "person_id"].astype(str))
