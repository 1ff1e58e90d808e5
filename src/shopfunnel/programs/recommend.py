"""Recommendations from the store's own events: items seen together, bought together.

**Baskets.** *Viewed together*: a basket is a session, holding the ``item_id`` of every
``view_item`` event in it. *Bought together*: a basket is an order, holding the items of its
``purchase`` events. An item counts once per basket. Baskets with more than ``max_items``
distinct items (default 50: crawlers, bulk orders) are left out entirely.

**Pair figures**, over the ``N`` baskets kept: ``count_a`` baskets hold item a, ``support``
baskets hold both a and b;

- ``cosine = support / √(count_a · count_b)`` (0 to 1; 1 when a and b always come together);
- ``lift = support · N / (count_a · count_b)`` (how much more often than if they were
  independent; 1 = independent).

Pairs with ``support < min_support`` (default 3) are dropped: a pair seen once or twice says
nothing. :func:`related_items` ranks an item's partners by the chosen score (ties: support,
then item id).

**Per person** (:func:`recommend_for_persons`): the *seeds* are the items the person viewed
and did not buy; each candidate item scores the sum, over the seeds, of its pair score with
the seed (the ``because`` column names the seed that gave the most). Items the person bought
are never recommended; the seeds themselves are left out too unless ``include_viewed``.
Top ``top`` per person, ties broken by item id.

**How good is it** (:func:`evaluate_recommendations`): leave the last session out. For each
person with at least two sessions that viewed an item, the last such session is held out.
The pair model is built from every other session (no held-out session feeds it); the
person's history is their events before the held-out session. A person is a **hit at k**
when one of their top-k recommendations is viewed in the held-out session; the **hit rate**
is hits / persons evaluated (persons without a seed count, as misses). The baseline
recommends the k items viewed in the most training sessions, with the same exclusions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store

Kind = Literal["viewed", "bought"]
Score = Literal["cosine", "lift"]
KINDS: dict[str, tuple[str, str]] = {
    "viewed": ("view_item", "session_id"),
    "bought": ("purchase", "order_id"),
}
PAIR_COLUMNS = ["item_a", "item_b", "support", "count_a", "count_b", "baskets", "cosine", "lift"]


def _check(kind: str, score: str, min_support: int, max_items: int) -> tuple[str, str]:
    if kind not in KINDS:
        raise ConfigError(
            f"kind={kind!r} is not valid: use viewed (together in a session) or bought (in an order)"
        )
    if score not in ("cosine", "lift"):
        raise ConfigError(f"score={score!r} is not valid: use cosine or lift")
    if min_support < 1 or max_items < 2:
        raise ConfigError("min_support must be ≥ 1 and max_items ≥ 2")
    return KINDS[kind]


def _build_pairs(
    store: Store,
    source: str,
    kind: Kind,
    score: Score,
    min_support: int,
    max_items: int,
    params: Sequence[object] = (),
) -> None:
    """Create the temp table ``__pairs`` (both directions of each pair) over the events of
    ``source`` (a relation name or a parenthesised SELECT)."""
    event, basket = _check(kind, score, min_support, max_items)
    store.db.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE __pairs AS
        WITH b AS (
            SELECT DISTINCT {basket} AS basket, item FROM (
                SELECT {basket}, unnest(list_transform(items, lambda i: i.item_id)) AS item
                FROM {source} WHERE event = ? AND items IS NOT NULL AND {basket} IS NOT NULL)
            WHERE item IS NOT NULL),
        kept AS (SELECT * FROM b WHERE basket IN (
            SELECT basket FROM b GROUP BY basket HAVING count(*) <= ?)),
        n AS (SELECT count(DISTINCT basket) AS baskets FROM kept),
        counts AS (SELECT item, count(*) AS n_item FROM kept GROUP BY item),
        multi AS (SELECT * FROM kept WHERE basket IN (
            SELECT basket FROM kept GROUP BY basket HAVING count(*) >= 2)),
        pairs AS (
            SELECT x.item AS item_a, y.item AS item_b, count(*) AS support
            FROM multi x JOIN multi y ON x.basket = y.basket AND x.item <> y.item
            GROUP BY ALL HAVING count(*) >= ?)
        SELECT p.item_a, p.item_b, p.support, ca.n_item AS count_a, cb.n_item AS count_b,
               n.baskets, p.support / sqrt(ca.n_item * cb.n_item) AS cosine,
               p.support * n.baskets / (ca.n_item * cb.n_item) AS lift,
               {score} AS score
        FROM pairs p JOIN counts ca ON ca.item = p.item_a JOIN counts cb ON cb.item = p.item_b, n
        """,
        [*params, event, max_items, min_support],
    )


