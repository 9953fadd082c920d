"""The figures of chapter 8 (parallel scans, DEER, generalized teacher forcing): each returns a
``plotly.graph_objects.Figure``.

The numbers come from :mod:`lessons` (:mod:`lessons.scan`, :mod:`lessons.deer`, :mod:`lessons.gtf`,
:mod:`lessons.attractors`); these functions only draw them, with the kit of :mod:`widgets.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.plots import PALETTE, f32, style

METHOD_COLORS = {"sequential": "#1f77b4", "DEER": "#d62728", "quasi-DEER": "#ff7f0e", "GTF-DEER": "#2ca02c"}
"""One colour per way of evaluating a recurrence, in every figure of the chapter and in ``ScanExplorer``."""


def scan_tree(levels: Sequence[Sequence[tuple[int, int]]], length: int, *, title: str | None = None) -> go.Figure:
    """Two panels over the same ``length`` elements: the sequential scan (a chain: depth ``length``) and the
    parallel one, whose ``levels`` (from :func:`lessons.scan.scan_tree`) are drawn top to bottom, each
    combine ``(i, j)`` as an arrow-like segment from element ``i`` at one level to element ``j`` at the next."""
    depth = len(levels)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[f"sequential: depth {length - 1}", f"parallel: depth {depth}, {sum(map(len, levels))} combines"],
        horizontal_spacing=0.08,
    )
    chain_x, chain_y = [], []
    for j in range(1, length):
        chain_x += [j - 1, j, None]
        chain_y += [j - 1, j, None]
    fig.add_trace(
        go.Scatter(x=chain_x, y=chain_y, mode="lines+markers", name="combine", line=dict(color=PALETTE[1], width=2)),
        row=1,
        col=1,
    )
    tree_x, tree_y = [], []
    for level, pairs in enumerate(levels):
        for i, j in pairs:
            tree_x += [i, j, None]
            tree_y += [level, level + 1, None]
    fig.add_trace(
        go.Scatter(
            x=tree_x, y=tree_y, mode="lines+markers", name="combine", showlegend=False, line=dict(color=PALETTE[1], width=2)
        ),
        row=1,
        col=2,
    )
    # every element at every level, faint: what is passed down unchanged
    grid_x = [i for _ in range(depth + 1) for i in range(length)]
    grid_y = [lv for lv in range(depth + 1) for _ in range(length)]
    fig.add_trace(
        go.Scatter(x=grid_x, y=grid_y, mode="markers", name="element", marker=dict(color="#c7c7c7", size=5)), row=1, col=2
    )
    fig.update_yaxes(autorange="reversed", title_text="step of the computation", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_xaxes(title_text="element t", dtick=max(1, length // 8))
    return style(fig, title=title, height=440)


def newton_iterates(
    truth: np.ndarray,
    iterates: np.ndarray,
    errors: Sequence[float],
    *,
    coordinate: int = 0,
    shown: Sequence[int] | None = None,
    title: str | None = None,
) -> go.Figure:
    """DEER's Newton iterates converging on a trajectory: left, coordinate ``coordinate`` of the true
    trajectory ``truth`` ``(T, d)`` and of the iterates ``shown`` (indices into ``iterates`` ``(K+1, T, d)``;
    default five, evenly spaced, the last included) against t, later iterates darker, on the trajectory's
    own scale (iterates far off leave the panel); right, the largest error of every iterate, log axis."""
    iterates = np.asarray(iterates, dtype=float)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.64, 0.36], subplot_titles=["iterates", "error per iteration"])
    T = truth.shape[0]
    ts = np.arange(T)
    count = len(iterates)
    if shown is None:
        shown = sorted({int(round(k)) for k in np.linspace(0, count - 1, 5)})
    for rank, k in enumerate(shown):
        shade = 0.25 + 0.75 * rank / max(len(shown) - 1, 1)
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=f32(iterates[k, :, coordinate]),
                mode="lines",
                name=f"iterate {k}",
                line=dict(color=f"rgba(214, 39, 40, {shade:.2f})", width=1.5 if k < count - 1 else 2.5),
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=ts,
            y=f32(truth[:, coordinate]),
            mode="lines",
            name="sequential",
            line=dict(color=METHOD_COLORS["sequential"], dash="dot"),
        ),
        row=1,
        col=1,
    )
    errors = np.maximum(np.asarray(errors, dtype=float), 1e-17)
    fig.add_trace(
        go.Scatter(
            x=np.arange(len(errors)),
            y=f32(errors),
            mode="lines+markers",
            name="max error",
            line=dict(color=METHOD_COLORS["DEER"]),
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="t", row=1, col=1)
    # the true trajectory's range, widened by 20%: an early iterate far off leaves the panel, as it should
    low, high = float(np.min(truth[:, coordinate])), float(np.max(truth[:, coordinate]))
    pad = 0.2 * (high - low) + 1e-6
    fig.update_yaxes(title_text=f"h_t[{coordinate}]", range=[low - pad, high + pad], row=1, col=1)
    fig.update_xaxes(title_text="Newton iteration", dtick=1 if len(errors) <= 12 else None, row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    return style(fig, title=title, height=420)


def iterations(
    lengths: Sequence[int],
    counts: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "Newton iterations",
    log_y: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Iterations (or any count) against the sequence length T, one line per setting, log-log by default;
    ``NaN`` marks a run that failed (not drawn)."""
    fig = go.Figure()
    for i, (label, ys) in enumerate(counts.items()):
        name = label.split(",")[0]
        line_color = METHOD_COLORS.get(name, PALETTE[i % len(PALETTE)])
        dash = ("solid", "dash", "dot", "dashdot")[i % 4]
        fig.add_trace(
            go.Scatter(
                x=list(lengths), y=f32(ys), mode="lines+markers", name=label, line=dict(color=line_color, dash=dash, width=2)
            )
        )
    fig.update_xaxes(type="log", title_text="sequence length T", exponentformat="power")
    fig.update_yaxes(type="log" if log_y else "linear", title_text=ylabel, exponentformat="power")
    return style(fig, title=title, height=400)


