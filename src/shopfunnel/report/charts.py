"""Plotly figures in one house style: quiet colours, readable labels, no toolbar clutter."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

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
    _set_template(fig, "plotly_white")
    fig.update_layout(
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


def _set_template(fig: go.Figure, name: str) -> None:
    """``fig.layout.template = name`` without validating the registered template again:
    Plotly checks it when it is registered, and checking it per figure (a deep copy of
    every trace type's defaults) cost more than building the figure. This is what Plotly
    itself does when it gives a new figure the default template."""
    layout = fig.layout
    checked = layout._validate
    layout._validate = False
    try:
        layout.template = pio.templates[name]
    finally:
        layout._validate = checked
