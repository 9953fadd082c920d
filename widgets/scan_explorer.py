r"""ScanExplorer: DEER's Newton iterates snapping onto an RNN's trajectory, one iteration per frame.

A tanh RNN :math:`h_t = \tanh(g W h_{t-1} + x_t U + b)` (:func:`lessons.nets.tanh_rnn`, ``d = 8``, driven
by a fixed random input sequence drawn from the seed) runs for ``T`` steps. DEER
(:func:`lessons.deer.newton_iterates`) solves for the whole trajectory at once by Newton's method, each
iteration one parallel (associative) scan; quasi-DEER keeps only the diagonals of the Jacobians. Each
Play frame does ``steps/frame`` Newton iterations and redraws:

1. one coordinate of the true trajectory (the sequential scan) and of the current iterate against t: after
   ``k`` iterations the first ``k`` steps are exact (the shaded band), and for a contracting cell the rest
   follows within a few iterations;
2. the largest error :math:`\max_t |h^{(k)}_t - h^\star_t|` of every iterate so far (log axis) and the
   tolerance, where Play stops;
3. the time of the sequential scan against DEER's iterations so far on this device (medians of a few calls,
   measured once per T and method, outside the frame timing), with the depths: ``T`` sequential steps
   against ``k`` scans of depth ~ 2 log2 T each.

The **gain** g moves the cell from contracting (g ~ 0.5: DEER converges in ~3 iterations at any T) to
expanding (g ~ 2-3; the chapter says expanding, not chaotic: a Lyapunov exponent of this driven cell is not
measured): then the products of Jacobians grow exponentially, the first iterates are
far off, DEER needs many iterations, and for long sequences the iterate overflows; Play then stops with
"DEER overflowed at iteration k".

**alpha** is generalized teacher forcing (Hess et al. 2023) toward the reference trajectory: DEER solves the
forced recurrence :math:`h_t = f((1 - \alpha) h_{t-1} + \alpha y_{t-1}, x_t)`, with ``y`` the free-running
model's sequential trajectory. Forcing toward ``y`` itself leaves the solution unchanged (``y`` solves the
forced recurrence for every alpha: the true trajectory drawn is the same), but the Newton step's Jacobians
become :math:`(1 - \alpha) J_t`: alpha moves only the *conditioning*. alpha = 0 is plain DEER; alpha = 1
makes every Jacobian 0 and DEER exact after one iteration; alpha ~ 0.5 brings the expanding cell back to a
handful of iterations, independent of T. (In GTF training the forcing signal is data, so there the forced
trajectory differs from the free-running one: chapter 8, :mod:`lessons.gtf`. This widget shows the
conditioning alone; being handed the answer as forcing is not a way to compute it.)

Drivable from Python, as the tests do::

    explorer = ScanExplorer(T=128, gain=2.0)
    explorer.run(10)            # ten Newton iterations
    explorer.errors             # max error of iterates 0..10
    explorer.alpha_slider.value = 0.5   # resets: iteration 0 again
    explorer.static_figure()    # kernel-free: a slider over the iterations, several gains precomputed

Compilation: the shapes depend on T, so each new T compiles its functions once (about as long as the
widget's start; the last few T are kept, :data:`widgets.scan_explorer_panels.CACHE_SIZE`). Seed, gain, alpha,
the method and steps/frame are arguments of the compiled code: moving them compiles nothing, and neither
does any frame after the first Play frame (which compiles the Newton step, both methods at once).
Controls, tick loop and status come from :class:`widgets.base.App`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import ipywidgets as W
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go

from lessons import checks, runtime
from widgets import base, plots
from widgets import scan_explorer_panels as panels
from widgets.scan_explorer_panels import DIM, GAIN_RANGE, MAX_ITERS, MAX_T, METHODS, T_CHOICES, TOL  # noqa: F401 (re-exported)

STATIC_LANES = ((0.5, 0.0), (2.0, 0.0), (2.0, 0.5))
"""The static figure's (gain, alpha) lanes: contracting, expanding, and the expanding cell forced."""


