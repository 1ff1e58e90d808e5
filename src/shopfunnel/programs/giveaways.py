"""Giveaways that anyone can re-draw, and preview lists of the most loyal customers.

**The draw** (algorithm ``sha256-rank-v1``, :func:`draw_order`):

1. the entrants are person ids, each once, sorted by their UTF-8 bytes;
2. each entrant gets the key ``SHA-256(seed ‖ 0x00 ‖ entrant)`` over UTF-8 bytes (the
   zero byte keeps ``seed="ab", entrant="c"`` apart from ``seed="a", entrant="bc"``), as
   lower-case hex;
3. entrants are ranked by key (then by id, should two keys ever be equal); the first
   ``winners`` are the winners, in that order.

Anyone holding the seed and the entrants list can repeat it, e.g. in a shell:
``printf '%s\\0%s' "$SEED" "$ENTRANT" | sha256sum`` for each entrant, then ``sort``.
The record (:func:`draw`) keeps the seed, the algorithm, the entrants (one row each, with
the winners' rank) and ``entrants_sha256``, the SHA-256 of the sorted entrants joined by
``\\n``: publishing that digest before the draw, and a seed nobody controls (a future lottery
result, say), makes the draw checkable by outsiders. Without a seed, 128 random bits from
:mod:`secrets` are used (and recorded).

**Entrants** are the persons of an audience (:mod:`.audience`), less, when asked, the winners
of earlier draws (``exclude_winners_of``; ``"all"`` for every earlier draw).

**Previews** (:func:`preview_list`): the most loyal customers, for an exclusive preview:
``by="rfm"``: customers in the chosen RFM groups (default ``champions``) ranked by spend
(monetary), then orders, then most recent; ``by="clv"``: customers ranked by expected value
over ``horizon_weeks`` (BG/NBD × Gamma-Gamma, :mod:`shopfunnel.customers.clv`). At most
``limit`` rows.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.programs.audience import AudienceSpec, audience_text, qualifying_persons
from shopfunnel.programs.offers import check_name
from shopfunnel.programs.tables import ensure_tables, has_table
from shopfunnel.store.store import Store

ALGORITHM = "sha256-rank-v1"


def entrant_key(seed: str, entrant: str) -> str:
    """``SHA-256(seed ‖ 0x00 ‖ entrant)`` as lower-case hex (step 2 of the algorithm)."""
    return hashlib.sha256(seed.encode("utf-8") + b"\x00" + entrant.encode("utf-8")).hexdigest()


def sorted_entrants(entrants: Iterable[str]) -> list[str]:
    """Each entrant once, sorted by UTF-8 bytes (step 1)."""
    return sorted({str(e) for e in entrants}, key=lambda e: e.encode("utf-8"))


def entrants_digest(entrants: Iterable[str]) -> str:
    """SHA-256 of the sorted entrants joined by ``\\n``, as hex: what to publish."""
    return hashlib.sha256("\n".join(sorted_entrants(entrants)).encode("utf-8")).hexdigest()


def draw_order(entrants: Iterable[str], seed: str) -> list[str]:
    """Every entrant in draw order (the algorithm in the module docstring)."""
    return sorted(
        sorted_entrants(entrants), key=lambda e: (entrant_key(seed, e), e.encode("utf-8"))
    )


@dataclass(frozen=True)
class Draw:
    """A recorded draw: its ``name``, ``seed``, ``algorithm``, ``audience``, the draws whose
    winners were excluded, ``entrants`` (sorted), ``entrants_sha256``, ``winners`` (in
    order) and ``drawn_at``."""

    name: str
    seed: str
    algorithm: str
    audience: str
    excluded_draws: tuple[str, ...]
    entrants: tuple[str, ...]
    entrants_sha256: str
    winners: tuple[str, ...]
    drawn_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "algorithm": self.algorithm,
            "audience": self.audience,
            "excluded_draws": list(self.excluded_draws),
            "entrants": len(self.entrants),
            "entrants_sha256": self.entrants_sha256,
            "winners": list(self.winners),
            "drawn_at": self.drawn_at,
        }


def list_draws(store: Store) -> pd.DataFrame:
    """Every draw: name, entrants, winners, seed, entrants_sha256, drawn_at, by time."""
    if not has_table(store, "program_draws"):
        return pd.DataFrame(
            columns=["name", "entrants", "winners", "seed", "entrants_sha256", "drawn_at"]
        )
    return store.db.df(
        "SELECT name, entrants, winners, seed, entrants_sha256, drawn_at "
        "FROM program_draws ORDER BY drawn_at, name"
    )


def draw_giveaway(
    store: Store,
    name: str,
    audience: AudienceSpec,
    *,
    winners: int,
    seed: str | None = None,
    exclude_winners_of: Sequence[str] | Literal["all"] = (),
    as_of: datetime | str | None = None,
) -> Draw:
    """Draw ``winners`` among the audience and record it (see the module docstring)."""
    check_name(name)
    if not isinstance(winners, int) or winners < 1:
        raise ConfigError(f"winners={winners!r} is not valid: give a whole number ≥ 1")
    if seed is not None and not seed.strip():
        raise ConfigError("the seed is empty: give a text, or none for a random one")
    ensure_tables(store)
    if store.db.scalar("SELECT count(*) FROM program_draws WHERE name = ?", [name]):
        raise ConfigError(
            f"a draw named {name!r} exists: a draw is never redone; pick another name"
        )
    earlier = list_draws(store)["name"].tolist()
    excluded = tuple(earlier if exclude_winners_of == "all" else exclude_winners_of)
    unknown = [d for d in excluded if d not in earlier]
    if unknown:
        raise ConfigError(f"no draw named {unknown}: the draws are {earlier or 'none yet'}")
    barred = set()
    for d in excluded:
        barred |= set(get_draw(store, d).winners)
    entrants = sorted_entrants(
        p for p in qualifying_persons(store, audience, as_of=as_of) if p not in barred
    )
    if not entrants:
        raise ConfigError(
            "the audience has no entrant (after excluding earlier winners): nobody to draw"
        )
    seed = seed if seed is not None else secrets.token_hex(16)
    order = draw_order(entrants, seed)
    chosen = order[:winners]
    record = Draw(
        name,
        seed,
        ALGORITHM,
        audience_text(audience),
        excluded,
        tuple(entrants),
        entrants_digest(entrants),
        tuple(chosen),
        datetime.now().replace(microsecond=0),
    )
    rank = {p: i + 1 for i, p in enumerate(chosen)}
    rows = pd.DataFrame(
        {
            "draw": name,
            "person_id": entrants,
            "winner_rank": pd.array([rank.get(p) for p in entrants], dtype="Int32"),
        }
    )
    store.db.register("__entrants", rows)
    try:
        with store.db.transaction():
            store.db.execute(
                "INSERT INTO program_draws VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    name,
                    seed,
                    ALGORITHM,
                    record.audience,
                    ",".join(excluded),
                    len(entrants),
                    record.entrants_sha256,
                    len(chosen),
                    record.drawn_at,
                ],
            )
            store.db.execute(
                "INSERT INTO program_draw_entrants SELECT draw, person_id, winner_rank FROM __entrants"
            )
    finally:
        store.db.unregister("__entrants")
    return record


def get_draw(store: Store, name: str) -> Draw:
    """The recorded draw ``name``, with its entrants and winners as stored."""
    rows = (
        store.db.rows("SELECT * FROM program_draws WHERE name = ?", [name])
        if has_table(store, "program_draws")
        else []
    )
    if not rows:
        raise ConfigError(f"no draw named {name!r}: see `shopfunnel giveaway list`")
    _, seed, algorithm, audience, excluded, _, digest, _, drawn_at = rows[0]
    people = store.db.rows(
        "SELECT person_id, winner_rank FROM program_draw_entrants WHERE draw = ?", [name]
    )
    entrants = sorted_entrants(p for p, _ in people)
    winners = [p for p, r in sorted((x for x in people if x[1] is not None), key=lambda x: x[1])]
    return Draw(
        name,
        seed,
        algorithm,
        audience,
        tuple(d for d in excluded.split(",") if d),
        tuple(entrants),
        digest,
        tuple(winners),
        drawn_at,
    )


def verify_draw(store: Store, name: str) -> dict[str, Any]:
    """Re-draw ``name`` from its record alone: ``entrants_match`` (the stored entrants
    still hash to ``entrants_sha256``; false after a person was erased), ``winners_match``
    (the algorithm gives the recorded winners from the seed and the entrants), and
    ``redrawn`` (the winners it gives)."""
    d = get_draw(store, name)
    if d.algorithm != ALGORITHM:
        raise ConfigError(f"draw {name!r} used {d.algorithm!r}, which this version cannot repeat")
    redrawn = draw_order(d.entrants, d.seed)[: len(d.winners)]
    return {
        "name": name,
        "entrants_match": entrants_digest(d.entrants) == d.entrants_sha256,
        "winners_match": tuple(redrawn) == d.winners,
        "redrawn": redrawn,
        "recorded": list(d.winners),
    }


PREVIEW_BY = ("rfm", "clv")


def preview_list(
    store: Store,
    *,
    by: Literal["rfm", "clv"] = "rfm",
    limit: int = 100,
    groups: Sequence[str] = ("champions",),
    horizon_weeks: float = 52.0,
) -> pd.DataFrame:
    """The most loyal customers for a preview, at most ``limit`` (definitions in the module
    docstring). ``rfm``: ``person_id``, ``rank``, ``group``, ``monetary``, ``frequency``,
    ``recency_days``; ``clv``: ``person_id``, ``rank``, ``expected_value``,
    ``expected_purchases``, ``p_alive``, ``orders``, ``revenue``."""
    if by not in PREVIEW_BY:
        raise ConfigError(f"by={by!r} is not valid: use rfm or clv")
    if not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit={limit!r} is not valid: give a whole number ≥ 1")
    orders = store.db.df("SELECT person_id, ts, CAST(value AS DOUBLE) AS value FROM orders")
    if orders.empty:
        return pd.DataFrame(columns=["person_id", "rank"])
    if by == "rfm":
        from shopfunnel.customers.rfm import GROUPS, rfm_table

        wanted = [g.strip().lower() for g in groups]
        bad = [g for g in wanted if g not in GROUPS]
        if bad:
            raise ConfigError(f"RFM group(s) {bad} not known: use {', '.join(GROUPS)}")
        table = rfm_table(orders)
        table = (
            table[table["group"].isin(wanted)]
            .sort_values(
                ["monetary", "frequency", "recency_days", "person_id"],
                ascending=[False, False, True, True],
                kind="stable",
            )
            .head(limit)
        )
        out = table[["person_id", "group", "monetary", "frequency", "recency_days"]]
    else:
        from shopfunnel.customers.clv import (
            BetaGeoModel,
            GammaGammaModel,
            customer_value,
            summary_from_orders,
        )

        summary = summary_from_orders(orders, time_unit="W")
        value = customer_value(
            summary,
            BetaGeoModel().fit(summary),
            GammaGammaModel().fit(summary),
            horizon=horizon_weeks,
        ).reset_index()
        value = value.sort_values(
            ["expected_value", "person_id"], ascending=[False, True], kind="stable"
        ).head(limit)
        out = value[
            ["person_id", "expected_value", "expected_purchases", "p_alive", "orders", "revenue"]
        ]
    out = out.reset_index(drop=True)
    out.insert(1, "rank", range(1, len(out) + 1))
    return out


def person_draws(store: Store, person_id: str) -> pd.DataFrame:
    """The giveaway draws one person entered: ``draw``, ``drawn_at``, ``entrants``,
    ``winner_rank`` (empty when they did not win), by time."""
    columns = ["draw", "drawn_at", "entrants", "winner_rank"]
    if not (has_table(store, "program_draws") and has_table(store, "program_draw_entrants")):
        return pd.DataFrame(columns=columns)
    return store.db.df(
        "SELECT e.draw, d.drawn_at, d.entrants, e.winner_rank FROM program_draw_entrants e "
        "JOIN program_draws d ON d.name = e.draw WHERE e.person_id = ? ORDER BY d.drawn_at, e.draw",
        [person_id],
    )
