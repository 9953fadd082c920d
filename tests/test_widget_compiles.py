"""After its first frame, no widget compiles anything: not on later frames, not when a learning rate moves.

Counted with JAX's monitoring events: ``/jax/core/compile/backend_compile_duration`` fires once per XLA
compilation. The persistent compilation cache is off in the test session (tests/conftest.py), so a
compilation cannot hide behind a disk-cache hit.
"""

from __future__ import annotations

import jax
import pytest

from widgets import LandscapeExplorer, LiveTrainer, OptimizerRace

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_events: list[str] = []
jax.monitoring.register_event_duration_secs_listener(lambda name, *args, **kwargs: _events.append(name))


def compilations(fn) -> int:
    """How many XLA compilations ``fn()`` triggers."""
    before = _events.count(BACKEND_COMPILE)
    fn()
    return _events.count(BACKEND_COMPILE) - before


def test_the_cache_is_off_so_compilations_are_seen():
    assert compilations(lambda: jax.jit(lambda x: x * 3.0 + 1.0)(jax.numpy.ones(7))) >= 1


@pytest.mark.parametrize(
    "make, frame, set_lr",
    [
        (
            lambda: OptimizerRace(problem="quadratic", kappa=50.0, methods=("GD", "Heavy ball", "Nesterov", "Adam")),
            lambda w: w.run(2),
            lambda w: setattr(w.lr_sliders["GD"], "value", 0.7),
        ),
        (
            lambda: OptimizerRace(problem="saddle", methods=("GD", "Newton", "Saddle-free Newton")),
            lambda w: w.run(2),
            lambda w: setattr(w.lr_sliders["Newton"], "value", 0.5),
        ),
        (
            lambda: LandscapeExplorer("GD", learning_rate=1.0, width=8, num_points=64, grid=11),
            lambda w: w.run(20),
            lambda w: setattr(w.lr_slider, "value", 0.5),
        ),
        (
            lambda: LandscapeExplorer("Newton-CG", width=8, num_points=64, grid=11),
            lambda w: w.run(5),
            lambda w: setattr(w.lr_slider, "value", 0.5),
        ),
        (
            # every method; the size of tests/test_live_trainer.py, so a full run compiles them once
            lambda: LiveTrainer("spirals", num_points=64, width=8),
            lambda w: w.run(10),
            lambda w: setattr(w.lr_sliders["K-FAC"], "value", 0.1),
        ),
    ],
    ids=["race-first-order", "race-newton", "explorer-gd", "explorer-newton-cg", "live-trainer"],
)
def test_frames_after_the_first_and_learning_rate_changes_compile_nothing(make, frame, set_lr):
    widget = make()
    frame(widget)  # frame 1 may compile (the training chunk of this length)

    def frames_2_to_20():
        for _ in range(19):
            frame(widget)

    assert compilations(frames_2_to_20) == 0
    assert compilations(lambda: (set_lr(widget), frame(widget), frame(widget))) == 0
