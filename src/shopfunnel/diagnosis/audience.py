"""Who a finding's audience names: the persons to show its tactic to."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from shopfunnel.store.db import json_pointer


def as_naive_utc(value: date | datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def audience_persons(
    store,
    audience: dict[str, Any],
    *,
    model: Any = None,
    as_of: date | datetime | str | None = None,
    with_status: bool = True,
) -> pd.DataFrame:
    """The persons a finding's ``audience`` names: who to show the tactic to.

    Starts from the stage model's persons at ``audience["stage"]`` (and ``status``, unless
    ``with_status=False``: "everyone at Decision" is wider than "stalled at Decision"),
    then keeps those with a session in the segment (``device``, ``channel``, ``campaign``;
    within ``between`` dates when given) and, for a ``filter`` such as
    ``payment_failed=true`` or ``shipping_cost>0``, with an event whose property matches.
    Columns are those of :func:`shopfunnel.stages.persons`; hand them to
    :func:`shopfunnel.audiences.export_audience` for an ad platform.
    """
    from shopfunnel.model import Model
    from shopfunnel.stages.placement import persons

    m = model if isinstance(model, Model) else None
    p = persons(
        store,
        audience.get("stage"),
        audience.get("status") if with_status else None,
        model=m,
        as_of=as_of,
    )
    cond: list[str] = []
    params: list[Any] = []
    for col, ev_col in (("device", "device"), ("channel", "channel"), ("campaign", "utm_campaign")):
        if isinstance(audience.get(col), str):
            cond.append(f"{ev_col} = ?")
            params.append(audience[col])
    between = audience.get("between")
    if between:
        cond.append("ts >= ? AND ts < ?")
        params += [
            as_naive_utc(str(between[0])),
            (as_naive_utc(str(between[1])) or datetime(1970, 1, 1)) + timedelta(days=1),
        ]
    flt = audience.get("filter")
    if isinstance(flt, str) and ("=" in flt or ">" in flt):
        op = ">" if ">" in flt and "=" not in flt else "="
        key, value = (x.strip() for x in flt.split(op, 1))
        path = json_pointer(key)
        if op == ">":
            cond.append("TRY_CAST(json_extract_string(properties, ?) AS DOUBLE) > ?")
            params += [path, float(value)]
        else:
            cond.append("json_extract_string(properties, ?) = ?")
            params += [path, value]
    if not cond or p.empty:
        return p
    ids = store.db.df(f"SELECT DISTINCT person_id FROM events WHERE {' AND '.join(cond)}", params)
    return p[p["person_id"].isin(set(ids["person_id"]))].reset_index(drop=True)
