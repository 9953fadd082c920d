"""The book's drawing kit: one style, one colour per method, and the figures every chapter uses.

Each function returns a ``plotly.graph_objects.Figure``; the numbers come from :mod:`lessons`, these
functions only draw them. A chapter's own figures live in :mod:`widgets.figures` (one module per
chapter, named for it); the apps (:mod:`widgets.optimizer_race`, ...) draw with this kit too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from lessons import optimizers

PALETTE = ("#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2")
"""Colours for series that are not a method of the registry (each figure takes them in order)."""


def thin(n: int, max_points: int = 600, dense: int = 150) -> np.ndarray:
    """Indices that keep a long series drawable: all of the first ``dense``, then an even stride.

    The last index is always kept. Figures stay small (the book stores them) and fast to redraw.
    """
    if n <= max_points:
        return np.arange(n)
    rest = np.linspace(dense, n - 1, max_points - dense).round().astype(int)
    return np.unique(np.concatenate([np.arange(dense), rest]))


def f32(values) -> np.ndarray:
    """Figures store float32: half the bytes of float64, far below what a plot can show."""
    return np.asarray(values, dtype=np.float32)


def short_list(values, digits: int = 4) -> list[float]:
    """Floats rounded to ``digits`` significant digits, as a list: compact JSON for slider steps.

    (Plotly encodes arrays in traces compactly, but not those inside a slider's ``restyle`` args.)
    """
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=float).ravel()]


def color(label: str, index: int = 0) -> str:
    """The colour of a series: its method's colour when ``label`` is a method's exact name, else ``PALETTE[index]``.

    Exact names only: ``"Newton-CG"`` is not ``"Newton"``, and two runs of one method with different
    settings (``"GD, lr = 1.0"``, ``"GD, lr = 1.9"``) get two different colours.
    """
    if label in optimizers.REGISTRY:
        return optimizers.color(label)
    return PALETTE[index % len(PALETTE)]


TITLE_CHARACTERS = 56
"""Longer titles wrap onto further lines (a plotly title never wraps itself, and a long one runs off the figure)."""


def wrap_title(text: str | None, width: int = TITLE_CHARACTERS) -> str | None:
    """``text`` with ``<br>`` between words so that no line is longer than ``width`` characters."""
    if not text:
        return text
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join([*lines, line])


def style(fig: go.Figure, *, title: str | None = None, height: int = 420, width: int | None = None) -> go.Figure:
    """The book's common look: white template, the title at the top left (wrapped), the legend at the right.

    The title sits in the top margin and the legend beside the plotting area, so neither can cover the
    other, whatever the number of legend entries; plotly widens the right margin to fit the legend.
    """
    title = wrap_title(title if title is not None else fig.layout.title.text)
    lines = 0 if not title else title.count("<br>") + 1
    fig.update_layout(
        template="plotly_white",
        title=dict(text=title, x=0.01, xanchor="left", y=1.0, yanchor="top", yref="container", pad=dict(t=22)),
        height=height + 20 * max(lines - 1, 0),
        width=width,
        margin=dict(l=55, r=20, t=44 + 24 * lines if lines else 30, b=50),
        legend=dict(orientation="v", x=1.02, xanchor="left", y=1.0, yanchor="top"),
    )
    return fig


def log_suboptimality(values, min_value: float, floor: float = 1e-12) -> np.ndarray:
    """``max(f - f*, floor)``: what a log-scaled loss axis can show."""
    return np.maximum(np.asarray(values, dtype=float) - min_value, floor)


def contour_trace(problem, *, num: int = 101, showscale: bool = False) -> go.Contour:
    """Filled contours of ``log10(f - f* + 1e-3)`` over the problem's box (log levels show canyons)."""
    xs, ys, Z = problem.grid(num)
    Z = np.log10(np.maximum(Z - problem.min_value, 0.0) + 1e-3)
    return go.Contour(
        x=f32(xs),
        y=f32(ys),
        z=f32(Z),
        colorscale="Blues_r",
        ncontours=25,
        showscale=showscale,
        line=dict(width=0.5, color="rgba(255,255,255,0.5)"),
        hoverinfo="skip",
        name="log10(f - f*)",
        showlegend=False,
    )


def landmark_traces(problem) -> list[go.Scatter]:
    """Stars at the known minimisers, crosses at the saddles."""
    traces = [
        go.Scatter(
            x=problem.minimisers[:, 0],
            y=problem.minimisers[:, 1],
            mode="markers",
            marker=dict(symbol="star", size=13, color="gold", line=dict(width=1, color="black")),
            name="minimum",
            hoverinfo="skip",
        )
    ]
    if len(problem.saddles):
        traces.append(
            go.Scatter(
                x=problem.saddles[:, 0],
                y=problem.saddles[:, 1],
                mode="markers",
                marker=dict(symbol="x", size=11, color="black"),
                name="saddle",
                hoverinfo="skip",
            )
        )
    return traces


def clip_to_view(points: np.ndarray, bounds, margin: float = 0.5) -> np.ndarray:
    """Keep the path drawable: points far outside the box are clipped to just outside it."""
    (x0, x1), (y0, y1) = bounds
    w, h = (x1 - x0) * margin, (y1 - y0) * margin
    out = np.array(points, dtype=float, copy=True)
    if out.size:
        out[:, 0] = np.clip(out[:, 0], x0 - w, x1 + w)
        out[:, 1] = np.clip(out[:, 1], y0 - h, y1 + h)
    return out


def path_trace(label: str, points, *, index: int = 0, problem=None) -> go.Scatter:
    """One optimizer's path as a line with small markers."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    points = points[thin(len(points))]
    if problem is not None:
        points = clip_to_view(points, problem.bounds)
    return go.Scatter(
        x=f32(points[:, 0]),
        y=f32(points[:, 1]),
        mode="lines+markers",
        marker=dict(size=4),
        line=dict(width=2, color=color(label, index)),
        name=label,
    )


def axes_to_box(fig: go.Figure, problem, row=None, col=None) -> None:
    (x0, x1), (y0, y1) = problem.bounds
    kw = {} if row is None else dict(row=row, col=col)
    fig.update_xaxes(range=[x0, x1], title_text="x", **kw)
    fig.update_yaxes(range=[y0, y1], title_text="y", **kw)


def trajectories(problem, paths: Mapping[str, object], *, title: str | None = None, height: int = 460) -> go.Figure:
    """Contours of a 2-D problem with optimizer paths drawn on top.

    Args:
        problem: a :class:`lessons.problems.Problem`.
        paths: ``label -> Trajectory`` (or an array of points of shape ``(t, 2)``).
    """
    fig = go.Figure([contour_trace(problem)])
    for i, (label, path) in enumerate(paths.items()):
        points = getattr(path, "points", path)
        fig.add_trace(path_trace(label, points, index=i, problem=problem))
    for trace in landmark_traces(problem):
        fig.add_trace(trace)
    axes_to_box(fig, problem)
    return style(fig, title=title or problem.title, height=height)


def curves(
    series: Mapping[str, Sequence[float]],
    *,
    x: Mapping[str, Sequence[float]] | None = None,
    log_y: bool = True,
    log_x: bool = False,
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    height: int = 380,
) -> go.Figure:
    """Line plots of several series (e.g. loss against step), optionally on log axes."""
    fig = go.Figure()
    for i, (label, ys) in enumerate(series.items()):
        ys = np.asarray(ys, dtype=float)
        xs = np.asarray(x[label]) if x is not None else np.arange(len(ys))
        keep = thin(len(ys))
        fig.add_trace(
            go.Scatter(x=xs[keep], y=f32(ys[keep]), mode="lines", name=label, line=dict(color=color(label, i), width=2))
        )
    fig.update_xaxes(title_text=xlabel, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=ylabel, type="log" if log_y else "linear", exponentformat="power")
    return style(fig, title=title, height=height)
