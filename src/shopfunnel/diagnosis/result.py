"""What :func:`shopfunnel.diagnosis.diagnose.diagnose` returns: the findings, the tables
behind them, and their views for the faces (recommendations, the incident table, JSON)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from shopfunnel.diagnosis.order_value import OrderValue


@dataclass
class Diagnosis:
    """The result of :func:`diagnose`.

    ``findings`` (one row per finding, ranked by revenue at stake; columns in
    :data:`shopfunnel.diagnosis.findings.FINDING_COLUMNS`) and the tables behind them:
    ``benchmarks``, ``periods``, ``segments``, ``incidents``, ``checkout``,
    ``correlations``, ``retention``. ``notes`` say what could not be measured and why.
    """

    findings: pd.DataFrame
    benchmarks: pd.DataFrame
    periods: pd.DataFrame
    segments: pd.DataFrame
    incidents: pd.DataFrame
    checkout: pd.DataFrame
    correlations: pd.DataFrame
    retention: pd.DataFrame
    start: datetime
    end: datetime
    sessions: int
    orders: int
    revenue: float
    average_order_value: float
    notes: list[str] = field(default_factory=list)
    order_value: OrderValue | None = None
    """Orders with a value and where the average order value came from (given, measured or
    none); findings are ranked by ``orders_at_stake`` when it is none."""

    def recommendations(self) -> pd.DataFrame:
        """One row per (finding, tactic), in finding rank order: what to do, for whom, why."""
        rows = []
        for f in self.findings.itertuples(index=False):
            for t in f.tactics or []:
                rows.append(
                    {
                        "rank": f.rank,
                        "tactic": t["name"],
                        "stage": f.stage,
                        "why": t["why"],
                        "finding": f.title,
                        "evidence": f.evidence,
                        "audience": f.audience,
                        "revenue_at_stake": f.revenue_at_stake,
                    }
                )
        return pd.DataFrame(
            rows,
            columns=[
                "rank",
                "tactic",
                "stage",
                "why",
                "finding",
                "evidence",
                "audience",
                "revenue_at_stake",
            ],
        )

    def incident_table(self) -> pd.DataFrame:
        """One row per incident as the faces show them, worst first: ``kind``, ``step``,
        ``segment``, ``start`` (a date, or a time when placed to the hour), ``end`` (the
        last day, the hour it ended, or ``"ongoing"``), ``rate_before`` and
        ``rate_during`` (the step's usual and observed conversion; for a traffic spike the
        usual and the extra sessions' purchase rate), ``persons_lost``, ``orders_lost``,
        ``revenue_lost`` (NaN when the orders carry no value) and ``p_adjusted`` (after
        the multiple-testing correction)."""
        columns = [
            "kind",
            "step",
            "segment",
            "start",
            "end",
            "rate_before",
            "rate_during",
            "persons_lost",
            "orders_lost",
            "revenue_lost",
            "p_adjusted",
        ]
        rows = []
        for r in self.incidents.to_dict("records"):
            start_time, end_time = (
                pd.Timestamp(r["start_time"]).to_pydatetime(),
                pd.Timestamp(r["end_time"]).to_pydatetime(),
            )
            spike = r["kind"] == "traffic_spike"
            if bool(r.get("ongoing")) and not spike:
                end: Any = "ongoing"
            elif end_time.hour or r.get("grain") == "hour":
                end = end_time
            else:
                end = r["end"]
            rows.append(
                {
                    "kind": str(r["kind"]).replace("_", " "),
                    "step": r["step"],
                    "segment": r["segment"],
                    "start": start_time
                    if start_time.hour or r.get("grain") == "hour"
                    else r["start"],
                    "end": end,
                    "rate_before": r["baseline_conversion_rate"] if spike else r["baseline_rate"],
                    "rate_during": r["extra_conversion_rate"] if spike else r["rate"],
                    "persons_lost": r.get("persons_lost"),
                    "orders_lost": r.get("orders_lost"),
                    "revenue_lost": r.get("revenue_lost"),
                    "p_adjusted": r.get("p_adjusted"),
                }
            )
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready Python values (dates as ISO strings, NaN as None)."""

        def records(df: pd.DataFrame) -> list[dict[str, Any]]:
            return (
                json.loads(df.to_json(orient="records", date_format="iso", default_handler=str))
                if len(df)
                else []
            )

        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions": self.sessions,
            "orders": self.orders,
            "revenue": self.revenue,
            "average_order_value": _none_if_nan(self.average_order_value),
            "average_order_value_source": self.order_value.source if self.order_value else None,
            "valued_orders": self.order_value.valued_orders if self.order_value else None,
            "findings": records(self.findings),
            "benchmarks": records(self.benchmarks),
            "periods": records(self.periods),
            "segments": records(self.segments),
            "incidents": records(self.incidents),
            "checkout": records(self.checkout),
            "correlations": records(self.correlations),
            "retention": records(self.retention),
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        head = (
            f"Diagnosis({self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}: {self.sessions:,} sessions, "
            f"{self.orders:,} orders, AOV {self.average_order_value:,.2f}; {len(self.findings)} findings)"
        )
        lines = [head]
        for f in self.findings.head(10).itertuples(index=False):
            money = (
                ""
                if f.revenue_at_stake is None or math.isnan(f.revenue_at_stake)
                else f" [{f.revenue_at_stake:,.0f} at stake]"
            )
            tactics = ", ".join(t["name"] for t in (f.tactics or []))
            lines.append(f"  {f.rank}. {f.title}{money} → {tactics or 'no tactic'}")
        if len(self.findings) > 10:
            lines.append(f"  … {len(self.findings) - 10} more")
        return "\n".join(lines)


def _none_if_nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
