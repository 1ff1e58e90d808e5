"""Commands about customers after their first order: retention, rfm, clv, winback."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import typer

from shopfunnel import format as fmt
from shopfunnel.cli.application import app
from shopfunnel.cli.engine import Engine, EngineOpt, EventsOpt, TableOpt, is_spark, open_source
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    emit,
    friendly_errors,
    records,
    rich_table,
    working,
)
from shopfunnel.errors import ConfigError, InputError


class PeriodChoice(StrEnum):
    month = "month"
    week = "week"
    auto = "auto"


class RetentionView(StrEnum):
    all = "all"
    summary = "summary"
    cohorts = "cohorts"
    activity = "activity"
    orders_per_customer = "orders-per-customer"
    gaps = "gaps"


class RuleChoice(StrEnum):
    gap = "gap"
    p_alive = "p-alive"


def _orders(source: Any, db: str) -> pd.DataFrame:
    with working("reading the orders…"):
        if is_spark(source):
            orders = source.table("orders")
        else:
            from shopfunnel.store.summary import orders as store_orders

            orders = store_orders(source)
    if orders.empty:
        where = "the Spark events" if is_spark(source) else f"the store {db!r}"
        raise InputError(
            f"{where} have no orders (purchase events with an order_id): load some, "
            "e.g. `shopfunnel ingest orders.csv --format orders --db {db}`, or try "
            "`shopfunnel load-dataset cdnow --db cdnow.duckdb`"
        )
    return orders


def _pct0(value: Any) -> str:
    return fmt.pct(value, 0)


@app.command()
def retention(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    period: Annotated[
        PeriodChoice,
        typer.Option(
            "--period",
            help=(
                "Cohort period: month or week (ISO, from Monday); auto (the default, as the "
                "report and dashboard): month when orders span 120 days or more, else week."
            ),
        ),
    ] = PeriodChoice.auto,
    view: Annotated[
        RetentionView,
        typer.Option(
            "--view",
            help=(
                "What to show: all (table/json), summary, cohorts, activity, orders-"
                "per-customer or gaps. csv needs one of them (default cohorts)."
            ),
        ),
    ] = RetentionView.all,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Do customers come back? Cohorts by first order, repeat-purchase rate, time between
    orders, orders per customer, AOV, revenue per customer, refund rate.

    Definitions: docs/retention.md.
    """
    from shopfunnel.customers import retention as ret

    with friendly_errors(), open_source(db, engine, events, table) as source:
        orders = _orders(source, db)
        p: Literal["month", "week"] = (
            ret.default_period(orders)
            if period == PeriodChoice.auto
            else "month"
            if period == PeriodChoice.month
            else "week"
        )
        parts: dict[str, Any] = {}
        wanted = view.value
        if format == Format.csv and wanted == "all":
            wanted = "cohorts"
        if wanted in ("all", "summary"):
            parts["summary"] = ret.retention_summary(orders).to_dict()
        if wanted in ("all", "cohorts"):
            parts["cohorts"] = ret.cohort_retention(orders, period=p)
        if wanted in ("all", "activity"):
            with working("counting visitors by week of first visit…"):
                parts["activity"] = ret.store_activity_retention(source, period=p)
        if wanted in ("all", "orders-per-customer"):
            parts["orders_per_customer"] = ret.orders_per_customer(orders)
        if wanted in ("all", "gaps"):
            parts["gaps"] = ret.time_between_orders_distribution(orders)

        if format == Format.csv:
            (only,) = parts.values()
            emit(only if isinstance(only, pd.DataFrame) else pd.DataFrame([only]), format, out)
            return
        data = {k: records(v) if isinstance(v, pd.DataFrame) else v for k, v in parts.items()}

        def render() -> object:
            from rich.console import Group

            shown = []
            if "summary" in parts:
                s = parts["summary"]
                rows = pd.DataFrame(
                    {
                        "metric": list(s),
                        "value": [
                            fmt.pct(v)
                            if k.endswith(("rate", "share"))
                            else (
                                "–"
                                if pd.isna(v)
                                else f"{v:,.2f}"
                                if isinstance(v, float)
                                else f"{v:,}"
                            )
                            for k, v in s.items()
                        ],
                    }
                )
                shown.append(rich_table(rows, title=f"retention summary ({db})"))
            for key, title in (
                ("cohorts", f"purchase retention by {p} of first order"),
                ("activity", f"activity retention by {p} of first visit"),
            ):
                if key in parts:
                    matrix = ret.cohort_matrix(parts[key])
                    cols = [c for c in matrix.columns if c not in ("cohort", "cohort_size")]
                    matrix = matrix[["cohort", "cohort_size", *cols[:13]]].tail(24)
                    shown.append(
                        rich_table(
                            matrix,
                            title=f"{title} (last 24 cohorts, periods 0-12)",
                            formats={c: _pct0 for c in cols},
                        )
                    )
            if "orders_per_customer" in parts:
                shown.append(
                    rich_table(
                        parts["orders_per_customer"].head(15),
                        title="orders per customer (first 15)",
                        formats={"share": fmt.pct},
                    )
                )
            if "gaps" in parts:
                shown.append(
                    rich_table(
                        parts["gaps"].drop(columns=["lower_days", "upper_days"]),
                        title="time between orders",
                        formats={"share": fmt.pct},
                    )
                )
            return Group(*shown)

        emit(data, format, out, table=render)


