r"""What the ScanExplorer computes and draws: the problem, one Newton step, the timings and the figures.

Pure functions and shared compiled code (no widget state), so :mod:`widgets.scan_explorer` is controls and
bookkeeping, and the site's static figure is drawn by the same code:

* :func:`problem`: the tanh RNN of :func:`lessons.nets.tanh_rnn`, its inputs, its sequential trajectory and
  that of the forced recurrence (the one DEER solves), for one setting;
* :func:`newton_step`: one (quasi-)DEER iteration by :func:`lessons.deer.newton_iterates`, with its error;
* :func:`timings`: the sequential scan against one Newton iteration, measured once per ``T`` and method;
* :func:`base_figure`, :func:`draw`, :func:`static_base_figure`: the plotly figures, traces addressed by name.

Compilation: everything is traced (seed, gain, alpha, the method flag) except the shapes, so each sequence
length ``T`` has its own compiled functions (:func:`compiled`, a small cache keyed by ``T``); nothing else
compiles anything.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lessons import deer, nets, runtime, scan
from widgets import base, plots
from widgets.figures.scans import METHOD_COLORS

METHODS = ("DEER", "quasi-DEER")
"""The method toggle: DEER (dense Jacobians) and quasi-DEER (their diagonals)."""
T_CHOICES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
"""The T slider's stops (powers of two: a log scale). Each new T compiles once (the shapes change)."""
MAX_T = 16384
GAIN_RANGE = (0.1, 4.0)
DIM, INPUT_DIM = 8, 2
INPUT_CORRELATION = 0.9
"""The inputs are AR(1) noise with this correlation: a contracting cell then follows a slowly varying signal."""
MAX_ITERS = 256
"""Newton iterations after which Play stops (DEER is exact after T of them; T may be larger)."""
TOL = {"float32": 1e-5, "float64": 1e-10}
"""The error counted as converged: a few hundred float32 round-offs (the iterates reach ~1e-7 at best)."""
CLIP = 3.0
"""Iterates are drawn clipped to this (the state lives in [-1, 1]; an early iterate may be at 1e20)."""
ERROR_FLOOR = 1e-16  # what a log axis can show of an error that is exactly 0
REPEATS = 5  # calls per timing (the median is kept)
CACHE_SIZE = 8  # sequence lengths whose compiled functions are kept


def cell(params: dict, gain):
    r"""The free-running cell :math:`h_t = f(h_{t-1}, x_t) = \tanh(g W h_{t-1} + x_t U + b)`."""
    return lambda h, x: nets.tanh_rnn(params, h, x, gain)


def forced(params: dict, gain, alpha):
    r"""The forced cell :math:`h_t = f((1 - \alpha) h_{t-1} + \alpha y_{t-1}, x_t)` on inputs ``(x_t, y_{t-1})``.

    Its Jacobian is :math:`(1 - \alpha) J_t`: a forcing :math:`\alpha` shrinks every product of Jacobians by
    :math:`(1 - \alpha)^{t-s}`, which is what makes DEER well conditioned again.
    """
    return lambda h, xy: nets.tanh_rnn(params, (1 - alpha) * h + alpha * xy[1], xy[0], gain)


