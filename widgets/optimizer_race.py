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

Speed: each frame is one compiled :func:`lessons.train.advance` per method; the methods come from the
registry (:mod:`lessons.optimizers`), whose hyperparameters live in the optimizer state, so moving a
slider never recompiles. Controls, tick loop and status come from :class:`widgets.base.App`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import ipywidgets as W
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lessons import first_order, newton, optimizers, problems, train
from widgets import base, plots

METHODS: tuple[str, ...] = ("GD", "Heavy ball", "Nesterov", "Adam", "Newton", "Damped Newton", "Saddle-free Newton")
"""The registry's methods that race here (:mod:`lessons.optimizers` has their factories, defaults and colours)."""

_FIRST_ORDER_PRESETS: dict[str, dict[str, dict[str, float]]] = {
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
# Newton's methods are scale-free: the same settings suit every problem.
_NEWTON_PRESETS = {
    "Newton": dict(learning_rate=1.0),
    "Damped Newton": dict(learning_rate=1.0, damping=1.0),
    "Saddle-free Newton": dict(learning_rate=1.0, damping=0.01),
}
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    problem: {**first_order, **_NEWTON_PRESETS} for problem, first_order in _FIRST_ORDER_PRESETS.items()
}
"""Starting hyperparameters per problem: settings of the race (the optimizers themselves are in the registry)."""

STATIC_LEARNING_RATES: dict[str, list[float]] = {
    "quadratic": [0.1, 0.3, 0.6, 1.0, 1.4, 1.8, 1.95, 2.05],
    "rosenbrock": [1e-4, 3e-4, 1e-3, 1.5e-3, 2e-3],
    "saddle": [0.03, 0.1, 0.3, 1.0, 1.9, 2.1],
    "himmelblau": [1e-3, 3e-3, 0.01, 0.02, 0.03],
}
_SLIDERS = {  # how each hyperparameter is moved: (log scale?, min, max, step, readout)
    "learning_rate": (True, -4, 1, 0.001, ".3g"),
    "momentum": (False, 0.0, 0.99, 0.01, ".2f"),
    "damping": (True, -4, 2, 0.001, ".3g"),
}


class _Lane:
    """One method's run: its iterate, optimizer state, recorded path and whether it diverged."""

    def __init__(self, x0, state, value0):
        self.x, self.state = x0, state
        self.points, self.values = [np.asarray(x0)[None]], [np.asarray(value0)[None]]
        self.step, self.diverged_at = 0, None


