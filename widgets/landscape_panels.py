"""What the LandscapeExplorer shows: its data and objective, the numbers of its three panels, and their figure.

Pure functions of the library's results (no widget state), so the app in :mod:`widgets.landscape_explorer`
is only controls and bookkeeping, and the static figure for the site is drawn by the same code:

* :func:`setup`: the two-spirals data, the objective and the initial network, one shared object per configuration;
* :func:`panel_data`: the slice through the current point with the path projected on it, the top Hessian
  eigenvalues, the edge of stability and the SLQ spectral density;
* :func:`base_figure` and :func:`apply`: the plotly figure, its traces addressed by name.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lessons import curvature, data, landscape, nets, optimizers, train
from widgets import base, plots

TOP_K = 3  # eigenvalues drawn
MAX_PATH = 64  # at most this many snapshots are projected and drawn (evenly thinned)
SLQ_STEPS, SLQ_STARTS = 30, 4
DENSITY_POINTS = 200


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
    """Data, objective and initial parameters: one object per ``(width, num_points, seed, loss)``, shared."""

    data: tuple[jax.Array, jax.Array]
    objective: train.Objective
    loss_fn: Callable  # params -> loss on the data (for the curvature and slice functions)
    value: Callable  # jax.jit(loss_fn)
    initial_params: object
    dim: int


def _squared_losses(outputs, labels):
    """Per-example squared error against targets +-1 (it blows up for real past the edge of stability)."""
    return 0.5 * (outputs[:, 0] - (2.0 * labels - 1.0)) ** 2


OBJECTIVES = {
    "logistic": train.Objective.supervised(nets.mlp, nets.logistic_losses),
    "squared": train.Objective.supervised(nets.mlp, _squared_losses),
}


@functools.lru_cache(maxsize=16)
def setup(width: int, num_points: int, seed: int, loss: str) -> Setup:
    # One loss object per configuration: lessons.curvature and lessons.landscape cache their compiled
    # code on the loss function's identity; training shares one compiled step per objective and method.
    batch = data.two_spirals(num_points, key=jax.random.key(seed))
    objective = OBJECTIVES[loss]
    loss_fn = objective.bind(batch)
    params = nets.init_mlp([2, width, width, 1], key=jax.random.key(seed + 1))
    return Setup(batch, objective, loss_fn, jax.jit(loss_fn), params, nets.num_params(params))


@jax.jit
def random_directions(params, key):
    """Two filter-normalised random directions at ``params`` (one compiled call)."""
    k1, k2 = jax.random.split(key)
    return landscape.filter_normalized_direction(params, key=k1), landscape.filter_normalized_direction(params, key=k2)


@jax.jit
def _density(nodes, weights, grid, sigma):
    return curvature.spectral_density(nodes, weights, grid, sigma=sigma)


def align(direction, reference):
    """``direction`` or its negative, whichever points along ``reference``, as NumPy arrays.

    NumPy on purpose: a sign flip happens at some frame or other, and an op-by-op JAX negation would
    compile then (frames after the first compile nothing).
    """
    flat = lambda tree: np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(tree)])
    sign = -1.0 if flat(direction) @ flat(reference) < 0 else 1.0
    return jax.tree.map(lambda d: (sign * np.asarray(d)).astype(np.asarray(d).dtype), direction)


def _bilinear(alphas, betas, z, points) -> np.ndarray:
    """``z`` (rows: betas, columns: alphas) interpolated at ``points`` of shape ``(n, 2)``."""
    a = np.clip(points[:, 0], alphas[0], alphas[-1])
    b = np.clip(points[:, 1], betas[0], betas[-1])
    j = np.clip(np.searchsorted(alphas, a) - 1, 0, len(alphas) - 2)
    i = np.clip(np.searchsorted(betas, b) - 1, 0, len(betas) - 2)
    s = (a - alphas[j]) / (alphas[j + 1] - alphas[j])
    t = (b - betas[i]) / (betas[i + 1] - betas[i])
    return (1 - s) * (1 - t) * z[i, j] + s * (1 - t) * z[i, j + 1] + (1 - s) * t * z[i + 1, j] + s * t * z[i + 1, j + 1]


def panel_data(loss_fn, snapshots, steps, eigs, directions, spectrum, *, grid: int, optimizer: str, learning_rate: float) -> dict:
    """Everything the three panels show, as numpy arrays and lists.

    The slice of ``loss_fn`` through ``snapshots[-1]`` along ``directions`` (``grid`` points a side) with
    the path of ``snapshots`` projected on it, the top eigenvalues ``eigs`` at ``steps``, the edge of
    stability of ``optimizer`` at ``learning_rate``, and the smoothed SLQ density of ``spectrum``.
    """
    center = snapshots[-1]
    d1, d2 = directions
    keep = np.unique(np.linspace(0, len(snapshots) - 1, min(len(snapshots), MAX_PATH)).round().astype(int))
    drawn = [snapshots[i] for i in keep]
    # Padded to MAX_PATH points with the centre (it projects to (0, 0), inside the grid anyway):
    # the projection's least-squares solve then compiles once, not once per frame.
    padded = drawn + [center] * (MAX_PATH - len(drawn))
    slice_ = landscape.landscape_with_path(loss_fn, padded, d1, d2, num=grid)
    path = np.asarray(slice_.path[: len(drawn)], dtype=float)
    losses = np.asarray(slice_.losses, dtype=float)
    z = np.full_like(losses, np.nan)
    finite = np.isfinite(losses)
    z[finite] = np.log10(np.maximum(losses[finite], 1e-12))

    nodes, weights = np.asarray(spectrum.nodes, dtype=float), np.asarray(spectrum.weights, dtype=float)
    lo, hi = min(nodes.min(), 0.0), max(nodes.max(), 0.0)
    span = max(hi - lo, 1e-6)
    density_grid = np.linspace(lo - 0.05 * span, hi + 0.05 * span, DENSITY_POINTS)
    sigma = float(span / 50.0)  # always a Python float (weakly typed): one compilation whatever span's type
    density = np.asarray(_density(nodes, weights, density_grid, sigma), dtype=float)
    density = np.maximum(density, 1e-6 * density.max()) if density.max() > 0 else density

    eig_steps = [int(s) for s in steps]
    edge = optimizers.get(optimizer).stability_edge(learning_rate=learning_rate)
    return dict(
        alphas=np.asarray(slice_.alphas, dtype=float),
        betas=np.asarray(slice_.betas, dtype=float),
        z=z,
        path=path,
        path_z=_bilinear(slice_.alphas, slice_.betas, z, path),
        eig_steps=eig_steps,
        eigs=np.asarray(eigs, dtype=float).reshape(len(eig_steps), TOP_K),
        edge_x=[0, max(eig_steps[-1], 1)] if edge is not None else [],
        edge_y=[edge, edge] if edge is not None else [],
        grid=density_grid,
        density=density,
        title=f"{optimizer}, lr = {learning_rate:.3g}, step {eig_steps[-1]}",
    )


def base_figure(view: str) -> go.Figure:
    specs = [[{"type": "scene" if view == "surface" else "xy", "rowspan": 2}, {"type": "xy"}], [None, {"type": "xy"}]]
    fig = make_subplots(
        rows=2,
        cols=2,
        column_widths=[0.55, 0.45],
        specs=specs,
        subplot_titles=("log10 loss on the slice", "top Hessian eigenvalues", "Hessian spectral density (SLQ)"),
        horizontal_spacing=0.1,
        vertical_spacing=0.2,
    )
    path_style = dict(mode="lines+markers", name="path", line=dict(color="crimson", width=2), showlegend=False)
    if view == "surface":
        surface = go.Surface(colorscale="Viridis", showscale=False, name="loss", opacity=0.9, hoverinfo="x+y+z")
        base.add_named(fig, "surface", surface, row=1, col=1)
        base.add_named(fig, "path", go.Scatter3d(**path_style, marker=dict(size=3, color="crimson")), row=1, col=1)
    else:
        contour = go.Contour(colorscale="Viridis", ncontours=30, showscale=False, name="loss", showlegend=False)
        base.add_named(fig, "surface", contour, row=1, col=1)
        base.add_named(fig, "path", go.Scatter(**path_style, marker=dict(size=5, color="crimson")), row=1, col=1)
    for i in range(TOP_K):
        line = go.Scatter(mode="lines+markers", name=f"λ{i + 1}", marker=dict(size=4), line=dict(color=EIGEN_COLORS[i]))
        base.add_named(fig, f"λ{i + 1}", line, row=1, col=2)
    edge = go.Scatter(mode="lines", name="edge of stability", line=dict(color="black", dash="dash"))
    base.add_named(fig, "edge", edge, row=1, col=2)
    density = go.Scatter(mode="lines", name="density", line=dict(color="#1f77b4"), showlegend=False)
    base.add_named(fig, "density", density, row=2, col=2)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_xaxes(title_text="eigenvalue", row=2, col=2)
    fig.update_yaxes(type="log", exponentformat="power", row=2, col=2)
    if view == "surface":
        fig.update_scenes(xaxis_title_text="alpha", yaxis_title_text="beta", zaxis_title_text="log10 loss")
    else:
        fig.update_xaxes(title_text="alpha (direction 1)", row=1, col=1)
        fig.update_yaxes(title_text="beta (direction 2)", row=1, col=1)
    plots.style(fig, height=560)
    fig.update_layout(margin=dict(t=90))  # room for the title and, below it, the panels' own titles
    return fig


def apply(fig, p: dict, view: str) -> None:
    base.named(fig, "surface").update(x=plots.f32(p["alphas"]), y=plots.f32(p["betas"]), z=plots.f32(p["z"]))
    path = dict(x=plots.f32(p["path"][:, 0]), y=plots.f32(p["path"][:, 1]))
    if view == "surface":
        path["z"] = plots.f32(p["path_z"])
    base.named(fig, "path").update(**path)
    keep = plots.thin(len(p["eig_steps"]))
    steps = [p["eig_steps"][i] for i in keep]
    for i in range(TOP_K):
        base.named(fig, f"λ{i + 1}").update(x=steps, y=plots.f32(p["eigs"][keep, i]))
    base.named(fig, "edge").update(x=p["edge_x"], y=p["edge_y"])
    base.named(fig, "density").update(x=plots.f32(p["grid"]), y=plots.f32(p["density"]))
    fig.layout.title.text = plots.wrap_title(p["title"])


EIGEN_COLORS = ("#d62728", "#ff7f0e", "#9467bd")


def rounded(z: np.ndarray) -> list:
    """A grid for a slider step's JSON: 3 decimals (of log10 loss), ``None`` where not finite."""
    return [[round(float(v), 3) if np.isfinite(v) else None for v in row] for row in z]
