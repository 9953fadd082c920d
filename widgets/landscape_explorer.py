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

Speed: the data, the loss function and everything compiled for it are shared by all explorers with
the same ``(width, num_points, seed, loss)``; training runs in compiled chunks (``lax.scan``) with
the learning rate a traced argument, so moving the slider never recompiles. Each frame then costs
one Lanczos run (top eigenpairs), one SLQ run (density) and one batched evaluation of the slice, all
compiled once. The first frame pays for those compilations (several seconds on a 2-core CPU).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence

import ipywidgets as W
import jax
import jax.numpy as jnp
import numpy as np
import optax
import plotly.graph_objects as go
from jax.flatten_util import ravel_pytree
from plotly.subplots import make_subplots

from lessons import curvature, data, first_order, landscape, nets, newton, runtime, train
from widgets import base, plots


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """A training method for the explorer: a factory from the learning rate to an optax transformation."""

    name: str
    factory: Callable[[float], optax.GradientTransformation]
    learning_rate: float


OPTIMIZERS: dict[str, Optimizer] = {
    "GD": Optimizer("GD", first_order.gradient_descent, 1.0),
    "Heavy ball": Optimizer("Heavy ball", lambda learning_rate: first_order.heavy_ball(learning_rate, 0.9), 0.1),
    "Adam": Optimizer("Adam", lambda learning_rate: optax.adam(learning_rate), 0.01),
    "Newton-CG": Optimizer("Newton-CG", lambda learning_rate: newton.newton_cg(learning_rate, damping=1.0, max_cg_iters=20), 1.0),
}
DIRECTIONS = ("Hessian eigenvectors", "random (filter-normalised)")
VIEWS = ("contour", "surface")
LOSSES = ("logistic", "squared")
TOP_K = 3
LEARNING_RATE_RANGE = (1e-4, 10.0)  # the slider's range: 10**-4 .. 10**1
MAX_CHUNK = 128  # longest compiled training chunk; longer runs loop over chunks
MAX_PATH = 64  # at most this many snapshots are projected and drawn (evenly thinned)
SLQ_STEPS, SLQ_STARTS = 30, 4
DENSITY_POINTS = 200


# --- shared, compiled once ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class _Setup:
    """Data, loss and initial parameters: one object per ``(width, num_points, seed, loss)``, shared."""

    x: jax.Array
    y: jax.Array
    loss_fn: Callable
    value: Callable  # jax.jit(loss_fn)
    initial_params: object
    dim: int


def _squared_loss(x, y):
    targets = 2.0 * y - 1.0

    def loss(params):
        return 0.5 * jnp.mean((nets.mlp(params, x)[:, 0] - targets) ** 2)

    return loss


@functools.lru_cache(maxsize=16)
def _setup(width: int, num_points: int, seed: int, loss: str) -> _Setup:
    # One loss object per configuration: lessons.curvature, lessons.landscape and _advance cache
    # their compiled code on the loss function's identity.
    x, y = data.two_spirals(num_points, key=jax.random.key(seed))
    loss_fn = nets.classifier_loss(x, y) if loss == "logistic" else _squared_loss(x, y)
    params = nets.init_mlp([2, width, width, 1], key=jax.random.key(seed + 1))
    return _Setup(x, y, loss_fn, jax.jit(loss_fn), params, nets.num_params(params))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _advance(loss_fn, optimizer: str, chunk_size: int, learning_rate, params, opt_state, num_active):
    """One compiled chunk of :func:`lessons.train.make_train_chunk`; the learning rate is traced."""
    opt = OPTIMIZERS[optimizer].factory(learning_rate)
    return train.make_train_chunk(loss_fn, opt, chunk_size)(params, opt_state, num_active)


_WARM: set[tuple] = set()  # the (loss_fn, optimizer, chunk_size) that _advance has compiled


@jax.jit
def _random_directions(params, key):
    k1, k2 = jax.random.split(key)
    return landscape.filter_normalized_direction(params, key=k1), landscape.filter_normalized_direction(params, key=k2)


