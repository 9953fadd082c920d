"""The figures of chapter 3 (curvature and loss landscapes): each a function returning a ``plotly.graph_objects.Figure``.

The numbers come from :mod:`lessons`; these functions only draw them (with the kit of :mod:`widgets.plots`),
so the code behind every figure of the chapter is one hop from its cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.plots import PALETTE, f32, style


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
                marker_color=PALETTE[i],
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
    fig.add_trace(go.Scatter(x=f32(grid), y=f32(density), mode="lines", name="SLQ density", line=dict(color=PALETTE[1])))
    fig.update_xaxes(title_text="eigenvalue")
    # The log axis shows what the text discusses (the spike at zero, the bulk, the outliers): down to one
    # count in the histogram. Below that the Gaussian tails of the smoothing would fill the picture.
    floor = 0.5 / (len(eigenvalues) * (edges[1] - edges[0]))
    top = max(float(np.max(counts)), float(np.max(density)))
    fig.update_yaxes(title_text="density", type="log", exponentformat="power", range=[np.log10(floor), np.log10(top) + 0.3])
    return style(fig, title=title, height=360)


def sharpness(
    steps: Mapping[str, Sequence[int]], values: Mapping[str, Sequence[float]], limits: Mapping[str, float], *, title=None
):
    """Top Hessian eigenvalue against the step, one line per run, with each run's ``2 / lr`` dashed."""
    fig = go.Figure()
    for i, (label, ys) in enumerate(values.items()):
        c = PALETTE[i]
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
    logs = {name: np.log10(np.maximum(np.asarray(landscapes[name].losses), 1e-12)) for name in names}
    finite = np.concatenate([z[np.isfinite(z)] for z in logs.values()])
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        slice_ = landscapes[name]
        fig.add_trace(
            go.Contour(
                x=f32(slice_.alphas),
                y=f32(slice_.betas),
                z=f32(logs[name]),
                coloraxis="coloraxis",  # the panels are compared: one colour scale for all of them
                contours=dict(start=float(finite.min()), end=float(finite.max()), size=float(np.ptp(finite)) / 20 or 1.0),
                name="log10 loss",
                showlegend=False,
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
    fig.update_layout(coloraxis=dict(colorscale="Viridis", colorbar=dict(title="log10 loss", len=0.6)))
    return style(fig, title=title, height=380 * rows)