class OptimizerRace(base.App):
    """Optimizers racing on a 2-D test function (see the module docstring).

    Args:
        problem: a name in :data:`lessons.problems.PROBLEMS`.
        kappa: condition number of the quadratic (ignored by the other problems), ``>= 1``.
        methods: names in :data:`METHODS` to start with (a sequence, at least one).
        learning_rates: per-method learning rates overriding :data:`PRESETS`.
        momenta: per-method momenta overriding :data:`PRESETS`.
        dampings: per-method damping of the Newton methods overriding :data:`PRESETS`.
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
        super().__init__(steps_per_frame=steps_per_frame, max_steps_per_frame=50, interval_ms=60)
        if problem not in problems.PROBLEMS:
            raise ValueError(f"problem must be one of {sorted(problems.PROBLEMS)}, got {problem!r}")
        self._problem_cache: dict[tuple[str, float], problems.Problem] = {}
        self._build_problem(problem, kappa)  # validates kappa
        if isinstance(methods, str) or not isinstance(methods, Sequence):
            raise TypeError(f"methods must be a sequence of names, e.g. ({methods!r},), got {type(methods).__name__}")
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ValueError(f"methods must be one or more names in {list(METHODS)}, got {list(methods)!r}")
        for label, values, check in (
            ("learning_rates", learning_rates, first_order.check_learning_rate),
            ("momenta", momenta, first_order.check_momentum),
            ("dampings", dampings, newton.check_damping),
        ):
            for name, value in (values or {}).items():
                if name not in METHODS:
                    raise ValueError(f"{label} has an unknown method {name!r}; methods are {list(METHODS)}")
                check(value, name=f"{label}[{name!r}]")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        self.max_steps = max_steps
        self._start = None if start is None else self._check_start(start)
        self._compiled: set[tuple] = set()

        # Controls: one row per method, one slider per hyperparameter the registry declares.
        self.problem_select = W.Dropdown(options=list(problems.PROBLEMS), value=problem, description="function")
        self.kappa_slider = W.FloatLogSlider(
            value=kappa, base=10, min=0, max=3, step=0.001, description="kappa", readout_format=".3g"
        )
        self.method_checkboxes = {name: W.Checkbox(value=name in methods, description=name, indent=False) for name in METHODS}
        self.sliders: dict[str, dict[str, W.Widget]] = {}
        for name in METHODS:
            self.sliders[name] = {}
            for hyper in optimizers.get(name).hyperparameters:
                log, low, high, step, fmt = _SLIDERS[hyper]
                cls = W.FloatLogSlider if log else W.FloatSlider
                extra = dict(base=10) if log else {}
                self.sliders[name][hyper] = cls(
                    value=10**low if log else low,
                    min=low,
                    max=high,
                    step=step,
                    description=hyper.replace("learning_rate", "lr"),
                    readout_format=fmt,
                    **extra,
                )
        self._set_presets(problem)
        with self.quietly():
            for label, values in (("learning_rate", learning_rates), ("momentum", momenta), ("damping", dampings)):
                for name, value in (values or {}).items():
                    self.sliders[name][label].value = value

        self.figure = go.FigureWidget(self._base_figure())
        self._draw_problem()
        self.reset()

        self.problem_select.observe(self._on_problem, names="value")
        self.kappa_slider.observe(self._on_problem, names="value")
        for name in METHODS:
            self.method_checkboxes[name].observe(self.on_setting, names="value")
            for slider in self.sliders[name].values():
                slider.observe(self.on_setting, names="value")
        self.figure.data[base.index_of(self.figure, "contour")].on_click(self._on_click)
        rows = [W.HBox([self.method_checkboxes[name], *self.sliders[name].values()]) for name in METHODS]
        self.assemble(W.HBox([self.problem_select, self.kappa_slider]), *rows)

    # --- public API -------------------------------------------------------------------------------

    @property
    def lr_sliders(self) -> dict[str, W.FloatLogSlider]:
        return {name: s["learning_rate"] for name, s in self.sliders.items()}

    @property
    def momentum_sliders(self) -> dict[str, W.FloatSlider]:
        return {name: s["momentum"] for name, s in self.sliders.items() if "momentum" in s}

    @property
    def damping_sliders(self) -> dict[str, W.FloatLogSlider]:
        return {name: s["damping"] for name, s in self.sliders.items() if "damping" in s}

    @property
    def problem(self) -> problems.Problem:
        return self._build_problem(self.problem_select.value, base.shown(self.kappa_slider.value))

    @property
    def start(self) -> np.ndarray:
        return np.asarray(self.problem.start if self._start is None else self._start, dtype=float)

    @start.setter
    def start(self, value) -> None:
        self._start = self._check_start(value)
        self.reset()

    @property
    def active_methods(self) -> list[str]:
        return [name for name in METHODS if self.method_checkboxes[name].value]

    def hyperparameters(self, name: str) -> dict[str, float]:
        """The hyperparameters the sliders set for method ``name``."""
        return {hyper: base.shown(slider.value) for hyper, slider in self.sliders[name].items()}

    def reset(self) -> None:
        """Put every method back at the starting point, step 0."""
        x0 = jnp.asarray(self.start, dtype=jnp.float32)
        value0 = self.problem.value(x0)
        self.lanes = {name: _Lane(x0, optimizers.get(name).init(x0, **self.hyperparameters(name)), value0) for name in METHODS}
        self._redraw()

    def run(self, steps: int) -> None:
        """Advance every ticked, non-diverged method by ``steps`` steps and redraw."""
        steps = self.check_steps(steps)
        problem = self.problem
        blowup = self._blowup(problem)
        advanced, seconds = 0, 0.0
        for name in self.active_methods:
            lane = self.lanes[name]
            if self._finished(name):
                continue
            warm = (problem, name, steps) in self._compiled  # the first call compiles: keep it out of the speed
            t0 = time.perf_counter()
            path = train.trajectory(
                problem.value, lane.x, optimizers.get(name).transformation(), steps, blowup=blowup, opt_state=lane.state
            )
            seconds += (time.perf_counter() - t0) if warm else 0.0
            self._compiled.add((problem, name, steps))
            lane.points.append(path.points[1:])
            lane.values.append(path.values[1:])
            if path.diverged_at is not None:
                lane.diverged_at = lane.step + path.diverged_at
                lane.step = lane.diverged_at - 1
            else:
                lane.x, lane.state = jnp.asarray(path.points[-1]), path.opt_state
                lane.step += steps
            advanced += steps if warm else 0
        self.record_speed(advanced, seconds)
        self._redraw()

    def finished(self) -> bool:
        return all(self._finished(n) for n in self.active_methods)

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

    def refresh_status(self) -> None:
        self.status.value = "<br>".join([self.speed_line(), *self.messages().values()])

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
        runs = {}  # (method, lr index) -> (points, values, label)
        for name in names:
            method = optimizers.get(name)
            for i, lr in enumerate(lrs):
                state = method.init(x0, **{**self.hyperparameters(name), "learning_rate": lr})
                path = train.trajectory(
                    problem.value, x0, method.transformation(), num_steps, blowup=self._blowup(problem), opt_state=state
                )
                label = name if path.diverged_at is None else f"{name} (diverged at step {path.diverged_at})"
                runs[name, i] = (path.points, path.values, label)

        fig = self._base_figure(names)
        self._draw_problem(fig)
        start_index = min(range(len(lrs)), key=lambda i: abs(lrs[i] - np.median(lrs)))
        for name in names:
            self._draw_lane(fig, name, *runs[name, start_index], problem)
        steps = []
        for i, lr in enumerate(lrs):
            updates = {}
            for name in names:
                pts, vals, label = runs[name, i]
                keep = plots.thin(len(pts), max_points=200, dense=50)
                clipped = plots.clip_to_view(pts[keep], problem.bounds)
                gap = plots.log_suboptimality(vals[keep], problem.min_value)
                updates[f"path {name}"] = {
                    "x": plots.short_list(clipped[:, 0]),
                    "y": plots.short_list(clipped[:, 1]),
                    "name": label,
                }
                updates[f"loss {name}"] = {"x": keep.tolist(), "y": plots.short_list(gap), "name": label}
            steps.append(base.slider_step(fig, f"{lr:.3g}", updates))
        fig.update_layout(
            sliders=[dict(active=start_index, currentvalue=dict(prefix="learning rate: "), pad=dict(t=45), steps=steps)]
        )
        return plots.style(fig, title=f"{problem.title}: drag the learning rate", height=520)

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

    def _set_presets(self, problem_name: str) -> None:
        with self.quietly():
            for name, hyper in PRESETS[problem_name].items():
                for key, value in hyper.items():
                    self.sliders[name][key].value = value

    def _finished(self, name: str) -> bool:
        lane = self.lanes[name]
        return lane.diverged_at is not None or lane.step >= self.max_steps

    @staticmethod
    def _base_figure(names: Sequence[str] = METHODS) -> go.Figure:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.14)
        base.add_named(
            fig,
            "contour",
            go.Contour(showscale=False, colorscale="Blues_r", ncontours=25, hoverinfo="skip", showlegend=False),
            row=1,
            col=1,
        )
        star = dict(symbol="star", size=13, color="gold", line=dict(width=1, color="black"))
        base.add_named(fig, "minima", go.Scatter(mode="markers", name="minimum", showlegend=False, marker=star), row=1, col=1)
        cross = dict(symbol="x", size=11, color="black")
        base.add_named(fig, "saddles", go.Scatter(mode="markers", name="saddle", showlegend=False, marker=cross), row=1, col=1)
        for name in names:
            line = dict(width=2, color=optimizers.color(name))
            path = go.Scatter(mode="lines+markers", name=name, legendgroup=name, marker=dict(size=4), line=line)
            base.add_named(fig, f"path {name}", path, row=1, col=1)
            loss = go.Scatter(mode="lines", name=name, legendgroup=name, showlegend=False, line=line)
            base.add_named(fig, f"loss {name}", loss, row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(title_text="f - f*", type="log", exponentformat="power", row=1, col=2)
        return plots.style(fig, height=480)

    def _draw_problem(self, fig=None) -> None:
        fig = self.figure if fig is None else fig
        problem = self.problem
        contour = plots.contour_trace(problem)
        (x0, x1), (y0, y1) = problem.bounds
        with fig.batch_update() if hasattr(fig, "batch_update") else contextlib.nullcontext():
            base.named(fig, "contour").update(x=contour.x, y=contour.y, z=contour.z)
            base.named(fig, "minima").update(x=problem.minimisers[:, 0], y=problem.minimisers[:, 1])
            base.named(fig, "saddles").update(x=problem.saddles[:, 0], y=problem.saddles[:, 1])
            fig.update_xaxes(range=[x0, x1], row=1, col=1)
            fig.update_yaxes(range=[y0, y1], row=1, col=1)
            fig.layout.title.text = plots.wrap_title(problem.title)

    @staticmethod
    def _draw_lane(fig, name, points, values, label, problem, visible=True) -> None:
        keep = plots.thin(len(values))
        pts = plots.f32(plots.clip_to_view(points[keep], problem.bounds))
        gaps = plots.f32(plots.log_suboptimality(values[keep], problem.min_value))
        base.named(fig, f"path {name}").update(x=pts[:, 0], y=pts[:, 1], visible=visible, name=label)
        base.named(fig, f"loss {name}").update(x=keep, y=gaps, visible=visible, name=label)

    def _redraw(self) -> None:
        problem = self.problem
        with self.figure.batch_update():
            for name in METHODS:
                lane = self.lanes[name]
                label = name if lane.diverged_at is None else f"{name} (diverged at step {lane.diverged_at})"
                points, values = np.concatenate(lane.points), np.concatenate(lane.values)
                self._draw_lane(self.figure, name, points, values, label, problem, visible=name in self.active_methods)
        self.refresh_status()

    def _on_problem(self, change) -> None:
        if change["owner"] is self.problem_select:
            self._set_presets(self.problem_select.value)
        self._start = None
        self._draw_problem()
        self.reset()

    def _on_click(self, trace, points, selector) -> None:
        if points.xs:
            self.start = (points.xs[0], points.ys[0])
