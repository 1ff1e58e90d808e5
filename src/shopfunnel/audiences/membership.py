"""Membership history: who entered an audience and who left, refresh after refresh.

:func:`refresh` computes an audience's members now (at ``as_of``, default the store's latest
event) and compares them with the persons who are in it according to the history:

- a person in the audience who is not in the history as a member **enters**: a new row in
  ``audience_members`` with ``entered_at = as_of`` and a new ``entry_id``;
- a person in the history as a member who is no longer in the audience **leaves**: their
  row gets ``exited_at = as_of``; the exit carries the entry's ``entry_id``;
- everyone else is unchanged. Refreshing again at the same ``as_of`` on the same events
  changes nothing; an ``as_of`` before the audience's last refresh is refused (the history
  only moves forward).

An **entry** is one stay in the audience, from entering to leaving. Its ``entry_id`` is
``"m" + the first 32 hex digits of SHA-256(audience, person, entered_at, n)``, where ``n``
counts the person's earlier entries into that audience. It is fixed when the entry is made
and stored, so it is a stable idempotency key: whatever reads the history (the webhook
outbox, a CSV of new entries, a flow) can deliver each entry once. A person who leaves and
comes back gets a new entry with a new id.

:func:`changes` gives entries and exits as a table with the columns the webhook outbox takes
(``audience``, ``person_id``, ``change`` = ``enter``/``exit``, ``at``, ``entry_id``);
:func:`publish` hands the changes of refreshes not yet published to the outbox
(:func:`shopfunnel.webhooks.enqueue_audience_changes`, keyed by entry and change, so a
repeat does nothing). When the store has no webhook endpoint there is no one to send to:
the refresh is marked published without enqueuing, so adding an endpoint later does not
replay old changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from shopfunnel.audiences import tables
from shopfunnel.audiences.evaluate import resolve_as_of
from shopfunnel.audiences.saved import audience_members, get_audience
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model, load_model
from shopfunnel.store.store import Store

CHANGE_COLUMNS = ["audience", "person_id", "change", "at", "entry_id"]
HISTORY_COLUMNS = ["audience", "person_id", "entry_id", "entered_at", "exited_at"]


@dataclass(frozen=True)
class Refresh:
    """What one refresh found: the audience, the instant it was judged at, the number of
    members, and the entries and exits (:data:`CHANGE_COLUMNS`)."""

    audience: str
    as_of: pd.Timestamp | None
    members: int
    changes: pd.DataFrame

    @property
    def entered(self) -> int:
        return int((self.changes["change"] == "enter").sum())

    @property
    def exited(self) -> int:
        return int((self.changes["change"] == "exit").sum())


def entry_id(audience: str, person_id: str, entered_at: pd.Timestamp, earlier_entries: int) -> str:
    """The id of an entry (definition in the module docstring)."""
    text = "\x1f".join(
        [audience, person_id, pd.Timestamp(entered_at).isoformat(), str(earlier_entries)]
    )
    return "m" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def refresh_audience(
    store: Store,
    name: str,
    *,
    as_of: datetime | date | str | None = None,
    model: Model | None = None,
) -> Refresh:
    """Recompute audience ``name`` at ``as_of`` and record who entered and who left since
    the last refresh (rules in the module docstring). Written in one transaction."""
    model = model or load_model()
    get_audience(store, name, model)
    when = resolve_as_of(store, as_of)
    if when is None:
        return Refresh(name, None, 0, _empty_changes())
    tables.ensure_tables(store.db)
    last = store.db.scalar("SELECT max(as_of) FROM audience_refreshes WHERE audience = ?", [name])
    if last is not None and when < pd.Timestamp(last):
        raise ConfigError(
            f"cannot refresh {name!r} as of {when}: it was last refreshed as of "
            f"{pd.Timestamp(last)}, and the history only moves forward (use a later time, or none "
            "for the store's latest event)"
        )
    now = audience_members(store, name, as_of=when, model=model)["person_id"]
    current = store.db.df(
        "SELECT person_id, entry_id FROM audience_members WHERE audience = ? AND exited_at IS NULL",
        [name],
    )
    entering = pd.Index(now).difference(pd.Index(current["person_id"]))
    leaving = current[~current["person_id"].isin(set(now))]
    earlier = store.db.df(
        "SELECT person_id, count(*) AS n FROM audience_members WHERE audience = ? GROUP BY person_id",
        [name],
    ).set_index("person_id")["n"]
    new_rows = pd.DataFrame(
        {
            "entry_id": [entry_id(name, p, when, int(earlier.get(p, 0))) for p in entering],
            "audience": name,
            "person_id": pd.Series(list(entering), dtype=object),
            "entered_at": when,
        }
    )
    db = store.db
    with db.transaction():
        if len(new_rows):
            db.register("__audience_entering", new_rows)
            try:
                db.execute(
                    "INSERT INTO audience_members (entry_id, audience, person_id, entered_at) "
                    "SELECT entry_id, audience, person_id, entered_at FROM __audience_entering"
                )
            finally:
                db.unregister("__audience_entering")
        if len(leaving):
            db.register("__audience_leaving", leaving[["entry_id"]])
            try:
                db.execute(
                    "UPDATE audience_members SET exited_at = ? WHERE entry_id IN "
                    "(SELECT entry_id FROM __audience_leaving)",
                    [when],
                )
            finally:
                db.unregister("__audience_leaving")
        db.execute(
            "INSERT INTO audience_refreshes VALUES (?, ?, ?, ?, ?, ?, false)",
            [name, when, tables.utc_now(), len(now), len(new_rows), len(leaving)],
        )
    enters = new_rows.assign(change="enter", at=when)
    exits = pd.DataFrame(
        {
            "audience": name,
            "person_id": leaving["person_id"].to_numpy(),
            "entry_id": leaving["entry_id"].to_numpy(),
            "change": "exit",
            "at": when,
        }
    )
    frame = pd.concat([enters[CHANGE_COLUMNS], exits[CHANGE_COLUMNS]], ignore_index=True)
    return Refresh(name, when, len(now), _sorted(frame))


def audience_history(store: Store, name: str | None = None) -> pd.DataFrame:
    """The membership history (:data:`HISTORY_COLUMNS`): one row per entry, ``exited_at``
    empty while the person is still in; of one audience, or all. Sorted by audience, time."""
    if not tables.has_table(store.db, "audience_members"):
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    where, params = ("WHERE audience = ?", [name]) if name is not None else ("", [])
    return store.db.df(
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM audience_members {where} "
        "ORDER BY audience, entered_at, person_id",
        params,
    )


def current_members(store: Store, name: str) -> pd.DataFrame:
    """The open entries of ``name`` at its last refresh: person_id, entry_id, entered_at."""
    frame = audience_history(store, name)
    return frame[frame["exited_at"].isna()][["person_id", "entry_id", "entered_at"]].reset_index(
        drop=True
    )


def audience_changes(
    store: Store,
    name: str | None,
    *,
    since: datetime | date | str | None = None,
) -> pd.DataFrame:
    """Entries and exits of ``name`` (of every audience when None; :data:`CHANGE_COLUMNS`) at
    or after ``since`` (all when None), sorted by time, exits before entries at one instant,
    then person."""
    frame = audience_history(store, name)
    enters = frame.assign(change="enter", at=frame["entered_at"])
    left = frame[frame["exited_at"].notna()]
    exits = left.assign(change="exit", at=left["exited_at"])
    out = pd.concat([enters[CHANGE_COLUMNS], exits[CHANGE_COLUMNS]], ignore_index=True)
    if since is not None:
        start = resolve_as_of(store, since)
        out = out[pd.to_datetime(out["at"]) >= start]
    return _sorted(out)


def publish(store: Store, name: str) -> int:
    """Hand the changes of ``name``'s unpublished refreshes to the webhook outbox; return
    how many entries were new there (rules in the module docstring)."""
    from shopfunnel.webhooks import enqueue_audience_changes, list_endpoints

    if not tables.has_table(store.db, "audience_refreshes"):
        return 0
    start = store.db.scalar(
        "SELECT min(as_of) FROM audience_refreshes WHERE audience = ? AND NOT published", [name]
    )
    if start is None:
        return 0
    added = 0
    if len(list_endpoints(store)):
        added = enqueue_audience_changes(
            store, name, audience_changes(store, name, since=pd.Timestamp(start))
        )
    store.db.execute(
        "UPDATE audience_refreshes SET published = true WHERE audience = ? AND NOT published",
        [name],
    )
    return added


def refreshes(store: Store, name: str | None = None) -> pd.DataFrame:
    """The log of refreshes: audience, as_of, refreshed_at, members, entered, exited, published."""
    if not tables.has_table(store.db, "audience_refreshes"):
        return pd.DataFrame(
            columns=[
                "audience",
                "as_of",
                "refreshed_at",
                "members",
                "entered",
                "exited",
                "published",
            ]
        )
    where, params = ("WHERE audience = ?", [name]) if name is not None else ("", [])
    return store.db.df(
        f"SELECT * FROM audience_refreshes {where} ORDER BY audience, as_of, refreshed_at", params
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    order = frame.assign(__c=(frame["change"] == "enter").astype(int))
    return (
        order.sort_values(["at", "__c", "person_id"], kind="stable")
        .drop(columns="__c")
        .reset_index(drop=True)
    )


def _empty_changes() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in CHANGE_COLUMNS})
