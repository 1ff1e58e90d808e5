"""``shopfunnel experiment``: read an experiment from the store, or compare two arms from
their sufficient statistics alone (numbers from anywhere), with the statistics of GrowthBook's
engine. Definitions: docs/experiments.md."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from shopfunnel.cli.application import app
from shopfunnel.cli.output import FORMAT_OPTION, OUT_OPTION, Format, emit, friendly_errors
from shopfunnel.errors import ConfigError

experiment_app = typer.Typer(
    help="Experiments: who saw which variant and what it changed; compare two arms and check "
    "the split (frequentist or Bayesian, as GrowthBook).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(experiment_app, name="experiment")


class MetricKind(StrEnum):
    proportion = "proportion"
    mean = "mean"
    ratio = "ratio"


class Engine(StrEnum):
    frequentist = "frequentist"
    bayesian = "bayesian"


class DifferenceKind(StrEnum):
    relative = "relative"
    absolute = "absolute"


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


EXAMPLES = {
    "proportion": "5000:250",
    "mean": "5000:1520.5:98211.3",
    "ratio": "3000:91000:5.1e6:610:900:140000",
}
FIELDS = {
    MetricKind.proportion: "USERS:CONVERSIONS",
    MetricKind.mean: "N:SUM:SUM_OF_SQUARES",
    MetricKind.ratio: "N:NUM_SUM:NUM_SUM_OF_SQUARES:DEN_SUM:DEN_SUM_OF_SQUARES:SUM_OF_PRODUCTS",
}


def _number(text: str, arm: str, field: str, whole: bool) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--{arm}: {field}={text!r} is not a number") from None
    if whole:
        if not value.is_integer():
            raise ConfigError(f"--{arm}: {field}={text!r} must be a whole number")
        return int(value)
    return value


def parse_arm(text: str, metric: MetricKind, arm: str) -> Any:
    """The sufficient statistic written as colon-separated numbers (see :data:`FIELDS`)."""
    from shopfunnel.experiments import Mean, Proportion, Ratio

    names = FIELDS[metric].split(":")
    parts = text.split(":")
    if len(parts) != len(names):
        raise ConfigError(
            f"--{arm} {text!r}: a {metric.value} arm is {FIELDS[metric]} "
            f"({len(names)} numbers separated by ':'), e.g. {EXAMPLES[metric.value]}"
        )
    values = [
        _number(p, arm, name, whole=i == 0 or (metric == "proportion" and i == 1))
        for i, (p, name) in enumerate(zip(parts, names, strict=True))
    ]
    n = int(values[0])
    if metric == MetricKind.proportion:
        return Proportion(n, values[1])
    if metric == MetricKind.mean:
        return Mean(n, values[1], values[2])
    return Ratio(n, Mean(n, values[1], values[2]), Mean(n, values[3], values[4]), values[5])


def _sentence(result: Any, better: Better) -> str:
    from shopfunnel import format as fmt

    if result.error:
        return f"No result: {result.error}."
    relative = result.difference == "relative"

    def show(v: float) -> str:
        return f"{v * 100:+.2f}%" if relative else f"{v:+.4g}"

    def loss(v: float) -> str:
        return f"{v * 100:.2f}%" if relative else f"{v:.4g}"

    level = f"{result.confidence * 100:g}%"
    head = (
        f"Treatment vs control ({result.difference}): {show(result.expected)}, "
        f"{level} interval {show(result.ci_lower)} to {show(result.ci_upper)}"
    )
    if result.engine == "frequentist":
        verdict = "significant" if result.significant() else "not significant"
        return f"{head}; {fmt.p_value(result.p_value)} ({verdict} at {level})."
    return (
        f"{head}; chance treatment is better ({better.value} wins) "
        f"{fmt.pct(result.chance_to_win)}; expected loss if you choose control "
        f"{loss(result.risk_control)}, if you choose treatment {loss(result.risk_treatment)}."
    )


@experiment_app.command("compare")
def compare_command(
    control: Annotated[str, typer.Option(help="The control arm's numbers, e.g. 5000:250.")],
    treatment: Annotated[str, typer.Option(help="The treatment arm's numbers, e.g. 5100:300.")],
    metric: Annotated[
        MetricKind,
        typer.Option(
            help="proportion (USERS:CONVERSIONS), mean (N:SUM:SUM_OF_SQUARES) or ratio "
            "(N:NUM_SUM:NUM_SUM_OF_SQUARES:DEN_SUM:DEN_SUM_OF_SQUARES:SUM_OF_PRODUCTS)."
        ),
    ] = MetricKind.proportion,
    engine: Annotated[
        Engine,
        typer.Option(help="frequentist (Welch t-test, p-value) or bayesian (chance to win, risk)."),
    ] = Engine.frequentist,
    difference: Annotated[
        DifferenceKind,
        typer.Option(help="relative (lift, 0.05 = +5%) or absolute (treatment minus control)."),
    ] = DifferenceKind.relative,
    confidence: Annotated[float, typer.Option(help="Interval level, e.g. 0.95.")] = 0.95,
    better: Annotated[
        Better,
        typer.Option(help="higher (conversion, revenue) or lower (refund rate): which way wins."),
    ] = Better.HIGHER,
    min_units: Annotated[
        int, typer.Option(help="Refuse a result while an arm has fewer units than this.")
    ] = 100,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Compare a treatment with a control from their sufficient statistics (numbers from
    anywhere), with GrowthBook's statistics.

    Examples:

    `shopfunnel experiment compare --metric proportion --control 5000:250 --treatment 5100:300`

    `shopfunnel experiment compare --metric proportion --control 5000:250 --treatment 5100:300 --engine bayesian --difference absolute --format json`

    `shopfunnel experiment compare --metric mean --control 3407:1396.87:52377.98 --treatment 3461:2422.7:134698.29`

    JSON keys: `expected`, `ci_lower`, `ci_upper` and `p_value` (frequentist) or
    `chance_to_win`, `risk_control`, `risk_treatment` (bayesian), and `error` (null, or why
    the data give no result: too few units, no conversions in control, zero variance).
    """
    with friendly_errors():
        from shopfunnel.experiments import compare_arms

        a, b = parse_arm(control, metric, "control"), parse_arm(treatment, metric, "treatment")
        result = compare_arms(
            a,
            b,
            engine=engine.value,
            difference=difference.value,
            confidence=confidence,
            better=better.value,
            min_units=min_units,
        )
        data = {
            "metric": metric.value,
            **result.to_dict(),
            "better": better.value,
            "control": {"n": a.n, "mean": a.mean},
            "treatment": {"n": b.n, "mean": b.mean},
        }
        emit(data, fmt, out, table=lambda: _sentence(result, better))


