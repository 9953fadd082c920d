"""ScanExplorer, headless: DEER's iterates as lessons.deer computes them, exactness, convergence, overflow, controls.

Identities in float64 (``dtype=jnp.float64``, T = 32); the widget's own float32 runs at T = 256 (overflow,
convergence, compile counts) and T = 32 (the static figure). Each new (T, dtype) compiles once: the file
keeps to these three.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import plotly.io as pio
import pytest

from lessons import deer, nets
from tests.test_widget_compiles import compilations  # the one compile counter of the widget tests
from widgets import ScanExplorer, base
from widgets import scan_explorer_panels as panels


def trace(widget, name):
    return base.named(widget.figure, name)


def loop_trajectory(params, xs, gain, h0):
    """The free-running cell by a Python loop in numpy: the independent reference."""
    W, U, b = (np.asarray(params[k], dtype=float) for k in ("W", "U", "b"))
    h, out = np.asarray(h0, dtype=float), []
    for x in np.asarray(xs, dtype=float):
        h = np.tanh(gain * W @ h + x @ U + b)
        out.append(h)
    return np.array(out)


@pytest.fixture(scope="module")
def exact():
    """A float64 explorer on an expanding cell (gain 3: 22 DEER iterations), T = 32: identities at round-off."""
    return ScanExplorer(T=32, gain=3.0, alpha=0.0, dtype=jnp.float64)


@pytest.fixture(scope="module")
def live():
    """The widget as a reader gets it (float32), at T = 256."""
    return ScanExplorer(T=256, gain=0.5)


def test_the_first_frame_shows_the_trajectory_and_iterate_zero(live):
    live.reset()
    assert live.ready and ("CPU" in live.status.value or "GPU" in live.status.value)
    assert live.num_iters == 0 and live.iterates.shape == (1, 256, panels.DIM) and not live.iterates.any()
    assert live.trajectory.dtype == np.float32
    np.testing.assert_array_equal(trace(live, "true").y, live.trajectory[:, 0])
    assert list(trace(live, "error").x) == [0]
    assert trace(live, "error").y[0] == pytest.approx(np.abs(live.trajectory).max())
    assert live.figure.layout.title.text == "DEER, tanh RNN (d = 8), T = 256, gain 0.5"
    assert "iterate k = 0" in live.figure.layout.annotations[0].text


@pytest.mark.parametrize("method", ["DEER", "quasi-DEER"])
def test_the_iterates_are_lessons_deer_newton_iterates(exact, method):
    exact.alpha_slider.value = 0.2
    exact.method_toggle.value = method
    exact.run(4)
    p = exact.problem
    gain, alpha, h0 = exact.gain, exact.alpha, jnp.zeros(panels.DIM)
    free = deer.sequential(lambda h, x: nets.tanh_rnn(p.params, h, x, gain), h0, p.inputs)
    np.testing.assert_allclose(free, loop_trajectory(p.params, p.inputs, gain, h0), atol=1e-12)
    y_prev = jnp.concatenate([h0[None], free[:-1]])
    forced = lambda h, xy: nets.tanh_rnn(p.params, (1 - alpha) * h + alpha * xy[1], xy[0], gain)  # noqa: E731
    expected = deer.newton_iterates(forced, h0, (p.inputs, y_prev), exact.num_iters, quasi=method == "quasi-DEER")
    assert exact.iterates.dtype == np.float64 and exact.num_iters == 4 and not exact.converged
    np.testing.assert_allclose(exact.iterates, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(exact.errors, np.abs(np.asarray(expected) - exact.trajectory).max(axis=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(trace(exact, "iterate").y, exact.iterates[-1][:, 0], atol=1e-12)
    assert list(trace(exact, "error").x) == list(range(5))
    exact.method_toggle.value = "DEER"
    exact.alpha_slider.value = 0.0


def test_k_iterations_make_the_first_k_steps_exact(exact):
    exact.reset()
    exact.run(8)
    assert exact.num_iters == 8 and not exact.converged  # expanding: far from done
    for k, iterate in enumerate(exact.iterates):
        gap = np.abs(iterate - exact.trajectory).max(axis=1)
        assert gap[:k].max(initial=0.0) <= 1e-12, k
        assert gap[k:].max() > 1e-3, k  # ... and only those: the rest is still off
    shape = exact.figure.layout.shapes[panels.shape_index(exact.figure, "exact")]
    assert shape.x1 == 7.5  # the shaded band covers steps 0..7
    assert "steps t < 8 are exact" in exact.status.value


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_forcing_toward_the_trajectory_keeps_it_and_alpha_one_solves_in_one_iteration(exact, alpha):
    exact.alpha_slider.value = alpha
    p = exact.problem
    np.testing.assert_allclose(
        exact.trajectory, loop_trajectory(p.params, p.inputs, exact.gain, np.zeros(panels.DIM)), atol=1e-12
    )
    exact.run(40)
    assert exact.converged
    if alpha == 1.0:  # every Jacobian (1 - alpha) J_t is 0: one iteration is the sequential solution
        assert exact.num_iters == 1 and exact.errors[-1] <= 1e-15
    elif alpha == 0.5:
        assert exact.num_iters <= 6
    else:
        assert exact.num_iters > 10
    exact.alpha_slider.value = 0.0


def test_a_contracting_cell_converges_in_a_few_iterations_and_play_stops(live):
    live.reset()
    live.steps_slider.value = 1
    live.play.playing = True
    for tick in range(1, 10):
        live.play.value = tick
        if not live.play.playing:
            break
    assert live.converged and live.finished() and not live.play.playing
    assert live.num_iters <= 5 and live.errors[-1] <= live.tol == 1e-5
    assert np.all(np.diff(live.errors) < 0)  # Newton on a contracting cell: every iteration better
    assert f"DEER converged after {live.num_iters} iterations" in live.status.value
    assert "Newton iterations/s" in live.status.value and "sequential scan" in live.status.value
    assert len(trace(live, "error").y) == live.num_iters + 1
    assert live.timing is not None and all(t > 0 for t in live.timing)
    bars = trace(live, "time")
    assert bars.y[0] == "sequential<br>depth 256" and all(x > 0 for x in bars.x)
    live.play.value = 0  # the Play widget's stop button rewinds to 0: reset
    assert live.num_iters == 0


def test_an_expanding_cell_overflows_stops_with_a_message_and_forcing_brings_it_back(live):
    live.gain_slider.value = 3.0
    live.play.playing = True
    live.play.value = 1
    live.run(5)
    assert live.diverged_at == 1 and live.num_iters == 0 and live.finished() and not live.play.playing
    assert "DEER overflowed at iteration 1</b>: the expanding cell (gain 3)" in live.status.value
    assert live.figure.layout.title.text.replace("<br>", " ").endswith("gain 3: overflowed at iteration 1")
    assert np.all(np.isfinite(trace(live, "iterate").y)) and np.all(np.isfinite(live.errors))
    live.alpha_slider.value = 0.5
    assert live.diverged_at is None and live.num_iters == 0
    live.run(20)
    assert live.converged and live.num_iters <= 8
    live.method_toggle.value = "quasi-DEER"
    live.run(60)
    assert live.converged and 10 < live.num_iters < 60  # linear convergence: more iterations, same answer
    live.method_toggle.value = "DEER"
    live.alpha_slider.value = 0.0
    live.gain_slider.value = 0.5


def test_settings_reset_the_run_and_the_coordinate_only_redraws(live):
    live.run(2)
    before = live.trajectory.copy()
    for control, value in ((live.gain_slider, 0.7), (live.alpha_slider, 0.2), (live.method_toggle, "quasi-DEER")):
        live.run(2)
        control.value = value
        assert live.num_iters == 0 and len(live.errors) == 1 and len(trace(live, "error").y) == 1
    live.run(2)
    live.seed_input.value = 4
    assert live.num_iters == 0 and not np.allclose(live.trajectory, before)
    live.run(2)
    live.coordinate_select.value = 3
    assert live.num_iters == 2
    np.testing.assert_array_equal(trace(live, "true").y, live.trajectory[:, 3])
    np.testing.assert_allclose(trace(live, "iterate").y, np.clip(live.iterates[-1][:, 3], -panels.CLIP, panels.CLIP))
    live.reset_button.click()
    assert live.num_iters == 0
    with live.quietly():
        live.gain_slider.value, live.alpha_slider.value, live.method_toggle.value, live.seed_input.value = 0.5, 0.0, "DEER", 0
        live.coordinate_select.value = 0
    live.reset()


def test_after_the_first_frame_nothing_compiles_but_a_new_T(live):
    live.run(1)  # the first Play frame may compile (the Newton step, both methods)

    def frames():
        for _ in range(15):
            live.run(1)

    assert compilations(frames) == 0
    moves = [
        lambda: setattr(live.gain_slider, "value", 2.0),
        lambda: setattr(live.alpha_slider, "value", 0.4),
        lambda: setattr(live.seed_input, "value", 7),
        lambda: setattr(live.method_toggle, "value", "quasi-DEER"),
        lambda: setattr(live.steps_slider, "value", 3),
        lambda: setattr(live.coordinate_select, "value", 2),
        lambda: setattr(live.method_toggle, "value", "DEER"),
    ]
    for move in moves:
        assert compilations(lambda move=move: (move(), live.run(1), live.run(1))) == 0
    assert compilations(lambda: (setattr(live.T_slider, "value", 32), live.run(1))) > 0  # new shapes compile
    assert compilations(lambda: (setattr(live.T_slider, "value", 256), live.run(1))) == 0  # kept per T
    with live.quietly():
        live.gain_slider.value, live.alpha_slider.value, live.seed_input.value, live.coordinate_select.value = 0.5, 0.0, 0, 0
        live.steps_slider.value = 1
    live.reset()


def test_the_static_figure_holds_the_headless_iterates(live):
    lanes = ((0.5, 0.0), (3.0, 0.0), (3.0, 0.5))
    fig = live.static_figure(lanes, T=32, num_iters=12)
    runs = [ScanExplorer(T=32, gain=g, alpha=a, max_iters=12) for g, a in lanes]
    for run in runs:
        run.run(12)
    K = max(run.num_iters for run in runs)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == K + 1 and fig.layout.sliders[0].active == K and K == 12  # the expanding lane runs to the cap
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].endswith("converged in 3 iterations") and titles[1].endswith("not converged after 12")
    for k in (0, 1, 5, K):
        data, layout, indices = steps[k].args
        names = [fig.data[i].meta for i in indices]
        for i, run in enumerate(runs):
            j = min(k, run.num_iters)
            y = data["y"][names.index(f"iterate {i}")]
            np.testing.assert_allclose(y, np.clip(run.iterates[j][:, 0], -panels.CLIP, panels.CLIP), rtol=1e-3, atol=1e-6)
            errors = data["y"][names.index(f"error {i}")]
            assert errors[j + 1 :] == [None] * (K - j)
            np.testing.assert_allclose(errors[: j + 1], np.maximum(run.errors[: j + 1], panels.ERROR_FLOOR), rtol=1e-2)
            shape = panels.shape_index(fig, f"exact {i}")
            assert layout[f"shapes[{shape}].x1"] == j - 0.5
    np.testing.assert_allclose(base.named(fig, "iterate 1").y, np.clip(runs[1].iterates[-1][:, 0], -3, 3), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(base.named(fig, "true 1").y, runs[1].trajectory[:, 0])


def test_the_default_static_figure_is_small():
    fig = ScanExplorer(T=32).static_figure()  # T = 128, three lanes
    html = pio.to_html(fig, include_plotlyjs=False, full_html=False)
    assert len(html) < 300_000
    assert [a.text.split(":")[0] for a in fig.layout.annotations[:3]] == ["gain 0.5, α = 0", "gain 2, α = 0", "gain 2, α = 0.5"]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(T=1), ValueError),
        (dict(T=0), ValueError),
        (dict(T=panels.MAX_T + 1), ValueError),
        (dict(T=8.5), ValueError),
        (dict(T="8"), TypeError),
        (dict(alpha=-0.1), ValueError),
        (dict(alpha=1.5), ValueError),
        (dict(alpha="0.5"), TypeError),
        (dict(gain=0.0), ValueError),
        (dict(gain=10.0), ValueError),
        (dict(method="Newton"), ValueError),
        (dict(seed=-1), ValueError),
        (dict(coordinate=panels.DIM), ValueError),
        (dict(max_iters=0), ValueError),
        (dict(dtype=jnp.int32), ValueError),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(f"{k}={v[k]!r}" for k in v),
)
def test_bad_input_is_refused_with_a_clear_error(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        ScanExplorer(**kwargs)


def test_bad_static_figure_lanes_are_refused(live):
    with pytest.raises(ValueError, match="lanes"):
        live.static_figure(())
    with pytest.raises(ValueError, match="lanes"):
        live.static_figure(((1.0, 0.0, 3.0),))
