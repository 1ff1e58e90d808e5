"""Programs the store runs: ``offer``, ``referral``, ``giveaway``, ``preview``, ``recommend``.

Every figure is defined in docs/programs.md; the commands parse, call one function of
:mod:`shopfunnel.programs` and lay out what it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    console,
    emit,
    err_console,
    friendly_errors,
    rich_table,
)
from shopfunnel.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from shopfunnel.store.store import Store

offer_app = typer.Typer(
    help="Offers: tiered discounts, free shipping and time-limited deals with one code per person.",
    no_args_is_help=True,
)
referral_app = typer.Typer(
    help="The referral programme: codes, the ledger of referred first orders, payouts.",
    no_args_is_help=True,
)
giveaway_app = typer.Typer(
    help="Giveaways anyone can re-draw from the recorded seed and entrants.", no_args_is_help=True
)
app.add_typer(offer_app, name="offer")
app.add_typer(referral_app, name="referral")
app.add_typer(giveaway_app, name="giveaway")

AUDIENCE_OPTION = typer.Option(
    "--audience",
    help="Who qualifies: all, customers, stage=NAME, status=NAME, rfm=G1|G2, persons=ID1|ID2 "
    "(conditions joined by commas), e.g. 'rfm=champions|loyal'.",
)
PERSONS_FILE_OPTION = typer.Option(
    "--persons-file",
    help="A file of person ids instead: one per line, or a CSV with a person_id column.",
)
CONTACTS_OPTION = typer.Option("--contacts", help="Add e-mail and phone, in clear, to a csv list.")
EXPORT_OPTION = typer.Option(
    help="csv (for your e-mail tool), or meta / google (hashed contacts for an ad platform)."
)


def _audience(audience: str | None, persons_file: Path | None, default: str | None = "all") -> Any:
    """The audience spec from the options: a spec text, or the ids in a file."""
    if audience is not None and persons_file is not None:
        raise ConfigError("give --audience or --persons-file, not both")
    if persons_file is None:
        if audience is None and default is None:
            raise ConfigError("say who: --audience SPEC (e.g. customers) or --persons-file FILE")
        return audience or default
    try:
        lines = [line.strip() for line in persons_file.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise ConfigError(
            f"cannot read --persons-file {str(persons_file)!r}: {exc.strerror}"
        ) from exc
    lines = [line for line in lines if line]
    if lines and "person_id" in [c.strip() for c in lines[0].split(",")]:
        import pandas as pd

        return pd.read_csv(persons_file, dtype=str)["person_id"].dropna().tolist()
    return lines


def _list_out(store: Store, frame: pd.DataFrame, export: str, contacts: bool) -> pd.DataFrame:
    """A person list for delivery: contacts joined when asked for or for an ad platform."""
    from shopfunnel.audiences import PLATFORMS, export_audience
    from shopfunnel.audiences import contacts as contacts_of

    if export not in PLATFORMS:
        raise ConfigError(f"--export {export!r} is not known: use one of {', '.join(PLATFORMS)}")
    if contacts or export != "csv":
        frame = frame.merge(contacts_of(store), on="person_id", how="left")
    return export_audience(frame, export, contacts=contacts)  # type: ignore[arg-type]


COUNTS = frozenset(
    {
        "codes_issued",
        "codes_redeemed",
        "reuses",
        "uses_outside_period",
        "redeemed_by_other",
        "redeemed_orders",
        "orders_shipped_free",
        "comparable_persons",
        "comparable_orders",
        "holder_orders",
    }
)


def _summary_table(summary: dict[str, Any], title: str) -> Any:
    import pandas as pd

    from shopfunnel.format import cell

    def kind(key: str) -> str | None:
        if key.endswith(("_rate", "_share_of_revenue", "uplift", "_margin")):
            return "pct"
        if key in COUNTS:
            return "int"
        if key == "breakeven_extra_orders":
            return "number"
        return "money" if isinstance(summary[key], float) else None

    rows = [{"figure": k, "value": cell(v, kind(k))} for k, v in summary.items()]
    return rich_table(pd.DataFrame(rows), title=title)


# -- offers ----------------------------------------------------------------------------------
@offer_app.command("create")
def offer_create(
    name: Annotated[str, typer.Argument(help="The offer's name, e.g. spring-tiers.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    tiers: Annotated[
        str | None, typer.Option(help="Tiered discount THRESHOLD:PERCENT,… e.g. 100:5,300:10.")
    ] = None,
    free_shipping: Annotated[
        float | None,
        typer.Option("--free-shipping", help="Free shipping from this order value, e.g. 75."),
    ] = None,
    shipping_fee: Annotated[
        float | None,
        typer.Option(
            "--shipping-fee", help="What shipping costs otherwise (the cost of each free shipment)."
        ),
    ] = None,
    start: Annotated[
        str, typer.Option(help="First day (or time) of the offer, YYYY-MM-DD[THH:MM], UTC.")
    ] = ...,  # type: ignore[assignment]
    end: Annotated[str | None, typer.Option(help="When it ends (exclusive).")] = None,
    days: Annotated[float | None, typer.Option(help="Or its length in days.")] = None,
    audience: Annotated[str | None, AUDIENCE_OPTION] = None,
    persons_file: Annotated[Path | None, PERSONS_FILE_OPTION] = None,
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
    holdout: Annotated[
        float,
        typer.Option(
            help="Share of the audience that gets no code (e.g. 0.1), so `offer show` can "
            "read the offer's real lift against them."
        ),
    ] = 0.0,
) -> None:
    """Create an offer: a rule (tiers and/or free shipping), a period and who qualifies.

    Example: `shopfunnel offer create spring --tiers 100:5,300:10 --start 2024-04-01
    --days 14 --audience customers --holdout 0.1`
    """
    from shopfunnel.programs.offers import create_offer
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        offer = create_offer(
            store,
            name,
            starts_at=start,
            ends_at=end,
            days=days,
            tiers=tiers,
            free_shipping_from=free_shipping,
            shipping_fee=shipping_fee,
            audience=_audience(audience, persons_file),
            description=description,
            holdout=holdout,
        )
    held = f", {offer.holdout:.0%} held out" if offer.holdout else ""
    console.print(
        f"offer {offer.name}: {offer.rule}, {offer.starts_at:%Y-%m-%d %H:%M} to "
        f"{offer.ends_at:%Y-%m-%d %H:%M} (UTC), for {offer.audience}{held}. "
        f"Next: shopfunnel offer codes {offer.name} --out codes.csv"
    )


@offer_app.command("list")
def offer_list(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Every offer: name, rule, period, audience."""
    import pandas as pd

    from shopfunnel.programs.offers import list_offers
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        offers = pd.DataFrame(
            [o.to_dict() for o in list_offers(store)],
            columns=["name", "rule", "starts_at", "ends_at", "audience", "description"],
        )
    emit(offers[["name", "rule", "starts_at", "ends_at", "audience", "description"]], format, out)


