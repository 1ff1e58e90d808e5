"""Erasing a person: every row that names them, the files derived from them, and the bytes
the database kept after the delete.

Who is erased: the person id given, or every person whose events carry the e-mail (in
``properties.email``, or as ``user_id``/``anonymous_id``, which order webhooks and
order exports use for guests), compared trimmed and lower-cased. Their *subjects* are those
person ids with every ``anonymous_id`` and ``user_id`` seen on their events or linked to them
in ``identities``.

What is removed (:func:`erase_person`):

- from **every table** of the store, found when the erase runs (so tables other modules add
  later are covered): each row whose ``person_id``, ``anonymous_id``, ``user_id`` or
  ``customer_id`` column, or any column ending in ``_person_id`` or ``_user_id``, holds a
  subject, and each row whose ``email`` (or ``…_email``) column holds the e-mail. That covers
  events, identity links, audience memberships, sent flows and webhook outbox entries;
- the **timeline** folder beside the store and its live delta (``.timeline.delta``; both are
  rebuilt from the remaining events by the next funnel), and the store's generation moves on so every cache built from the events is stale;
- then :func:`compact_store` rewrites the DuckDB file with only the live rows: DuckDB leaves a
  deleted row's bytes in the file until the space is reused, so without it the e-mail could
  still be read from the file with ``strings``.

An audit line is kept in the table ``erasures``: when, who asked, how many rows of which table,
and the subject as a keyed SHA-256 (key: the store's random id), never the id or e-mail
themselves. Someone holding the store and an id can check whether that id was erased; the
line alone does not say who it was.

Not covered: personal data that sits in *other* people's rows as free text (a note, a
property naming someone else), copies outside the store's folder (reports, exports, backups,
receivers of past webhooks) and logs kept by a proxy in front of the server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shopfunnel.errors import ConfigError, StoreError
from shopfunnel.store import segments
from shopfunnel.store.db import Database, quote_ident, quote_literal
from shopfunnel.store.store import Store
from shopfunnel.store.timeline import folder_for

AUDIT_TABLE = "erasures"
PERSON_COLUMNS = frozenset({"person_id", "anonymous_id", "user_id", "customer_id"})
PERSON_SUFFIXES = ("_person_id", "_user_id")
EMAIL_COLUMNS = frozenset({"email"})
EMAIL_SUFFIXES = ("_email",)


@dataclass(frozen=True)
class Erasure:
    """What :func:`erase_person` removed: persons found, rows per table, files, and the
    keyed hash kept in the audit line."""

    persons: int
    rows: dict[str, int] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    subject_hash: str = ""

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def normalize_email(email: str) -> str:
    """Trimmed and lower-cased, as the e-mail is compared."""
    return email.strip().lower()


def _ensure_audit(db: Database) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (erased_at TIMESTAMP NOT NULL, "
        "subject_sha256 VARCHAR NOT NULL, requested_by VARCHAR, persons INTEGER, "
        "rows_removed JSON, files_removed INTEGER)"
    )


def subject_hash(db: Database, subject: str) -> str:
    """HMAC-SHA256 of the subject keyed by the store's id (hex)."""
    key = str(db.scalar("SELECT value FROM meta WHERE key = 'store_id'") or "")
    return hmac.new(key.encode(), subject.encode("utf-8"), hashlib.sha256).hexdigest()


def _is_person_column(name: str) -> bool:
    lowered = name.lower()
    return lowered in PERSON_COLUMNS or lowered.endswith(PERSON_SUFFIXES)


def _is_email_column(name: str) -> bool:
    lowered = name.lower()
    return lowered in EMAIL_COLUMNS or lowered.endswith(EMAIL_SUFFIXES)


def find_persons(
    store: Store, *, person_id: str | None = None, email: str | None = None
) -> list[str]:
    """The person ids to erase for ``person_id`` or ``email`` (see the module docstring)."""
    if (person_id is None) == (email is None):
        raise ConfigError("give exactly one of a person id or an e-mail to erase")
    db = store.db
    if person_id is not None:
        if not person_id.strip():
            raise ConfigError("the person id is empty")
        return [person_id]
    assert email is not None
    wanted = normalize_email(email)
    if "@" not in wanted:
        raise ConfigError(f"{email!r} is not an e-mail address")
    rows = db.rows(
        """
        SELECT DISTINCT person_id FROM events
        WHERE lower(trim(json_extract_string(properties, '$.email'))) = ?
           OR lower(trim(user_id)) = ? OR lower(trim(anonymous_id)) = ?
        ORDER BY 1
        """,
        [wanted, wanted, wanted],
    )
    return [r[0] for r in rows]


