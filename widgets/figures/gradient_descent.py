"""The figures of chapter 1 (gradient descent and momentum): each a function returning a ``plotly.graph_objects.Figure``.

The numbers come from :mod:`lessons`; these functions only draw them (with the kit of :mod:`widgets.plots`),
so the code behind every figure of the chapter is one hop from its cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.plots import color, f32, style


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
                coloraxis="coloraxis",  # one scale for every panel: P(class 1) from 0 to 1
                hoverinfo="skip",
                opacity=0.75,
                name=f"P(class 1), {list(models)[j - 1]}",
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
                    name=f"class {cls}",
                    legendgroup=f"class {cls}",
                    showlegend=j == 1,
                    hoverinfo="skip",
                ),
                row=1,
                col=j,
            )
        fig.update_xaxes(showticklabels=False, row=1, col=j)
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{j if j > 1 else ''}", row=1, col=j)
    fig.update_layout(coloraxis=dict(colorscale="RdBu", cmin=0, cmax=1, showscale=False))
    return style(fig, title=title, height=330)
