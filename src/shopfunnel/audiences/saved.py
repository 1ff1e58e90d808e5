"""Where audiences are defined, and the one way to ask who is in one.

Three places, one namespace:

- **built-in** audiences, ready on any store (:func:`~.builtins.builtin_audiences`);
- the **model file**'s ``[audiences.NAME]`` tables (``shopfunnel.toml`` beside the store):
  each is a rule's fields plus an optional ``description``;
- the **store**'s ``audiences`` table, written by :func:`create_audience`
  (``shopfunnel audience create``) and :func:`delete_audience`.

A name means one audience: the model file cannot reuse a built-in's name, and a name in
both the model file and the store is an error that says which to remove. Only audiences kept
in the store can be deleted (the others are edited where they are written).
"""

from __future__ import annotations

import difflib
import json
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shopfunnel.audiences import tables
from shopfunnel.audiences.builtins import builtin_audiences
from shopfunnel.audiences.definitions import (
    Audience,
    check_name,
    describe,
    parse_rule,
    references,
    rule_json,
)
from shopfunnel.audiences.evaluate import Context, resolve_as_of
from shopfunnel.errors import ConfigError
from shopfunnel.model import DEFAULT_FILE, Model, load_model
from shopfunnel.store.store import Store

SECTION = "audiences"


def store_model(db: str | Path | None = None, path: str | Path | None = None) -> Model:
    """The model file for a store: ``path`` when given; else ``shopfunnel.toml`` in the
    current directory; else ``shopfunnel.toml`` beside the store file ``db``; else the
    defaults. (So a cron job that runs elsewhere still finds the audiences and flows
    declared beside the store.)"""
    if path is not None:
        return load_model(path)
    if Path(DEFAULT_FILE).is_file() or db is None or str(db) == ":memory:":
        return load_model(None)
    beside = Path(db).resolve().parent / DEFAULT_FILE
    return load_model(beside) if beside.is_file() else load_model(None)


def model_audiences(model: Model) -> list[Audience]:
    """The audiences declared in the model file's ``[audiences]`` section."""
    raw = model.sections.get(SECTION, {})
    where = model.source or DEFAULT_FILE
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: [{SECTION}] must be a table of audiences, e.g. [{SECTION}.vip-carts]"
        )
    found = []
    builtin = {a.name for a in builtin_audiences(model)}
    for name, table in raw.items():
        label = f"{where}: [{SECTION}.{name}]"
        check_name(name)
        if name in builtin:
            raise ConfigError(f"{label}: {name!r} is a built-in audience; choose another name")
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: must be a table with kind = ... and the rule's fields")
        fields = dict(table)
        description = fields.pop("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{label}: description must be text")
        found.append(
            Audience(
                name=name,
                rule=parse_rule(fields, source=label),
                description=description,
                source="model",
            )
        )
    return found


def stored_audiences(store: Store) -> list[Audience]:
    """The audiences kept in the store (made with :func:`create_audience`), by name."""
    if not tables.has_table(store.db, "audiences"):
        return []
    rows = store.db.rows("SELECT name, rule, description FROM audiences ORDER BY name")
    return [
        Audience(
            name=name,
            rule=parse_rule(json.loads(rule), source=f"stored audience {name!r}"),
            description=description,
            source="store",
        )
        for name, rule, description in rows
    ]


def all_audiences(store: Store, model: Model | None = None) -> list[Audience]:
    """Every audience: built-ins, then the model file's, then the store's, each by name."""
    model = model or load_model()
    declared = model_audiences(model)
    stored = stored_audiences(store)
    clash = sorted({a.name for a in declared} & {a.name for a in stored})
    if clash:
        raise ConfigError(
            f"audience(s) {', '.join(clash)} are defined both in {model.source or DEFAULT_FILE} "
            "and in the store: remove one (`shopfunnel audience delete NAME` for the store's)"
        )
    return builtin_audiences(model) + declared + stored


def get_audience(store: Store, name: str, model: Model | None = None) -> Audience:
    """The audience called ``name``; ConfigError with the closest names when there is none."""
    audiences = {a.name: a for a in all_audiences(store, model)}
    if name not in audiences:
        close = difflib.get_close_matches(name, list(audiences), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"no audience {name!r}{hint}: `shopfunnel audience list` shows them all")
    return audiences[name]


def audience_members(
    store: Store,
    audience: str | Audience | Any,
    *,
    as_of: datetime | date | str | None = None,
    model: Model | None = None,
) -> pd.DataFrame:
    """The persons in ``audience`` (a name, an :class:`Audience` or a rule) at ``as_of``
    (default: the store's latest event): one column ``person_id``, sorted.

    Every rule is defined in :mod:`shopfunnel.audiences.evaluate` (and docs/audiences.md).
    """
    model = model or load_model()
    known = {a.name: a for a in all_audiences(store, model)}
    target: Audience | None = None
    rule = audience
    if isinstance(audience, str):
        target = known.get(audience) or get_audience(store, audience, model)
    elif isinstance(audience, Audience):
        target, rule = audience, audience.rule
    _check_references(target, known if target is None else {**known, target.name: target}, rule)
    when = resolve_as_of(store, as_of)
    if when is None:
        return pd.DataFrame({"person_id": pd.Series([], dtype=object)})

    def resolve(name: str) -> Audience:
        return known[name]

    ctx = Context(store=store, as_of=when, model=model, resolve=resolve)
    ids = ctx.named(audience) if isinstance(audience, str) else ctx.evaluate(rule)
    return pd.DataFrame({"person_id": pd.Series(list(ids), dtype=object)})