@jax.jit
def _density(nodes, weights, grid, sigma):
    return curvature.spectral_density(nodes, weights, grid, sigma=sigma)


def _chunk_size(steps: int) -> int:
    """Chunks come in powers of two (at most :data:`MAX_CHUNK`): few compilations, little padding."""
    return min(MAX_CHUNK, 1 << max(steps - 1, 0).bit_length())


def _dot(a, b) -> float:
    return float(ravel_pytree(a)[0] @ ravel_pytree(b)[0])


def _bilinear(alphas, betas, z, points) -> np.ndarray:
    """``z`` (rows: betas, columns: alphas) interpolated at ``points`` of shape ``(n, 2)``."""
    a = np.clip(points[:, 0], alphas[0], alphas[-1])
    b = np.clip(points[:, 1], betas[0], betas[-1])
    j = np.clip(np.searchsorted(alphas, a) - 1, 0, len(alphas) - 2)
    i = np.clip(np.searchsorted(betas, b) - 1, 0, len(betas) - 2)
    s = (a - alphas[j]) / (alphas[j + 1] - alphas[j])
    t = (b - betas[i]) / (betas[i + 1] - betas[i])
    return (1 - s) * (1 - t) * z[i, j] + s * (1 - t) * z[i, j + 1] + (1 - s) * t * z[i + 1, j] + s * t * z[i + 1, j + 1]


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


