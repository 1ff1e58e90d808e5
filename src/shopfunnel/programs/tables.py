"""The tables the programs keep in the store, created on first write.

They sit in the store's DuckDB file beside the events and are created through the store's
own connection (``store.db``). Every row that names a person does so in a column called
``person_id`` or ending in ``_person_id``, so erasing a person (:mod:`shopfunnel.store.erase`)
finds them without knowing these tables.

=============================  ===============================================================
``program_offers``             one row per offer: the rule (tiers, free shipping), the period,
                               the audience
``program_offer_members``      the persons of an offer whose audience is a list of persons
``program_codes``              unique codes per person and offer (one use each)
``program_referral_codes``     one referral code per customer
``program_referral_payouts``   rewards paid, one row per referred person (never paid twice)
``program_draws``              one row per giveaway draw: seed, algorithm, entrants' digest
``program_draw_entrants``      the entrants of each draw, with the winners' rank
=============================  ===============================================================
"""

from __future__ import annotations

from shopfunnel.store.store import Store

DDL: dict[str, str] = {
    "program_offers": """
        CREATE TABLE IF NOT EXISTS program_offers (
            name VARCHAR PRIMARY KEY,
            tiers VARCHAR,
            free_shipping_from DOUBLE,
            shipping_fee DOUBLE,
            starts_at TIMESTAMP NOT NULL,
            ends_at TIMESTAMP NOT NULL,
            audience VARCHAR NOT NULL,
            description VARCHAR,
            created_at TIMESTAMP NOT NULL,
            holdout DOUBLE NOT NULL DEFAULT 0)""",
    "program_offer_members": """
        CREATE TABLE IF NOT EXISTS program_offer_members (
            offer VARCHAR NOT NULL,
            person_id VARCHAR NOT NULL,
            PRIMARY KEY (offer, person_id))""",
    "program_codes": """
        CREATE TABLE IF NOT EXISTS program_codes (
            code VARCHAR PRIMARY KEY,
            offer VARCHAR NOT NULL,
            person_id VARCHAR NOT NULL,
            issued_at TIMESTAMP NOT NULL,
            UNIQUE (offer, person_id))""",
    "program_referral_codes": """
        CREATE TABLE IF NOT EXISTS program_referral_codes (
            code VARCHAR PRIMARY KEY,
            person_id VARCHAR NOT NULL UNIQUE,
            issued_at TIMESTAMP NOT NULL)""",
    "program_referral_payouts": """
        CREATE TABLE IF NOT EXISTS program_referral_payouts (
            referred_person_id VARCHAR PRIMARY KEY,
            referrer_person_id VARCHAR NOT NULL,
            code VARCHAR NOT NULL,
            order_id VARCHAR NOT NULL UNIQUE,
            order_value DOUBLE,
            reward DOUBLE NOT NULL,
            payout_id VARCHAR NOT NULL,
            paid_at TIMESTAMP NOT NULL)""",
    "program_referral_rules": """
        CREATE TABLE IF NOT EXISTS program_referral_rules (
            set_at TIMESTAMP PRIMARY KEY,
            reward DOUBLE NOT NULL,
            min_spend DOUBLE NOT NULL,
            cap_per_referrer INTEGER)""",
    "program_draws": """
        CREATE TABLE IF NOT EXISTS program_draws (
            name VARCHAR PRIMARY KEY,
            seed VARCHAR NOT NULL,
            algorithm VARCHAR NOT NULL,
            audience VARCHAR NOT NULL,
            excluded_draws VARCHAR NOT NULL,
            entrants INTEGER NOT NULL,
            entrants_sha256 VARCHAR NOT NULL,
            winners INTEGER NOT NULL,
            drawn_at TIMESTAMP NOT NULL)""",
    "program_draw_entrants": """
        CREATE TABLE IF NOT EXISTS program_draw_entrants (
            draw VARCHAR NOT NULL,
            person_id VARCHAR NOT NULL,
            winner_rank INTEGER,
            PRIMARY KEY (draw, person_id))""",
}


def ensure_tables(store: Store) -> None:
    """Create the programs' tables that do not exist yet (a writable store)."""
    for ddl in DDL.values():
        store.db.execute(ddl)
    # stores whose offers predate holdouts (ADR 0125)
    store.db.execute("ALTER TABLE program_offers ADD COLUMN IF NOT EXISTS holdout DOUBLE DEFAULT 0")


def has_table(store: Store, name: str) -> bool:
    """Whether the store has the programs table ``name`` (a read-only store may not)."""
    return store.db.table_exists(name)