@app.command()
def rfm(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    by_group: Annotated[
        bool,
        typer.Option(
            "--by-group",
            help=(
                "Give the per-group summary instead of one row per customer (json/csv; "
                "the table always shows it)."
            ),
        ),
    ] = False,
    include_prospects: Annotated[
        bool,
        typer.Option(
            "--prospects/--no-prospects", help=("List persons with no order as prospects.")
        ),
    ] = True,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Recency, frequency and monetary scores (1-5 by quantile) and Shopify-style groups:
    champions, loyal, active, new, promising, needs_attention, previously_loyal, at_risk,
    almost_lost, dormant, prospects. Rules: docs/rfm.md.
    """
    from shopfunnel.customers.rfm import (
        prospect_ids,
        rfm_group_summary,
        rfm_table,
        with_prospects,
    )

    with friendly_errors():
        groups_only = by_group or (format == Format.table and out is None)
        with open_source(db, engine, events, table) as source:
            orders = _orders(source, db)
            persons = None
            n_persons = None
            if include_prospects and is_spark(source) and groups_only:
                # the groups need only how many prospects there are: counted on Spark,
                # not every person's id brought to the driver
                n_persons = source.person_count()
            elif include_prospects:
                from shopfunnel.store.summary import person_ids

                persons = source.person_ids() if is_spark(source) else person_ids(source)
        with working("scoring customers…"):
            # customers scored; the prospects (millions of ids, nothing else) stay an array
            scored = rfm_table(orders)
            prospects = (
                prospect_ids(persons["person_id"], scored["person_id"])
                if persons is not None
                else None
            )
            more = len(prospects) if prospects is not None else 0
            if n_persons is not None:  # every customer is a person with events
                more = n_persons - len(scored)
            groups = rfm_group_summary(scored, more_prospects=more)
        if format == Format.table and out is None:
            emit(
                groups,
                format,
                out,
                table=lambda: rich_table(
                    groups,
                    title=f"RFM groups ({db})",
                    formats={"share": fmt.pct, "revenue_share": fmt.pct},
                ),
            )
            return
        if by_group:
            emit(groups, format, out)
        elif format == Format.json:  # prospects come last and differ only in their id
            row = (
                with_prospects(scored.iloc[:0], prospects[:1])
                if prospects is not None and more
                else None
            )
            with working(f"writing {len(scored) + more:,} rows…"):
                emit(
                    scored,
                    format,
                    out,
                    json_tail=(len(scored), "person_id"),
                    json_more=(row, prospects) if row is not None else None,
                )
        else:
            full = with_prospects(scored, prospects) if more else scored
            with working(f"writing {len(full):,} rows…"):
                emit(full, format, out)


@app.command()
def clv(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    horizon: Annotated[
        str,
        typer.Option("--horizon", help=("How far ahead to predict, e.g. 52w, 90d.")),
    ] = "52w",
    calibration_end: Annotated[
        str | None,
        typer.Option(
            "--calibration-end",
            help=("Fit on orders up to this day (YYYY-MM-DD); default: the last order's day."),
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Customers shown in the table view.")] = 20,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Customer lifetime value: BG/NBD (P(alive), expected purchases) and Gamma-Gamma
    (expected spend per purchase), fitted on the store's orders.

    json gives the fitted parameters and every customer; csv gives the customers. With
    --calibration-end before the last order, the orders after it check the model: predicted
    against actual purchases in that holdout period, by calibration frequency.
    """
    from shopfunnel.customers.clv import (
        BetaGeoModel,
        GammaGammaModel,
        customer_value,
        holdout_check,
        summary_from_orders,
    )
    from shopfunnel.durations import parse_duration_seconds

    with friendly_errors():
        horizon_weeks = parse_duration_seconds(horizon) / (7 * 86400)
        if calibration_end is not None:
            try:
                pd.Timestamp(calibration_end)
            except ValueError as exc:
                raise ConfigError(
                    f"--calibration-end {calibration_end!r} is not a date: write YYYY-MM-DD"
                ) from exc
        with open_source(db, engine, events, table) as source:
            orders = _orders(source, db)
        summary = summary_from_orders(orders, calibration_end=calibration_end, time_unit="W")
        purchases = BetaGeoModel().fit(summary)
        spend: GammaGammaModel | None
        try:
            spend = GammaGammaModel().fit(summary)
            spend_info: dict[str, Any] = {
                **{k: float(v) for k, v in spend.params_.items()},
                "log_likelihood": spend.log_likelihood_,
                "customers": spend.n_customers_,
            }
        except InputError as exc:  # too few repeat buyers: purchases still predicted
            spend, spend_info = None, {"error": str(exc)}
        valued = customer_value(summary, purchases, spend, horizon=horizon_weeks)
        valued = valued.reset_index()
        models = {
            "bgnbd": {
                **{k: float(v) for k, v in purchases.params_.items()},
                "log_likelihood": purchases.log_likelihood_,
                "customers": purchases.n_customers_,
            },
            "gamma_gamma": spend_info,
            "horizon_weeks": horizon_weeks,
            "calibration_end": str(
                pd.Timestamp(summary["last_purchase"].max()).date()
                if calibration_end is None
                else calibration_end
            ),
        }
        if format == Format.csv:
            emit(valued, format, out)
            return
        holdout = None
        last_day = pd.to_datetime(orders["ts"]).max().normalize()
        if calibration_end is not None and last_day > pd.Timestamp(calibration_end):
            holdout = holdout_check(orders, calibration_end=calibration_end)
            models["holdout"] = records(holdout)
        data = {**models, "customers": records(valued)}

        def render() -> object:
            from rich.console import Group

            def params(model: BetaGeoModel | GammaGammaModel) -> pd.DataFrame:
                row = {k: round(float(v), 4) for k, v in model.params_.items()}
                return pd.DataFrame(
                    [
                        {
                            **row,
                            "log_likelihood": round(model.log_likelihood_, 1),
                            "customers": model.n_customers_,
                        }
                    ]
                )

            shown = valued.head(top)[
                [
                    "person_id",
                    "frequency",
                    "recency",
                    "T",
                    "p_alive",
                    "expected_purchases",
                    "expected_value",
                ]
            ]
            total = float(valued["expected_value"].sum())
            parts = [
                rich_table(
                    params(purchases),
                    title=f"BG/NBD (orders to {models['calibration_end']}, weeks)",
                ),
                rich_table(params(spend), title="Gamma-Gamma (repeat buyers)")
                if spend is not None
                else f"Gamma-Gamma not fitted: {spend_info['error']}",
                rich_table(
                    shown,
                    title=f"top {top} of {len(valued):,} customers by expected "
                    f"value over {horizon} (all: {total:,.0f})",
                ),
            ]
            if holdout is not None:
                parts.append(
                    rich_table(
                        holdout,
                        title=f"holdout check: purchases per customer "
                        f"after {calibration_end}, by "
                        "calibration repeat purchases",
                    )
                )
            return Group(*parts)

        emit(data, format, out, table=render)


@app.command()
def winback(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    rule: Annotated[
        RuleChoice,
        typer.Option(
            "--rule",
            help=(
                "gap: past gap-multiplier x their usual gap between orders (the stage model's "
                "lapsed rule at 1). "
                "p-alive: BG/NBD P(alive) below --p-alive-below."
            ),
        ),
    ] = RuleChoice.gap,
    gap_multiplier: Annotated[
        float,
        typer.Option(
            "--gap-multiplier", help="1 = the stages' lapsed status; larger forgives more."
        ),
    ] = 1.0,
    p_alive_below: Annotated[float, typer.Option("--p-alive-below")] = 0.3,
    top: Annotated[int, typer.Option("--top", help="Customers shown in the table view.")] = 20,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Lapsed customers to win back, most valuable first (export with --format csv --out)."""
    from shopfunnel.customers.winback import lapsed_customers

    with friendly_errors():
        with open_source(db, engine, events, table) as source:
            orders = _orders(source, db)
        lapsed = lapsed_customers(
            orders,
            rule="gap" if rule == RuleChoice.gap else "p_alive",
            gap_multiplier=gap_multiplier,
            p_alive_below=p_alive_below,
        )

        def render() -> object:
            cols = [
                "person_id",
                "orders",
                "revenue",
                "last_order",
                "days_since_last_order",
                "expected_gap_days",
                "overdue_ratio",
            ]
            if rule == RuleChoice.p_alive:
                cols.append("p_alive")
            shown = lapsed.head(top)[cols].assign(
                last_order=lambda d: pd.to_datetime(d["last_order"]).dt.date.astype(str)
            )
            return rich_table(
                shown,
                title=f"{len(lapsed):,} lapsed customers ({rule.value}); top {top} by revenue",
            )

        emit(lapsed, format, out, table=render)
