"""``shopfunnel referral``: the referral rule, referral codes, the ledger of referred first
orders and payouts (docs/programs.md, "Referrals")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.options import LIST_CONTACTS_OPTION
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
from shopfunnel.cli.programs import list_out
from shopfunnel.errors import ConfigError

referral_app = typer.Typer(
    help="The referral programme: codes, the ledger of referred first orders, payouts.",
    no_args_is_help=True,
)
app.add_typer(referral_app, name="referral")

REWARD_OPTION = typer.Option(
    help="Reward per referred new customer's first order "
    "(default: the store's rule, see `referral rule`)."
)
MIN_SPEND_OPTION = typer.Option("--min-spend", help="The first order must be worth at least this.")
CAP_OPTION = typer.Option("--cap", help="At most this many rewards per referrer.")


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
    contacts: Annotated[bool, LIST_CONTACTS_OPTION] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.csv,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Give every customer a referral code (those with one keep it); write them all. Their
    links carry ?referral_code=CODE (and utm_source=referral_program for the channel)."""
    from shopfunnel.programs.referrals import issue_referral_codes
    from shopfunnel.store.store import Store

    with friendly_errors(), Store(db) as store:
        codes = list_out(store, issue_referral_codes(store, prefix=prefix), "csv", contacts)
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
