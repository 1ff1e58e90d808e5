"""The incident table: its columns, and the lasting scan's falls as its rows.

Both scans report into one table (:data:`INCIDENT_COLUMNS`, documented in
:func:`shopfunnel.diagnosis.incidents.find_incidents`): the run scan
(:mod:`shopfunnel.diagnosis.incidents`) fills it directly, the lasting scan
(:mod:`shopfunnel.diagnosis.level_shifts`) returns :data:`SHIFT_COLUMNS` (the incident
columns it measures, plus the series' dispersion and the step's position) and
:func:`as_incidents` turns those into incident rows, each incident reported once.
"""

from __future__ import annotations

import pandas as pd

INCIDENT_COLUMNS = [
    "kind",
    "step",
    "event",
    "segment",
    "device",
    "channel",
    "campaign",
    "country",
    "start",
    "end",
    "grain",
    "start_time",
    "end_time",
    "ongoing",
    "observed",
    "expected",
    "entering",
    "rate",
    "baseline_rate",
    "lost",
    "z",
    "p_value",
    "p_adjusted",
    "sessions",
    "expected_sessions",
    "extra_conversion_rate",
    "baseline_conversion_rate",
]
# columns only the run scan fills: its campaign dimension, its grain and traffic spikes
_RUN_SCAN_ONLY = (
    "campaign",
    "grain",
    "sessions",
    "expected_sessions",
    "extra_conversion_rate",
    "baseline_conversion_rate",
)
SHIFT_COLUMNS = [c for c in INCIDENT_COLUMNS if c not in _RUN_SCAN_ONLY] + ["dispersion", "k"]
"""The lasting scan's columns; the segment dimensions (device, channel, country) sit at
positions 4 to 6, and session properties it was given follow them."""


def as_incidents(
    shifts: pd.DataFrame, short: pd.DataFrame, longest_short: int | None = None
) -> pd.DataFrame:
    """``shifts`` as rows of the incident table (``grain`` ``"days"``), leaving out falls
    that overlap an incident of ``short`` (the run scan) on the same step in a nested
    segment, and short falls during a traffic spike (at most twice its length, plus two
    days): each incident is reported once. Falls longer than ``longest_short`` days (the
    run scan's longest run, when the run scan was told of them and left their sessions
    out) are always kept. Rises are kept, as ``conversion_rise``."""
    from scipy import stats as sps

    dims = [c for c in shifts.columns if c not in SHIFT_COLUMNS]
    rows = []
    for r in shifts.to_dict("records"):
        seg = {
            d: r[d] for d in ("device", "channel", "country", *dims) if isinstance(r.get(d), str)
        }
        known = longest_short is not None and (r["end"] - r["start"]).days + 1 > longest_short
        if r["kind"] == "conversion_drop" and not known and _shadowed(r, seg, short):
            continue
        z = -float(r["z"])  # the incident table's z is positive for a fall
        p = float(sps.norm.sf(abs(z)))
        factor = r["p_adjusted"] / r["p_value"] if r["p_value"] > 0 else 1.0
        rows.append(
            {
                **{c: r[c] for c in INCIDENT_COLUMNS if c in r},
                "campaign": None,
                "grain": "days",
                "z": z,
                "p_value": p,
                "p_adjusted": min(1.0, p * factor),
                **{d: r[d] for d in dims},
            }
        )
    return pd.DataFrame(rows, columns=[*INCIDENT_COLUMNS, *dims])


def _shadowed(r: dict, seg: dict, short: pd.DataFrame) -> bool:
    for q in short.itertuples(index=False):
        if q.kind == "traffic_spike":
            # visitors of a spike that does not convert lower the rates while it lasts:
            # that is the spike, not a change of the store's conversion
            spike_days = (q.end - q.start).days + 1
            if (
                q.start <= r["end"]
                and r["start"] <= q.end
                and (r["end"] - r["start"]).days + 1 <= 2 * spike_days + 2
            ):
                return True
            continue
        if q.kind != "conversion_drop" or q.event != r["event"]:
            continue
        other = {
            d: v
            for d, v in (("device", q.device), ("channel", q.channel), ("campaign", q.campaign))
            if isinstance(v, str)
        }
        nested = seg.items() <= other.items() or other.items() <= seg.items()
        if nested and q.start <= r["end"] and r["start"] <= q.end:
            return True
    return False
