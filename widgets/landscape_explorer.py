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

The network is the 2-16-16-1 tanh MLP of chapter 1 on 256 two-spirals points (logistic loss).
"""

from __future__ import annotations

import dataclasses
import time

import ipywidgets as W
import jax
import numpy as np
import optax
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lessons import curvature, data, first_order, landscape, nets, newton, runtime, train
from widgets import plots


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """A training method for the explorer: its factory and default learning rate."""

    name: str
    factory: object
    learning_rate: float


OPTIMIZERS: dict[str, Optimizer] = {
    "GD": Optimizer("GD", first_order.gradient_descent, 1.0),
    "Heavy ball": Optimizer("Heavy ball", lambda learning_rate: first_order.heavy_ball(learning_rate, 0.9), 0.1),
    "Adam": Optimizer("Adam", lambda learning_rate: optax.adam(learning_rate), 0.01),
    "Newton-CG": Optimizer("Newton-CG", lambda learning_rate: newton.newton_cg(learning_rate, damping=1.0, max_cg_iters=20), 1.0),
}
DIRECTIONS = ("Hessian eigenvectors", "random (filter-normalised)")
VIEWS = ("contour", "surface")
TOP_K = 3


@dataclasses.dataclass
class _Run:
    params: object
    opt_state: object
    step: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    snapshots: list[object] = dataclasses.field(default_factory=list)
    snapshot_steps: list[int] = dataclasses.field(default_factory=list)
    eigen_steps: list[int] = dataclasses.field(default_factory=list)
    eigenvalues: list[np.ndarray] = dataclasses.field(default_factory=list)
    diverged_at: int | None = None


class LandscapeExplorer:
    """Live loss landscape and Hessian spectrum of a small MLP (see the module docstring).

    Args:
        optimizer: a name in :data:`OPTIMIZERS`.
        learning_rate: overrides the optimizer's default.
        directions: one of :data:`DIRECTIONS`.
        view: ``"contour"`` or ``"surface"``.
        width: hidden width of the 2-w-w-1 MLP.
        num_points: number of two-spirals training points.
        seed: seeds the data, the initial parameters and the random directions.
        steps_per_frame: training steps between two redraws.
        grid: points per axis of the landscape slice.
    """

    def __init__(
        self,
        optimizer: str = "GD",
        *,
        learning_rate: float | None = None,
        directions: str = DIRECTIONS[0],
        view: str = "contour",
        width: int = 16,
        num_points: int = 256,
        seed: int = 0,
        steps_per_frame: int = 50,
        grid: int = 25,
    ):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
        if directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {list(DIRECTIONS)}, got {directions!r}")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {list(VIEWS)}, got {view!r}")
        for name, value, low in (
            ("width", width, 1),
            ("num_points", num_points, 2),
            ("steps_per_frame", steps_per_frame, 1),
            ("grid", grid, 3),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if learning_rate is not None:
            first_order.check_learning_rate(learning_rate)
        self.seed = seed
        self.grid = grid
        self.x, self.y = data.two_spirals(num_points, key=jax.random.key(seed))
        self.loss_fn = nets.classifier_loss(self.x, self.y)
        self.initial_params = nets.init_mlp([2, width, width, 1], key=jax.random.key(seed + 1))
        self._chunks: dict[tuple[str, float, int], object] = {}
        self._last_rate: float | None = None

        self.optimizer_select = W.Dropdown(options=list(OPTIMIZERS), value=optimizer, description="optimizer")
        self.lr_slider = W.FloatLogSlider(
            value=learning_rate or OPTIMIZERS[optimizer].learning_rate,
            base=10,
            min=-4,
            max=1,
            step=0.05,
            description="lr",
            readout_format=".3g",
        )
        self.directions_toggle = W.ToggleButtons(options=list(DIRECTIONS), value=directions, description="slice")
        self.view_toggle = W.ToggleButtons(options=list(VIEWS), value=view, description="view")
        self.steps_slider = W.IntSlider(value=steps_per_frame, min=1, max=500, description="steps/frame")
        self.play = W.Play(value=0, min=0, max=10**9, step=1, interval=200, description="Play", show_repeat=False)
        self.reset_button = W.Button(description="Reset", icon="refresh")
        self.status = W.HTML()

        self.figure = go.FigureWidget(self._base_figure(view))
        self.reset()

        self.optimizer_select.observe(self._on_optimizer, names="value")
        self.lr_slider.observe(lambda _: self.reset(), names="value")
        self.directions_toggle.observe(lambda _: self._redraw(), names="value")
        self.view_toggle.observe(self._on_view, names="value")
        self.play.observe(self._on_tick, names="value")
        self.reset_button.on_click(lambda _: self.reset())
        self.widget = W.VBox(
            [
                W.HBox([self.optimizer_select, self.lr_slider]),
                W.HBox([self.directions_toggle, self.view_toggle]),
                W.HBox([self.play, self.reset_button, self.steps_slider]),
                self.status,
                self.figure,
            ]
        )

    # --- public API -------------------------------------------------------------------------------

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return OPTIMIZERS[self.optimizer_select.value].factory(float(self.lr_slider.value))

    def reset(self) -> None:
        """Back to the initial parameters, step 0."""
        params = self.initial_params
        self.state = _Run(params=params, opt_state=self.optimizer.init(params))
        self.state.losses.append(float(self.loss_fn(params)))
        self._snapshot()
        self._last_rate = None
        self._redraw()

    def run(self, steps: int) -> None:
        """Train ``steps`` more steps (stopping at a non-finite loss), then refresh every panel."""
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        run = self.state
        if run.diverged_at is not None:
            return
        chunk = self._chunk(steps)
        t0 = time.perf_counter()
        params, opt_state, last_good, losses, ok, _ = jax.block_until_ready(chunk(run.params, run.opt_state, steps))
        self._last_rate = steps / max(time.perf_counter() - t0, 1e-9)
        losses = np.asarray(losses, dtype=float)
        if bool(ok):
            run.params, run.opt_state = params, opt_state
            run.losses.extend(losses[1:].tolist())
            run.step += steps
            run.losses.append(float(self.loss_fn(run.params)))
        else:
            first = int(np.argmax(~np.isfinite(losses)))  # the first step whose loss is not finite
            run.losses.extend(losses[1:first].tolist())
            run.params = last_good
            run.step += max(first - 1, 0)
            run.diverged_at = run.step + 1
        self._snapshot()
        self._redraw()

    def _chunk(self, steps: int):
        """The compiled training chunk for the current optimizer, learning rate and length (built once each)."""
        key = (self.optimizer_select.value, float(self.lr_slider.value), steps)
        if key not in self._chunks:
            self._chunks[key] = train.make_train_chunk(self.loss_fn, self.optimizer, steps)
        return self._chunks[key]

    def message(self) -> str:
        run = self.state
        if run.diverged_at is not None:
            return f"{self.optimizer_select.value}: diverged at step {run.diverged_at}"
        top = run.eigenvalues[-1][0] if run.eigenvalues else float("nan")
        return f"{self.optimizer_select.value}: step {run.step}, loss {run.losses[-1]:.3g}, top Hessian eigenvalue {top:.3g}"

    def static_figure(self, num_steps: int = 1500, snapshot_every: int = 100) -> go.Figure:
        """A figure with a slider over the optimizers of :data:`OPTIMIZERS`, all precomputed: no kernel needed.

        Each optimizer trains ``num_steps`` steps from the same start (default learning rates); the
        slider shows its path on the top-eigenvector slice at its end point, its top Hessian
        eigenvalues along the way, and the spectral density at the end.
        """
        panels = {}
        for name, spec in OPTIMIZERS.items():
            opt = spec.factory(spec.learning_rate)
            h = train.train(
                self.loss_fn, self.initial_params, opt, num_steps=num_steps, snapshot_every=snapshot_every, progress=False
            )
            snapshots = [p for _, p in h.snapshots]
            steps = [s for s, _ in h.snapshots]
            eigs = np.array([self._top_eigenvalues(p) for p in snapshots])
            panels[name] = self._panel_data(snapshots, steps, eigs, DIRECTIONS[0], name, spec.learning_rate)
        names = list(panels)
        fig = self._base_figure("contour")
        first = panels[names[0]]
        self._apply(fig, first)
        slider_steps = []
        for name in names:
            p = panels[name]
            slider_steps.append(
                dict(
                    method="update",
                    label=name,
                    args=[
                        {
                            "x": [
                                plots.short_list(p["alphas"]),
                                plots.short_list(p["path"][:, 0]),
                                *[p["eig_steps"]] * TOP_K,
                                p["edge_x"],
                                plots.short_list(p["grid"]),
                            ],
                            "y": [
                                plots.short_list(p["betas"]),
                                plots.short_list(p["path"][:, 1]),
                                *[plots.short_list(p["eigs"][:, i]) for i in range(TOP_K)],
                                p["edge_y"],
                                plots.short_list(p["density"]),
                            ],
                            "z": [np.round(p["losses"], 3).tolist(), None, *[None] * TOP_K, None, None],
                        },
                        {"title.text": p["title"]},
                    ],
                )
            )
        fig.update_layout(sliders=[dict(active=0, currentvalue=dict(prefix="optimizer: "), pad=dict(t=40), steps=slider_steps)])
        return fig

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- internals --------------------------------------------------------------------------------

    def _top_eigenpairs(self, params):
        values, vectors = curvature.hessian_top_k(self.loss_fn, params, TOP_K, key=jax.random.key(self.seed + 2))
        return np.asarray(values), vectors

    def _top_eigenvalues(self, params) -> np.ndarray:
        return self._top_eigenpairs(params)[0]

    def _snapshot(self) -> None:
        run = self.state
        run.snapshots.append(run.params)
        run.snapshot_steps.append(run.step)
        run.eigen_steps.append(run.step)
        values, vectors = self._top_eigenpairs(run.params)
        run.eigenvalues.append(values)
        self._eigenvectors = (run.params, vectors[0], vectors[1])

    def _directions(self, params, kind: str):
        if kind == DIRECTIONS[0]:
            cached = getattr(self, "_eigenvectors", None)
            if cached is not None and cached[0] is params:
                return cached[1], cached[2]
            _, vectors = self._top_eigenpairs(params)
            return vectors[0], vectors[1]
        d1 = landscape.filter_normalized_direction(params, key=jax.random.key(self.seed + 3))
        d2 = landscape.filter_normalized_direction(params, key=jax.random.key(self.seed + 4))
        return d1, d2

    def _panel_data(self, snapshots, steps, eigs, kind: str, optimizer: str, learning_rate: float) -> dict:
        center = snapshots[-1]
        d1, d2 = self._directions(center, kind)
        slice_ = landscape.landscape_with_path(self.loss_fn, snapshots, d1, d2, num=self.grid)
        nodes, weights = curvature.hessian_slq(
            self.loss_fn, center, key=jax.random.key(self.seed + 5), num_steps=30, num_starts=4
        )
        nodes, weights = np.asarray(nodes), np.asarray(weights)
        span = max(np.abs(nodes).max(), 1e-3)
        grid = np.linspace(-0.3 * span, 1.1 * span, 200)
        density = np.asarray(curvature.spectral_density(nodes, weights, grid, sigma=0.02 * span))
        is_gd = optimizer == "GD"
        edge = 2.0 / learning_rate
        return dict(
            alphas=slice_.alphas,
            betas=slice_.betas,
            losses=np.log10(np.maximum(slice_.losses, 1e-12)),
            path=slice_.path,
            eig_steps=list(map(int, steps)),
            eigs=np.asarray(eigs),
            edge_x=[0, int(steps[-1])] if is_gd else [],
            edge_y=[edge, edge] if is_gd else [],
            grid=grid,
            density=density,
            title=f"{optimizer}, lr = {learning_rate:.3g}, step {int(steps[-1])}",
        )

    def _base_figure(self, view: str) -> go.Figure:
        specs = [[{"type": "surface" if view == "surface" else "xy", "rowspan": 2}, {"type": "xy"}], [None, {"type": "xy"}]]
        fig = make_subplots(
            rows=2,
            cols=2,
            column_widths=[0.55, 0.45],
            specs=specs,
            subplot_titles=("log10 loss on the slice", "top Hessian eigenvalues", "Hessian spectral density (SLQ)"),
            horizontal_spacing=0.1,
            vertical_spacing=0.18,
        )
        if view == "surface":
            fig.add_trace(go.Surface(colorscale="Viridis", showscale=False, name="loss"), row=1, col=1)
            fig.add_trace(
                go.Scatter3d(mode="lines+markers", name="path", marker=dict(size=3, color="crimson"), line=dict(color="crimson")),
                row=1,
                col=1,
            )
        else:
            fig.add_trace(
                go.Contour(colorscale="Viridis", ncontours=30, showscale=False, name="loss", hoverinfo="skip"), row=1, col=1
            )
            fig.add_trace(
                go.Scatter(mode="lines+markers", name="path", marker=dict(size=5, color="crimson"), line=dict(color="crimson")),
                row=1,
                col=1,
            )
        for i in range(TOP_K):
            fig.add_trace(go.Scatter(mode="lines+markers", name=f"lambda_{i + 1}", marker=dict(size=4)), row=1, col=2)
        fig.add_trace(go.Scatter(mode="lines", name="2 / lr", line=dict(color="black", dash="dash")), row=1, col=2)
        fig.add_trace(
            go.Scatter(mode="lines", name="density", fill="tozeroy", line=dict(color="#1f77b4"), showlegend=False), row=2, col=2
        )
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_xaxes(title_text="eigenvalue", row=2, col=2)
        if view != "surface":
            fig.update_xaxes(title_text="alpha (direction 1)", row=1, col=1)
            fig.update_yaxes(title_text="beta (direction 2)", row=1, col=1)
        return plots.style(fig, height=560)

    def _apply(self, fig, p: dict, view: str = "contour") -> None:
        surface, path = fig.data[0], fig.data[1]
        surface.update(x=plots.f32(p["alphas"]), y=plots.f32(p["betas"]), z=plots.f32(p["losses"]))
        if view == "surface":
            a = np.clip(np.searchsorted(p["alphas"], p["path"][:, 0]), 0, len(p["alphas"]) - 1)
            b = np.clip(np.searchsorted(p["betas"], p["path"][:, 1]), 0, len(p["betas"]) - 1)
            path.update(x=plots.f32(p["path"][:, 0]), y=plots.f32(p["path"][:, 1]), z=plots.f32(p["losses"][b, a]))
        else:
            path.update(x=plots.f32(p["path"][:, 0]), y=plots.f32(p["path"][:, 1]))
        for i in range(TOP_K):
            fig.data[2 + i].update(x=p["eig_steps"], y=plots.f32(p["eigs"][:, i]))
        fig.data[2 + TOP_K].update(x=p["edge_x"], y=p["edge_y"])
        fig.data[3 + TOP_K].update(x=plots.f32(p["grid"]), y=plots.f32(p["density"]))
        fig.layout.title = p["title"]

    def _redraw(self) -> None:
        run = self.state
        view = self.view_toggle.value
        name = self.optimizer_select.value
        p = self._panel_data(
            run.snapshots, run.eigen_steps, run.eigenvalues, self.directions_toggle.value, name, float(self.lr_slider.value)
        )
        with self.figure.batch_update():
            self._apply(self.figure, p, view)
        speed = "" if self._last_rate is None else f" · {self._last_rate:,.0f} steps/s"
        self.status.value = f"<b>{runtime.device_label()}</b>{speed}<br>{self.message()}"

    def _on_optimizer(self, change) -> None:
        with self.lr_slider.hold_trait_notifications():
            self.lr_slider.unobserve_all("value")
            self.lr_slider.value = OPTIMIZERS[change["new"]].learning_rate
            self.lr_slider.observe(lambda _: self.reset(), names="value")
        self.reset()  # a new optimizer needs a fresh state, even when its default learning rate is the same

    def _on_view(self, change) -> None:
        new = go.FigureWidget(self._base_figure(change["new"]))
        self.figure.data = []
        self.figure = new
        self.widget.children = (*self.widget.children[:-1], self.figure)
        self._redraw()

    def _on_tick(self, change) -> None:
        if change["new"] < change["old"]:
            self.reset()
            return
        self.run(int(self.steps_slider.value))
