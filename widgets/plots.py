"""The book's static figures: each is one function returning a ``plotly.graph_objects.Figure``.

The numbers come from :mod:`lessons`; these functions only draw them, so a reader who wants to know
how a figure was computed follows the call in the chapter to the library in one hop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {
    "GD": "#1f77b4",
    "Heavy ball": "#d62728",
    "Nesterov": "#2ca02c",
    "Adam": "#9467bd",
    "Newton": "#ff7f0e",
    "Damped Newton": "#8c564b",
    "Saddle-free Newton": "#e377c2",
    "Newton-CG": "#17becf",
}
_EXTRA = ["#bcbd22", "#7f7f7f", "#17becf", "#aec7e8", "#ff9896", "#98df8a"]


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
    """A stable colour for a method name (so GD is the same blue in every figure)."""
    for name, c in COLORS.items():
        if label.startswith(name):
            return c
    return _EXTRA[index % len(_EXTRA)]


def style(fig: go.Figure, *, title: str | None = None, height: int = 420, width: int | None = None) -> go.Figure:
    """The book's common look: white template, compact margins, legend on top."""
    fig.update_layout(
        template="plotly_white",
        title=title,
        height=height,
        width=width,
        margin=dict(l=50, r=20, t=60 if title else 30, b=45),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
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


def _clip_to_view(points: np.ndarray, bounds, margin: float = 0.5) -> np.ndarray:
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
        points = _clip_to_view(points, problem.bounds)
    return go.Scatter(
        x=f32(points[:, 0]),
        y=f32(points[:, 1]),
        mode="lines+markers",
        marker=dict(size=4),
        line=dict(width=2, color=color(label, index)),
        name=label,
    )


def _axes_to_box(fig: go.Figure, problem, row=None, col=None) -> None:
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
    _axes_to_box(fig, problem)
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


def kappa_sweep(sweep) -> go.Figure:
    """Steps to a tolerance against the condition number, measured (markers) and predicted (lines)."""
    k = np.asarray(sweep.kappas)
    fig = go.Figure()
    for label, measured, predicted in (
        ("GD", sweep.gd_steps, sweep.gd_predicted),
        ("Heavy ball", sweep.heavy_ball_steps, sweep.heavy_ball_predicted),
    ):
        c = color(label)
        fig.add_trace(
            go.Scatter(x=k, y=np.asarray(measured), mode="markers", name=f"{label}: measured", marker=dict(color=c, size=9))
        )
        fig.add_trace(
            go.Scatter(
                x=k, y=np.asarray(predicted), mode="lines", name=f"{label}: log(tol)/log(rate)", line=dict(color=c, dash="dash")
            )
        )
    fig.update_xaxes(type="log", title_text="condition number kappa", exponentformat="power")
    fig.update_yaxes(type="log", title_text="steps to shrink the error by tol", exponentformat="power")
    return style(fig, title="Steps grow like kappa for GD, like sqrt(kappa) for heavy ball", height=420)


def rate_vs_learning_rate(learning_rates, measured, predicted, *, limit: float) -> go.Figure:
    """Measured contraction per step against the step size, the theory curve, and the limit ``2/L``."""
    fig = go.Figure(
        [
            go.Scatter(
                x=np.asarray(learning_rates),
                y=np.asarray(predicted),
                mode="lines",
                name="max(|1 - lr mu|, |1 - lr L|)",
                line=dict(color="black", dash="dash"),
            ),
            go.Scatter(
                x=np.asarray(learning_rates),
                y=np.asarray(measured),
                mode="markers",
                name="measured",
                marker=dict(color=color("GD"), size=8),
            ),
        ]
    )
    fig.add_vline(x=limit, line=dict(color="crimson", width=1.5), annotation_text="lr = 2/L", annotation_position="top left")
    fig.add_hline(y=1.0, line=dict(color="gray", width=1, dash="dot"))
    fig.update_xaxes(title_text="learning rate")
    fig.update_yaxes(title_text="error contraction per step")
    return style(fig, title="Gradient descent is stable exactly when lr < 2/L", height=380)


def decision_regions(
    predict: Callable[[object, np.ndarray], np.ndarray],
    models: Mapping[str, object],
    x,
    y,
    *,
    num: int = 80,
    title: str | None = None,
) -> go.Figure:
    """Side-by-side decision regions of 2-D binary classifiers, with the training points.

    ``predict(params, points)`` returns logits of shape ``(n,)`` or ``(n, 1)``.
    """
    x, y = np.asarray(x), np.asarray(y)
    lo, hi = x.min(axis=0) - 0.2, x.max(axis=0) + 0.2
    gx, gy = np.linspace(lo[0], hi[0], num), np.linspace(lo[1], hi[1], num)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2).astype(np.float32)
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=list(models), horizontal_spacing=0.04)
    for j, params in enumerate(models.values(), start=1):
        z = np.asarray(predict(params, grid)).reshape(num, num)
        prob = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        fig.add_trace(
            go.Heatmap(
                x=f32(gx),
                y=f32(gy),
                z=f32(prob),
                colorscale="RdBu",
                zmin=0,
                zmax=1,
                showscale=False,
                hoverinfo="skip",
                opacity=0.75,
            ),
            row=1,
            col=j,
        )
        for cls, mark in ((0, "#08306b"), (1, "#67000d")):
            sel = y == cls
            fig.add_trace(
                go.Scatter(
                    x=f32(x[sel, 0]),
                    y=f32(x[sel, 1]),
                    mode="markers",
                    marker=dict(size=4, color=mark),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=j,
            )
        fig.update_xaxes(showticklabels=False, row=1, col=j)
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{j if j > 1 else ''}", row=1, col=j)
    return style(fig, title=title, height=330)


# --- Chapter 3: curvature and landscapes ----------------------------------------------------------


def spectrum_histograms(spectra: Mapping[str, Sequence[float]], *, bins: int = 60, title: str | None = None) -> go.Figure:
    """Histograms of Hessian eigenvalues, one panel per label, counts on a log axis (the bulk near 0 and the outliers)."""
    fig = make_subplots(rows=1, cols=len(spectra), subplot_titles=list(spectra))
    for i, (label, values) in enumerate(spectra.items()):
        values = np.asarray(values, dtype=float)
        counts, edges = np.histogram(values, bins=bins)
        fig.add_trace(
            go.Bar(
                x=f32((edges[:-1] + edges[1:]) / 2),
                y=counts,
                width=float(edges[1] - edges[0]),
                marker_color=_EXTRA[i] if i else COLORS["GD"],
                name=label,
                showlegend=False,
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text="eigenvalue", row=1, col=i + 1)
        fig.update_yaxes(type="log", title_text="count" if i == 0 else None, row=1, col=i + 1)
    return style(fig, title=title, height=360)


def density_against_histogram(eigenvalues, grid, density, *, bins: int = 80, title: str | None = None) -> go.Figure:
    """A smoothed spectral density (e.g. from SLQ) over the normalised histogram of the exact eigenvalues."""
    eigenvalues = np.asarray(eigenvalues, dtype=float)
    counts, edges = np.histogram(eigenvalues, bins=bins, density=True)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=f32((edges[:-1] + edges[1:]) / 2),
            y=f32(counts),
            width=float(edges[1] - edges[0]),
            name="exact eigenvalues (histogram)",
            marker_color="#c7c7c7",
        )
    )
    fig.add_trace(go.Scatter(x=f32(grid), y=f32(density), mode="lines", name="SLQ density", line=dict(color=COLORS["Newton"])))
    fig.update_xaxes(title_text="eigenvalue")
    fig.update_yaxes(title_text="density", type="log", exponentformat="power")
    return style(fig, title=title, height=360)


