"""LiveTrainer, headless: drive the controls, run steps, read the figure's data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import optimizers
from widgets import LiveTrainer, base
from widgets import live_trainer_panels as panels
from widgets.live_trainer import METHOD_NAMES, METHODS


def trace(trainer, name):
    return base.named(trainer.figure, name)


@pytest.fixture(scope="module")
def trainer():
    # The smallest configuration that still shows every method: compiling seven methods dominates the file's time.
    return LiveTrainer("spirals", num_points=64, width=8)


def test_the_methods_come_from_the_registry_by_name():
    assert METHODS == tuple(name for name in METHOD_NAMES if name in optimizers.REGISTRY)
    assert {"GD", "Heavy ball", "Adam", "Newton-CG", "Natural gradient", "K-FAC"} <= set(METHODS)


def test_the_first_frame_shows_every_lane_at_the_same_start(trainer):
    trainer.reset()
    assert trainer.ready and "CPU" in trainer.status.value or "GPU" in trainer.status.value
    first = {name: trainer.lanes[name].losses for name in METHODS}
    assert all(losses == first["GD"] for losses in first.values()) and len(first["GD"]) == 1
    for name in METHODS:
        assert list(trace(trainer, f"loss {name}").x) == [0]
        assert trace(trainer, f"loss {name}").line.color == optimizers.color(name)
    z = np.asarray(trace(trainer, "regions").z)
    assert z.shape == (panels.GRID, panels.GRID) and np.all((z >= 0) & (z <= 1))
    assert len(trace(trainer, "class 0").x) + len(trace(trainer, "class 1").x) == 64


def test_run_advances_every_lane_from_the_same_initialisation(trainer):
    trainer.reset()
    trainer.run(20)
    start = {trainer.lanes[name].losses[0] for name in METHODS}
    assert len(start) == 1  # the same network, the same data: the same loss at step 0
    for name in METHODS:
        lane = trainer.lanes[name]
        assert lane.step == 20 and lane.diverged_at is None, name
        assert len(trace(trainer, f"loss {name}").y) == 21 and len(trace(trainer, f"time {name}").x) == 21
        times = np.asarray(trace(trainer, f"time {name}").x)
        assert times[0] == 0 and np.all(np.diff(times) >= 0) and times[-1] > 0
        assert lane.steps_per_second > 0
        assert lane.losses[-1] < lane.losses[0], name
    assert [line.split(":")[0] for line in trainer.messages()] == list(METHODS)
    assert "steps/s" in trainer.status.value
    bars = trace(trainer, "speed")
    assert list(bars.y) == list(METHODS) and all(x > 0 for x in bars.x)


def test_gd_lane_follows_plain_gradient_descent(trainer):
    trainer.reset()
    trainer.run(12)
    x, y = trainer.data
    assert x.dtype == y.dtype == jnp.float32  # widgets compute in float32 (the tests switch x64 on)
    lr = trainer.learning_rate("GD")
    loss = jax.jit(lambda p: panels.OBJECTIVE.value(p, (x, y)))
    grad = jax.jit(jax.grad(lambda p: panels.OBJECTIVE.value(p, (x, y))))
    params, expected = trainer.initial_params, []
    for _ in range(13):
        expected.append(float(loss(params)))
        params = jax.tree.map(lambda p, g: p - jnp.float32(lr) * g, params, grad(params))
    np.testing.assert_allclose(trainer.lanes["GD"].losses, expected, rtol=2e-5)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(trainer.lanes["GD"].params))


def test_choosing_another_optimizer_redraws_the_regions(trainer):
    trainer.reset()
    trainer.run(30)
    trainer.regions_select.value = "GD"
    gd = np.asarray(trace(trainer, "regions").z)
    trainer.regions_select.value = "Newton-CG"
    newton = np.asarray(trace(trainer, "regions").z)
    assert trainer.lanes["GD"].step == 30  # only the drawing changed
    assert not np.allclose(gd, newton)
    expected = panels.probabilities(trainer.lanes["Newton-CG"].params, trainer.setup.grid)
    np.testing.assert_allclose(newton.ravel(), np.asarray(expected), atol=1e-6)
    titles = [a.text for a in trainer.figure.layout.annotations]
    assert "regions of Newton-CG" in titles
    trainer.regions_select.value = "GD"


def test_a_too_large_learning_rate_diverges_one_lane_and_the_others_go_on(trainer):
    trainer.lr_sliders["GD"].value = 1000.0
    assert trainer.lanes["GD"].step == 0  # a new learning rate restarts the race
    trainer.run(20)
    lane = trainer.lanes["GD"]
    assert lane.diverged_at is not None and lane.step == lane.diverged_at - 1
    message = next(m for m in trainer.messages() if m.startswith("GD"))
    assert message.startswith(f"GD diverged at step {lane.diverged_at}")
    assert trace(trainer, "loss GD").name == f"GD (diverged at step {lane.diverged_at})"
    assert list(trace(trainer, "end GD").x) == [lane.step]  # the cross on its curve
    assert all(np.isfinite(trace(trainer, "loss GD").y))
    trainer.run(10)
    assert trainer.lanes["GD"].step == lane.step and trainer.lanes["Adam"].step == 30
    assert not trainer.finished()
    trainer.lr_sliders["GD"].value = optimizers.get("GD").defaults["learning_rate"]
    assert trainer.lanes["GD"].diverged_at is None and list(trace(trainer, "end GD").x) == []


def test_play_ticks_run_frames_pause_stops_and_the_stop_button_resets(trainer):
    trainer.reset()
    trainer.steps_slider.value = 3
    trainer.play.playing = True
    trainer.play.value = 1
    trainer.play.value = 2
    assert trainer.lanes["K-FAC"].step == 6
    trainer.stop()
    assert not trainer.play.playing and trainer.lanes["K-FAC"].step == 6
    trainer.play.value = 0  # Play's stop button rewinds to 0
    assert trainer.lanes["K-FAC"].step == 0 and len(trace(trainer, "loss K-FAC").x) == 1
    trainer.run(2)
    trainer.reset_button.click()
    assert trainer.lanes["Adam"].step == 0


def test_unticked_methods_are_hidden_and_do_not_train(trainer):
    trainer.method_checkboxes["Heavy ball"].value = False
    trainer.run(5)
    assert trainer.lanes["Heavy ball"].step == 0 and trainer.lanes["GD"].step == 5
    assert trace(trainer, "loss Heavy ball").visible is False and trace(trainer, "loss GD").visible
    assert not any(m.startswith("Heavy ball") for m in trainer.messages())
    trainer.method_checkboxes["Heavy ball"].value = True


def test_data_settings_reset_with_new_data_and_one_shared_start(trainer):
    trainer.run(5)
    x_before = np.asarray(trainer.data[0])
    trainer.dataset_select.value = "moons"
    assert trainer.noise_slider.value == pytest.approx(panels.NOISE["moons"])
    assert all(lane.step == 0 for lane in trainer.lanes.values())
    assert "Two moons" in trainer.figure.layout.title.text
    x_moons = np.asarray(trainer.data[0])
    assert not np.allclose(x_before, x_moons)
    np.testing.assert_allclose(sorted(trace(trainer, "class 0").x), sorted(x_moons[np.asarray(trainer.data[1]) == 0, 0]))
    trainer.noise_slider.value = 0.2
    assert not np.allclose(np.asarray(trainer.data[0]), x_moons)
    params = trainer.initial_params
    trainer.seed_input.value = 3
    assert not np.allclose(np.asarray(params[0][0]), np.asarray(trainer.initial_params[0][0]))
    trainer.run(3)
    assert len({trainer.lanes[name].losses[0] for name in METHODS}) == 1
    trainer.dataset_select.value = "xor"
    assert "XOR" in trainer.figure.layout.title.text and trainer.lanes["GD"].step == 0
    with trainer.quietly():
        trainer.dataset_select.value, trainer.seed_input.value = "spirals", 0
        trainer.noise_slider.value = panels.NOISE["spirals"]
    trainer.reset()


def test_max_steps_stops_play():
    small = LiveTrainer("xor", methods=("GD", "Adam"), num_points=64, width=8, max_steps=16, regions="Adam")
    small.play.playing = True
    small.run(10)
    assert not small.finished()
    small.run(10)
    assert small.finished() and not small.play.playing
    assert all(small.lanes[name].step == 16 for name in ("GD", "Adam"))


def test_static_figure_precomputes_every_method_with_a_slider_over_regions(trainer):
    fig = trainer.static_figure(num_steps=20, methods=("GD", "Adam", "K-FAC"))
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["GD", "Adam", "K-FAC"]
    regions = base.index_of(fig, "regions")
    for step in slider.steps:
        data, layout, indices = step.args
        assert list(indices) == [regions] and np.asarray(data["z"][0]).shape == (panels.STATIC_GRID, panels.STATIC_GRID)
        assert any(str(v).startswith("regions of") for v in layout.values())
    assert slider.steps[0].args[0]["z"] != slider.steps[1].args[0]["z"]
    for name in ("GD", "Adam", "K-FAC"):
        assert len(base.named(fig, f"loss {name}").y) == 21 and len(base.named(fig, f"time {name}").x) == 21
    assert not any(t.meta == "loss Newton-CG" for t in fig.data)
    assert [t.meta for t in fig.data if t.meta.startswith("class")] == ["class 0", "class 1"]


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(dataset="circles"), ValueError, "dataset"),
        (dict(methods=("GD", "LBFGS")), ValueError, "methods.*LBFGS"),
        (dict(dataset="circles"), ValueError, "dataset.*circles"),
        (dict(methods="GD"), TypeError, "methods"),
        (dict(methods=()), ValueError, "methods"),
        (dict(learning_rates={"GD": -1.0}), ValueError, "learning_rates"),
        (dict(learning_rates={"SGD": 0.1}), ValueError, "learning_rates"),
        (dict(learning_rates={"GD": 1e5}), ValueError, "learning_rates"),
        (dict(num_points=100), ValueError, "num_points"),
        (dict(noise=-0.1), ValueError, "noise"),
        (dict(noise=0.9), ValueError, "noise"),
        (dict(noise="0.1"), TypeError, "noise"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(methods=("GD",), regions="Adam"), ValueError, "regions"),
        (dict(steps_per_frame=0), ValueError, "steps_per_frame"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        LiveTrainer(**kwargs)


def test_bad_calls_name_the_argument(trainer):
    with pytest.raises(ValueError, match="steps"):
        trainer.run(0)
    with pytest.raises(ValueError, match="methods.*'Nope'"):
        trainer.static_figure(num_steps=5, methods=("GD", "Nope"))
    with pytest.raises(ValueError, match="num_steps"):
        trainer.static_figure(num_steps=0)


def test_noise_seed_steps_and_regions_changes_compile_nothing(trainer):
    events = []
    jax.monitoring.register_event_duration_secs_listener(lambda name, *a, **k: events.append(name))
    trainer.reset()
    trainer.run(5)  # everything at this size is compiled (earlier tests trained every method)
    trainer.seed_input.value = 7  # new data and a new network: the key is an argument, nothing compiles
    trainer.run(5)
    before = events.count("/jax/core/compile/backend_compile_duration")
    trainer.noise_slider.value = 0.15
    trainer.seed_input.value = 8
    trainer.steps_slider.value = 37  # not a multiple of the chunk: the last chunk runs partly active
    trainer.run(int(trainer.steps_slider.value))
    trainer.regions_select.value = "Adam"
    trainer.method_checkboxes["Adam"].value = False
    trainer.run(3)
    assert events.count("/jax/core/compile/backend_compile_duration") == before
    assert trainer.lanes["GD"].step == 3 and trainer.lanes["Adam"].step == 0  # unticking restarted the race
    trainer.method_checkboxes["Adam"].value = True
    with trainer.quietly():
        trainer.seed_input.value, trainer.noise_slider.value, trainer.regions_select.value = 0, panels.NOISE["spirals"], "GD"
    trainer.reset()
