"""The figures of chapter 4 (natural gradient): each a function returning a ``plotly.graph_objects.Figure``.

The numbers come from :mod:`lessons`; these functions only draw them (with the kit of :mod:`widgets.plots`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.plots import f32, style, trajectories


def paths(problem, paths: Mapping[str, object], *, dashed: Collection[str] = (), title: str | None = None) -> go.Figure:
    """Contours of a two-parameter loss with optimizer paths; the paths named in ``dashed`` are drawn
    dashed with open markers, so a path that lies exactly on another stays visible."""
    fig = trajectories(problem, paths, title=title)
    for name in dashed:
        fig.update_traces(selector=dict(name=name), line_dash="dash", marker=dict(symbol="circle-open", size=9))
    fig.update_xaxes(title_text="slope w")
    fig.update_yaxes(title_text="intercept b")
    return fig


def matrices(panels: Mapping[str, np.ndarray], *, clip: float = 1.0, title: str | None = None, height: int = 420) -> go.Figure:
    """Heatmaps of square matrices side by side on **one** colour scale, symmetric about zero (red positive,
    blue negative), so that the panels compare entry by entry.

    ``clip`` < 1 ends the scale at that quantile of the absolute entries (over all panels), so that a few
    large entries do not wash out the rest; larger entries take the end colours (the colour bar says so).
    """
    panels = {label: np.asarray(m, dtype=float) for label, m in panels.items()}
    entries = np.abs(np.concatenate([m.ravel() for m in panels.values()]))
    top = float(np.quantile(entries, clip) if clip < 1 else np.max(entries)) or 1.0
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.08)
    for i, (label, m) in enumerate(panels.items()):
        fig.add_trace(
            go.Heatmap(
                z=f32(m),
                zmin=-top,
                zmax=top,
                colorscale="RdBu_r",
                showscale=i == len(panels) - 1,
                colorbar=dict(thickness=12, len=0.8, title=dict(text="clipped" if clip < 1 else "", side="right")),
                name=label,
                hovertemplate="row %{y}, column %{x}: %{z:.3g}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", constrain="domain", row=1, col=i + 1)
        fig.update_xaxes(constrain="domain", row=1, col=i + 1)
    return style(fig, title=title, height=height)
