"""The tables audiences and flows keep in the store, created on first write.

They sit in the store's DuckDB file beside the events, created through the store's own
connection (``store.db``). Every row that names a person does so in a column called
``person_id``, so erasing a person (:mod:`shopfunnel.store.erase`) finds them without
knowing these tables.

=========================  ===================================================================
``audiences``              saved definitions: name, the rule as JSON, description, when made
``audience_members``       the membership history: one row per *entry* (a stay in an
                           audience), with ``entered_at``, ``exited_at`` (NULL while the person
                           is still in) and the entry's stable ``entry_id``
``audience_refreshes``     one row per refresh: when (``as_of``, the time the members were
                           judged at, and ``refreshed_at``, the wall clock), how many members,
                           entries and exits, and whether the changes reached the webhook outbox
``flow_sends``             one row per message a flow marked sent (or held out): the person,
                           the trigger it answered, when it was due and when it was sent
=========================  ===================================================================

A read-only store may not have them yet: readers check :func:`has_table` and treat a missing
table as empty.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shopfunnel.store.db import Database

DDL: dict[str, str] = {
    "audiences": """
        CREATE TABLE IF NOT EXISTS audiences (
            name VARCHAR PRIMARY KEY,
            rule VARCHAR NOT NULL,
            description VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL)""",
    "audience_members": """
        CREATE TABLE IF NOT EXISTS audience_members (
            entry_id VARCHAR PRIMARY KEY,
            audience VARCHAR NOT NULL,
            person_id VARCHAR NOT NULL,
            entered_at TIMESTAMP NOT NULL,
            exited_at TIMESTAMP)""",
    "audience_refreshes": """
        CREATE TABLE IF NOT EXISTS audience_refreshes (
            audience VARCHAR NOT NULL,
            as_of TIMESTAMP NOT NULL,
            refreshed_at TIMESTAMP NOT NULL,
            members INTEGER NOT NULL,
            entered INTEGER NOT NULL,
            exited INTEGER NOT NULL,
            published BOOLEAN NOT NULL)""",
    "flow_sends": """
        CREATE TABLE IF NOT EXISTS flow_sends (
            send_id VARCHAR PRIMARY KEY,
            flow VARCHAR NOT NULL,
            person_id VARCHAR NOT NULL,
            trigger_event VARCHAR NOT NULL,
            trigger_at TIMESTAMP NOT NULL,
            due_at TIMESTAMP NOT NULL,
            sent_at TIMESTAMP NOT NULL,
            held_out BOOLEAN NOT NULL)""",
}


def ensure_tables(db: Database) -> None:
    """Create the tables that do not exist yet (needs a writable store)."""
    for ddl in DDL.values():
        db.execute(ddl)


def has_table(db: Database, name: str) -> bool:
    """Whether the store has the table ``name`` (a read-only store may not)."""
    return db.table_exists(name)


def utc_now() -> datetime:
    """The wall clock as the store keeps times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)
