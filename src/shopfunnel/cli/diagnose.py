"""Commands that diagnose the store and replay offers: ``diagnose`` and ``whatif``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.engine import Engine, EngineOpt, EventsOpt, TableOpt, open_source
from shopfunnel.cli.options import FREE_SHIPPING_OPTION, MARGIN_OPTION
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    emit,
    friendly_errors,
    rich_table,
    working,
)
from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store


def _money(x: object) -> str:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return "–" if v != v else f"{v:,.0f}"


AOV_OPTION = typer.Option(
    "--aov",
    help="Average order value to price findings with, e.g. 45: for a store whose orders carry "
    "no value (else the store's own is used). Also [diagnosis] average_order_value in shopfunnel.toml.",
)


def _at_stake(revenue: object, orders: object) -> str:
    """Revenue at stake when there is a price, else the orders at stake (``≈ 12 orders``)."""
    money = _money(revenue)
    if money != "–":
        return money
    try:
        n = float(orders)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return "–" if n != n else f"≈ {n:,.1f} orders" if n < 10 else f"≈ {n:,.0f} orders"


@app.command()
def diagnose(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
    top: Annotated[
        int, typer.Option("--top", help="Show the N findings with the most revenue at stake.")
    ] = 10,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Diagnose up to this date (exclusive), e.g. 2024-03-31. Default: the day after the last event.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Model file with [benchmarks] and [playbook] (default: ./shopfunnel.toml if present).",
        ),
    ] = None,
    aov: Annotated[float | None, AOV_OPTION] = None,
    engine: EngineOpt = Engine.local,
    events: EventsOpt = None,
    table: TableOpt = None,
) -> None:
    """Find the weakest stage and why, ranked by revenue at stake, with the tactics that fit.

    Recommendations come first: each finding names its tactics, the evidence and the
    audience to target. `--format json` prints every finding and table. When the store's
    orders carry no value, findings are ranked by orders at stake; `--aov 45` puts a price
    on them.
    """
    with friendly_errors():
        if top < 1:
            raise ConfigError(f"--top {top} is not valid: give 1 or more")
        from shopfunnel.diagnosis.diagnose import DiagnoseSettings
        from shopfunnel.diagnosis.diagnose import diagnose as run
        from shopfunnel.diagnosis.order_value import check_aov
        from shopfunnel.model import load_model

        loaded = load_model(model)  # ./shopfunnel.toml when there is one, else the defaults
        settings = DiagnoseSettings(average_order_value=check_aov(aov))
        with (
            open_source(db, engine, events, table) as store,
            working("diagnosing the store…"),
        ):
            result = run(store, model=loaded, as_of=as_of, settings=settings)
        findings = result.findings.head(top)
        if format == Format.json:
            data = result.to_dict()
            data["findings"] = data["findings"][:top]
            emit(data, format, out)
            return
        if format == Format.csv:
            frame = findings.copy()
            frame["tactics"] = frame["tactics"].map(
                lambda ts: "; ".join(t["name"] for t in ts or [])
            )
            frame["audience"] = frame["audience"].map(str)
            emit(frame, format, out)
            return

        def render() -> object:
            import pandas as pd
            from rich.console import Group
            from rich.text import Text

            value = result.order_value
            priced = value is not None and value.source != "none"
            average = (
                f"average order {result.average_order_value:,.2f}"
                + (
                    " (given with --aov or the model file)"
                    if value is not None and value.source == "given"
                    else ""
                )
                if priced
                else "orders carry no value: ranked by orders at stake"
            )
            parts: list[Any] = [
                Text(
                    f"Diagnosis of {db}: {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}, {result.sessions:,} sessions, "
                    f"{result.orders:,} orders, {average}",
                    style="bold",
                )
            ]
            dated = result.findings[result.findings["kind"].isin(["incident", "traffic_spike"])]
            for f in dated.itertuples():
                parts.append(
                    Text(f"⚠ incident #{f.rank}: {f.title}. {f.evidence}", style="bold red")
                )
            if findings.empty:
                parts.append(
                    Text(
                        "No finding: nothing is significantly worse than its benchmark, its past or the rest of the traffic."
                    )
                )
            rec = pd.DataFrame(
                [
                    {
                        "#": f.rank,
                        "do this": ", ".join(t["name"] for t in f.tactics) or "–",
                        "for": ", ".join(
                            f"{k}={v}" for k, v in (f.audience or {}).items() if k != "between"
                        ),
                        "because": f.title,
                        "at stake": _at_stake(f.revenue_at_stake, f.orders_at_stake),
                    }
                    for f in findings.itertuples()
                ]
            )
            if len(rec):
                first = "most revenue at stake first" if priced else "most orders at stake first"
                parts.append(rich_table(rec, title=f"Recommendations ({first})"))
                ev = pd.DataFrame(
                    [
                        {"#": f.rank, "kind": f.kind, "stage": f.stage, "evidence": f.evidence}
                        for f in findings.itertuples()
                    ]
                )
                parts.append(rich_table(ev, title="Evidence"))
            for note in result.notes:
                parts.append(Text(f"note: {note}", style="dim"))
            return Group(*parts)

        emit(findings, format, out, table=render)


@app.command()
def whatif(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    tiers: Annotated[
        str | None,
        typer.Option(
            "--tiers",
            help="Tiered discount THRESHOLD:PERCENT,… e.g. 100:5,300:10 (5% off from 100, 10% off from 300).",
        ),
    ] = None,
    free_shipping: Annotated[float | None, FREE_SHIPPING_OPTION] = None,
    shipping_fee: Annotated[
        float | None,
        typer.Option(
            "--shipping-fee", help="Shipping fee per order when the orders do not record it."
        ),
    ] = None,
    margin: Annotated[float | None, MARGIN_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Replay a tiered discount or a free-shipping threshold on past orders: share of orders
    affected, cost, and the uplift in orders or order value needed to break even."""
    with friendly_errors():
        if (tiers is None) == (free_shipping is None):
            raise ConfigError("give exactly one of --tiers 100:5,300:10 or --free-shipping 75")
        from shopfunnel.diagnosis import whatif as w

        with Store(db, read_only=True) as store:
            if tiers is not None:
                result = w.tiered_discount(store, w.parse_tiers(tiers), gross_margin=margin)
            else:
                result = w.free_shipping(
                    store,
                    float(free_shipping),  # type: ignore[arg-type]
                    shipping_fee=shipping_fee,
                    gross_margin=margin,
                )
        if format == Format.csv:
            emit(result.tiers, format, out)
            return

        def render() -> object:
            import pandas as pd
            from rich.console import Group
            from rich.text import Text

            s = result.summary
            lines: list[Any] = [
                Text(result.policy, style="bold"),
                Text(
                    f"{s['orders_affected']:,} of {s['orders']:,} past orders affected ({100 * s['share_affected']:.1f}%); "
                    f"cost {s['cost']:,.2f} = {100 * s['cost_share_of_revenue']:.2f}% of revenue {s['revenue']:,.2f}"
                ),
                Text(
                    f"break even: {100 * s['breakeven_uplift']:.1f}% more orders (or order value), about "
                    f"{s['breakeven_extra_orders']:,.0f} orders, at a gross margin of {100 * s['gross_margin']:.0f}%"
                    if s["breakeven_uplift"] == s["breakeven_uplift"]
                    else "break even: not reachable"
                ),
            ]
            lines.append(rich_table(pd.DataFrame(result.tiers)))
            lines += [Text(f"note: {n}", style="dim") for n in result.notes]
            return Group(*lines)

        emit(result.to_dict(), format, out, table=render)