@offer_app.command("show")
def offer_show(
    name: Annotated[str, typer.Argument(help="The offer.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    margin: Annotated[
        float | None,
        typer.Option(
            "--margin",
            help="Gross margin (0.4 for 40%) for the break-even; default judges on revenue.",
        ),
    ] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The offer and its result on what happened: redemption rate, redeemers' order value
    against comparable non-redeemers, cost and break-even uplift (docs/programs.md)."""
    from shopfunnel.cli.output import records
    from shopfunnel.programs.offers import offer_result
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        result = offer_result(store, name, gross_margin=margin)
    if format == Format.csv:
        emit(result.uses, format, out)
        return
    data = {**result.to_dict(), "uses": records(result.uses)}

    def render() -> object:
        from rich.console import Group

        o = result.offer
        head = (
            f"{o.name}: {o.rule}; {o.starts_at:%Y-%m-%d %H:%M} to {o.ends_at:%Y-%m-%d %H:%M} UTC; "
            f"audience {o.audience}"
        )
        return Group(head, _summary_table(result.summary, "result"), *result.notes)

    emit(data, format, out, table=render)


@offer_app.command("codes")
def offer_codes_command(
    name: Annotated[str, typer.Argument(help="The offer.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    prefix: Annotated[
        str, typer.Option(help="Put this in front of every new code, e.g. SPRING-.")
    ] = "",
    contacts: Annotated[bool, CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.csv,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Give a unique code to everyone who qualifies (those with one keep it) and write the
    offer's codes: person_id, code, issued_at."""
    from shopfunnel.programs.offers import issue_offer_codes
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        codes = issue_offer_codes(store, name, prefix=prefix)
        codes = _list_out(store, codes, "csv", contacts)
    err_console.print(f"{len(codes):,} code(s) for offer {name}")
    emit(codes, format, out)


@offer_app.command("check")
def offer_check(
    code: Annotated[str, typer.Argument(help="A code, as the customer typed it.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Can this code be used now? valid, used (one use each), not_started, expired or unknown."""
    from shopfunnel.programs.codes import code_status
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        emit(code_status(store, code), format)


@offer_app.command("near")
def offer_near(
    name: Annotated[str, typer.Argument(help="The offer.")],
    within: Annotated[
        float, typer.Option(help="List carts at most this much short of a threshold, e.g. 15.")
    ] = ...,  # type: ignore[assignment]
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    after: Annotated[
        str, typer.Option(help="A cart counts once it is this old with no purchase after it.")
    ] = "1h",
    lookback: Annotated[
        str, typer.Option(help="Only carts from this period before the last event.")
    ] = "30d",
    export: Annotated[str, EXPORT_OPTION] = "csv",
    contacts: Annotated[bool, CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Open carts of qualifying persons just short of the offer's next threshold, with a
    line for the message ("add USD 12.00 for free shipping") and their code."""
    from shopfunnel.programs.offers import near_threshold
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        near = _list_out(
            store,
            near_threshold(store, name, within=within, after=after, lookback=lookback),
            export,
            contacts,
        )
    emit(near, format, out)


# -- referrals -------------------------------------------------------------------------------
def _rule(store: Any, reward: float | None, min_spend: float | None, cap: int | None) -> Any:
    """The store's referral rule, with the options given on the command line instead."""
    from dataclasses import replace

    from shopfunnel.programs.referrals import current_referral_rule

    given = {
        k: v
        for k, v in (("reward", reward), ("min_spend", min_spend), ("cap_per_referrer", cap))
        if v is not None
    }
    return replace(current_referral_rule(store), **given)  # type: ignore[arg-type]


REWARD_OPTION = typer.Option(
    help="Reward per referred new customer's first order "
    "(default: the store's rule, see `referral rule`)."
)
MIN_SPEND_OPTION = typer.Option("--min-spend", help="The first order must be worth at least this.")
CAP_OPTION = typer.Option("--cap", help="At most this many rewards per referrer.")


@referral_app.command("rule")
def referral_rule_command(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    reward: Annotated[float | None, REWARD_OPTION] = None,
    min_spend: Annotated[float | None, MIN_SPEND_OPTION] = None,
    cap: Annotated[int | None, CAP_OPTION] = None,
    no_cap: Annotated[bool, typer.Option("--no-cap", help="Remove the cap per referrer.")] = False,
) -> None:
    """Show the store's referral rule, or set it: options given change it from now on.

    The ledger and payouts use it unless told otherwise. Example:
    `shopfunnel referral rule --reward 15 --min-spend 50 --cap 5`
    """
    from dataclasses import replace

    from shopfunnel.programs.referrals import set_referral_rule
    from shopfunnel.store.store import Store

    changing = reward is not None or min_spend is not None or cap is not None or no_cap
    with friendly_errors(), Store(db, read_only=not changing) as store:
        rule = _rule(store, reward, min_spend, cap)
        if no_cap:
            if cap is not None:
                raise ConfigError("give --cap N or --no-cap, not both")
            rule = replace(rule, cap_per_referrer=None)
        if changing:
            set_referral_rule(store, rule)
    capped = f", at most {rule.cap_per_referrer} per referrer" if rule.cap_per_referrer else ""
    console.print(
        f"{'set: ' if changing else ''}{rule.reward:g} per referred new customer's first order "
        f"of at least {rule.min_spend:g}{capped}"
    )


@referral_app.command("codes")
def referral_codes_command(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    prefix: Annotated[str, typer.Option(help="Put this in front of every new code.")] = "REF-",
    contacts: Annotated[bool, CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.csv,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Give every customer a referral code (those with one keep it); write them all. Their
    links carry ?referral_code=CODE (and utm_source=referral_program for the channel)."""
    from shopfunnel.programs.referrals import issue_referral_codes
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        codes = _list_out(store, issue_referral_codes(store, prefix=prefix), "csv", contacts)
    err_console.print(f"{len(codes):,} referral code(s)")
    emit(codes, format, out)


@referral_app.command("ledger")
def referral_ledger_command(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    reward: Annotated[float | None, REWARD_OPTION] = None,
    min_spend: Annotated[float | None, MIN_SPEND_OPTION] = None,
    cap: Annotated[int | None, CAP_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Every referred person and the decision: paid, payable, pending or refused (and why)."""
    from shopfunnel.programs.referrals import referral_ledger, referral_summary
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        rule = _rule(store, reward, min_spend, cap)
        ledger = referral_ledger(store, rule)
        summary = referral_summary(store, rule)

    def render() -> object:
        from rich.console import Group

        counts = ledger.groupby(["status", "reason"]).size().rename("referrals").reset_index()
        return Group(
            rich_table(counts, title=f"{len(ledger):,} referred person(s)"),
            rich_table(summary.head(20), title="top referrers"),
        )

    emit(ledger, format, out, table=render)


@referral_app.command("payouts")
def referral_payouts_command(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    reward: Annotated[float | None, REWARD_OPTION] = None,
    min_spend: Annotated[float | None, MIN_SPEND_OPTION] = None,
    cap: Annotated[int | None, CAP_OPTION] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be paid; record nothing.")
    ] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Pay every payable referral once and record it (a referral is never paid twice)."""
    from shopfunnel.programs.referrals import pay_referrals
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        paid = pay_referrals(store, _rule(store, reward, min_spend, cap), dry_run=dry_run)
    verb = "would pay" if dry_run else "paid"
    err_console.print(
        f"{verb} {len(paid):,} referral(s), {paid['reward'].sum():,.2f} in rewards"
        + (f" (payout {paid['payout_id'].iloc[0]})" if len(paid) and not dry_run else "")
    )
    if format == Format.table and out is None:
        per = paid.groupby("referrer_person_id").agg(
            referrals=("reward", "size"), reward=("reward", "sum")
        )
        emit(per.reset_index(), format, out)
        return
    emit(paid, format, out)


# -- giveaways and previews ------------------------------------------------------------------
@giveaway_app.command("draw")
def giveaway_draw(
    name: Annotated[str, typer.Argument(help="The draw's name (a draw is never redone).")],
    winners: Annotated[int, typer.Option(help="How many winners.")] = 1,
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    audience: Annotated[str | None, AUDIENCE_OPTION] = None,
    persons_file: Annotated[Path | None, PERSONS_FILE_OPTION] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            help="The seed: ideally one nobody controls, published after the entrants (default: 128 random bits)."
        ),
    ] = None,
    exclude_winners_of: Annotated[
        str | None,
        typer.Option(
            "--exclude-winners-of",
            help="Keep out the winners of these draws (comma-separated, or all).",
        ),
    ] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Draw winners among an audience and record the seed and the entrants, so anyone can
    repeat it (docs/programs.md, "Giveaways")."""
    from shopfunnel.programs.giveaways import draw_giveaway
    from shopfunnel.store.store import Store

    excluded: Any = (
        ()
        if exclude_winners_of is None
        else (
            "all"
            if exclude_winners_of.strip() == "all"
            else [d.strip() for d in exclude_winners_of.split(",") if d.strip()]
        )
    )
    with friendly_errors(), Store(db) as store:
        record = draw_giveaway(
            store,
            name,
            _audience(audience, persons_file, None),
            winners=winners,
            seed=seed,
            exclude_winners_of=excluded,
        )
    emit(record.to_dict(), format)


@giveaway_app.command("show")
def giveaway_show(
    name: Annotated[str, typer.Argument(help="The draw.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The record of a draw; csv gives the entrants (sorted) with the winners' rank."""
    import pandas as pd

    from shopfunnel.programs.giveaways import get_draw
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        d = get_draw(store, name)
    if format == Format.csv:
        rank = {p: i + 1 for i, p in enumerate(d.winners)}
        emit(
            pd.DataFrame(
                {
                    "person_id": list(d.entrants),
                    "winner_rank": pd.array([rank.get(p) for p in d.entrants], dtype="Int64"),
                }
            ),
            format,
            out,
        )
        return
    emit(d.to_dict(), format, out)


@giveaway_app.command("verify")
def giveaway_verify(
    name: Annotated[str, typer.Argument(help="The draw.")],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Repeat a draw from its record and say whether it gives the recorded winners."""
    from shopfunnel.programs.giveaways import verify_draw
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        check = verify_draw(store, name)
    emit(check, format)
    if not (check["winners_match"] and check["entrants_match"]):
        raise typer.Exit(code=1)


@giveaway_app.command("list")
def giveaway_list(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Every draw: name, entrants, winners, seed, entrants' digest, when."""
    from shopfunnel.programs.giveaways import list_draws
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        emit(list_draws(store), format, out)


@app.command()
def preview(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    by: Annotated[
        str, typer.Option(help="rfm (champions by spend) or clv (expected value).")
    ] = "rfm",
    limit: Annotated[int, typer.Option(help="At most this many persons.")] = 100,
    groups: Annotated[
        str, typer.Option(help="With --by rfm: the RFM groups, comma-separated.")
    ] = "champions",
    export: Annotated[str, EXPORT_OPTION] = "csv",
    contacts: Annotated[bool, CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The most loyal customers for an exclusive preview: RFM champions or top CLV."""
    from shopfunnel.programs.giveaways import preview_list
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db, read_only=True) as store:
        people = preview_list(
            store,
            by=by,  # type: ignore[arg-type]
            limit=limit,
            groups=[g for g in groups.split(",") if g.strip()],
        )
        emit(_list_out(store, people, export, contacts), format, out)


# -- recommendations -------------------------------------------------------------------------
@app.command()
def recommend(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    item: Annotated[
        str | None, typer.Option("--item", help="Items related to this item id.")
    ] = None,
    person: Annotated[
        list[str] | None,
        typer.Option("--person", help="Recommendations for this person (repeat for more)."),
    ] = None,
    audience: Annotated[str | None, AUDIENCE_OPTION] = None,
    persons_file: Annotated[Path | None, PERSONS_FILE_OPTION] = None,
    evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="Measure the hit rate on each person's held-out last session against most popular.",
        ),
    ] = False,
    kind: Annotated[
        str, typer.Option(help="viewed (together in a session) or bought (together in an order).")
    ] = "viewed",
    score: Annotated[str, typer.Option(help="cosine or lift.")] = "cosine",
    top: Annotated[int, typer.Option(help="Items per item or person.")] = 10,
    min_support: Annotated[
        int,
        typer.Option(
            "--min-support", help="A pair must occur in at least this many sessions or orders."
        ),
    ] = 3,
    include_viewed: Annotated[
        bool,
        typer.Option("--include-viewed", help="Let a person's viewed items be recommended back."),
    ] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Items viewed or bought together, for an item or for persons (a CSV for an e-mail
    tool with --format csv --out recs.csv). Definitions: docs/programs.md."""
    from shopfunnel.programs import recommend as r
    from shopfunnel.programs.audience import qualifying_persons
    from shopfunnel.store.store import Store

    with friendly_errors():
        chosen = (
            sum(x is not None and x != [] for x in (item, person, audience or persons_file))
            + evaluate
        )
        if chosen != 1:
            raise ConfigError(
                "give one of --item ID, --person ID, --audience SPEC / --persons-file FILE, or --evaluate"
            )
        with Store(db, read_only=True) as store:
            if evaluate:
                result = r.evaluate_recommendations(
                    store,
                    ks=(5, 10),
                    kind=kind,  # type: ignore[arg-type]
                    score=score,  # type: ignore[arg-type]
                    include_viewed=include_viewed,
                    min_support=min_support,
                )
            elif item is not None:
                result = r.related_items(
                    store,
                    item,
                    kind=kind,  # type: ignore[arg-type]
                    score=score,  # type: ignore[arg-type]
                    top=top,
                    min_support=min_support,
                )
            else:
                who = person or qualifying_persons(store, _audience(audience, persons_file, None))
                result = r.recommend_for_persons(
                    store,
                    who,
                    kind=kind,  # type: ignore[arg-type]
                    score=score,  # type: ignore[arg-type]
                    top=top,
                    include_viewed=include_viewed,
                    min_support=min_support,
                )
        if result.empty and not evaluate:
            err_console.print(
                "nothing to recommend: no pair reaches --min-support (try a lower one)"
            )
        emit(result, format, out)


def load_sample_programs(
    store: Store, *, seed: int, start: Any = "2024-01-01", days: int = 120
) -> dict[str, int]:
    """Record the sample store's offer, its codes and the referral codes (the ones its
    events carry: :mod:`shopfunnel.sample.programs`) in a store loaded with that sample."""
    import pandas as pd

    from shopfunnel.programs.audience import qualifying_persons
    from shopfunnel.programs.codes import import_codes
    from shopfunnel.programs.offers import create_offer, get_offer, offer_persons
    from shopfunnel.programs.referrals import import_referral_codes
    from shopfunnel.sample import programs as sp
    from shopfunnel.sample.incidents import to_datetime

    begins, ends = sp.offer_period(to_datetime(start), days)
    create_offer(
        store,
        sp.OFFER_NAME,
        starts_at=begins,
        ends_at=ends,
        tiers=sp.OFFER_TIERS,
        audience="customers",
        description="the sample store's offer to its customers",
    )
    holders = offer_persons(store, get_offer(store, sp.OFFER_NAME))
    codes = sp.offer_codes_for(seed, holders)
    import_codes(
        store, sp.OFFER_NAME, pd.DataFrame({"person_id": list(codes), "code": list(codes.values())})
    )
    customers = qualifying_persons(store, "customers")
    refs = sp.referral_codes_for(seed, customers)
    import_referral_codes(
        store, pd.DataFrame({"person_id": list(refs), "code": list(refs.values())})
    )
    return {"offer_codes": len(codes), "referral_codes": len(refs)}