def _list(text: str, option: str, kind: type) -> list[Any]:
    values = []
    for part in text.split(","):
        try:
            values.append(kind(part.strip()))
        except ValueError:
            raise ConfigError(
                f"--{option}: {part.strip()!r} is not a "
                f"{'whole number' if kind is int else 'number'}; write e.g. "
                f"{'5000,5100' if kind is int else '0.5,0.5'}"
            ) from None
    return values


@experiment_app.command("srm")
def srm_command(
    users: Annotated[str, typer.Option(help="Units per arm, comma-separated, e.g. 5000,5100.")],
    weights: Annotated[
        str | None, typer.Option(help="Intended shares per arm, e.g. 0.5,0.5 (default: equal).")
    ] = None,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Sample-ratio mismatch: a χ² test that the arms got the intended shares of units; a
    p-value below 0.001 means the split itself is broken and the results cannot be trusted.

    Examples:

    `shopfunnel experiment srm --users 5000,5100`

    `shopfunnel experiment srm --users 8000,2100 --weights 0.8,0.2 --format json`
    """
    with friendly_errors():
        from shopfunnel import format as f
        from shopfunnel.experiments import srm_check

        result = srm_check(
            _list(users, "users", int), _list(weights, "weights", float) if weights else None
        )

        def sentence() -> str:
            if result.error:
                return f"No result: {result.error}."
            verdict = (
                "MISMATCH: the split is not what was intended; find the cause before "
                "reading results"
                if result.mismatch
                else "no mismatch"
            )
            seen = ", ".join(
                f"{o:,} (expected {e:,.0f})"
                for o, e in zip(result.users, result.expected, strict=True)
            )
            return f"Units per arm: {seen}; χ² = {result.chi_square:.3f}, {f.p_value(result.p_value)}: {verdict}."

        emit(result.to_dict(), fmt, out, table=sentence)


DB_HELP = "The store: a DuckDB file."


@experiment_app.command("list")
def list_command(
    db: Annotated[
        str, typer.Option("--db", help=DB_HELP, envvar="SHOPFUNNEL_DB")
    ] = "shopfunnel.duckdb",
    fmt: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """The experiments in the store's experiment_exposure events: variants, persons exposed,
    first and last exposure.

    Example: `shopfunnel experiment list --db shop.duckdb`
    """
    with friendly_errors():
        from shopfunnel.experiments import list_experiments
        from shopfunnel.store.store import Store

        with Store(db, read_only=True) as store:
            frame = list_experiments(store)
        emit(frame, fmt, out)


def _report_table(report: Any) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from shopfunnel import format as f

    relative = report.difference == "relative"

    def diff(v: Any) -> str:
        if f._missing(v):
            return "–"
        return f"{float(v) * 100:+.1f}%" if relative else f"{float(v):+.4g}"

    head = Text(
        f"Experiment {report.experiment}: control {report.control!r}, "
        f"{report.engine}, {report.difference} difference, window {report.window}"
    )
    split = ", ".join(
        f"{v} {f.integer(n)}"
        for v, n in zip(report.variants["variant"], report.variants["persons"], strict=True)
    )
    srm = report.srm
    warn = (
        " SAMPLE RATIO MISMATCH: the split is off, do not trust the results" if srm.mismatch else ""
    )
    lines = [
        head,
        Text(
            f"Persons: {split}; {f.integer(report.multiple_exposures)} left out "
            f"(saw several variants); SRM {f.p_value(srm.p_value)}.{warn}"
        ),
    ]
    table = Table(header_style="bold")
    frequentist = report.engine == "frequentist"
    last = ["p"] if frequentist else ["chance to win", "risk control", "risk treatment"]
    for col in [
        "metric",
        "variant",
        "n control",
        "n variant",
        "control",
        "variant",
        "difference",
        "interval",
        *last,
        "note",
    ]:
        table.add_column(col, justify="left" if col in ("metric", "variant", "note") else "right")
    for r in report.results.to_dict("records"):
        cells = [
            r["metric"],
            str(r["variant"]),
            f.integer(r["n_control"]),
            f.integer(r["n_variant"]),
            f.number(r["control_mean"]),
            f.number(r["variant_mean"]),
            diff(r["expected"]),
            "–" if f._missing(r["ci_lower"]) else f"{diff(r['ci_lower'])} to {diff(r['ci_upper'])}",
        ]
        if frequentist:
            cells.append(f.p_value(r["p_value"]))
        else:
            cells += [f.pct(r["chance_to_win"]), diff(r["risk_control"]), diff(r["risk_treatment"])]
        cells.append("" if f._missing(r["error"]) else str(r["error"]))
        table.add_row(*(Text(c) for c in cells))
    return Group(*lines, table)


@experiment_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="The experiment (as `experiment list` shows it).")],
    db: Annotated[
        str, typer.Option("--db", help=DB_HELP, envvar="SHOPFUNNEL_DB")
    ] = "shopfunnel.duckdb",
    metric: Annotated[
        list[str] | None,
        typer.Option(
            help="A metric to read (repeat for several): purchase, begin_checkout>purchase, "
            "revenue_per_visitor, average_order_value, refund_rate, retention:30. Default: "
            "purchase, begin_checkout>purchase, revenue_per_visitor, average_order_value, "
            "refund_rate."
        ),
    ] = None,
    engine: Annotated[Engine, typer.Option(help="frequentist or bayesian.")] = Engine.frequentist,
    difference: Annotated[
        DifferenceKind, typer.Option(help="relative or absolute.")
    ] = DifferenceKind.relative,
    window: Annotated[
        str,
        typer.Option(
            help="What counts after each person's exposure, e.g. 7d; 'none' for no limit."
        ),
    ] = "7d",
    cuped_days: Annotated[
        float | None,
        typer.Option(
            help="CUPED with this many days before exposure as covariate (conversion and "
            "revenue_per_visitor)."
        ),
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(help="The control variant (default 0, else control, else the first)."),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(help="Intended shares of the variants in sorted order, for the SRM check."),
    ] = None,
    confidence: Annotated[float, typer.Option(help="Interval level.")] = 0.95,
    min_units: Annotated[
        int, typer.Option(help="Refuse a result below this many units per arm.")
    ] = 100,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """Read an experiment from the store: persons per variant, the sample-ratio check, and
    each metric's difference from control counted after each person's first exposure.

    Examples:

    `shopfunnel experiment show checkout-v2 --db shop.duckdb`

    `shopfunnel experiment show checkout-v2 --metric add_payment_info>purchase --metric revenue_per_visitor --engine bayesian --cuped-days 28 --format json`
    """
    with friendly_errors():
        from shopfunnel.experiments import analyze_experiment
        from shopfunnel.experiments.analysis import DEFAULT_METRICS
        from shopfunnel.experiments.metrics import parse_metric
        from shopfunnel.store.store import Store

        metrics = [parse_metric(m) for m in metric] if metric else list(DEFAULT_METRICS)
        with Store(db, read_only=True) as store:
            report = analyze_experiment(
                store,
                name,
                metrics,
                control=control,
                engine=engine.value,
                difference=difference.value,
                window=None if window.strip().lower() == "none" else window,
                cuped_days=cuped_days,
                weights=_list(weights, "weights", float) if weights else None,
                confidence=confidence,
                min_units=min_units,
            )
        if fmt == Format.csv:
            emit(report.results, fmt, out)
            return
        from shopfunnel.cli.output import records

        data = {
            "experiment": report.experiment,
            "control": report.control,
            "engine": report.engine,
            "difference": report.difference,
            "window": report.window,
            "variants": records(report.variants),
            "multiple_exposures": report.multiple_exposures,
            "srm": report.srm.to_dict(),
            "results": records(report.results),
        }
        emit(data, fmt, out, table=lambda: _report_table(report))