class LandscapeExplorer:
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
        base.start()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
        if directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {list(DIRECTIONS)}, got {directions!r}")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {list(VIEWS)}, got {view!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
        for name, value, low in (
            ("width", width, 1),
            ("num_points", num_points, 2),
            ("seed", seed, 0),
            ("steps_per_frame", steps_per_frame, 1),
            ("grid", grid, 3),
            ("max_steps", max_steps, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if learning_rate is not None:
            first_order.check_learning_rate(learning_rate)
            low, high = LEARNING_RATE_RANGE
            if not low <= learning_rate <= high:
                raise ValueError(f"learning_rate must lie in [{low:g}, {high:g}] (the slider's range), got {learning_rate}")
        self.seed = int(seed)
        self.grid = int(grid)
        self.max_steps = int(max_steps)
        self._sizes = (int(width), int(num_points), self.seed)
        self._quiet = False  # set while controls are updated programmatically
        self._last_rate: float | None = None
        self._last_frame_s: float | None = None

        # Controls.
        self.optimizer_select = W.Dropdown(options=list(OPTIMIZERS), value=optimizer, description="optimizer")
        self.lr_slider = W.FloatLogSlider(
            value=OPTIMIZERS[optimizer].learning_rate if learning_rate is None else float(learning_rate),
            base=10,
            min=math.log10(LEARNING_RATE_RANGE[0]),
            max=math.log10(LEARNING_RATE_RANGE[1]),
            step=0.05,
            description="lr",
            readout_format=".3g",
        )
        self.loss_select = W.Dropdown(options=list(LOSSES), value=loss, description="loss")
        self.directions_toggle = W.ToggleButtons(options=list(DIRECTIONS), value=directions, description="slice")
        self.view_toggle = W.ToggleButtons(options=list(VIEWS), value=view, description="view")
        self.steps_slider = W.IntSlider(
            value=int(steps_per_frame), min=1, max=max(500, int(steps_per_frame)), description="steps/frame"
        )
        self.play = W.Play(value=0, min=0, max=10**9, step=1, interval=200, description="Play", show_repeat=False)
        self.reset_button = W.Button(description="Reset", icon="refresh")
        self.status = W.HTML()

        self._figure = go.FigureWidget(self._base_figure(view))
        self.widget = W.VBox(
            [
                W.HBox([self.optimizer_select, self.lr_slider, self.loss_select]),
                W.HBox([self.directions_toggle, self.view_toggle]),
                W.HBox([self.play, self.reset_button, self.steps_slider]),
                self.status,
                self._figure,
            ]
        )
        self.reset()
        base.mark_ready(self.widget)  # reset() drew the first frame

        # Wiring.
        self.optimizer_select.observe(self._on_optimizer, names="value")
        self.lr_slider.observe(self._on_setting, names="value")
        self.loss_select.observe(self._on_setting, names="value")
        self.directions_toggle.observe(lambda _: self._redraw(), names="value")
        self.view_toggle.observe(self._on_view, names="value")
        self.play.observe(self._on_tick, names="value")
        self.reset_button.on_click(lambda _: self.reset())

    # --- public API -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the first frame is drawn (the readiness marker browser tests wait for)."""
        return base.is_ready(self.widget)

    @property
    def figure(self) -> go.FigureWidget:
        """The live figure (a new one after switching between contour and surface view)."""
        return self._figure

    @property
    def setup(self) -> _Setup:
        width, num_points, seed = self._sizes
        return _setup(width, num_points, seed, self.loss_select.value)

    @property
    def loss_fn(self) -> Callable:
        """The training loss, ``params -> scalar`` (full batch)."""
        return self.setup.loss_fn

    @property
    def initial_params(self):
        return self.setup.initial_params

    @property
    def learning_rate(self) -> float:
        return float(self.lr_slider.value)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        """The current optimizer as an optax transformation (for use outside the widget)."""
        return OPTIMIZERS[self.optimizer_select.value].factory(self.learning_rate)

    def reset(self) -> None:
        """Back to the initial parameters, step 0 (recomputes the panels there)."""
        setup = self.setup
        params = setup.initial_params
        self.state = _Run(params=params, opt_state=self.optimizer.init(params))
        self.state.losses.append(float(setup.value(params)))
        self._previous_eigen = None
        self._last_rate = None
        self._snapshot()
        self._redraw()

    def run(self, steps: int) -> None:
        """Train ``steps`` more steps (stopping at a non-finite loss), then refresh every panel.

        Stops early, with :meth:`message` saying ``"diverged at step N"``, when the loss stops being
        finite; a diverged run stays stopped until :meth:`reset`. Never trains past ``max_steps``.
        """
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        run = self.state
        steps = min(int(steps), self.max_steps - run.step)
        if run.diverged_at is not None or steps <= 0:
            self._stop_playing()
            return
        t_frame = time.perf_counter()
        params, opt_state, losses, diverged, elapsed = self._train(
            self.optimizer_select.value, self.learning_rate, run.params, run.opt_state, steps
        )
        start = run.step
        run.losses.extend(losses[1:].tolist())
        run.params = params
        if diverged is None:
            run.opt_state = opt_state
            run.step = start + steps
            run.losses.append(float(self.setup.value(params)))
            self._last_rate = steps / max(elapsed, 1e-9)
            self._snapshot()
        else:
            run.diverged_at = start + diverged
            run.step = start + max(diverged - 1, 0)
            # the panels stay at the last frame: curvature at a blown-up point says nothing
        self._redraw()
        self._last_frame_s = time.perf_counter() - t_frame
        self._update_status()
        if self._finished():
            self._stop_playing()

    def message(self) -> str:
        """One line: the step, loss and top Hessian eigenvalue, or where the run diverged."""
        run = self.state
        name = self.optimizer_select.value
        if run.diverged_at is not None:
            return f"{name}: diverged at step {run.diverged_at} (the loss stopped being finite); lower the lr and reset"
        top = run.eigenvalues[-1][0]
        edge = f" (2 / lr = {2.0 / self.learning_rate:.3g})" if name == "GD" else ""
        return f"{name}: step {run.step}, loss {run.losses[-1]:.3g}, top Hessian eigenvalue {top:.3g}{edge}"

    def static_figure(
        self, num_steps: int = 1500, snapshot_every: int = 100, optimizers: Sequence[str] | None = None
    ) -> go.Figure:
        """A figure with a slider over optimizers, all precomputed here: no kernel needed.

        Each optimizer (default learning rate) trains ``num_steps`` steps from the same start on the
        current loss; the slider shows its path on the slice through its end point along the top two
        Hessian eigenvectors, its top Hessian eigenvalues every ``snapshot_every`` steps (with ``2 / lr``
        for GD), and the spectral density at the end.
        """
        for name, value, low in (("num_steps", num_steps, 1), ("snapshot_every", snapshot_every, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        names = list(OPTIMIZERS if optimizers is None else optimizers)
        unknown = [n for n in names if n not in OPTIMIZERS]
        if unknown or not names:
            raise ValueError(f"optimizers must be names in {list(OPTIMIZERS)}, got {names!r}")
        setup = self.setup
        panels = {}
        for name in names:
            lr = OPTIMIZERS[name].learning_rate
            params = setup.initial_params
            opt_state = OPTIMIZERS[name].factory(lr).init(params)
            snapshots, steps, diverged_at = [params], [0], None
            while steps[-1] < num_steps:
                chunk = min(snapshot_every, num_steps - steps[-1])
                params, opt_state, _, diverged, _ = self._train(name, lr, params, opt_state, chunk)
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
            panels[name] = panel

        fig = self._base_figure("contour")
        active = names.index(self.optimizer_select.value) if self.optimizer_select.value in names else 0
        self._apply(fig, panels[names[active]], "contour")
        slider_steps = []
        for name in names:
            p = panels[name]
            x = [
                plots.short_list(p["alphas"]),
                plots.short_list(p["path"][:, 0]),
                *[p["eig_steps"]] * TOP_K,
                p["edge_x"],
                plots.short_list(p["grid"]),
            ]
            y = [
                plots.short_list(p["betas"]),
                plots.short_list(p["path"][:, 1]),
                *[plots.short_list(p["eigs"][:, i]) for i in range(TOP_K)],
                p["edge_y"],
                plots.short_list(p["density"]),
            ]
            z = [_rounded(p["z"]), *[None] * (len(x) - 1)]  # None: the other traces have no z
            slider_steps.append(dict(method="update", label=name, args=[{"x": x, "y": y, "z": z}, {"title.text": p["title"]}]))
        fig.update_layout(
            sliders=[dict(active=active, currentvalue=dict(prefix="optimizer: "), pad=dict(t=50), steps=slider_steps)],
            height=600,
        )
        return fig

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- training ---------------------------------------------------------------------------------

    def _train(self, name: str, learning_rate: float, params, opt_state, steps: int):
        """``steps`` steps of ``name`` in compiled chunks.

        Returns ``(params, opt_state, losses, diverged, seconds)``: ``losses[i]`` is the loss before
        step ``i``; ``diverged`` is ``None``, or the index of the first step whose loss was not finite,
        and then ``params`` are the last with a finite loss and ``losses`` stops before it. ``seconds``
        is the training time, compilation excluded.
        """
        loss_fn = self.loss_fn
        size = _chunk_size(steps)
        lr = jnp.asarray(learning_rate, dtype=ravel_pytree(params)[0].dtype)
        if (loss_fn, name, size) not in _WARM:  # compile outside the timed region (a no-op chunk)
            jax.block_until_ready(_advance(loss_fn, name, size, lr, params, opt_state, jnp.int32(0)))
            _WARM.add((loss_fn, name, size))
        collected, done, elapsed = [], 0, 0.0
        while done < steps:
            active = min(size, steps - done)
            t0 = time.perf_counter()
            new_params, new_state, last_good, losses, ok, _ = jax.block_until_ready(
                _advance(loss_fn, name, size, lr, params, opt_state, jnp.int32(active))
            )
            elapsed += time.perf_counter() - t0
            losses = np.asarray(losses, dtype=float)[:active]
            if not bool(ok):
                first = int(np.argmax(~np.isfinite(losses)))
                collected.append(losses[:first])
                return last_good, opt_state, np.concatenate(collected), done + first, elapsed
            collected.append(losses)
            params, opt_state = new_params, new_state
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
        if previous is not None:
            if _dot(d1, previous[0]) < 0:
                d1 = jax.tree.map(jnp.negative, d1)
            if _dot(d2, previous[1]) < 0:
                d2 = jax.tree.map(jnp.negative, d2)
        return d1, d2

    def _directions_at(self, params, kind: str):
        if kind == DIRECTIONS[0]:
            directions = self._eigen_directions(params, self._previous_eigen)
            self._previous_eigen = directions
            return directions
        return _random_directions(params, jax.random.key(self.seed + 3))

    def _panel_data(self, snapshots, steps, eigs, directions, optimizer: str, learning_rate: float) -> dict:
        """Everything the three panels show, as numpy arrays and lists."""
        center = snapshots[-1]
        d1, d2 = directions
        keep = np.unique(np.linspace(0, len(snapshots) - 1, min(len(snapshots), MAX_PATH)).round().astype(int))
        drawn = [snapshots[i] for i in keep]
        # Padded to MAX_PATH points with the centre (it projects to (0, 0), inside the grid anyway):
        # the projection's least-squares solve then compiles once, not once per frame.
        padded = drawn + [center] * (MAX_PATH - len(drawn))
        slice_ = landscape.landscape_with_path(self.loss_fn, padded, d1, d2, num=self.grid)
        path = np.asarray(slice_.path[: len(drawn)], dtype=float)
        losses = np.asarray(slice_.losses, dtype=float)
        z = np.full_like(losses, np.nan)
        finite = np.isfinite(losses)
        z[finite] = np.log10(np.maximum(losses[finite], 1e-12))

        spectrum = self._spectrum(center)
        nodes, weights = np.asarray(spectrum.nodes, dtype=float), np.asarray(spectrum.weights, dtype=float)
        lo, hi = min(nodes.min(), 0.0), max(nodes.max(), 0.0)
        span = max(hi - lo, 1e-6)
        grid = np.linspace(lo - 0.05 * span, hi + 0.05 * span, DENSITY_POINTS)
        density = np.asarray(_density(nodes, weights, grid, span / 50.0), dtype=float)
        density = np.maximum(density, 1e-6 * density.max()) if density.max() > 0 else density

        eig_steps = [int(s) for s in steps]
        is_gd = optimizer == "GD"
        edge = 2.0 / learning_rate
        return dict(
            alphas=np.asarray(slice_.alphas, dtype=float),
            betas=np.asarray(slice_.betas, dtype=float),
            z=z,
            path=path,
            path_z=_bilinear(slice_.alphas, slice_.betas, z, path),
            eig_steps=eig_steps,
            eigs=np.asarray(eigs, dtype=float).reshape(len(eig_steps), TOP_K),
            edge_x=[0, max(eig_steps[-1], 1)] if is_gd else [],
            edge_y=[edge, edge] if is_gd else [],
            grid=grid,
            density=density,
            title=f"{optimizer}, lr = {learning_rate:.3g}, step {eig_steps[-1]}",
        )

    # --- drawing ----------------------------------------------------------------------------------

    def _base_figure(self, view: str) -> go.Figure:
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
        path_style = dict(mode="lines+markers", name="path", line=dict(color="crimson", width=2))
        if view == "surface":
            fig.add_trace(
                go.Surface(colorscale="Viridis", showscale=False, name="loss", opacity=0.9, hoverinfo="x+y+z"), row=1, col=1
            )
            fig.add_trace(go.Scatter3d(**path_style, marker=dict(size=3, color="crimson")), row=1, col=1)
        else:
            fig.add_trace(go.Contour(colorscale="Viridis", ncontours=30, showscale=False, name="loss"), row=1, col=1)
            fig.add_trace(go.Scatter(**path_style, marker=dict(size=5, color="crimson")), row=1, col=1)
        for i in range(TOP_K):
            fig.add_trace(
                go.Scatter(mode="lines+markers", name=f"λ{i + 1}", marker=dict(size=4), line=dict(color=_EIGEN_COLORS[i])),
                row=1,
                col=2,
            )
        fig.add_trace(go.Scatter(mode="lines", name="2 / lr", line=dict(color="black", dash="dash")), row=1, col=2)
        fig.add_trace(go.Scatter(mode="lines", name="density", line=dict(color="#1f77b4"), showlegend=False), row=2, col=2)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_xaxes(title_text="eigenvalue", row=2, col=2)
        fig.update_yaxes(type="log", exponentformat="power", row=2, col=2)
        if view == "surface":
            fig.update_scenes(xaxis_title_text="alpha", yaxis_title_text="beta", zaxis_title_text="log10 loss")
        else:
            fig.update_xaxes(title_text="alpha (direction 1)", row=1, col=1)
            fig.update_yaxes(title_text="beta (direction 2)", row=1, col=1)
        fig.update_traces(showlegend=False, row=1, col=1)
        plots.style(fig, height=560)
        fig.update_layout(
            margin=dict(t=80),
            legend=dict(orientation="v", x=1.01, xanchor="left", y=1.0, yanchor="top"),
            title=dict(x=0.01, y=0.98, yanchor="top"),
        )
        return fig

    def _apply(self, fig, p: dict, view: str) -> None:
        surface, path = fig.data[0], fig.data[1]
        surface.update(x=plots.f32(p["alphas"]), y=plots.f32(p["betas"]), z=plots.f32(p["z"]))
        if view == "surface":
            path.update(x=plots.f32(p["path"][:, 0]), y=plots.f32(p["path"][:, 1]), z=plots.f32(p["path_z"]))
        else:
            path.update(x=plots.f32(p["path"][:, 0]), y=plots.f32(p["path"][:, 1]))
        keep = plots.thin(len(p["eig_steps"]))
        steps = [p["eig_steps"][i] for i in keep]
        for i in range(TOP_K):
            fig.data[2 + i].update(x=steps, y=plots.f32(p["eigs"][keep, i]))
        fig.data[2 + TOP_K].update(x=p["edge_x"], y=p["edge_y"])
        fig.data[3 + TOP_K].update(x=plots.f32(p["grid"]), y=plots.f32(p["density"]))
        fig.layout.title = p["title"]

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
        with self._figure.batch_update():
            self._apply(self._figure, self.panel, self.view_toggle.value)
        self._update_status()

    def _update_status(self) -> None:
        speed = ""
        if self._last_rate is not None:
            speed = f" · {self._last_rate:,.0f} steps/s"
            if self._last_frame_s is not None:
                speed += f" · {1e3 * self._last_frame_s:,.0f} ms per frame"
        self.status.value = f"<b>{runtime.device_label()}</b>{speed}<br>{self.message()}"

    # --- events -----------------------------------------------------------------------------------

    def _finished(self) -> bool:
        return self.state.diverged_at is not None or self.state.step >= self.max_steps

    def _stop_playing(self) -> None:
        if self.play.playing:
            self.play.playing = False

    def _on_optimizer(self, change) -> None:
        self._quiet = True
        try:
            self.lr_slider.value = OPTIMIZERS[change["new"]].learning_rate
        finally:
            self._quiet = False
        self.reset()  # a new optimizer needs a fresh state, even when its default learning rate is the same

    def _on_setting(self, change) -> None:
        if not self._quiet:
            self.reset()

    def _on_view(self, change) -> None:
        self._figure = go.FigureWidget(self._base_figure(change["new"]))
        self._apply(self._figure, self.panel, change["new"])
        self.widget.children = (*self.widget.children[:-1], self._figure)

    def _on_tick(self, change) -> None:
        if change["new"] < change["old"]:  # the Play widget's stop button rewinds to 0
            self.reset()
            return
        self.run(int(self.steps_slider.value))


_EIGEN_COLORS = ("#d62728", "#ff7f0e", "#9467bd")


def _rounded(z: np.ndarray) -> list:
    """A grid for a slider step's JSON: 3 decimals (of log10 loss), ``None`` where not finite."""
    return [[round(float(v), 3) if np.isfinite(v) else None for v in row] for row in z]