def item_pairs(
    store: Store,
    *,
    kind: Kind = "viewed",
    score: Score = "cosine",
    min_support: int = 3,
    max_items: int = 50,
) -> pd.DataFrame:
    """Every pair (both directions) with its figures (module docstring): ``item_a``,
    ``item_b``, ``support``, ``count_a``, ``count_b``, ``baskets``, ``cosine``, ``lift``,
    by ``item_a`` then the score, highest first."""
    _build_pairs(store, "events", kind, score, min_support, max_items)
    try:
        return store.db.df(
            f"SELECT {', '.join(PAIR_COLUMNS)} FROM __pairs "
            "ORDER BY item_a, score DESC, support DESC, item_b"
        )
    finally:
        store.db.execute("DROP TABLE IF EXISTS __pairs")


def _names(store: Store) -> str:
    return (
        "(SELECT item_id, arg_max(item_name, ts) AS item_name FROM ("
        "SELECT ts, unnest(list_transform(items, lambda i: i.item_id)) AS item_id, "
        "unnest(list_transform(items, lambda i: i.item_name)) AS item_name FROM events "
        "WHERE items IS NOT NULL) GROUP BY item_id)"
    )


def related_items(
    store: Store,
    item_id: str,
    *,
    kind: Kind = "viewed",
    score: Score = "cosine",
    top: int = 10,
    min_support: int = 3,
    max_items: int = 50,
) -> pd.DataFrame:
    """The ``top`` items most related to ``item_id``: ``rank``, ``item_id``, ``item_name``,
    ``score``, ``support``, ``cosine``, ``lift``. Empty when the item has no pair with
    enough support."""
    _build_pairs(store, "events", kind, score, min_support, max_items)
    try:
        return store.db.df(
            f"""
            SELECT row_number() OVER (ORDER BY p.score DESC, p.support DESC, p.item_b) AS rank,
                   p.item_b AS item_id, n.item_name, p.score, p.support, p.cosine, p.lift
            FROM __pairs p LEFT JOIN {_names(store)} n ON n.item_id = p.item_b
            WHERE p.item_a = ? ORDER BY rank LIMIT ?""",
            [item_id, top],
        )
    finally:
        store.db.execute("DROP TABLE IF EXISTS __pairs")


def _history(persons_sql: str, source: str) -> str:
    """SQL of (person_id, item, bought) over the persons' events in ``source``."""
    return f"""
        SELECT person_id, item, bool_or(event = 'purchase') AS bought FROM (
            SELECT person_id, event, unnest(list_transform(items, lambda i: i.item_id)) AS item
            FROM {source} WHERE event IN ('view_item', 'purchase') AND items IS NOT NULL
              AND person_id IN (SELECT person_id FROM {persons_sql}))
        WHERE item IS NOT NULL GROUP BY ALL"""


def _recommend(
    store: Store, history: str, top: int, include_viewed: bool, params: Sequence[object] = ()
) -> pd.DataFrame:
    """Top recommendations per person from ``__pairs`` and a history relation."""
    return store.db.df(
        f"""
        WITH h AS ({history}),
        seeds AS (SELECT person_id, item FROM h WHERE NOT bought),
        scored AS (
            SELECT s.person_id, p.item_b AS item_id, sum(p.score) AS score,
                   arg_max(s.item, p.score) AS because
            FROM seeds s JOIN __pairs p ON p.item_a = s.item GROUP BY ALL),
        allowed AS (
            SELECT * FROM scored c WHERE NOT EXISTS (
                SELECT 1 FROM h WHERE h.person_id = c.person_id AND h.item = c.item_id
                  AND (h.bought OR NOT ?)))
        SELECT person_id, row_number() OVER (PARTITION BY person_id ORDER BY score DESC, item_id) AS rank,
               item_id, score, because
        FROM allowed QUALIFY rank <= ? ORDER BY person_id, rank""",
        [*params, include_viewed, top],
    )


def recommend_for_persons(
    store: Store,
    persons: Sequence[str],
    *,
    kind: Kind = "viewed",
    score: Score = "cosine",
    top: int = 5,
    include_viewed: bool = False,
    min_support: int = 3,
    max_items: int = 50,
) -> pd.DataFrame:
    """Per person, the ``top`` items most related to what they viewed and did not buy
    (definition in the module docstring): ``person_id``, ``rank``, ``item_id``,
    ``item_name``, ``score``, ``because`` (the seed item that contributed most). A person
    with no seed gets no row."""
    if top < 1:
        raise ConfigError(f"top={top!r} is not valid: give a whole number ≥ 1")
    _build_pairs(store, "events", kind, score, min_support, max_items)
    store.db.register("__persons", pd.DataFrame({"person_id": [str(p) for p in persons]}))
    try:
        recs = _recommend(store, _history("__persons", "events"), top, include_viewed)
        names = store.db.df(f"SELECT * FROM {_names(store)}")
    finally:
        store.db.unregister("__persons")
        store.db.execute("DROP TABLE IF EXISTS __pairs")
    recs = recs.merge(names, on="item_id", how="left")
    return recs[["person_id", "rank", "item_id", "item_name", "score", "because"]]