def sharpness(
    steps: Mapping[str, Sequence[int]], values: Mapping[str, Sequence[float]], limits: Mapping[str, float], *, title=None
):
    """Top Hessian eigenvalue against the step, one line per run, with each run's ``2 / lr`` dashed."""
    fig = go.Figure()
    for i, (label, ys) in enumerate(values.items()):
        c = _EXTRA[i]
        fig.add_trace(go.Scatter(x=np.asarray(steps[label]), y=f32(ys), mode="lines+markers", name=label, line=dict(color=c)))
        fig.add_hline(y=limits[label], line=dict(color=c, dash="dash"), annotation_text=f"2/lr = {limits[label]:g}")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="top Hessian eigenvalue")
    return style(fig, title=title, height=380)


def landscape_panels(landscapes: Mapping[str, object], *, title: str | None = None, cols: int = 2) -> go.Figure:
    """Contours of ``log10`` loss on 2-D slices (``lessons.landscape.Landscape``), each with its projected path."""
    names = list(landscapes)
    rows = (len(names) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.08, vertical_spacing=0.12)
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        slice_ = landscapes[name]
        fig.add_trace(
            go.Contour(
                x=f32(slice_.alphas),
                y=f32(slice_.betas),
                z=f32(np.log10(np.maximum(np.asarray(slice_.losses), 1e-12))),
                colorscale="Viridis",
                ncontours=20,
                showscale=i == 0,
                colorbar=dict(title="log10 loss", len=0.5),
                name="log10 loss",
            ),
            row=r,
            col=c,
        )
        path = np.asarray(slice_.path)
        fig.add_trace(
            go.Scatter(
                x=f32(path[:, 0]),
                y=f32(path[:, 1]),
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color="white", width=2),
                name=f"{name} path",
                showlegend=False,
            ),
            row=r,
            col=c,
        )
    return style(fig, title=title, height=380 * rows)
