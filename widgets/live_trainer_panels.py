"""What the LiveTrainer shows: its data sets, network and objective, the training of one lane, and its figure.

Pure functions and shared objects (no widget state), so :mod:`widgets.live_trainer` is controls and
bookkeeping, and the static figure for the site is drawn by the same code:

* :func:`setup`: the data, the initial network and the grid of the decision regions, one shared object
  per configuration;
* :func:`train_lane`: a method's steps in compiled chunks of :func:`lessons.train.advance`, timed;
* :func:`base_figure`, :func:`draw_data`, :func:`draw_regions`, :func:`draw_lane`: the plotly figure,
  its traces addressed by name.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time

import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lessons import data, nets, optimizers, train
from widgets import base, plots

DATASETS = {"spirals": data.two_spirals, "moons": data.moons, "xor": data.xor}
"""The data sets, by the name the dropdown shows: generators of :mod:`lessons.data`."""
TITLES = {"spirals": "Two spirals", "moons": "Two moons", "xor": "XOR"}
NOISE = {name: inspect.signature(make).parameters["noise"].default for name, make in DATASETS.items()}
"""Each data set's own default noise (the slider starts there when the data set is picked)."""
SIZES = (64, 128, 256, 512)
"""The sizes offered (each new size compiles every method's training chunk once: the data's shape changes)."""

OBJECTIVE = train.Objective.supervised(nets.mlp, nets.logistic_losses)
"""Mean logistic loss of the MLP's logit: the objective every lane minimises (shared compiled code)."""
CHUNK = 16
"""Steps per compiled call. Fixed, so no steps/frame value compiles anything new; a frame runs
``ceil(steps / CHUNK)`` calls, the last one with only its first steps active."""
BLOWUP = 1e3
"""A lane whose largest weight passes this has run away: it stops, "diverged" (the library's rule,
:mod:`lessons.train`). The logistic loss grows only linearly in the logit, so a too-large step shows up in
the weights long before the loss overflows; trained nets here keep their weights below ~40."""
GRID = 60  # points a side of the live decision regions
STATIC_GRID = 41  # ... and of the static figure's (its slider stores one grid per method)
LOSS_FLOOR = 1e-12  # what a log axis can show of a loss that reached 0 in float32
CLASS_COLORS = ("#2b6cb0", "#c53030")  # class 0 blue, class 1 red, as the regions' colour scale
REGIONS_SCALE = [[0.0, "#bcd4ee"], [0.5, "#ffffff"], [1.0, "#f2c2c2"]]


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
    """The data (float32), the initial network (one for every lane) and the grid of the regions."""

    data: tuple[jax.Array, jax.Array]
    initial_params: object
    initial_loss: float
    xs: np.ndarray  # the grid's axes, shape (GRID,)
    ys: np.ndarray
    grid: jax.Array  # (GRID * GRID, 2) points, row-major over (ys, xs)

    @property
    def num_points(self) -> int:
        return int(self.data[0].shape[0])


@jax.jit
def _value(params, batch):
    return OBJECTIVE.value(params, batch)


@jax.jit
def probabilities(params, points):
    """The network's probability of class 1 at ``points`` (shape ``(m, 2)``): ``sigmoid(logit)``."""
    return jax.nn.sigmoid(nets.mlp(params, points)[:, 0])