class ScanExplorer(base.App):
    """DEER's Newton iterates on a tanh RNN's trajectory (see the module docstring).

    Args:
        T: sequence length, ``2 <= T <=`` :data:`MAX_T` (the slider offers powers of two, :data:`T_CHOICES`).
        gain: the cell's gain g, in :data:`GAIN_RANGE`: < 1 contracting, ~2-3 expanding.
        alpha: teacher forcing toward the true trajectory, in [0, 1] (module docstring).
        method: ``"DEER"`` or ``"quasi-DEER"``.
        seed: draws the cell's weights and its input sequence.
        dim: state size d.
        coordinate: the state coordinate drawn (0 .. d-1).
        max_iters: Play stops after this many iterations (default ``min(T,`` :data:`MAX_ITERS` ``)``).
        tol: the error counted as converged (default by dtype, :data:`TOL`).
        dtype: ``jnp.float32`` (default) or ``jnp.float64`` (needs ``jax_enable_x64``).
        steps_per_frame: Newton iterations per Play tick.
    """

    def __init__(
        self,
        T: int = 128,
        gain: float = 2.0,
        alpha: float = 0.0,
        method: str = "DEER",
        seed: int = 0,
        *,
        dim: int = DIM,
        coordinate: int = 0,
        max_iters: int | None = None,
        tol: float | None = None,
        dtype=jnp.float32,
        steps_per_frame: int = 1,
    ):
        super().__init__(steps_per_frame=steps_per_frame, max_steps_per_frame=16, interval_ms=250)
        checks.check_positive_int(T, "T")
        if not 2 <= T <= MAX_T:
            raise ValueError(f"T must lie in [2, {MAX_T}], got {T}")
        low, high = GAIN_RANGE
        checks.check_positive(gain, "gain")
        if not low <= gain <= high:
            raise ValueError(f"gain must lie in [{low:g}, {high:g}] (the slider's range), got {gain!r}")
        checks.check_nonnegative(alpha, "alpha")
        if alpha > 1:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        checks.check_positive_int(seed, "seed", low=0)
        checks.check_positive_int(dim, "dim")
        checks.check_positive_int(coordinate, "coordinate", low=0)
        if coordinate >= dim:
            raise ValueError(f"coordinate must lie in [0, {dim - 1}] (dim = {dim}), got {coordinate}")
        if max_iters is not None:
            checks.check_positive_int(max_iters, "max_iters")
        self.dtype = jnp.dtype(dtype)
        if self.dtype.name not in TOL:
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if self.dtype == jnp.float64 and not jax.config.jax_enable_x64:
            raise ValueError("dtype float64 needs jax.config.update('jax_enable_x64', True)")
        if tol is not None:
            checks.check_positive(tol, "tol")
        self.dim, self._max_iters, self.tol = int(dim), max_iters, float(TOL[self.dtype.name] if tol is None else tol)

        style = {"description_width": "initial"}
        self.T_slider = W.SelectionSlider(options=sorted({*T_CHOICES, int(T)}), value=int(T), description="T", style=style)
        self.gain_slider = W.FloatSlider(value=gain, min=low, max=high, step=0.05, description="gain", readout_format=".2f")
        self.alpha_slider = W.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="alpha", readout_format=".2f")
        self.method_toggle = W.ToggleButtons(options=list(METHODS), value=method, description="method", style=style)
        self.seed_input = W.BoundedIntText(value=seed, min=0, max=10**6, description="seed", layout=W.Layout(width="150px"))
        self.coordinate_select = W.Dropdown(
            options=list(range(self.dim)), value=coordinate, description="coordinate", style=style, layout=W.Layout(width="160px")
        )

        self.figure = go.FigureWidget(panels.base_figure())
        self.reset()

        for control in (self.T_slider, self.gain_slider, self.alpha_slider, self.method_toggle, self.seed_input):
            control.observe(self.on_setting, names="value")
        self.coordinate_select.observe(lambda _: self._redraw(), names="value")
        self.assemble(
            W.HBox([self.T_slider, self.gain_slider, self.alpha_slider]),
            W.HBox([self.method_toggle, self.seed_input, self.coordinate_select]),
        )

    # --- settings as the controls show them ------------------------------------------------------------

    @property
    def T(self) -> int:
        return int(self.T_slider.value)

    @property
    def gain(self) -> float:
        return base.shown(self.gain_slider.value)

    @property
    def alpha(self) -> float:
        return base.shown(self.alpha_slider.value)

    @property
    def method(self) -> str:
        return self.method_toggle.value

    @property
    def seed(self) -> int:
        return int(self.seed_input.value)

    @property
    def max_iters(self) -> int:
        return min(self.T, MAX_ITERS) if self._max_iters is None else self._max_iters

    # --- the run --------------------------------------------------------------------------------------------

    @property
    def problem(self) -> panels.Problem:
        """The cell, inputs and trajectories of the current settings."""
        return self._problem

    @property
    def trajectory(self) -> np.ndarray:
        """The true trajectory ``(T, d)``: the sequential solution of the (forced) recurrence."""
        return np.asarray(self._problem.trajectory)

    @property
    def iterates(self) -> np.ndarray:
        """Every iterate so far, ``(num_iters + 1, T, d)``; iterate 0 is DEER's start, zeros."""
        return np.stack(self._iterates)

    @property
    def errors(self) -> np.ndarray:
        r""":math:`\max_t |h^{(k)}_t - h^\star_t|` for k = 0 .. num_iters."""
        return np.asarray(self._errors)

    @property
    def num_iters(self) -> int:
        return len(self._iterates) - 1

    @property
    def converged(self) -> bool:
        """The error reached ``tol``, or DEER's own stopping rule holds (:func:`lessons.deer.solve`): the last
        iteration changed the iterate by at most ``tol * max(1, max|h|)``. (For an expanding cell in float32 the
        iterate can settle ~1e-5 away from the sequential scan: two round-offs of one trajectory, amplified.)"""
        return self._errors[-1] <= self.tol or self._settled

    @property
    def diverged_at(self) -> int | None:
        """The iteration whose iterate was not finite (the run stopped before it), or ``None``."""
        return self._diverged_at

    @property
    def timing(self) -> tuple[float, float] | None:
        """``(sequential scan, one Newton iteration)`` in seconds once measured (the first Play frame), else ``None``."""
        return self._timing

    def reset(self) -> None:
        """Back to iteration 0 (DEER's zero start) of the current settings."""
        self._problem = panels.problem(self.T, seed=self.seed, gain=self.gain, alpha=self.alpha, dim=self.dim, dtype=self.dtype)
        start = np.zeros((self.T, self.dim), self.dtype)
        self._iterates, self._errors = [start], [float(np.abs(self.trajectory).max())]
        self._diverged_at, self._settled = None, False
        self._timing = panels.timings(self._problem, self.method, measure=False)
        self._redraw()

    def run(self, steps: int) -> None:
        """``steps`` more Newton iterations (fewer if it converges, overflows or reaches ``max_iters``), then redraw."""
        steps = self.check_steps(steps)
        if self._timing is None and not self.finished():
            self._timing = panels.timings(self._problem, self.method)  # compiles the step: outside the clock
        quasi, done, seconds = self.method == "quasi-DEER", 0, 0.0
        while done < steps and not self.finished():
            t0 = time.perf_counter()
            step = panels.newton_step(self._problem, self._iterates[-1], quasi)
            seconds += time.perf_counter() - t0
            if not step.finite:
                self._diverged_at = self.num_iters + 1
                break
            self._iterates.append(step.iterate)
            self._errors.append(step.error)
            self._settled = step.change <= self.tol * max(1.0, step.size)
            done += 1
        self.record_speed(done, seconds)
        self._redraw()
        if self.finished():
            self.stop_playing()

    def finished(self) -> bool:
        return self.converged or self._diverged_at is not None or self.num_iters >= self.max_iters

    def speed_line(self) -> str:
        return super().speed_line().replace("optimizer steps/s", "Newton iterations/s")

    def messages(self) -> list[str]:
        k, error = self.num_iters, self._errors[-1]
        depth, T = panels.scan_depth(self.T, self.method == "quasi-DEER"), self.T
        lines = []
        if self._diverged_at is not None:
            lines.append(
                f"<b>{self.method} overflowed at iteration {self._diverged_at}</b>: the expanding cell (gain {self.gain:g}) "
                f"multiplies its Jacobians along the sequence, and over T = {T} steps the linearised recurrence "
                f"leaves float range. Raise alpha (the Jacobians become (1 - alpha) J), shorten T or lower the gain. "
                f"Showing iterate {k}."
            )
        elif error <= self.tol:
            lines.append(f"{self.method} converged after {k} iterations: max error {error:.2g} <= tol {self.tol:g}.")
        elif self.converged:
            lines.append(
                f"{self.method} converged after {k} iterations by its own rule (the last iteration changed nothing "
                f"beyond tol {self.tol:g}); the max error {error:.2g} left is round-off amplified by the expanding cell: "
                f"the sequential scan and DEER round one trajectory two ways."
            )
        elif k >= self.max_iters:
            lines.append(
                f"stopped after {k} iterations (max_iters) at max error {error:.2g}; exact after T = {T} in exact arithmetic."
            )
        else:
            lines.append(f"iteration {k}: max error {error:.2g} (tol {self.tol:g}); steps t < {k} are exact by construction.")
        line = f"depth: sequential {T} steps; {self.method} {k} x {depth} = {k * depth} (one scan ~ 2 log2 T deep)"
        if self._timing is not None:
            seq, it = self._timing
            line += (
                f". Time on {runtime.device_label()}: sequential scan {1e3 * seq:.3g} ms, one iteration "
                f"{1e3 * it:.3g} ms, {k} iterations {1e3 * k * it:.3g} ms (medians of {panels.REPEATS} calls)"
            )
        return [*lines, line]

    # --- the site's figure ------------------------------------------------------------------------------

    def static_figure(
        self, lanes: Sequence[tuple[float, float]] = STATIC_LANES, *, T: int = 128, num_iters: int = 48
    ) -> go.Figure:
        """A figure for the site, all precomputed here: a slider over the Newton iteration k.

        ``lanes``: ``(gain, alpha)`` pairs, one trajectory panel each (default :data:`STATIC_LANES`: a
        contracting cell, an expanding one, and the expanding one forced), at sequence length ``T`` (at 128 the
        expanding lane needs ~24 iterations and visibly snaps on from the left; at 256 and more it overflows),
        with this widget's method, seed, coordinate and tolerance. Each lane runs until it converges, overflows
        or reaches ``num_iters``; the slider's step k shows every lane's iterate k (its last one if it stopped
        before) and the errors up to k. About 1 kB per lane, iteration and 16 steps of T in the page.
        """
        lanes = [tuple(lane) for lane in lanes]
        if not lanes or not all(len(lane) == 2 for lane in lanes):
            raise ValueError(f"lanes must be one or more (gain, alpha) pairs, got {lanes!r}")
        checks.check_positive_int(num_iters, "num_iters")
        c = int(self.coordinate_select.value)
        runs = []
        for gain, alpha in lanes:
            run = ScanExplorer(
                T,
                gain,
                alpha,
                self.method,
                self.seed,
                dim=self.dim,
                coordinate=c,
                max_iters=num_iters,
                tol=self.tol,
                dtype=self.dtype,
            )
            run.run(num_iters)
            runs.append(run)
        labels = [f"gain {gain:g}, α = {alpha:g}" for gain, alpha in lanes]
        titles = [f"{label}: {_outcome(run)}" for label, run in zip(labels, runs, strict=True)]
        title = f"{self.method} on a tanh RNN (d = {self.dim}, T = {T}): iterate k against the sequential trajectory"
        fig = panels.static_base_figure(title, titles, labels, panels.lane_colours([alpha for _, alpha in lanes], self.method))
        K = max(run.num_iters for run in runs)
        ts = np.arange(T)
        for i, run in enumerate(runs):
            base.named(fig, f"true {i}").update(x=ts, y=plots.f32(run.trajectory[:, c]))
            base.named(fig, f"iterate {i}").update(x=ts)
            base.named(fig, f"error {i}").update(x=np.arange(K + 1))

        def state(k: int) -> tuple[dict, dict]:
            """Every lane at iteration k (its last iterate if it stopped before): trace updates and band edges."""
            updates, layout = {}, {}
            for i, run in enumerate(runs):
                j = min(k, run.num_iters)
                updates[f"iterate {i}"] = {"y": plots.short_list(panels.clipped(run.iterates[j][:, c]))}
                updates[f"error {i}"] = {"y": plots.short_list(panels.shown_error(run.errors[: j + 1]), 3) + [None] * (K - j)}
                layout[f"shapes[{panels.shape_index(fig, f'exact {i}')}].x1"] = j - 0.5
            return updates, layout

        steps = [base.slider_step(fig, str(k), *state(k)) for k in range(K + 1)]
        updates, _ = state(K)  # drawn at the last step: where every lane ended
        for name, update in updates.items():
            base.named(fig, name).update(**update)
        for i, run in enumerate(runs):
            fig.layout.shapes[panels.shape_index(fig, f"exact {i}")].x1 = min(K, run.num_iters) - 0.5
        fig.update_layout(
            sliders=[dict(active=K, currentvalue=dict(prefix="Newton iteration k = "), pad=dict(t=40), steps=steps)]
        )
        return fig

    # --- internals ----------------------------------------------------------------------------------------

    def _view(self) -> panels.View:
        c, k = int(self.coordinate_select.value), self.num_iters
        depth = panels.scan_depth(self.T, self.method == "quasi-DEER")
        labels = [f"sequential<br>depth {self.T}", f"{self.method} × {k}<br>depth {k * depth}"]
        ms = [None, None] if self._timing is None else [1e3 * self._timing[0], 1e3 * k * self._timing[1] if k else None]
        forced = f", α = {self.alpha:g}" if self.alpha else ""
        stop = f": overflowed at iteration {self._diverged_at}" if self._diverged_at is not None else ""
        return panels.View(
            title=f"{self.method}, tanh RNN (d = {self.dim}), T = {self.T}, gain {self.gain:g}{forced}{stop}",
            coordinate=c,
            trajectory=self.trajectory[:, c],
            iterate=self._iterates[-1][:, c],
            k=k,
            errors=self.errors,
            tol=self.tol,
            max_iters=self.max_iters,
            method=self.method,
            label=f"{self.method} iterate k = {k}",
            bars=(labels, ms),
        )

    def _redraw(self) -> None:
        view = self._view()
        with self.figure.batch_update():
            panels.draw(self.figure, view)
        self.refresh_status()


def _outcome(run: ScanExplorer) -> str:
    if run.diverged_at is not None:
        return f"overflowed at iteration {run.diverged_at}"
    if run.converged:
        return f"converged in {run.num_iters} iterations"
    return f"not converged after {run.num_iters}"