def evaluate_recommendations(
    store: Store,
    *,
    ks: Sequence[int] = (5, 10),
    kind: Kind = "viewed",
    score: Score = "cosine",
    include_viewed: bool = False,
    min_support: int = 3,
    max_items: int = 50,
) -> pd.DataFrame:
    """Hit rate at each k of the pair model and of the most-popular baseline on held-out
    last sessions (definitions in the module docstring): ``method``, ``k``, ``persons``,
    ``covered`` (persons given at least one item), ``hits``, ``hit_rate``."""
    top = max(ks)
    db = store.db
    db.execute(
        """
        CREATE OR REPLACE TEMP TABLE __heldout AS
        SELECT person_id, session_id, started_at FROM (
            SELECT person_id, session_id, min(ts) AS started_at FROM events
            WHERE event = 'view_item' AND items IS NOT NULL GROUP BY ALL)
        QUALIFY count(*) OVER (PARTITION BY person_id) >= 2
            AND row_number() OVER (PARTITION BY person_id ORDER BY started_at DESC, session_id) = 1"""
    )
    try:
        db.execute(
            "CREATE OR REPLACE TEMP VIEW __train AS SELECT * FROM events "
            "WHERE session_id NOT IN (SELECT session_id FROM __heldout)"
        )
        db.execute("""CREATE OR REPLACE TEMP VIEW __before AS SELECT e.* FROM events e
                      JOIN __heldout h USING (person_id) WHERE e.ts < h.started_at""")
        _build_pairs(store, "__train", kind, score, min_support, max_items)
        history = _history("__heldout", "__before")
        model = _recommend(store, history, top, include_viewed)
        longest = db.scalar(
            f"SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM ({history}) GROUP BY person_id)"
        )
        popular = db.df(
            f"""
            WITH h AS ({history}),
            pop AS (SELECT item, count(DISTINCT session_id) AS n FROM (
                SELECT session_id, unnest(list_transform(items, lambda i: i.item_id)) AS item
                FROM __train WHERE event = 'view_item' AND items IS NOT NULL) GROUP BY item
                ORDER BY n DESC, item LIMIT ?),
            cand AS (
                SELECT x.person_id, pop.item AS item_id, pop.n FROM __heldout x, pop
                WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.person_id = x.person_id
                    AND h.item = pop.item AND (h.bought OR NOT ?)))
            SELECT person_id, row_number() OVER (PARTITION BY person_id ORDER BY n DESC, item_id) AS rank,
                   item_id FROM cand QUALIFY rank <= ?""",
            [top + int(longest), include_viewed, top],
        )
        target = db.df(
            """SELECT DISTINCT h.person_id, unnest(list_transform(e.items, lambda i: i.item_id)) AS item_id
               FROM events e JOIN __heldout h ON e.session_id = h.session_id AND e.person_id = h.person_id
               WHERE e.event = 'view_item' AND e.items IS NOT NULL"""
        )
        n_persons = int(db.scalar("SELECT count(*) FROM __heldout"))
    finally:
        for name in ("__train", "__before"):
            db.execute(f"DROP VIEW IF EXISTS {name}")
        for name in ("__heldout", "__pairs"):
            db.execute(f"DROP TABLE IF EXISTS {name}")
    wanted = set(zip(target["person_id"], target["item_id"], strict=True))
    rows = []
    for method, recs in (
        ("viewed together" if kind == "viewed" else "bought together", model),
        ("most popular", popular),
    ):
        for k in ks:
            shown = recs[recs["rank"] <= k]
            hit_persons = {
                p
                for p, i in zip(shown["person_id"], shown["item_id"], strict=True)
                if (p, i) in wanted
            }
            rows.append(
                {
                    "method": method,
                    "k": k,
                    "persons": n_persons,
                    "covered": int(shown["person_id"].nunique()),
                    "hits": len(hit_persons),
                    "hit_rate": len(hit_persons) / n_persons if n_persons else float("nan"),
                }
            )
    return pd.DataFrame(rows)
