"""OptimizerRace: optimizers racing on a 2-D function, live.

Pick a function (and the condition number of the quadratic canyon), tick the methods, set their
learning rates and momenta, and press Play: the paths grow on the contour plot and the losses on a
log scale. A method whose iterate stops being finite (or flies far out of the box) stops with
"diverged at step k". Click the contour plot to move the starting point.

Everything is drivable from Python, which is how the tests use it::

    race = OptimizerRace(problem="quadratic", kappa=50, methods=("GD", "Heavy ball"))
    race.lr_sliders["GD"].value = 1.9
    race.run(100)
    race.figure           # the plotly FigureWidget
    race.static_figure()  # a kernel-free figure with a learning-rate slider, for the book's site

Speed: each frame is one compiled ``lax.scan`` per method; hyperparameters are traced arguments, so
moving a slider never recompiles.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import ipywidgets as W
import jax
import jax.numpy as jnp
import numpy as np
import optax
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lessons import first_order, newton, problems, runtime
from lessons.train import scan_iterates, truncate_divergence
from widgets import base, plots


@dataclasses.dataclass(frozen=True)
class Method:
    """An optimizer the race can run: a factory from hyperparameters to an optax transformation."""

    name: str
    factory: Callable[..., optax.GradientTransformation]
    hyperparameters: tuple[str, ...] = ("learning_rate",)


METHODS: dict[str, Method] = {
    "GD": Method("GD", first_order.gradient_descent),
    "Heavy ball": Method("Heavy ball", first_order.heavy_ball, ("learning_rate", "momentum")),
    "Nesterov": Method("Nesterov", first_order.nesterov, ("learning_rate", "momentum")),
    "Adam": Method("Adam", lambda learning_rate: optax.adam(learning_rate)),
    "Newton": Method("Newton", lambda learning_rate: newton.newton(learning_rate)),
    "Damped Newton": Method("Damped Newton", newton.newton, ("learning_rate", "damping")),
    "Saddle-free Newton": Method("Saddle-free Newton", newton.saddle_free_newton, ("learning_rate", "damping")),
}

# Sensible starting hyperparameters per problem (the quadratic has L = 1, so lr < 2 is stable).
DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "quadratic": {
        "GD": dict(learning_rate=1.0),
        "Heavy ball": dict(learning_rate=0.5, momentum=0.8),
        "Nesterov": dict(learning_rate=0.5, momentum=0.8),
        "Adam": dict(learning_rate=0.1),
    },
    "rosenbrock": {
        "GD": dict(learning_rate=1e-3),
        "Heavy ball": dict(learning_rate=5e-4, momentum=0.9),
        "Nesterov": dict(learning_rate=5e-4, momentum=0.9),
        "Adam": dict(learning_rate=0.05),
    },
    "saddle": {
        "GD": dict(learning_rate=0.3),
        "Heavy ball": dict(learning_rate=0.1, momentum=0.8),
        "Nesterov": dict(learning_rate=0.1, momentum=0.8),
        "Adam": dict(learning_rate=0.05),
    },
    "himmelblau": {
        "GD": dict(learning_rate=0.01),
        "Heavy ball": dict(learning_rate=0.005, momentum=0.8),
        "Nesterov": dict(learning_rate=0.005, momentum=0.8),
        "Adam": dict(learning_rate=0.1),
    },
}
# Newton's methods are scale-free: the same defaults suit every problem.
for _defaults in DEFAULTS.values():
    _defaults.update(
        {
            "Newton": dict(learning_rate=1.0),
            "Damped Newton": dict(learning_rate=1.0, damping=1.0),
            "Saddle-free Newton": dict(learning_rate=1.0, damping=0.01),
        }
    )

STATIC_LEARNING_RATES: dict[str, list[float]] = {
    "quadratic": [0.1, 0.3, 0.6, 1.0, 1.4, 1.8, 1.95, 2.05],
    "rosenbrock": [1e-4, 3e-4, 1e-3, 1.5e-3, 2e-3],
    "saddle": [0.03, 0.1, 0.3, 1.0, 1.9, 2.1],
    "himmelblau": [1e-3, 3e-3, 0.01, 0.02, 0.03],
}


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _advance(problem, method_name, num_steps, hyper, x, state):
    """``num_steps`` steps of one method from ``(x, state)``; hyperparameters are traced."""
    opt = METHODS[method_name].factory(**hyper)
    return scan_iterates(problem.value, problem.grad, opt, x, state, num_steps)


@dataclasses.dataclass
class _Lane:
    """One method's run: its iterate, optimizer state, recorded path and whether it diverged."""

    x: jax.Array
    state: object
    points: list[np.ndarray]
    values: list[np.ndarray]
    step: int = 0
    diverged_at: int | None = None