def _subjects(db: Database, persons: list[str]) -> list[str]:
    db.register("__erase_persons", _frame(persons))
    try:
        rows = db.rows(
            """
            SELECT value FROM __erase_persons
            UNION SELECT anonymous_id FROM events WHERE person_id IN (SELECT value FROM __erase_persons)
            UNION SELECT user_id FROM events WHERE person_id IN (SELECT value FROM __erase_persons)
            UNION SELECT anonymous_id FROM identities WHERE person_id IN (SELECT value FROM __erase_persons)
            """
        )
    finally:
        db.unregister("__erase_persons")
    return sorted({r[0] for r in rows if r[0] is not None})


def _frame(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.table({"value": pa.array(values, type=pa.string())})


def _tables(db: Database) -> dict[str, list[str]]:
    rows = db.rows(
        """
        SELECT c.table_name, c.column_name FROM information_schema.columns c
        JOIN information_schema.tables t
          ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE t.table_type = 'BASE TABLE' AND c.table_schema = 'main'
          AND c.data_type IN ('VARCHAR', 'JSON')
        ORDER BY c.table_name, c.ordinal_position
        """
    )
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def erase_person(
    store: Store,
    *,
    person_id: str | None = None,
    email: str | None = None,
    requested_by: str = "cli",
) -> Erasure:
    """Remove a person from every table and the timeline; keep an audit line.

    Give ``person_id`` or ``email``. Returns what was removed; a person who is not in the
    store gives an :class:`Erasure` with 0 persons (and still an audit line, so a request is
    on record). Call :func:`compact_store` once the store is closed to drop the deleted bytes
    from the file.
    """
    persons = find_persons(store, person_id=person_id, email=email)
    db = store.db
    subjects = _subjects(db, persons) if persons else []
    wanted_email = normalize_email(email) if email is not None else None
    removed: dict[str, int] = {}
    db.register("__erase_subjects", _frame(subjects))
    try:
        with db.transaction():
            for table, columns in _tables(db).items():
                if table == AUDIT_TABLE:
                    continue
                conditions, params = [], []
                for column in columns:
                    if _is_person_column(column) and subjects:
                        conditions.append(
                            f"{quote_ident(column)} IN (SELECT value FROM __erase_subjects)"
                        )
                    elif _is_email_column(column) and wanted_email is not None:
                        conditions.append(f"lower(trim({quote_ident(column)})) = ?")
                        params.append(wanted_email)
                if not conditions:
                    continue
                where = " OR ".join(conditions)
                n = int(
                    db.scalar(f"SELECT count(*) FROM {quote_ident(table)} WHERE {where}", params)
                    or 0
                )
                if n:
                    db.execute(f"DELETE FROM {quote_ident(table)} WHERE {where}", params)
                    removed[table] = n
            if removed.get("events"):
                store._bump_generation()
            _ensure_audit(db)
            digest = subject_hash(db, person_id if person_id is not None else wanted_email or "")
            db.execute(
                f"INSERT INTO {AUDIT_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
                [
                    datetime.now(UTC).replace(tzinfo=None),
                    digest,
                    requested_by,
                    len(persons),
                    json.dumps(removed, sort_keys=True),
                    0,
                ],
            )
    finally:
        db.unregister("__erase_subjects")
    files = _remove_timeline(store.path)
    return Erasure(len(persons), removed, files, digest)


def _remove_timeline(store_path: str) -> tuple[str, ...]:
    folder = folder_for(store_path)
    if folder is None:
        return ()
    removed = list(segments.forget(store_path))  # the live delta holds the person's rows too
    for path in [
        folder,
        *folder.parent.glob(f"{folder.name}.*.tmp"),
        *folder.parent.glob(f"{folder.name}.*.old"),
    ]:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return tuple(removed)


def compact_store(path: str | Path) -> int:
    """Rewrite the store file with only its live rows (every table, view and constraint is
    copied) and put it in place of the old one; return the bytes saved.

    Needs the store closed everywhere (DuckDB has one writer per file). The new file is
    written beside the old one and swapped in with an atomic rename, so a crash leaves
    either the old file or the new one, never half of one.
    """
    path = Path(path)
    if str(path) == ":memory:" or not path.exists():
        return 0
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    before = path.stat().st_size
    db = Database(path)
    try:
        db.execute("CHECKPOINT")
        db.execute(f"ATTACH {quote_literal(str(fresh))} AS __compact")
        source = str(db.scalar("SELECT current_database()"))
        db.execute(f"COPY FROM DATABASE {quote_ident(source)} TO __compact")
        db.execute("DETACH __compact")
    except Exception as exc:
        fresh.unlink(missing_ok=True)
        raise StoreError(f"cannot rewrite {path} to drop erased bytes: {exc}") from exc
    finally:
        db.close()
    with open(fresh, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(fresh, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return before - path.stat().st_size