def smooth_inputs(key, T: int, input_dim: int, rho: float = INPUT_CORRELATION) -> jax.Array:
    r"""A slowly varying random input: :math:`x_t = \rho x_{t-1} + \sqrt{1 - \rho^2}\, \xi_t`, :math:`x_{-1} = \xi_0`,
    :math:`\xi_t \sim \mathcal N(0, I)` drawn from ``key`` (float32; each coordinate stays standard normal)."""
    noise = jax.random.normal(key, (T, input_dim), jnp.float32)

    def step(x, xi):
        x = rho * x + np.float32(np.sqrt(1 - rho**2)) * xi
        return x, x

    return jax.lax.scan(step, noise[0], noise)[1]


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """One setting: the cell's parameters, the inputs ``(T, d_in)``, the free trajectory ``y`` ``(T, d)``,
    ``y`` shifted by one step (``y_prev[t] = y[t - 1]``, ``y_prev[0] = h0 = 0``: the forcing signal) and the
    forced recurrence's sequential solution ``trajectory`` (what DEER converges to; equal to ``y``)."""

    params: dict
    inputs: jax.Array
    reference: jax.Array
    reference_prev: jax.Array
    trajectory: jax.Array
    gain: jax.Array
    alpha: jax.Array
    compiled: Compiled

    @property
    def T(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def dim(self) -> int:
        return int(self.reference.shape[1])

    @property
    def dtype(self):
        return self.reference.dtype


@dataclasses.dataclass(frozen=True, eq=False)
class Compiled:
    """The jitted functions of one ``(T, dim, input_dim, dtype)`` (see :func:`compiled`)."""

    setup: object
    step: object
    sequential: object
    key: tuple


@functools.lru_cache(maxsize=CACHE_SIZE)
def compiled(T: int, dim: int, input_dim: int, dtype_name: str) -> Compiled:
    """The compiled setup, Newton step and sequential scan of sequences of length ``T``.

    Seed, gain, alpha and the method are arguments (traced), so they never recompile; the last
    :data:`CACHE_SIZE` lengths are kept, so moving T back and forth compiles each length once.
    """
    dtype = jnp.dtype(dtype_name)

    @jax.jit
    def setup(seed, gain, alpha):
        key = jax.random.key(seed)
        params = nets.init_tanh_rnn(dim, input_dim, key=jax.random.fold_in(key, 0), dtype=dtype)
        inputs = smooth_inputs(jax.random.fold_in(key, 1), T, input_dim).astype(dtype)
        h0 = jnp.zeros(dim, dtype)
        y = deer.sequential(cell(params, gain), h0, inputs)
        y_prev = jnp.concatenate([h0[None], y[:-1]])
        return params, inputs, y, y_prev, deer.sequential(forced(params, gain, alpha), h0, (inputs, y_prev))

    @jax.jit
    def step(params, inputs, y_prev, trajectory, hs, gain, alpha, quasi):
        f, h0 = forced(params, gain, alpha), jnp.zeros(dim, dtype)

        def newton(q):
            return lambda hs: deer.newton_iterates(f, h0, (inputs, y_prev), 1, quasi=q, init=hs)[-1]

        new = jax.lax.cond(quasi, newton(True), newton(False), hs)
        finite = jnp.all(jnp.isfinite(new))
        big = jnp.asarray(jnp.inf, dtype)
        error, change = (jnp.where(finite, jnp.max(jnp.abs(a)), big) for a in (new - trajectory, new - hs))
        return new, error, change, jnp.where(finite, jnp.max(jnp.abs(new)), big), finite

    @jax.jit
    def sequential(params, inputs, y_prev, gain, alpha):
        return deer.sequential(forced(params, gain, alpha), jnp.zeros(dim, dtype), (inputs, y_prev))

    return Compiled(setup, step, sequential, (T, dim, input_dim, dtype_name))


def problem(T: int, *, seed: int, gain: float, alpha: float, dim: int = DIM, input_dim: int = INPUT_DIM, dtype=jnp.float32):
    """The :class:`Problem` of one setting (compiled once per ``T``; a new seed, gain or alpha compiles nothing)."""
    dtype = jnp.dtype(dtype)
    fns = compiled(int(T), int(dim), int(input_dim), dtype.name)
    gain, alpha = np.asarray(gain, dtype), np.asarray(alpha, dtype)
    params, inputs, y, y_prev, trajectory = fns.setup(np.int32(seed), gain, alpha)
    return Problem(params, inputs, y, y_prev, trajectory, gain, alpha, fns)


class Step(NamedTuple):
    """One Newton iteration's result: the iterate, its error and change, its size, and whether it is finite."""

    iterate: np.ndarray  # (T, d)
    error: float  # max |new - trajectory|
    change: float  # max |new - previous iterate|
    size: float  # max |new|
    finite: bool


def newton_step(p: Problem, hs, quasi: bool) -> Step:
    """One (quasi-)DEER iteration from ``hs`` (errors and sizes are ``inf`` when the iterate is not finite)."""
    args = (p.params, p.inputs, p.reference_prev, p.trajectory, hs, p.gain, p.alpha, np.bool_(quasi))
    new, error, change, size, finite = p.compiled.step(*args)
    return Step(np.asarray(new), float(error), float(change), float(size), bool(finite))


_TIMES: dict[tuple, tuple[float, float]] = {}


def timings(p: Problem, method: str, *, measure: bool = True) -> tuple[float, float] | None:
    """``(sequential scan, one Newton iteration)`` in seconds on this device: medians of :data:`REPEATS` calls.

    Measured once per ``(T, dim, dtype, device, method)`` (the work does not depend on the gain, alpha or
    seed) after one call that compiles; kept for the session. The sequential scan is the forced
    recurrence's ``lax.scan`` (:func:`lessons.deer.sequential`), the iteration :func:`newton_step`.
    With ``measure=False``: the kept times, or ``None`` if there are none yet.
    """
    key = (*p.compiled.key, runtime.device_label(), method)
    if key not in _TIMES and measure:
        quasi = np.bool_(method == "quasi-DEER")
        h = jnp.zeros_like(p.trajectory)
        fns = p.compiled

        def seq():
            return fns.sequential(p.params, p.inputs, p.reference_prev, p.gain, p.alpha)

        def one():
            return fns.step(p.params, p.inputs, p.reference_prev, p.trajectory, h, p.gain, p.alpha, quasi)

        _TIMES[key] = (_median(seq), _median(one))
    return _TIMES.get(key)


def _median(fn) -> float:
    jax.block_until_ready(fn())  # compiles, if it is the first call
    seconds = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def scan_depth(T: int, quasi: bool) -> int:
    """Depth of one parallel scan of ``T`` elements (:func:`lessons.scan.work_depth`, ~ 2 log2 T combines)."""
    return int(scan.work_depth(int(T), DIM, diagonal=bool(quasi))["parallel_depth"])


# --- the live figure ---------------------------------------------------------------------------------------


def shown_error(errors) -> np.ndarray:
    """Errors as a log axis can show them (an exact 0 at :data:`ERROR_FLOOR`)."""
    return plots.f32(np.maximum(np.asarray(errors, dtype=float), ERROR_FLOOR))


def clipped(values) -> np.ndarray:
    return plots.f32(np.clip(np.asarray(values, dtype=float), -CLIP, CLIP))


def exact_shape(name: str, xref: str, yref: str) -> dict:
    """The shaded band over the steps ``t < k`` that ``k`` Newton iterations make exact (``x1`` set per frame)."""
    return dict(
        type="rect",
        name=name,
        xref=xref,
        yref=f"{yref} domain",
        x0=-0.5,
        x1=-0.5,
        y0=0,
        y1=1,
        fillcolor="rgba(44, 160, 44, 0.10)",
        line=dict(width=0),
        layer="below",
    )


def shape_index(fig, name: str) -> int:
    return next(i for i, s in enumerate(fig.layout.shapes) if s.name == name)


def base_figure() -> go.Figure:
    """The trajectory against t (top); the error per iteration and the timing bars (bottom)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{"colspan": 2}, None], [{}, {}]],
        row_heights=[0.55, 0.45],
        subplot_titles=("trajectory", "max error vs Newton iteration", "time on this device"),
        horizontal_spacing=0.2,
        vertical_spacing=0.17,
    )
    fig.layout.annotations[0].update(name="trajectory title")
    fig.layout.annotations[2].update(name="timing title")
    truth = go.Scatter(mode="lines", name="sequential (true)", line=dict(color=METHOD_COLORS["sequential"], width=2, dash="dot"))
    base.add_named(fig, "true", truth, row=1, col=1)
    iterate = go.Scatter(mode="lines", name="DEER iterate", line=dict(color=METHOD_COLORS["DEER"], width=2))
    base.add_named(fig, "iterate", iterate, row=1, col=1)
    error = go.Scatter(mode="lines+markers", name="max error", showlegend=False, line=dict(color=METHOD_COLORS["DEER"], width=2))
    base.add_named(fig, "error", error, row=2, col=1)
    tol = go.Scatter(mode="lines", name="tolerance", line=dict(color=plots.PALETTE[1], width=1.5, dash="dash"), hoverinfo="skip")
    base.add_named(fig, "tol", tol, row=2, col=1)
    bars = go.Bar(orientation="h", name="time", showlegend=False, hovertemplate="%{y}: %{x:.3g} ms<extra></extra>")
    base.add_named(fig, "time", bars, row=2, col=2)
    fig.add_shape(exact_shape("exact", "x", "y"))
    fig.update_xaxes(title_text="t", row=1, col=1)
    fig.update_yaxes(range=[-1.15, 1.15], row=1, col=1)
    fig.update_xaxes(title_text="iteration k", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(type="log", exponentformat="power", row=2, col=1)
    fig.update_xaxes(title_text="ms", type="log", exponentformat="power", row=2, col=2)
    fig.update_yaxes(automargin=True, autorange="reversed", row=2, col=2)
    plots.style(fig, height=620)
    fig.update_layout(margin=dict(t=90))
    return fig


@dataclasses.dataclass
class View:
    """What one frame shows (plain numbers: the widget and the tests build it)."""

    title: str
    coordinate: int
    trajectory: np.ndarray  # (T,)
    iterate: np.ndarray  # (T,)
    k: int
    errors: np.ndarray  # (k + 1,)
    tol: float
    max_iters: int
    method: str
    label: str  # the iterate's legend entry
    bars: tuple[list[str], list[float | None]]


def draw(fig, v: View) -> None:
    """Put frame ``v`` in ``fig`` (in place: call inside ``fig.batch_update()``)."""
    ts = np.arange(len(v.trajectory))
    colour = METHOD_COLORS[v.method]
    base.named(fig, "true").update(x=ts, y=plots.f32(v.trajectory))
    base.named(fig, "iterate").update(x=ts, y=clipped(v.iterate), name=v.label, line=dict(color=colour))
    iterations = np.arange(len(v.errors))
    base.named(fig, "error").update(x=iterations, y=shown_error(v.errors), line=dict(color=colour), marker=dict(color=colour))
    right = max(v.k, 10)
    base.named(fig, "tol").update(x=[0, right], y=[v.tol, v.tol], name=f"tol {v.tol:g}")
    fig.update_xaxes(range=[-0.5, right + 0.5], row=2, col=1)
    labels, ms = v.bars
    bars = base.named(fig, "time")
    bars.update(y=labels, x=ms, marker=dict(color=[METHOD_COLORS["sequential"], colour]))
    known = [m for m in ms if m is not None and m > 0]
    if known:  # bars on a log axis start at its left edge: a decade below the shortest
        fig.update_xaxes(range=[np.log10(min(known)) - 1, np.log10(max(known)) + 0.3], row=2, col=2)
    fig.update_xaxes(title_text=f"ms on {runtime.device_label()}", row=2, col=2)
    fig.layout.shapes[shape_index(fig, "exact")].update(x1=v.k - 0.5)
    fig.layout.annotations[_annotation(fig, "trajectory title")].text = f"h_t[{v.coordinate}]: sequential vs iterate k = {v.k}"
    fig.layout.title.text = plots.wrap_title(v.title)


def _annotation(fig, name: str) -> int:
    return next(i for i, a in enumerate(fig.layout.annotations) if a.name == name)


# --- the static figure ---------------------------------------------------------------------------------------


def lane_colours(alphas: Sequence[float], method: str) -> list[str]:
    """One colour per lane of the static figure: shades of the method's colour for the free lanes (alpha = 0),
    of GTF-DEER's green for the forced ones, light to full in the order given."""
    colours = [""] * len(alphas)
    for forced_lanes, hue in ((False, METHOD_COLORS[method]), (True, METHOD_COLORS["GTF-DEER"])):
        members = [i for i, alpha in enumerate(alphas) if (alpha > 0) == forced_lanes]
        rgb = [int(hue[i : i + 2], 16) for i in (1, 3, 5)]
        for i, mix in zip(members, np.linspace(0.5, 0.0, len(members)) if len(members) > 1 else [0.0], strict=True):
            colours[i] = "#" + "".join(f"{round(c + (255 - c) * mix):02x}" for c in rgb)
    return colours


def static_base_figure(title: str, titles: list[str], labels: list[str], colours: list[str]) -> go.Figure:
    """One trajectory panel per lane (titles ``titles``), then the error of every lane per iteration."""
    n = len(titles)
    fig = make_subplots(
        rows=n + 1,
        cols=1,
        subplot_titles=[*titles, "max error vs Newton iteration"],
        row_heights=[1.0] * n + [1.6],
        vertical_spacing=0.32 / n,
    )
    for i, (label, colour) in enumerate(zip(labels, colours, strict=True)):
        truth = go.Scatter(
            mode="lines",
            name="sequential (true)",
            legendgroup="true",
            showlegend=i == 0,
            line=dict(color=METHOD_COLORS["sequential"], width=2, dash="dot"),
        )
        base.add_named(fig, f"true {i}", truth, row=i + 1, col=1)
        iterate = go.Scatter(mode="lines", name=label, legendgroup=f"lane {i}", line=dict(color=colour, width=2))
        base.add_named(fig, f"iterate {i}", iterate, row=i + 1, col=1)
        error = go.Scatter(mode="lines+markers", name=label, legendgroup=f"lane {i}", showlegend=False, line=dict(color=colour))
        base.add_named(fig, f"error {i}", error, row=n + 1, col=1)
        axis = "x" if i == 0 else f"x{i + 1}"
        fig.add_shape(exact_shape(f"exact {i}", axis, axis.replace("x", "y")))
        fig.update_yaxes(range=[-1.15, 1.15], row=i + 1, col=1)
    fig.update_xaxes(title_text="t", row=n, col=1)
    fig.update_xaxes(title_text="iteration k", row=n + 1, col=1)
    fig.update_yaxes(type="log", exponentformat="power", row=n + 1, col=1)
    plots.style(fig, title=title, height=190 * n + 260)
    fig.update_layout(margin=dict(t=fig.layout.margin.t + 30, b=130))  # the slider sits below the lower x axis title
    return fig