class OptimizerRace:
    """Optimizers racing on a 2-D test function (see the module docstring).

    Args:
        problem: a name in :data:`lessons.problems.PROBLEMS`.
        kappa: condition number of the quadratic (ignored by the other problems), ``>= 1``.
        methods: names in :data:`METHODS` to start with.
        learning_rates: per-method learning rates overriding :data:`DEFAULTS`.
        momenta: per-method momenta overriding :data:`DEFAULTS`.
        dampings: per-method damping of the Newton methods overriding :data:`DEFAULTS`.
        start: starting point, shape ``(2,)``; the problem's default if ``None``.
        steps_per_frame: optimizer steps between two plot updates.
        max_steps: Play stops after this many steps.
    """

    def __init__(
        self,
        problem: str = "quadratic",
        *,
        kappa: float = 10.0,
        methods: Sequence[str] = ("GD", "Heavy ball", "Adam"),
        learning_rates: dict[str, float] | None = None,
        momenta: dict[str, float] | None = None,
        dampings: dict[str, float] | None = None,
        start=None,
        steps_per_frame: int = 2,
        max_steps: int = 2000,
    ):
        base.start()
        if problem not in problems.PROBLEMS:
            raise ValueError(f"problem must be one of {sorted(problems.PROBLEMS)}, got {problem!r}")
        self._problem_cache: dict[tuple[str, float], problems.Problem] = {}
        self._build_problem(problem, kappa)  # validates kappa
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods must be names in {list(METHODS)}, got unknown {unknown}")
        for name, lr in (learning_rates or {}).items():
            first_order.check_learning_rate(lr, name=f"learning_rates[{name!r}]")
        for name, m in (momenta or {}).items():
            first_order.check_momentum(m, name=f"momenta[{name!r}]")
        for name, d in (dampings or {}).items():
            newton.check_damping(d, name=f"dampings[{name!r}]")
        if not isinstance(steps_per_frame, int) or steps_per_frame < 1:
            raise ValueError(f"steps_per_frame must be a positive integer, got {steps_per_frame!r}")
        self.max_steps = int(max_steps)
        self._start = None if start is None else self._check_start(start)
        self._quiet = False  # set while controls are updated programmatically

        # Controls.
        self.problem_select = W.Dropdown(options=list(problems.PROBLEMS), value=problem, description="function")
        self.kappa_slider = W.FloatLogSlider(
            value=kappa, base=10, min=0, max=3, step=0.05, description="kappa", readout_format=".3g"
        )
        self.method_checkboxes = {name: W.Checkbox(value=name in methods, description=name, indent=False) for name in METHODS}
        self.lr_sliders: dict[str, W.FloatLogSlider] = {}
        self.momentum_sliders: dict[str, W.FloatSlider] = {}
        self.damping_sliders: dict[str, W.FloatLogSlider] = {}
        for name, method in METHODS.items():
            self.lr_sliders[name] = W.FloatLogSlider(
                value=1.0, base=10, min=-4, max=1, step=0.01, description="lr", readout_format=".3g"
            )
            if "momentum" in method.hyperparameters:
                self.momentum_sliders[name] = W.FloatSlider(value=0.8, min=0.0, max=0.99, step=0.01, description="momentum")
            if "damping" in method.hyperparameters:
                self.damping_sliders[name] = W.FloatLogSlider(
                    value=1.0, base=10, min=-4, max=2, step=0.05, description="damping", readout_format=".2g"
                )
        self._set_defaults(problem)
        for name, lr in (learning_rates or {}).items():
            self.lr_sliders[name].value = lr
        for name, m in (momenta or {}).items():
            self.momentum_sliders[name].value = m
        for name, d in (dampings or {}).items():
            self.damping_sliders[name].value = d
        self.steps_slider = W.IntSlider(value=steps_per_frame, min=1, max=50, description="steps/frame")
        self.play = W.Play(value=0, min=0, max=10**9, step=1, interval=60, description="Play", show_repeat=False)
        self.reset_button = W.Button(description="Reset", icon="refresh")
        self.status = W.HTML()

        self.figure = go.FigureWidget(self._base_figure())
        self._trace_index = {}
        self._draw_problem()
        self.reset()

        # Wiring.
        self.problem_select.observe(self._on_problem, names="value")
        self.kappa_slider.observe(self._on_problem, names="value")
        sliders = [*self.lr_sliders.values(), *self.momentum_sliders.values(), *self.damping_sliders.values()]
        for widget in [*self.method_checkboxes.values(), *sliders]:
            widget.observe(self._on_setting, names="value")
        self.play.observe(self._on_tick, names="value")
        self.reset_button.on_click(lambda _: self.reset())
        self.figure.data[0].on_click(self._on_click)

        rows = []
        for name in METHODS:
            row = [self.method_checkboxes[name], self.lr_sliders[name]]
            if name in self.momentum_sliders:
                row.append(self.momentum_sliders[name])
            if name in self.damping_sliders:
                row.append(self.damping_sliders[name])
            rows.append(W.HBox(row))
        header = W.HBox([self.problem_select, self.kappa_slider])
        transport = W.HBox([self.play, self.reset_button, self.steps_slider])
        self.widget = W.VBox([header, *rows, transport, self.status, self.figure])
        base.mark_ready(self.widget)  # reset() above drew the first frame

    # --- public API -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the first frame is drawn (the readiness marker browser tests wait for)."""
        return base.is_ready(self.widget)

    @property
    def problem(self) -> problems.Problem:
        return self._build_problem(self.problem_select.value, self.kappa_slider.value)

    @property
    def start(self) -> np.ndarray:
        return self.problem.start if self._start is None else self._start

    @start.setter
    def start(self, value) -> None:
        self._start = self._check_start(value)
        self.reset()

    @property
    def active_methods(self) -> list[str]:
        return [name for name, box in self.method_checkboxes.items() if box.value]

    def hyperparameters(self, name: str) -> dict[str, float]:
        """The current hyperparameters of method ``name`` as set by its sliders."""
        hyper = {"learning_rate": float(self.lr_sliders[name].value)}
        if "momentum" in METHODS[name].hyperparameters:
            hyper["momentum"] = float(self.momentum_sliders[name].value)
        if "damping" in METHODS[name].hyperparameters:
            hyper["damping"] = float(self.damping_sliders[name].value)
        return hyper

    def reset(self) -> None:
        """Put every method back at the starting point, step 0."""
        x0 = jnp.asarray(self.start, dtype=jnp.float32)
        value0 = np.asarray(self.problem.value(x0))
        self.lanes = {}
        for name in METHODS:
            opt = METHODS[name].factory(**self.hyperparameters(name))
            self.lanes[name] = _Lane(x=x0, state=opt.init(x0), points=[np.asarray(x0)[None]], values=[value0[None]])
        self._last_rate = None
        self._redraw()

    def run(self, steps: int) -> None:
        """Advance every ticked, non-diverged method by ``steps`` steps and redraw."""
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        problem = self.problem
        blowup = self._blowup(problem)
        t0 = time.perf_counter()
        advanced = 0
        for name in self.active_methods:
            lane = self.lanes[name]
            if lane.diverged_at is not None or lane.step >= self.max_steps:
                continue
            hyper = {k: jnp.float32(v) for k, v in self.hyperparameters(name).items()}
            x, state, points, values = _advance(problem, name, steps, hyper, lane.x, lane.state)
            points, values, diverged = truncate_divergence(points, values, blowup=blowup, offset=lane.step + 1)
            lane.points.append(points)
            lane.values.append(values)
            if diverged is not None:
                lane.diverged_at = diverged
                lane.step = diverged - 1
            else:
                lane.x, lane.state = x, state
                lane.step += steps
            advanced += steps
        elapsed = time.perf_counter() - t0
        if advanced:
            self._last_rate = advanced / max(elapsed, 1e-9)
        self._redraw()
        if self.play.playing and all(self._finished(n) for n in self.active_methods):
            self.play.playing = False

    def messages(self) -> dict[str, str]:
        """One line per active method: its step and loss, or where it diverged."""
        out = {}
        for name in self.active_methods:
            lane = self.lanes[name]
            if lane.diverged_at is not None:
                out[name] = f"{name}: diverged at step {lane.diverged_at}"
            else:
                gap = float(lane.values[-1][-1]) - self.problem.min_value if len(lane.values[-1]) else float("nan")
                # below 1e-12 the gap is float32 rounding, not progress
                shown = "< 1e-12" if abs(gap) < 1e-12 else f"= {gap:.3g}"
                out[name] = f"{name}: step {lane.step}, f - f* {shown}"
        return out

    def static_figure(self, learning_rates: Sequence[float] | None = None, num_steps: int = 100) -> go.Figure:
        """A plotly figure with a slider over learning rates, precomputed here: no kernel needed.

        Every ticked method uses the slider's learning rate (other hyperparameters as currently set).
        """
        problem = self.problem
        lrs = list(learning_rates or STATIC_LEARNING_RATES[problem.name])
        for lr in lrs:
            first_order.check_learning_rate(lr, name="learning_rates")
        names = self.active_methods
        x0 = jnp.asarray(self.start, dtype=jnp.float32)
        blowup = self._blowup(problem)
        runs = {}  # (method, lr index) -> (points, values, label)
        for name in names:
            hyper = self.hyperparameters(name)
            for i, lr in enumerate(lrs):
                hyper_i = {**hyper, "learning_rate": lr}
                opt = METHODS[name].factory(**hyper_i)
                traced = {k: jnp.float32(v) for k, v in hyper_i.items()}
                _, _, pts, vals = _advance(problem, name, num_steps, traced, x0, opt.init(x0))
                pts = np.concatenate([np.asarray(x0)[None], np.asarray(pts)])
                vals = np.concatenate([np.asarray(problem.value(x0))[None], np.asarray(vals)])
                pts, vals, diverged = truncate_divergence(pts, vals, blowup=blowup)
                label = name if diverged is None else f"{name} (diverged at step {diverged})"
                runs[name, i] = (pts, vals, label)

        fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.09)
        fig.add_trace(plots.contour_trace(problem), row=1, col=1)
        for trace in plots.landmark_traces(problem):
            fig.add_trace(trace.update(showlegend=False), row=1, col=1)
        first = len(fig.data)
        start_index = min(range(len(lrs)), key=lambda i: abs(lrs[i] - np.median(lrs)))
        for k, name in enumerate(names):
            pts, vals, label = runs[name, start_index]
            fig.add_trace(plots.path_trace(label, pts, index=k, problem=problem).update(legendgroup=name), row=1, col=1)
            keep = plots.thin(len(vals))
            fig.add_trace(
                go.Scatter(
                    x=keep,
                    y=plots.f32(plots.log_suboptimality(vals[keep], problem.min_value)),
                    mode="lines",
                    name=label,
                    legendgroup=name,
                    showlegend=False,
                    line=dict(color=plots.color(name, k), width=2),
                ),
                row=1,
                col=2,
            )
        steps = []
        for i, lr in enumerate(lrs):
            xs, ys, labels = [], [], []
            for name in names:
                pts, vals, label = runs[name, i]
                keep = plots.thin(len(pts), max_points=200, dense=50)
                clipped = plots._clip_to_view(pts[keep], problem.bounds)
                xs += [plots.short_list(clipped[:, 0]), keep.tolist()]
                ys += [plots.short_list(clipped[:, 1]), plots.short_list(plots.log_suboptimality(vals[keep], problem.min_value))]
                labels += [label, label]
            steps.append(
                dict(
                    method="restyle",
                    label=f"{lr:.3g}",
                    args=[{"x": xs, "y": ys, "name": labels}, list(range(first, first + 2 * len(names)))],
                )
            )
        fig.update_layout(
            sliders=[dict(active=start_index, currentvalue=dict(prefix="learning rate: "), pad=dict(t=45), steps=steps)]
        )
        plots._axes_to_box(fig, problem, row=1, col=1)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(title_text="f - f*", type="log", exponentformat="power", row=1, col=2)
        return plots.style(fig, title=f"{problem.title}: drag the learning rate", height=520)

    # --- display ----------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- internals --------------------------------------------------------------------------------

    def _build_problem(self, name: str, kappa: float) -> problems.Problem:
        key = (name, float(kappa) if name == "quadratic" else 0.0)
        if key not in self._problem_cache:
            self._problem_cache[key] = problems.quadratic(kappa) if name == "quadratic" else problems.make(name)
        return self._problem_cache[key]

    @staticmethod
    def _blowup(problem) -> float:
        """An iterate ten times farther out than the drawn box has run away: call it diverged."""
        return 10.0 * max(abs(v) for pair in problem.bounds for v in pair)

    @staticmethod
    def _check_start(start) -> np.ndarray:
        arr = np.asarray(start, dtype=float)
        if arr.shape != (2,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"start must be a finite point of shape (2,), got {np.asarray(start).shape}")
        return arr

    def _set_defaults(self, problem_name: str) -> None:
        self._quiet = True
        try:
            for name, hyper in DEFAULTS[problem_name].items():
                self.lr_sliders[name].value = hyper["learning_rate"]
                if name in self.momentum_sliders:
                    self.momentum_sliders[name].value = hyper["momentum"]
                if name in self.damping_sliders:
                    self.damping_sliders[name].value = hyper["damping"]
        finally:
            self._quiet = False

    def _finished(self, name: str) -> bool:
        lane = self.lanes[name]
        return lane.diverged_at is not None or lane.step >= self.max_steps

    def _base_figure(self) -> go.Figure:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.09)
        fig.add_trace(
            go.Contour(showscale=False, colorscale="Blues_r", ncontours=25, hoverinfo="skip", showlegend=False), row=1, col=1
        )
        fig.add_trace(
            go.Scatter(
                mode="markers",
                name="minimum",
                showlegend=False,
                marker=dict(symbol="star", size=13, color="gold", line=dict(width=1, color="black")),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(mode="markers", name="saddle", showlegend=False, marker=dict(symbol="x", size=11, color="black")),
            row=1,
            col=1,
        )
        for k, name in enumerate(METHODS):
            fig.add_trace(
                go.Scatter(
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    marker=dict(size=4),
                    line=dict(width=2, color=plots.color(name, k)),
                ),
                row=1,
                col=1,
            )
            fig.add_trace(
                go.Scatter(
                    mode="lines", name=name, legendgroup=name, showlegend=False, line=dict(width=2, color=plots.color(name, k))
                ),
                row=1,
                col=2,
            )
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(title_text="f - f*", type="log", exponentformat="power", row=1, col=2)
        return plots.style(fig, height=480)

    def _draw_problem(self) -> None:
        problem = self.problem
        contour = plots.contour_trace(problem)
        (x0, x1), (y0, y1) = problem.bounds
        with self.figure.batch_update():
            self.figure.data[0].update(x=contour.x, y=contour.y, z=contour.z)
            self.figure.data[1].update(x=problem.minimisers[:, 0], y=problem.minimisers[:, 1])
            self.figure.data[2].update(x=problem.saddles[:, 0], y=problem.saddles[:, 1])
            self.figure.update_xaxes(range=[x0, x1], row=1, col=1)
            self.figure.update_yaxes(range=[y0, y1], row=1, col=1)
            self.figure.layout.title = problem.title

    def _redraw(self) -> None:
        problem = self.problem
        with self.figure.batch_update():
            for k, name in enumerate(METHODS):
                path, loss = self.figure.data[3 + 2 * k], self.figure.data[4 + 2 * k]
                lane = self.lanes[name]
                visible = name in self.active_methods
                pts, vals = np.concatenate(lane.points), np.concatenate(lane.values)
                keep = plots.thin(len(vals))
                pts = plots.f32(plots._clip_to_view(pts[keep], problem.bounds))
                vals = plots.f32(plots.log_suboptimality(vals[keep], problem.min_value))
                label = name if lane.diverged_at is None else f"{name} (diverged at step {lane.diverged_at})"
                path.update(x=pts[:, 0], y=pts[:, 1], visible=visible, name=label)
                loss.update(x=keep, y=vals, visible=visible, name=label)
        device = runtime.device_label()
        speed = "" if self._last_rate is None else f" · {self._last_rate:,.0f} steps/s"
        lines = "<br>".join(self.messages().values())
        self.status.value = f"<b>{device}</b>{speed}<br>{lines}"

    def _on_problem(self, change) -> None:
        if change["owner"] is self.problem_select:
            self._set_defaults(self.problem_select.value)
        self._start = None
        self._draw_problem()
        self.reset()

    def _on_setting(self, change) -> None:
        if not self._quiet:
            self.reset()

    def _on_tick(self, change) -> None:
        if change["new"] < change["old"]:  # the Play widget's stop button rewinds to 0
            self.reset()
            return
        self.run(int(self.steps_slider.value))

    def _on_click(self, trace, points, selector) -> None:
        if points.xs:
            self.start = (points.xs[0], points.ys[0])
