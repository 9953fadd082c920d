"""LandscapeExplorer: train a small MLP and watch its loss landscape and Hessian spectrum, live.

Three panels, refreshed after every frame of training steps:

1. the loss on a 2-D slice through the current parameters, along the top two Hessian eigenvectors
   (or two random filter-normalised directions), with the path so far projected onto it
   (contours, or a 3-D surface);
2. the top Hessian eigenvalues (Lanczos) against the training step; for GD, the line ``2 / lr``
   that the sharpness settles at (the edge of stability);
3. the spectral density of the Hessian at the current point (stochastic Lanczos quadrature).

Drivable from Python, as the tests do::

    explorer = LandscapeExplorer(optimizer="GD", learning_rate=1.0)
    explorer.run(200)
    explorer.figure            # the plotly FigureWidget
    explorer.static_figure()   # kernel-free: a slider over optimizers, precomputed

The network is the 2-16-16-1 tanh MLP of chapter 1 on 256 two-spirals points, with the logistic
loss (default) or the squared loss on targets +-1. The logistic loss grows only linearly in the
logits, so even an absurd learning rate never makes it overflow; with the squared loss a learning
rate past the edge of stability blows up for real, and the run stops with "diverged at step N".

Speed: the data, the objective and everything compiled for them are shared by all explorers with
the same ``(width, num_points, seed, loss)`` (:mod:`widgets.landscape_panels`); training runs in
compiled chunks of :func:`lessons.train.advance` with the data as arguments and the learning rate in
the optimizer's state (:mod:`lessons.optimizers`), so moving the slider never recompiles. Each frame
then costs one set of Lanczos runs (top eigenpairs and the SLQ density together,
:func:`lessons.curvature.hessian_spectrum`) and one batched evaluation of the slice, all compiled once.
Controls, tick loop and status come from :class:`widgets.base.App`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import ipywidgets as W
import jax
import numpy as np
import plotly.graph_objects as go

from lessons import checks, curvature, first_order, optimizers, train
from widgets import base, plots
from widgets import landscape_panels as panels
from widgets.landscape_panels import DENSITY_POINTS, MAX_PATH, SLQ_STARTS, SLQ_STEPS, TOP_K  # noqa: F401 (re-exported)

OPTIMIZERS: tuple[str, ...] = ("GD", "Heavy ball", "Adam", "Newton-CG")
"""The registry's methods the explorer trains with (their defaults and colours are in :mod:`lessons.optimizers`)."""
DIRECTIONS = ("Hessian eigenvectors", "random (filter-normalised)")
VIEWS = ("contour", "surface")
LOSSES = ("logistic", "squared")
LEARNING_RATE_RANGE = (1e-4, 10.0)  # the slider's range: 10**-4 .. 10**1
MAX_CHUNK = 128  # longest compiled training chunk; longer runs loop over chunks


_WARM: set[tuple] = set()  # the (objective, optimizer, chunk size) whose training chunk is compiled


def _chunk_size(steps: int) -> int:
    """Chunks come in powers of two (at most :data:`MAX_CHUNK`): few compilations, little padding."""
    return min(MAX_CHUNK, 1 << max(steps - 1, 0).bit_length())


@dataclasses.dataclass
class _Run:
    """The training run shown: current parameters and optimizer state, and what was recorded per frame.

    ``losses[t]`` is the loss at step ``t`` for ``t = 0..step``; ``snapshots``, ``snapshot_steps`` and
    ``eigenvalues`` (top :data:`TOP_K`, largest first) have one entry per frame, starting at step 0.
    """

    params: object
    opt_state: object
    step: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    snapshots: list[object] = dataclasses.field(default_factory=list)
    snapshot_steps: list[int] = dataclasses.field(default_factory=list)
    eigenvalues: list[np.ndarray] = dataclasses.field(default_factory=list)
    diverged_at: int | None = None

    @property
    def eigen_steps(self) -> list[int]:
        return self.snapshot_steps