def iteration_grid(
    alphas: Sequence[float | str], lengths: Sequence[int], counts: np.ndarray, *, title: str | None = None
) -> go.Figure:
    """A heatmap of Newton iterations over forcing ``alpha`` (rows: values, or labels such as ``"adaptive"``) and
    sequence length T (columns), with the counts written in the cells; a failed run (``NaN``) shows as an empty,
    labelled cell."""
    counts = np.asarray(counts, dtype=float)
    text = [["failed" if np.isnan(c) else f"{c:.0f}" for c in row] for row in counts]
    fig = go.Figure(
        go.Heatmap(
            z=np.log10(np.where(np.isnan(counts), np.nan, counts)),
            x=[f"T = {t:,}" for t in lengths],
            y=[f"alpha = {a}" if isinstance(a, str) else f"alpha = {a:.2f}" for a in alphas],
            text=text,
            texttemplate="%{text}",
            colorscale="Reds",
            colorbar=dict(title="log10 iterations"),
            hovertemplate="%{y}, %{x}: %{text} iterations<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return style(fig, title=title, height=380)


def attractors(panels: Mapping[str, np.ndarray], *, title: str | None = None, max_points: int = 4000) -> go.Figure:
    """Trajectories in 3-D, one scene per panel (``label -> (T, 3)``), the same axis ranges in all (those of
    the first panel, the data, widened by 10%), so the shapes compare at a glance."""
    labels = list(panels)
    fig = make_subplots(
        rows=1, cols=len(labels), specs=[[{"type": "scene"}] * len(labels)], subplot_titles=labels, horizontal_spacing=0.02
    )
    reference = np.asarray(panels[labels[0]], dtype=float)
    low, high = reference.min(axis=0), reference.max(axis=0)
    pad = 0.1 * (high - low)
    ranges = [[float(lo - p), float(hi + p)] for lo, hi, p in zip(low, high, pad, strict=True)]
    for i, label in enumerate(labels, start=1):
        points = np.asarray(panels[label], dtype=float)[:max_points]
        fig.add_trace(
            go.Scatter3d(
                x=f32(points[:, 0]),
                y=f32(points[:, 1]),
                z=f32(points[:, 2]),
                mode="lines",
                name=label,
                showlegend=False,
                line=dict(color=PALETTE[(i - 1) % len(PALETTE)] if i > 1 else METHOD_COLORS["sequential"], width=2),
            ),
            row=1,
            col=i,
        )
        scene = dict(
            xaxis=dict(range=ranges[0], title="x"),
            yaxis=dict(range=ranges[1], title="y"),
            zaxis=dict(range=ranges[2], title="z"),
            aspectmode="cube",
        )
        fig.update_layout(**{f"scene{'' if i == 1 else i}": scene})
    return style(fig, title=title, height=440)
