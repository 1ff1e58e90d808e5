"""Identity stitching: an anonymous id that ever appears on an event with a ``user_id``
belongs to that user (the earliest such user id, if a device was shared), earlier events
included. ``person_id`` is ``user_id`` when the event has one, else the user its anonymous
id is stitched to, else the anonymous id.
"""

from __future__ import annotations

from shopfunnel.store.db import Database


def stitch(db: Database, *, record_moves: bool = False) -> None:
    """Map every anonymous id seen with a user id to that (earliest) user id.

    With ``record_moves``, the persons whose rows the stitching changed (each moved
    row's new owner and its old one: the anonymous id itself or the user it was
    stitched to before) are added to the temporary table ``__moved``, for the
    timeline's delta (:mod:`shopfunnel.store.segments`)."""
    if record_moves:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE __prior_ids AS SELECT * FROM identities "
            "WHERE anonymous_id IN (SELECT anonymous_id FROM __linked)"
        )
    db.execute(
        """
        INSERT OR REPLACE INTO identities
        SELECT anonymous_id, arg_min(user_id, ts) FROM events
        WHERE user_id IS NOT NULL AND anonymous_id IN (
            SELECT anonymous_id FROM __linked)
        GROUP BY anonymous_id
        """
    )
    update = """
        UPDATE events SET person_id = i.person_id FROM identities i
        WHERE events.anonymous_id = i.anonymous_id AND events.user_id IS NULL
          AND events.person_id <> i.person_id
          AND i.anonymous_id IN (SELECT anonymous_id FROM __linked)
        """
    if not record_moves:
        db.execute(update)
        return
    moved = db.arrow(update + " RETURNING events.anonymous_id AS a, events.person_id AS p")
    db.register("__moved_rows", moved)
    try:
        db.execute(
            """
            INSERT INTO __moved
            SELECT DISTINCT x FROM (
                SELECT a AS x FROM __moved_rows UNION ALL SELECT p FROM __moved_rows
                UNION ALL SELECT o.person_id FROM __prior_ids o
                WHERE o.anonymous_id IN (SELECT a FROM __moved_rows))
            WHERE x NOT IN (SELECT person_id FROM __moved)
            """
        )
    finally:
        db.unregister("__moved_rows")
        db.execute("DROP TABLE IF EXISTS __prior_ids")
