"""The base every app of :mod:`widgets` stands on.

:class:`App` owns what all apps share: the transport (Play/Pause, Reset, steps per frame), the tick
loop that calls ``run(steps)``, the status line (device, compute speed and display rate), the
readiness marker, and JAX's persistent compilation cache. An app adds its own controls and figure,
implements :meth:`App.reset` and :meth:`App.run`, and calls :meth:`App.assemble` once its first frame
is drawn.

Traces are addressed by name, never by position (:func:`add_named`, :func:`named`); the name is kept in
the trace's plotly ``meta``, since ``FigureWidget`` rewrites ``uid``.
Kernel-free figures for the site (plotly's own sliders over precomputed frames) are built with
:func:`slider_step`, which addresses traces by name too.

Browser tests wait for the CSS class :data:`READY_CLASS` (``dd-ready``) on an app's outer box: the
app sets it when its first frame is in the figure.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go

from lessons import runtime

READY_CLASS = "dd-ready"


def start() -> None:
    """Keep compiled code on disk (:func:`lessons.runtime.enable_compilation_cache`): a second session's
    first frame compiles nothing."""
    runtime.enable_compilation_cache()


def mark_ready(box: W.Box) -> None:
    """Mark ``box`` (an app's outer widget) as drawn: its first frame is in the figure."""
    if READY_CLASS not in box._dom_classes:
        box.add_class(READY_CLASS)


def is_ready(box: W.Box) -> bool:
    """Whether :func:`mark_ready` was called on ``box``."""
    return READY_CLASS in box._dom_classes


def shown(value: float, digits: int = 3) -> float:
    """A slider's value as its readout shows it (3 significant digits): what the app then uses.

    A log slider stores ``10**(k * step)``, so 50 is stored as 50.003 and 0.5 as 0.50003; using the value
    the reader sees keeps the text, the readout and the computation in agreement.
    """
    return float(f"{float(value):.{digits}g}")


# --- traces by name ----------------------------------------------------------------------------------


def add_named(fig: go.Figure, name: str, trace, **where) -> None:
    """Add ``trace`` to ``fig`` under the unique name ``name`` (its ``meta``); ``where``: ``row=``, ``col=``."""
    if any(t.meta == name for t in fig.data):
        raise ValueError(f"a trace named {name!r} is already in the figure")
    fig.add_trace(trace.update(meta=name), **where)


def index_of(fig: go.Figure, name: str) -> int:
    """The position of the trace named ``name``."""
    for i, t in enumerate(fig.data):
        if t.meta == name:
            return i
    raise KeyError(f"no trace named {name!r}; the figure has {[t.meta for t in fig.data]}")


def named(fig: go.Figure, name: str):
    """The trace named ``name`` (to update it in place)."""
    return fig.data[index_of(fig, name)]


def slider_step(fig: go.Figure, label: str, updates: Mapping[str, Mapping[str, object]], layout=None) -> dict:
    """One step of a plotly slider that restyles the named traces (``{name: {"x": [...], ...}}``).

    Every trace in ``updates`` must set the same attributes. ``layout`` (optional) is applied too (a
    title, say), which makes it an ``update`` step instead of a ``restyle``.
    """
    names = list(updates)
    keys = sorted({k for u in updates.values() for k in u})
    for name in names:
        if sorted(updates[name]) != keys:
            raise ValueError(f"every trace of a slider step must set {keys}; {name!r} sets {sorted(updates[name])}")
    data = {k: [updates[n][k] for n in names] for k in keys}
    indices = [index_of(fig, n) for n in names]
    if layout is None:
        return dict(method="restyle", label=label, args=[data, indices])
    return dict(method="update", label=label, args=[data, dict(layout), indices])


# --- the app -----------------------------------------------------------------------------------------


class App:
    """Transport, tick loop, status and readiness for an interactive app (see the module docstring).

    Subclasses set ``self.figure`` (a ``go.FigureWidget``), implement :meth:`reset` and :meth:`run`
    (which calls :meth:`record_speed` and :meth:`refresh_status`), and call :meth:`assemble`.
    """

    def __init__(self, *, steps_per_frame: int, max_steps_per_frame: int, interval_ms: int):
        start()
        if isinstance(steps_per_frame, bool) or not isinstance(steps_per_frame, int) or steps_per_frame < 1:
            raise ValueError(f"steps_per_frame must be a positive integer, got {steps_per_frame!r}")
        self.play = W.Play(value=0, min=0, max=10**9, step=1, interval=interval_ms, description="Play", show_repeat=False)
        self.reset_button = W.Button(description="Reset", icon="refresh", layout=W.Layout(width="90px"))
        self.steps_slider = W.IntSlider(
            value=steps_per_frame,
            min=1,
            max=max(max_steps_per_frame, steps_per_frame),
            description="steps/frame",
            style={"description_width": "initial"},
        )
        self.status = W.HTML()
        self._quiet = False
        self._compute_rate: float | None = None
        self._frame_times: deque[float] = deque(maxlen=10)
        self.play.observe(self._on_tick, names="value")
        self.reset_button.on_click(lambda _: self.reset())

    # --- what subclasses implement -----------------------------------------------------------------

    def reset(self) -> None:
        raise NotImplementedError

    def run(self, steps: int) -> None:
        raise NotImplementedError

    def messages(self) -> Sequence[str]:
        """Lines for the status (what each run is doing)."""
        return []

    def finished(self) -> bool:
        """Whether Play should stop (everything diverged or reached its step limit)."""
        return False

    # --- shared ----------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the first frame is drawn (the readiness marker browser tests wait for)."""
        return hasattr(self, "widget") and is_ready(self.widget)

    def assemble(self, *rows: W.Widget) -> None:
        """Build the outer box: ``rows``, the transport, the status and the figure; then mark it ready."""
        transport = W.HBox([self.play, self.reset_button, self.steps_slider])
        self.widget = W.VBox([*rows, transport, self.status, self.figure])
        self.refresh_status()
        mark_ready(self.widget)

    def replace_figure(self, figure) -> None:
        """Show ``figure`` instead of the current one (e.g. another kind of plot)."""
        self.figure = figure
        self.widget.children = (*self.widget.children[:-1], figure)

    @staticmethod
    def check_steps(steps) -> int:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        return steps

    @contextlib.contextmanager
    def quietly(self):
        """Change controls without triggering their observers' resets."""
        self._quiet, before = True, self._quiet
        try:
            yield
        finally:
            self._quiet = before

    def record_speed(self, steps: int, seconds: float) -> None:
        """Note ``steps`` optimizer steps computed in ``seconds`` (training only, drawing excluded)."""
        if steps > 0 and seconds > 0:
            self._compute_rate = steps / seconds
        self._frame_times.append(time.perf_counter())

    def speed_line(self) -> str:
        """The device, how fast it computes, and how often the figure is redrawn."""
        parts = [f"<b>{runtime.device_label()}</b>"]
        if self._compute_rate is not None:
            parts.append(f"compute {self._compute_rate:,.0f} optimizer steps/s")
        if len(self._frame_times) >= 2:
            span = self._frame_times[-1] - self._frame_times[0]
            if span > 0:
                parts.append(f"display {(len(self._frame_times) - 1) / span:.0f} frames/s")
        return " · ".join(parts)

    def refresh_status(self) -> None:
        self.status.value = "<br>".join([self.speed_line(), *self.messages()])

    def stop_playing(self) -> None:
        if self.play.playing:
            self.play.playing = False

    def stop(self) -> None:
        """Pause (Play resumes where it stopped)."""
        self.stop_playing()

    def _on_tick(self, change) -> None:
        if change["new"] < change["old"]:  # the Play widget's stop button rewinds to 0
            self.reset()
            return
        self.run(int(self.steps_slider.value))
        if self.finished():
            self.stop_playing()

    def on_setting(self, change=None) -> None:
        """Observer for settings that invalidate the run: reset, unless changed programmatically."""
        if not self._quiet:
            self.reset()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
