"""The figures of chapter 5 (layerwise Woodbury metrics): each a function returning a ``plotly.graph_objects.Figure``.

The numbers come from :mod:`lessons`; these functions only draw them (with the kit of :mod:`widgets.plots`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.plots import PALETTE, color, f32, style


def loss_panels(panels: Mapping[str, Mapping[str, Sequence[float]]], *, title: str | None = None) -> go.Figure:
    """Loss against step, one panel per problem (``panel title -> {method: losses}``), log axes for the loss;
    a method has the same colour (and one legend entry) in every panel."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.1)
    seen: list[str] = []
    for col, series in enumerate(panels.values(), start=1):
        for label, losses in series.items():
            if label not in seen:
                seen.append(label)
            ys = np.asarray(losses, dtype=float)
            fig.add_trace(
                go.Scatter(
                    x=np.arange(len(ys)),
                    y=f32(ys),
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    line=dict(color=color(label, seen.index(label)), width=2),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="step", row=1, col=col)
        fig.update_yaxes(type="log", exponentformat="power", title_text="loss" if col == 1 else None, row=1, col=col)
    return style(fig, title=title, height=420)


def stability(mus, distances, losses, *, title: str | None = None) -> go.Figure:
    """Two panels against the mass ``mu`` (log axes): the distance between the weights trained on two data
    sets that differ in one example, and the training loss they reach."""
    titles = ["weight distance", "training loss"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.12)
    mus = np.asarray(mus, dtype=float)
    for col, (values, label) in enumerate(((distances, "weight distance"), (losses, "training loss")), start=1):
        fig.add_trace(
            go.Scatter(x=f32(mus), y=f32(values), mode="lines+markers", name=label, line=dict(color=PALETTE[col - 1], width=2)),
            row=1,
            col=col,
        )
        fig.update_xaxes(type="log", dtick=1, title_text="mu", exponentformat="power", row=1, col=col)
        fig.update_yaxes(type="log", dtick=1, exponentformat="power", row=1, col=col)
    return style(fig, title=title, height=400)