def create_audience(
    store: Store,
    name: str,
    rule: Any,
    *,
    description: str = "",
    model: Model | None = None,
) -> Audience:
    """Keep a new audience in the store. ``rule`` is a rule, or a dict (parsed TOML or
    JSON). The name must be free; the audiences it refers to must exist; it must not refer
    to itself. Nothing is written when anything is wrong."""
    model = model or load_model()
    check_name(name)
    parsed = rule if not isinstance(rule, dict) else parse_rule(rule, source=f"audience {name!r}")
    known = {a.name: a for a in all_audiences(store, model)}
    if name in known:
        where = {
            "builtin": "a built-in audience",
            "model": f"declared in {model.source}",
            "store": "kept in the store",
        }[known[name].source]
        raise ConfigError(
            f"audience {name!r} exists already ({where}): choose another name"
            + (" or `shopfunnel audience delete` it first" if known[name].source == "store" else "")
        )
    audience = Audience(name=name, rule=parsed, description=description, source="store")
    _check_references(audience, {**known, name: audience})
    tables.ensure_tables(store.db)
    store.db.execute(
        "INSERT INTO audiences VALUES (?, ?, ?, ?)",
        [name, rule_json(parsed), description, tables.utc_now()],
    )
    return audience


def delete_audience(store: Store, name: str, *, model: Model | None = None) -> int:
    """Delete an audience kept in the store, with its membership history and refreshes;
    return the number of history rows removed. Built-in and model-file audiences cannot be
    deleted here, nor an audience another one is made of."""
    model = model or load_model()
    audience = get_audience(store, name, model)
    if audience.source == "builtin":
        raise ConfigError(f"{name!r} is a built-in audience: it cannot be deleted")
    if audience.source == "model":
        raise ConfigError(
            f"{name!r} is declared in {model.source}: remove its [{SECTION}.{name}] table there"
        )
    users = [a.name for a in all_audiences(store, model) if name in references(a.rule)]
    if users:
        raise ConfigError(
            f"{', '.join(users)} is made of {name!r}: delete or change "
            f"{'it' if len(users) == 1 else 'them'} first"
        )
    with store.db.transaction():
        removed = 0
        if tables.has_table(store.db, "audience_members"):
            removed = int(
                store.db.scalar("SELECT count(*) FROM audience_members WHERE audience = ?", [name])
                or 0
            )
            store.db.execute("DELETE FROM audience_members WHERE audience = ?", [name])
            store.db.execute("DELETE FROM audience_refreshes WHERE audience = ?", [name])
        store.db.execute("DELETE FROM audiences WHERE name = ?", [name])
    return removed


def audience_table(store: Store, model: Model | None = None) -> pd.DataFrame:
    """Every audience as a table: name, source, description, rule (one line) and, once
    refreshed, members at the last refresh and when that was."""
    audiences = all_audiences(store, model)
    last = pd.DataFrame(columns=["name", "members", "refreshed_as_of"])
    if tables.has_table(store.db, "audience_refreshes"):
        last = store.db.df(
            "SELECT audience AS name, arg_max(members, as_of) AS members, "
            "max(as_of) AS refreshed_as_of FROM audience_refreshes GROUP BY audience"
        )
    frame = pd.DataFrame(
        {
            "name": [a.name for a in audiences],
            "source": [a.source for a in audiences],
            "description": [a.description for a in audiences],
            "rule": [describe(a.rule) for a in audiences],
        }
    )
    return frame.merge(last, on="name", how="left")


def parse_rule_text(text: str) -> dict[str, Any]:
    """A rule written on the command line: a JSON object, or a TOML inline table
    (``{kind = "stage", stage = "decision", status = "stalled"}``)."""
    text = text.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = tomllib.loads("rule = " + text)["rule"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"--rule {text!r} is neither JSON nor a TOML inline table ({exc}): write e.g. "
                '\'{kind = "abandoned", did = ["add_to_cart"], without = ["purchase"], '
                'after = "4h"}\''
            ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--rule {text!r} must be a table with kind = ... (docs/audiences.md)")
    return data


def _check_references(
    audience: Audience | None, known: dict[str, Audience], rule: Any = None
) -> None:
    """Every name ``audience`` (or an unnamed ``rule``) refers to exists, and none leads
    back to itself."""
    seen: list[str] = []
    label = f"audience {audience.name!r}" if audience is not None else "the rule"

    def walk(name: str) -> None:
        if name in seen:
            loop = " → ".join([*seen[seen.index(name) :], name])
            raise ConfigError(f"{label} refers to itself ({loop}): break the loop")
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{label} refers to {name!r}, which does not exist{hint}")
        seen.append(name)
        for ref in references(known[name].rule):
            walk(ref)
        seen.pop()

    if audience is not None:
        walk(audience.name)
    else:
        for ref in references(rule):
            walk(ref)
