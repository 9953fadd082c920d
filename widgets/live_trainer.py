"""LiveTrainer: optimizers racing side by side on a small MLP, live.

A 2-16-16-1 tanh MLP learns a 2-D data set (two spirals, two moons or XOR: pick its noise, size and
seed). Every ticked optimizer trains its own copy of the network from the same initialisation, and
the figure shows, after each frame of steps, the loss against the step and against each lane's
measured compute time (log scales), and the decision regions of one chosen optimizer. The status
line gives each lane's step, loss and steps/s. A lane whose weights run away (or whose loss stops
being finite) stops with "diverged at step k" and a cross on its curve; the others go on.

Drivable from Python, as the tests do::

    trainer = LiveTrainer("moons", methods=("GD", "Adam", "K-FAC"))
    trainer.lr_sliders["GD"].value = 0.5   # resets the race: every lane back at the same start
    trainer.run(100)
    trainer.lanes["Adam"].losses           # the loss at steps 0..100
    trainer.regions_select.value = "K-FAC" # redraws the decision regions, training goes on
    trainer.figure                         # the plotly FigureWidget
    trainer.static_figure()                # kernel-free: every method precomputed, a slider over regions

The methods come from the registry (:mod:`lessons.optimizers`) by name (:data:`METHOD_NAMES`): their
defaults, colours and the extra arguments they need. Speed: each frame is, per lane, compiled chunks
of :func:`lessons.train.advance` of fixed length (:data:`widgets.live_trainer_panels.CHUNK`), with the
data as arguments and the hyperparameters in the optimizer state, so neither a frame, nor the
steps/frame slider, nor a learning rate, nor new noise or a new seed compiles anything once the first
frame is trained (a new data-set size does: the shapes change). It runs on the GPU when JAX sees one.
Controls, tick loop and status come from :class:`widgets.base.App`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from lessons import checks, first_order, optimizers
from widgets import base
from widgets import live_trainer_panels as panels
from widgets.live_trainer_panels import CHUNK, DATASETS, SIZES  # noqa: F401 (re-exported)

METHOD_NAMES: tuple[str, ...] = (
    "GD",
    "Heavy ball",
    "Adam",
    "Newton-CG",
    "Natural gradient",
    "K-FAC",
    "Layerwise metric",
    "LLQR",
    "E-MSA",
)
"""The registry's methods that may race here, in the order shown. A name the registry does not (yet)
have is left out, so adding a method to the trainer is one line here (and one in the registry)."""
METHODS: tuple[str, ...] = tuple(name for name in METHOD_NAMES if name in optimizers.REGISTRY)
"""The methods that race: :data:`METHOD_NAMES` that the registry has."""
LEARNING_RATE_RANGE = (1e-4, 1e3)  # the sliders' range; past ~100 every method runs away


@dataclasses.dataclass
class Lane:
    """One method's run: its network and optimizer state, the loss and compute time at steps 0..step.

    ``losses[t]`` is the loss at step ``t``, ``times[t]`` the lane's compute seconds to get there
    (monotone; compilation excluded); ``diverged_at`` the first bad step (the run then stopped at
    ``diverged_at - 1``) or ``None``.
    """

    params: object
    opt_state: object | None  # made on the lane's first run (the first frame needs none)
    losses: list[float]
    times: list[float]
    diverged_at: int | None = None
    seconds: float = 0.0

    @property
    def step(self) -> int:
        return len(self.losses) - 1

    @property
    def steps_per_second(self) -> float | None:
        return self.step / self.seconds if self.seconds > 0 else None


class LiveTrainer(base.App):
    """Optimizers training one small MLP side by side (see the module docstring).

    Args:
        dataset: a name in :data:`DATASETS` (``"spirals"``, ``"moons"``, ``"xor"``).
        methods: names in :data:`METHODS` to start with (a sequence); all of them if ``None``.
        noise: the data's noise (std, ``>= 0``, at most 0.5); the data set's default if ``None``.
        num_points: the data set's size, one of :data:`SIZES`.
        seed: seeds the data (``seed``) and the network every lane starts from (``seed + 1``).
        learning_rates: per-method learning rates overriding the registry's defaults.
        regions: the method whose decision regions are drawn (default: the first of ``methods``).
        width: hidden width of the 2-w-w-1 tanh MLP.
        steps_per_frame: training steps per lane between two redraws (one Play tick).
        max_steps: Play stops after this many steps.
    """

    def __init__(
        self,
        dataset: str = "spirals",
        *,
        methods: Sequence[str] | None = None,
        noise: float | None = None,
        num_points: int = 256,
        seed: int = 0,
        learning_rates: Mapping[str, float] | None = None,
        regions: str | None = None,
        width: int = 16,
        steps_per_frame: int = 10,
        max_steps: int = 3000,
    ):
        super().__init__(steps_per_frame=steps_per_frame, max_steps_per_frame=200, interval_ms=100)
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
        if methods is None:
            methods = METHODS
        if isinstance(methods, str) or not isinstance(methods, Sequence):
            raise TypeError(f"methods must be a sequence of names, e.g. ({methods!r},), got {type(methods).__name__}")
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ValueError(f"methods must be one or more names in {list(METHODS)}, got {list(methods)!r}")
        noise = panels.NOISE[dataset] if noise is None else noise
        checks.check_nonnegative(noise, "noise")
        if noise > 0.5:
            raise ValueError(f"noise must lie in [0, 0.5] (the slider's range), got {noise!r}")
        checks.check_positive_int(num_points, "num_points")
        if num_points not in SIZES:
            raise ValueError(f"num_points must be one of {list(SIZES)}, got {num_points!r}")
        checks.check_positive_int(seed, "seed", low=0)
        checks.check_positive_int(width, "width")
        checks.check_positive_int(max_steps, "max_steps")
        low, high = LEARNING_RATE_RANGE
        for name, value in (learning_rates or {}).items():
            if name not in METHODS:
                raise ValueError(f"learning_rates has an unknown method {name!r}; methods are {list(METHODS)}")
            first_order.check_learning_rate(value, name=f"learning_rates[{name!r}]")
            if not low <= value <= high:
                raise ValueError(f"learning_rates[{name!r}] must lie in [{low:g}, {high:g}] (the slider's range), got {value}")
        if regions is not None and regions not in methods:
            raise ValueError(f"regions must be one of the methods {list(methods)}, got {regions!r}")
        self.width, self.max_steps = int(width), int(max_steps)

        style = {"description_width": "initial"}
        self.dataset_select = W.Dropdown(options=list(DATASETS), value=dataset, description="data")
        self.noise_slider = W.FloatSlider(value=noise, min=0.0, max=0.5, step=0.01, description="noise", readout_format=".2f")
        self.size_select = W.Dropdown(options=list(SIZES), value=num_points, description="points", layout=W.Layout(width="160px"))
        self.seed_input = W.BoundedIntText(value=seed, min=0, max=10**6, description="seed", layout=W.Layout(width="150px"))
        self.method_checkboxes = {name: W.Checkbox(value=name in methods, description=name, indent=False) for name in METHODS}
        self.lr_sliders = {
            name: W.FloatLogSlider(
                value=(learning_rates or {}).get(name, optimizers.get(name).defaults["learning_rate"]),
                base=10,
                min=math.log10(low),
                max=math.log10(high),
                step=0.001,
                description="lr",
                readout_format=".3g",
                layout=W.Layout(width="320px"),
            )
            for name in METHODS
        }
        self.regions_select = W.Dropdown(
            options=list(METHODS), value=regions or list(methods)[0], description="regions of", style=style
        )

        self.figure = go.FigureWidget(panels.base_figure(METHODS))
        self.reset()

        for control in (self.dataset_select, self.noise_slider, self.size_select, self.seed_input):
            control.observe(self._on_data, names="value")
        for name in METHODS:
            self.method_checkboxes[name].observe(self.on_setting, names="value")
            self.lr_sliders[name].observe(self.on_setting, names="value")
        self.regions_select.observe(lambda _: self._redraw(), names="value")
        rows = [W.HBox([self.method_checkboxes[name], self.lr_sliders[name]]) for name in METHODS]
        grid = W.GridBox(rows, layout=W.Layout(grid_template_columns="repeat(2, max-content)", grid_gap="0 24px"))
        data_row = W.HBox([self.dataset_select, self.noise_slider, self.size_select, self.seed_input])
        self.assemble(data_row, grid, self.regions_select)

    # --- public API -------------------------------------------------------------------------------

    @property
    def setup(self) -> panels.Setup:
        """The data, the initial network and the regions' grid of the current settings (shared, cached)."""
        return panels.setup(
            self.dataset_select.value,
            int(self.size_select.value),
            base.shown(self.noise_slider.value),
            int(self.seed_input.value),
            self.width,
        )

    @property
    def data(self):
        """``(x, y)``: the training points (float32) and their labels 0/1."""
        return self.setup.data

    @property
    def initial_params(self):
        """The network every lane starts from."""
        return self.setup.initial_params

    @property
    def active_methods(self) -> list[str]:
        return [name for name in METHODS if self.method_checkboxes[name].value]

    def learning_rate(self, name: str) -> float:
        """The learning rate of method ``name``, as its slider shows it."""
        return base.shown(self.lr_sliders[name].value)

    def reset(self) -> None:
        """Every lane back to the shared initial network, step 0 (new data if a data setting changed)."""
        setup = self.setup
        self.lanes = {name: Lane(setup.initial_params, None, [setup.initial_loss], [0.0]) for name in METHODS}
        with self.figure.batch_update():
            panels.draw_data(self.figure, setup, self._title())
        self._redraw()

    def run(self, steps: int) -> None:
        """Train every ticked, running lane ``steps`` more steps (stopping a lane at divergence), then redraw."""
        steps = self.check_steps(steps)
        setup = self.setup
        total_steps, total_seconds = 0, 0.0
        for name in self.active_methods:
            lane = self.lanes[name]
            todo = min(steps, self.max_steps - lane.step)
            if lane.diverged_at is not None or todo <= 0:
                continue
            method = optimizers.get(name)
            if lane.opt_state is None:
                lane.opt_state = method.init(lane.params, learning_rate=self.learning_rate(name))
            done = panels.train_lane(setup, method, lane.params, lane.opt_state, todo)
            start, t0 = lane.step, lane.times[-1]
            lane.losses.extend(done.losses.tolist())
            if done.taken:  # the chunk's time spread evenly over its steps: a monotone clock per lane
                lane.times.extend((t0 + done.seconds * np.arange(1, done.taken + 1) / done.taken).tolist())
            lane.params, lane.opt_state, lane.seconds = done.params, done.opt_state, lane.seconds + done.seconds
            if done.diverged_at is not None:
                lane.diverged_at = start + done.diverged_at
            total_steps, total_seconds = total_steps + done.taken, total_seconds + done.seconds
        self.record_speed(total_steps, total_seconds)
        self._redraw()
        if self.finished():
            self.stop_playing()

    def finished(self) -> bool:
        return all(self._finished(name) for name in self.active_methods)

    def messages(self) -> list[str]:
        """One line per ticked method: its step, loss and steps/s, or where it diverged."""
        lines = []
        for name in self.active_methods:
            lane = self.lanes[name]
            rate = lane.steps_per_second
            speed = f", {rate:,.0f} steps/s" if rate is not None else ""
            if lane.diverged_at is not None:
                lines.append(
                    f"{name} diverged at step {lane.diverged_at} (weights past {panels.BLOWUP:g} or a non-finite loss): "
                    f"stopped at step {lane.step}, loss {lane.losses[-1]:.3g}{speed}; lower its lr"
                )
            else:
                lines.append(f"{name}: step {lane.step}, loss {lane.losses[-1]:.3g}{speed}")
        return lines

    def static_figure(self, num_steps: int = 400, methods: Sequence[str] | None = None) -> go.Figure:
        """A figure for the site, all precomputed here: no kernel needed.

        Every method (default: the ticked ones, at their sliders' learning rates) trains ``num_steps``
        steps from the same start on the current data; the curves of all of them are drawn, and a
        slider picks whose decision regions (after the last step) are shown. Compute times are measured
        on this machine, now.
        """
        checks.check_positive_int(num_steps, "num_steps")
        names = list(self.active_methods if methods is None else methods)
        unknown = [n for n in names if n not in METHODS]
        if isinstance(methods, str) or unknown or not names:
            raise ValueError(f"methods must be a sequence of names in {list(METHODS)}, got {methods!r}")
        setup = self.setup
        fig = panels.base_figure(names)
        panels.draw_data(fig, setup, self._title())
        grids, rates = {}, {}
        for name in names:
            method = optimizers.get(name)
            params = setup.initial_params
            opt_state = method.init(params, learning_rate=self.learning_rate(name))
            done = panels.train_lane(setup, method, params, opt_state, num_steps)
            losses = np.concatenate([[setup.initial_loss], done.losses])
            times = np.concatenate([[0.0], done.seconds * np.arange(1, done.taken + 1) / max(done.taken, 1)])
            panels.draw_lane(fig, name, losses, times, done.diverged_at)
            xs, ys, p = panels.regions(setup, done.params, num=panels.STATIC_GRID)
            grids[name] = (xs, ys, p, panels.regions_title(name))
            rates[name] = done.taken / done.seconds if done.seconds > 0 else None
        panels.draw_speeds(fig, rates)
        active = names.index(self.regions_select.value) if self.regions_select.value in names else 0
        panels.draw_regions(fig, *grids[names[active]])
        annotation = f"annotations[{panels.regions_title_index(fig)}].text"
        steps = [
            base.slider_step(
                fig,
                name,
                {"regions": {"z": [[round(float(v), 2) for v in row] for row in grids[name][2]]}},
                layout={annotation: grids[name][3]},
            )
            for name in names
        ]
        fig.update_layout(
            sliders=[dict(active=active, currentvalue=dict(prefix="decision regions of: "), pad=dict(t=50), steps=steps)],
            height=640,
        )
        fig.update_layout(margin=dict(b=120))  # the slider sits below the lower x axis title
        return fig

    # --- internals --------------------------------------------------------------------------------

    def _finished(self, name: str) -> bool:
        lane = self.lanes[name]
        return lane.diverged_at is not None or lane.step >= self.max_steps

    def _title(self) -> str:
        noise = base.shown(self.noise_slider.value)
        return f"{panels.TITLES[self.dataset_select.value]}, {self.setup.num_points} points, noise {noise:g}, one start"

    def _redraw(self) -> None:
        active = self.active_methods
        name = self.regions_select.value
        lane = self.lanes[name]
        xs, ys, p = panels.regions(self.setup, lane.params)
        title = panels.regions_title(name)
        rates = {m: self.lanes[m].steps_per_second for m in active}
        with self.figure.batch_update():
            for method in METHODS:
                m = self.lanes[method]
                panels.draw_lane(self.figure, method, np.asarray(m.losses), np.asarray(m.times), m.diverged_at, method in active)
            panels.draw_regions(self.figure, xs, ys, p, title)
            panels.draw_speeds(self.figure, rates)
        self.refresh_status()

    def _on_data(self, change) -> None:
        if change["owner"] is self.dataset_select:
            with self.quietly():
                self.noise_slider.value = panels.NOISE[change["new"]]
        self.on_setting(change)