class LandscapeExplorer(base.App):
    """Live loss landscape and Hessian spectrum of a small MLP (see the module docstring).

    Args:
        optimizer: a name in :data:`OPTIMIZERS`.
        learning_rate: overrides the optimizer's default; within :data:`LEARNING_RATE_RANGE`.
        directions: one of :data:`DIRECTIONS`.
        view: ``"contour"`` or ``"surface"``.
        loss: ``"logistic"`` or ``"squared"`` (see the module docstring).
        width: hidden width of the 2-w-w-1 tanh MLP (``>= 1``).
        num_points: number of two-spirals training points (``>= 2``).
        seed: seeds the data (``seed``), the initial parameters (``seed + 1``), the Lanczos starts and
            the random directions: two explorers with the same arguments do exactly the same.
        steps_per_frame: training steps between two redraws (one Play tick).
        grid: points per axis of the landscape slice (``>= 3``).
        max_steps: Play stops after this many steps.
    """

    def __init__(
        self,
        optimizer: str = "GD",
        *,
        learning_rate: float | None = None,
        directions: str = DIRECTIONS[0],
        view: str = "contour",
        loss: str = "logistic",
        width: int = 16,
        num_points: int = 256,
        seed: int = 0,
        steps_per_frame: int = 50,
        grid: int = 25,
        max_steps: int = 5000,
    ):
        super().__init__(steps_per_frame=steps_per_frame, max_steps_per_frame=500, interval_ms=200)
        for name, value, choices in (
            ("optimizer", optimizer, OPTIMIZERS),
            ("directions", directions, DIRECTIONS),
            ("view", view, VIEWS),
            ("loss", loss, LOSSES),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
        for name, value, low in (("width", width, 1), ("num_points", num_points, 2), ("seed", seed, 0), ("grid", grid, 3)):
            checks.check_positive_int(value, name, low=low)
        checks.check_positive_int(max_steps, "max_steps")
        if learning_rate is not None:
            first_order.check_learning_rate(learning_rate)
            low, high = LEARNING_RATE_RANGE
            if not low <= learning_rate <= high:
                raise ValueError(f"learning_rate must lie in [{low:g}, {high:g}] (the slider's range), got {learning_rate}")
        self.seed = int(seed)
        self.grid = int(grid)
        self.max_steps = int(max_steps)
        self._sizes = (int(width), int(num_points), self.seed)

        self.optimizer_select = W.Dropdown(options=list(OPTIMIZERS), value=optimizer, description="optimizer")
        default_lr = optimizers.get(optimizer).defaults["learning_rate"]
        self.lr_slider = W.FloatLogSlider(
            value=default_lr if learning_rate is None else float(learning_rate),
            base=10,
            min=math.log10(LEARNING_RATE_RANGE[0]),
            max=math.log10(LEARNING_RATE_RANGE[1]),
            step=0.001,
            description="lr",
            readout_format=".3g",
        )
        self.loss_select = W.Dropdown(options=list(LOSSES), value=loss, description="loss")
        wide = W.Layout(width="auto")
        self.directions_toggle = W.ToggleButtons(
            options=list(DIRECTIONS), value=directions, description="slice", style={"button_width": "auto"}, layout=wide
        )
        self.view_toggle = W.ToggleButtons(options=list(VIEWS), value=view, description="view")

        self.figure = go.FigureWidget(panels.base_figure(view))
        self.reset()

        self.optimizer_select.observe(self._on_optimizer, names="value")
        self.lr_slider.observe(self.on_setting, names="value")
        self.loss_select.observe(self.on_setting, names="value")
        self.directions_toggle.observe(lambda _: self._redraw(), names="value")
        self.view_toggle.observe(self._on_view, names="value")
        self.assemble(
            W.HBox([self.optimizer_select, self.lr_slider, self.loss_select]), W.HBox([self.directions_toggle, self.view_toggle])
        )

    # --- public API -------------------------------------------------------------------------------

    @property
    def setup(self) -> panels.Setup:
        width, num_points, seed = self._sizes
        return panels.setup(width, num_points, seed, self.loss_select.value)

    @property
    def loss_fn(self) -> Callable:
        """The training loss, ``params -> scalar`` (full batch)."""
        return self.setup.loss_fn

    @property
    def initial_params(self):
        return self.setup.initial_params

    @property
    def learning_rate(self) -> float:
        return base.shown(self.lr_slider.value)

    @property
    def method(self) -> optimizers.Method:
        """The registry's method being trained."""
        return optimizers.get(self.optimizer_select.value)

    @property
    def optimizer(self):
        """The current optimizer as an optax transformation (its hyperparameters live in its state)."""
        return self.method.transformation()

    def reset(self) -> None:
        """Back to the initial parameters, step 0 (recomputes the panels there)."""
        setup = self.setup
        params = setup.initial_params
        self.state = _Run(params=params, opt_state=self.method.init(params, learning_rate=self.learning_rate))
        self.state.losses.append(float(setup.value(params)))
        self._previous_eigen = None
        self._snapshot()
        self._redraw()

    def run(self, steps: int) -> None:
        """Train ``steps`` more steps (stopping at a non-finite loss), then refresh every panel.

        Stops early, with :meth:`message` saying ``"diverged at step N"``, when the loss stops being
        finite (the library's rule: the parameters shown are those of step N - 1); a diverged run stays
        stopped until :meth:`reset`. Never trains past ``max_steps``.
        """
        steps = self.check_steps(steps)
        run = self.state
        steps = min(steps, self.max_steps - run.step)
        if run.diverged_at is not None or steps <= 0:
            self.stop_playing()
            return
        params, opt_state, losses, diverged, elapsed = self._train(run.params, run.opt_state, steps)
        start = run.step
        run.losses.extend(losses[1:].tolist())
        run.params = params
        if diverged is None:
            run.opt_state = opt_state
            run.step = start + steps
            run.losses.append(float(self.setup.value(params)))
            self.record_speed(steps, elapsed)
            self._snapshot()
        else:
            run.diverged_at = start + diverged
            run.step = run.diverged_at - 1  # the parameters kept are those of the last finite loss
            # the panels stay at the last frame: curvature at a blown-up point says nothing
        self._redraw()
        if self.finished():
            self.stop_playing()

    def finished(self) -> bool:
        return self.state.diverged_at is not None or self.state.step >= self.max_steps

    def messages(self) -> list[str]:
        return [self.message()]

    def message(self) -> str:
        """One line: the step, loss and top Hessian eigenvalue, or where the run diverged."""
        run = self.state
        name = self.optimizer_select.value
        if run.diverged_at is not None:
            return f"{name}: diverged at step {run.diverged_at} (the loss stopped being finite); lower the lr and reset"
        top = run.eigenvalues[-1][0]
        edge = self.method.stability_edge(**self._hyperparameters())
        ceiling = f" (edge of stability {edge:.3g})" if edge is not None else ""
        return f"{name}: step {run.step}, loss {run.losses[-1]:.3g}, top Hessian eigenvalue {top:.3g}{ceiling}"

    def _hyperparameters(self) -> dict[str, float]:
        return {k: float(v) for k, v in optimizers.hyperparameters(self.state.opt_state).items()}

    def static_figure(self, num_steps: int = 1500, snapshot_every: int = 100, methods: Sequence[str] | None = None) -> go.Figure:
        """A figure with a slider over optimizers, all precomputed here: no kernel needed.

        Each optimizer (default learning rate) trains ``num_steps`` steps from the same start on the
        current loss; the slider shows its path on the slice through its end point along the top two
        Hessian eigenvectors, its top Hessian eigenvalues every ``snapshot_every`` steps (with ``2 / lr``
        for GD), and the spectral density at the end.
        """
        for name, value, low in (("num_steps", num_steps, 1), ("snapshot_every", snapshot_every, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        names = list(OPTIMIZERS if methods is None else methods)
        unknown = [n for n in names if n not in OPTIMIZERS]
        if isinstance(methods, str) or unknown or not names:
            raise ValueError(f"methods must be a sequence of names in {list(OPTIMIZERS)}, got {methods!r}")
        setup = self.setup
        by_method = {}
        for name in names:
            method = optimizers.get(name)
            lr = method.defaults["learning_rate"]
            params = setup.initial_params
            opt_state = method.init(params)
            snapshots, steps, diverged_at = [params], [0], None
            while steps[-1] < num_steps:
                chunk = min(snapshot_every, num_steps - steps[-1])
                params, opt_state, _, diverged, _ = self._train(params, opt_state, chunk, method=method)
                if diverged is not None:
                    diverged_at = steps[-1] + diverged
                    break
                snapshots.append(params)
                steps.append(steps[-1] + chunk)
            eigs = np.array([self._top_k(p)[0] for p in snapshots])
            directions = self._eigen_directions(snapshots[-1], previous=None)
            panel = self._panel_data(snapshots, steps, eigs, directions, name, lr)
            if diverged_at is not None:
                panel["title"] += f" · diverged at step {diverged_at}"
            by_method[name] = panel

        fig = panels.base_figure("contour")
        active = names.index(self.optimizer_select.value) if self.optimizer_select.value in names else 0
        panels.apply(fig, by_method[names[active]], "contour")
        slider_steps = []
        for name in names:
            p = by_method[name]
            updates = {
                "surface": {"x": plots.short_list(p["alphas"]), "y": plots.short_list(p["betas"]), "z": panels.rounded(p["z"])},
                "path": {"x": plots.short_list(p["path"][:, 0]), "y": plots.short_list(p["path"][:, 1]), "z": None},
                **{f"λ{i + 1}": {"x": p["eig_steps"], "y": plots.short_list(p["eigs"][:, i]), "z": None} for i in range(TOP_K)},
                "edge": {"x": p["edge_x"], "y": p["edge_y"], "z": None},
                "density": {"x": plots.short_list(p["grid"]), "y": plots.short_list(p["density"]), "z": None},
            }
            slider_steps.append(base.slider_step(fig, name, updates, layout={"title.text": plots.wrap_title(p["title"])}))
        fig.update_layout(
            sliders=[dict(active=active, currentvalue=dict(prefix="optimizer: "), pad=dict(t=50), steps=slider_steps)],
            height=600,
        )
        return fig

    # --- training ---------------------------------------------------------------------------------

    def _train(self, params, opt_state, steps: int, *, method: optimizers.Method | None = None):
        """``steps`` steps of ``method`` (default: the selected one) in compiled chunks of :func:`lessons.train.advance`.

        Returns ``(params, opt_state, losses, diverged, seconds)``: ``losses[i]`` is the loss before
        step ``i``; ``diverged`` is ``None``, or the index of the first step whose loss was not finite,
        and then ``params`` are the last with a finite loss and ``losses`` stops before it. ``seconds``
        is the training time, compilation excluded.
        """
        setup = self.setup
        method = method or self.method
        opt, extras = method.transformation(), method.extras
        size = _chunk_size(steps)

        def chunk(params, opt_state, active):
            run = dict(num_steps=size, num_active=active, extras=extras)
            return train.advance(setup.objective, opt, params, opt_state, setup.data, **run)

        if (setup.objective, opt, size) not in _WARM:  # compile outside the timed region (a no-op chunk)
            jax.block_until_ready(chunk(params, opt_state, 0))
            _WARM.add((setup.objective, opt, size))
        collected, done, elapsed = [], 0, 0.0
        while done < steps:
            active = min(size, steps - done)
            t0 = time.perf_counter()
            result = jax.block_until_ready(chunk(params, opt_state, active))
            elapsed += time.perf_counter() - t0
            losses = np.asarray(result.losses, dtype=float)
            first = int(result.diverged)
            if first < active:
                collected.append(losses[:first])
                return result.last_good, opt_state, np.concatenate(collected), done + first, elapsed
            collected.append(losses[:active])
            params, opt_state = result.params, result.opt_state
            done += active
        return params, opt_state, np.concatenate(collected), None, elapsed

    # --- curvature and slices ---------------------------------------------------------------------

    def _spectrum(self, params) -> curvature.Spectrum:
        """Top eigenpairs and the SLQ measure of the Hessian at ``params`` (one compiled call), cached for
        the last ``params`` object."""
        cached = getattr(self, "_spectrum_cache", None)
        if cached is None or cached[0] is not params or cached[1] is not self.loss_fn:
            spectrum = curvature.hessian_spectrum(
                self.loss_fn,
                params,
                TOP_K,
                key=jax.random.key(self.seed + 2),
                num_steps=min(SLQ_STEPS, self.setup.dim),
                num_starts=SLQ_STARTS,
            )
            cached = (params, self.loss_fn, spectrum)
            self._spectrum_cache = cached
        return cached[2]

    def _top_k(self, params):
        """``(eigenvalues, directions)`` of the Hessian at ``params``: the top :data:`TOP_K` pairs."""
        spectrum = self._spectrum(params)
        return np.asarray(spectrum.eigenvalues, dtype=float), spectrum.directions

    def _snapshot(self) -> None:
        run = self.state
        run.snapshots.append(run.params)
        run.snapshot_steps.append(run.step)
        run.eigenvalues.append(self._top_k(run.params)[0])

    def _eigen_directions(self, params, previous):
        """The top two eigenvectors, signs chosen to agree with ``previous`` (so frames do not flip)."""
        _, vectors = self._top_k(params)
        d1, d2 = vectors[0], vectors[1]
        if previous is None:
            previous = (d1, d2)
        return panels.align(d1, previous[0]), panels.align(d2, previous[1])

    def _directions_at(self, params, kind: str):
        if kind == DIRECTIONS[0]:
            directions = self._eigen_directions(params, self._previous_eigen)
            self._previous_eigen = directions
            return directions
        return panels.random_directions(params, jax.random.key(self.seed + 3))

    def _panel_data(self, snapshots, steps, eigs, directions, optimizer: str, learning_rate: float) -> dict:
        spectrum = self._spectrum(snapshots[-1])
        return panels.panel_data(
            self.loss_fn,
            snapshots,
            steps,
            eigs,
            directions,
            spectrum,
            grid=self.grid,
            optimizer=optimizer,
            learning_rate=learning_rate,
        )

    def _redraw(self) -> None:
        """Recompute the slice and the density at the current point and redraw every panel."""
        run = self.state
        directions = self._directions_at(run.snapshots[-1], self.directions_toggle.value)
        self.directions = directions  # the (d1, d2) of the slice drawn
        self.panel = self._panel_data(
            run.snapshots, run.snapshot_steps, run.eigenvalues, directions, self.optimizer_select.value, self.learning_rate
        )
        if run.diverged_at is not None:
            self.panel["title"] += f" · diverged at step {run.diverged_at}"
        with self.figure.batch_update():
            panels.apply(self.figure, self.panel, self.view_toggle.value)
        self.refresh_status()

    # --- events -----------------------------------------------------------------------------------

    def _on_optimizer(self, change) -> None:
        with self.quietly():
            self.lr_slider.value = optimizers.get(change["new"]).defaults["learning_rate"]
        self.reset()  # a new optimizer needs a fresh state, even when its default learning rate is the same

    def _on_view(self, change) -> None:
        figure = go.FigureWidget(panels.base_figure(change["new"]))
        panels.apply(figure, self.panel, change["new"])
        self.replace_figure(figure)
