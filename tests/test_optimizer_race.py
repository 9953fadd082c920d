"""OptimizerRace, headless: drive the controls, run steps, read the figure's data."""

import numpy as np
import pytest

from widgets import OptimizerRace, base


def path(race, name):
    return base.named(race.figure, f"path {name}")


def loss(race, name):
    return base.named(race.figure, f"loss {name}")


@pytest.fixture(scope="module")
def race():
    return OptimizerRace(problem="quadratic", kappa=20.0, methods=("GD", "Heavy ball"))


def test_run_grows_the_paths_and_the_loss_curves(race):
    race.reset()
    assert len(path(race, "GD").x) == 1
    race.run(30)
    assert len(path(race, "GD").x) == 31 and len(loss(race, "Heavy ball").y) == 31
    assert path(race, "GD").visible and not path(race, "Adam").visible
    y = np.asarray(loss(race, "GD").y)
    assert y[-1] < y[0]
    assert race.lanes["GD"].step == 30
    assert "CPU" in race.status.value or "GPU" in race.status.value


def test_paths_follow_the_library_trajectory(race):
    from lessons import first_order, train

    race.reset()
    race.run(20)
    ref = train.trajectory(race.problem.value, race.start, first_order.gradient_descent(race.lr_sliders["GD"].value), 20)
    np.testing.assert_allclose(np.c_[path(race, "GD").x, path(race, "GD").y], ref.points, rtol=1e-5, atol=1e-6)


def test_learning_rate_past_the_limit_diverges_with_a_message(race):
    race.lr_sliders["GD"].value = 2.3
    assert race.lanes["GD"].step == 0  # changing a control restarts the race
    race.run(200)
    assert race.messages()["GD"].startswith("GD: diverged at step")
    assert path(race, "GD").name.startswith("GD (diverged at step")
    assert "diverged" in race.status.value
    before = race.lanes["GD"].step
    race.run(10)  # a diverged method stays stopped; the others go on
    assert race.lanes["GD"].step == before and race.lanes["Heavy ball"].step == 210
    race.lr_sliders["GD"].value = 1.0


def test_play_ticks_run_frames_and_the_stop_button_resets(race):
    race.reset()
    race.steps_slider.value = 3
    race.play.value = 1
    race.play.value = 2
    assert race.lanes["GD"].step == 6
    race.play.value = 0  # Play's stop button rewinds to 0
    assert race.lanes["GD"].step == 0 and len(path(race, "GD").x) == 1


def test_reset_button(race):
    race.run(5)
    race.reset_button.click()
    assert race.lanes["Heavy ball"].step == 0


def test_switching_problem_and_methods(race):
    race.problem_select.value = "himmelblau"
    assert race.problem.name == "himmelblau"
    assert race.lr_sliders["GD"].value == pytest.approx(0.01)  # defaults for that problem
    assert race.figure.layout.title.text.startswith("Himmelblau")
    assert len(base.named(race.figure, "minima").x) == 4  # four minima drawn
    race.method_checkboxes["Adam"].value = True
    race.run(50)
    assert path(race, "Adam").visible and len(path(race, "Adam").x) == 51
    race.problem_select.value = "quadratic"
    race.kappa_slider.value = 100.0
    assert race.problem.curvature[0] == pytest.approx(0.01)
    race.method_checkboxes["Adam"].value = False


def test_click_moves_the_start(race):
    class Points:
        xs, ys = [0.5], [-1.0]

    race._on_click(base.named(race.figure, "contour"), Points(), None)
    np.testing.assert_allclose(race.start, [0.5, -1.0])
    assert path(race, "GD").x[0] == pytest.approx(0.5)


def test_static_figure_has_a_slider_over_learning_rates():
    r = OptimizerRace(problem="quadratic", kappa=10.0, methods=("GD", "Nesterov"))
    fig = r.static_figure(learning_rates=[0.5, 1.0, 2.1], num_steps=40)
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["0.5", "1", "2.1"]
    for step in slider.steps:
        args, indices = step.args
        assert len(args["x"]) == len(args["y"]) == len(indices) == 4  # path and loss per method
    assert any("diverged" in name for name in slider.steps[2].args[0]["name"])
    assert not any("diverged" in name for name in slider.steps[0].args[0]["name"])
    # the slider's data differ between learning rates
    assert slider.steps[0].args[0]["x"][0] != slider.steps[1].args[0]["x"][0]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(problem="booth"), "problem"),
        (dict(kappa=0.5), "kappa"),
        (dict(methods=("GD", "LBFGS")), "methods"),
        (dict(learning_rates={"GD": -1.0}), "learning_rates"),
        (dict(momenta={"Heavy ball": 1.2}), "momenta"),
        (dict(start=[0.0, 1.0, 2.0]), "start"),
        (dict(steps_per_frame=0), "steps_per_frame"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        OptimizerRace(**kwargs)


def test_bad_run_steps(race):
    with pytest.raises(ValueError, match="steps"):
        race.run(0)


def test_the_race_runs_in_float32():
    # Tests switch x64 on; the race (as in the book) still computes in float32.
    race = OptimizerRace(problem="rosenbrock", methods=("GD", "Adam", "Damped Newton"))
    race.run(50)
    for name in race.active_methods:
        lane = race.lanes[name]
        assert lane.x.dtype == np.float32 and lane.diverged_at is None
        values = np.concatenate(lane.values)
        assert values.dtype == np.float32 and values[-1] < values[0], name