def grid_axes(x: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """Axes of a square-ish box around the points ``x`` (a margin of 15% of the span), ``num`` points each."""
    low, high = x.min(axis=0), x.max(axis=0)
    margin = 0.15 * (high - low).max()
    low, high = low - margin, high + margin
    return (np.linspace(low[0], high[0], num, dtype=np.float32), np.linspace(low[1], high[1], num, dtype=np.float32))


def _grid_points(xs, ys) -> jax.Array:
    X, Y = np.meshgrid(xs, ys)
    return jnp.asarray(np.stack([X.ravel(), Y.ravel()], axis=-1), dtype=jnp.float32)


@functools.lru_cache(maxsize=32)
def setup(dataset: str, num_points: int, noise: float, seed: int, width: int) -> Setup:
    """The data set ``dataset`` (``num_points`` points, ``noise``, drawn from key ``seed``) and the
    2-width-width-1 tanh MLP drawn from key ``seed + 1``: the same start for every lane."""
    x, y = DATASETS[dataset](num_points, key=jax.random.key(seed), noise=noise)
    params = nets.init_mlp([2, width, width, 1], key=jax.random.key(seed + 1))
    xs, ys = grid_axes(np.asarray(x), GRID)
    return Setup((x, y), params, float(_value(params, (x, y))), xs, ys, _grid_points(xs, ys))


def regions(setup: Setup, params, num: int = GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, p)``: the probability of class 1 on a ``num x num`` grid (rows: ys) over the data."""
    if num == GRID:
        xs, ys, points = setup.xs, setup.ys, setup.grid
    else:
        xs, ys = grid_axes(np.asarray(setup.data[0]), num)
        points = _grid_points(xs, ys)
    p = np.asarray(probabilities(params, points), dtype=np.float32).reshape(len(ys), len(xs))
    return xs, ys, p


# --- training one lane ----------------------------------------------------------------------------

_WARM: set[tuple] = set()  # (method, data shape, params dtype) whose chunk is compiled


@dataclasses.dataclass
class Stretch:
    """What :func:`train_lane` did: ``losses[i]`` at the steps taken (after the first), their times."""

    params: object
    opt_state: object
    losses: np.ndarray  # the loss after each step taken: at steps start+1 .. start+taken
    seconds: float  # compute time of the steps taken (compilation excluded)
    taken: int
    diverged_at: int | None  # offset from the start of the first bad step, if any


def train_lane(setup: Setup, method: optimizers.Method, params, opt_state, steps: int) -> Stretch:
    """``steps`` steps of ``method`` from ``(params, opt_state)`` on ``setup``'s data, in chunks of :data:`CHUNK`.

    Stops at the first bad step (:data:`BLOWUP`, or a non-finite loss): then ``params`` are the last good
    ones, ``losses`` stop before the bad step and ``diverged_at`` is its offset (1 = the first step
    taken here). The time is measured per chunk around the compiled call, compilation excluded (the first
    call of a chunk for a method and shape compiles it outside the clock).
    """
    opt, extras = method.transformation(), method.extras

    def chunk(params, opt_state, active):
        run = dict(num_steps=CHUNK, num_active=active, extras=extras, blowup=BLOWUP)
        return train.advance(OBJECTIVE, opt, params, opt_state, setup.data, **run)

    warm_key = (method.name, setup.data[0].shape, jax.tree.leaves(params)[0].dtype)
    if warm_key not in _WARM:
        jax.block_until_ready(chunk(params, opt_state, 0))
        _WARM.add(warm_key)
    losses, done, seconds = [], 0, 0.0
    while done < steps:
        active = min(CHUNK, steps - done)
        t0 = time.perf_counter()
        result = jax.block_until_ready(chunk(params, opt_state, active))
        seconds += time.perf_counter() - t0
        chunk_losses = np.asarray(result.losses, dtype=np.float32)
        # losses[i] is the loss before step i of the chunk; the chunk judges those, and the end is judged here
        first = int(result.diverged)
        if first >= active and _good(result.params, result.value):
            losses += [chunk_losses[1:active], np.asarray([result.value], dtype=np.float32)]
            params, opt_state = result.params, result.opt_state
            done += active
            continue
        first = min(first, active)  # the first bad step of the chunk (``active``: its end)
        losses.append(chunk_losses[1:first])  # the steps before it
        taken = max(done + first - 1, 0)
        return Stretch(result.last_good, opt_state, _joined(losses), seconds, taken, taken + 1)
    return Stretch(params, opt_state, _joined(losses), seconds, done, None)


def _good(params, value) -> bool:
    """The library's divergence rule on the end of a chunk: a finite loss, every weight within :data:`BLOWUP`."""
    largest = max(float(np.abs(np.asarray(leaf)).max(initial=0.0)) for leaf in jax.tree.leaves(params))
    return bool(np.isfinite(float(value))) and largest <= BLOWUP


def _joined(parts) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


# --- the figure -----------------------------------------------------------------------------------


def loss_name(name: str) -> str:
    return f"loss {name}"


def time_name(name: str) -> str:
    return f"time {name}"


def end_name(name: str) -> str:
    return f"end {name}"


def label(name: str, diverged_at: int | None) -> str:
    """A lane's legend entry: its name, and where it diverged."""
    return name if diverged_at is None else f"{name} (diverged at step {diverged_at})"


def base_figure(methods) -> go.Figure:
    """Loss against step and against compute time (top), each lane's steps/s and the decision regions (bottom)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=("loss vs step", "loss vs compute time", "steps per second", "decision regions"),
        horizontal_spacing=0.16,
        vertical_spacing=0.2,
    )
    # The regions' title names a method: anchored at the panel's right edge, a long name grows to the left,
    # into the gap between the panels, never into the legend on the right.
    fig.layout.annotations[3].update(name="regions title", x=fig.get_subplot(2, 2).xaxis.domain[1], xanchor="right")
    contour = go.Contour(
        colorscale=REGIONS_SCALE,
        zmin=0.0,
        zmax=1.0,
        contours=dict(start=0.1, end=0.9, size=0.1),
        line=dict(width=0.5, color="rgba(90,90,90,0.25)"),
        showscale=False,
        hoverinfo="skip",
        name="p(class 1)",
        showlegend=False,
    )
    base.add_named(fig, "regions", contour, row=2, col=2)
    for c, colour in enumerate(CLASS_COLORS):
        marker = dict(size=5, color=colour, line=dict(width=0.6, color="white"), symbol="circle" if c == 0 else "diamond")
        points = go.Scatter(mode="markers", name=f"class {c}", marker=marker, hoverinfo="skip")
        base.add_named(fig, f"class {c}", points, row=2, col=2)
    for name in methods:
        line = dict(width=2, color=plots.color(name))
        base.add_named(fig, loss_name(name), go.Scatter(mode="lines", name=name, legendgroup=name, line=line), row=1, col=1)
        timed = go.Scatter(mode="lines", name=name, legendgroup=name, showlegend=False, line=line)
        base.add_named(fig, time_name(name), timed, row=1, col=2)
        cross = dict(symbol="x", size=11, color=plots.color(name), line=dict(width=1, color="black"))
        end = go.Scatter(mode="markers", name=name, legendgroup=name, showlegend=False, marker=cross, hoverinfo="skip")
        base.add_named(fig, end_name(name), end, row=1, col=1)
    names = list(methods)
    bars = go.Bar(
        orientation="h",
        y=names,
        x=[None] * len(names),
        marker=dict(color=[plots.color(n) for n in names]),
        name="steps/s",
        showlegend=False,
        hovertemplate="%{y}: %{x:,.0f} steps/s<extra></extra>",
    )
    base.add_named(fig, "speed", bars, row=2, col=1)
    for col in (1, 2):
        fig.update_yaxes(title_text="loss" if col == 1 else None, type="log", exponentformat="power", row=1, col=col)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="compute seconds", row=1, col=2)
    fig.update_xaxes(title_text="x₁", row=2, col=2)
    fig.update_yaxes(title_text="x₂", row=2, col=2)
    fig.update_xaxes(title_text="steps/s", type="log", exponentformat="power", dtick=1, row=2, col=1)
    fig.update_yaxes(autorange="reversed", automargin=True, row=2, col=1)  # the methods top to bottom, in the legend's order
    plots.style(fig, height=640)
    fig.update_layout(margin=dict(t=90))  # room for the title and, below it, the panels' own titles
    return fig


def regions_title_index(fig) -> int:
    return next(i for i, a in enumerate(fig.layout.annotations) if a.name == "regions title")


def regions_title(name: str) -> str:
    return f"regions of {name}"


def draw_data(fig, setup: Setup, title: str) -> None:
    x, y = np.asarray(setup.data[0]), np.asarray(setup.data[1])
    for c in (0, 1):
        pts = x[y == c]
        base.named(fig, f"class {c}").update(x=plots.f32(pts[:, 0]), y=plots.f32(pts[:, 1]))
    fig.update_xaxes(range=[float(setup.xs[0]), float(setup.xs[-1])], row=2, col=2)
    fig.update_yaxes(range=[float(setup.ys[0]), float(setup.ys[-1])], row=2, col=2)
    fig.layout.title.text = plots.wrap_title(title)


def draw_regions(fig, xs, ys, p, title: str) -> None:
    base.named(fig, "regions").update(x=xs, y=ys, z=p)
    fig.layout.annotations[regions_title_index(fig)].text = title


def draw_speeds(fig, rates: dict) -> None:
    """Each lane's steps/s as a bar: ``rates[name]``, no bar where it is ``None`` or missing."""
    bars = base.named(fig, "speed")
    bars.update(x=[None if rates.get(name) is None else float(rates[name]) for name in bars.y])


def draw_lane(fig, name: str, losses: np.ndarray, times: np.ndarray, diverged_at: int | None, visible: bool = True) -> None:
    """One lane's loss curves (thinned to a drawable length) and, if it diverged, a cross at its last step."""
    keep = plots.thin(len(losses))
    shown = plots.f32(np.maximum(losses[keep], LOSS_FLOOR))
    legend = label(name, diverged_at)
    base.named(fig, loss_name(name)).update(x=keep, y=shown, name=legend, visible=visible)
    base.named(fig, time_name(name)).update(x=plots.f32(times[keep]), y=shown, name=legend, visible=visible)
    end = dict(x=[len(losses) - 1], y=[float(shown[-1])]) if diverged_at is not None and len(losses) else dict(x=[], y=[])
    base.named(fig, end_name(name)).update(**end, visible=visible)
