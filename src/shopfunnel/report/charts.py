"""Plotly figures in one house style: quiet colours, readable labels, no toolbar clutter."""

from __future__ import annotations

import plotly.graph_objects as go

# Colour-blind safe palette (Okabe–Ito), first colour for the main series.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
STAGE_COLOURS = {
    "awareness": "#56B4E9",
    "interest": "#0072B2",
    "decision": "#E69F00",
    "purchase": "#009E73",
    "retention": "#CC79A7",
}
FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

# Passed to Plotly.newPlot for every chart.
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}


def styled(fig: go.Figure, *, height: int = 360, legend: bool | None = None) -> go.Figure:
    """Apply the house layout to ``fig`` (in place) and return it."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        font={"family": FONT, "size": 13, "color": "#1f2933"},
        colorway=PALETTE,
        hoverlabel={"font": {"family": FONT}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    if legend is not None:
        fig.update_layout(showlegend=legend)
    return fig
