"""LandscapeExplorer, headless: arguments, live training against the library, the panels against direct
evaluation (the slice) and dense linear algebra (the eigenvalues), divergence, controls and the static view."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lessons import first_order, train
from widgets import LandscapeExplorer
from widgets.landscape_explorer import DIRECTIONS, OPTIMIZERS, TOP_K

SMALL = dict(width=4, num_points=32, grid=9, steps_per_frame=10)


@pytest.fixture(scope="module")
def explorer():
    return LandscapeExplorer("GD", learning_rate=1.0, **SMALL)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(optimizer="SGD"), "optimizer must be one of"),
        (dict(directions="PCA"), "directions must be one of"),
        (dict(view="heatmap"), "view must be"),
        (dict(width=0), "width must be an integer >= 1"),
        (dict(grid=2), "grid must be an integer >= 3"),
        (dict(steps_per_frame=1.5), "steps_per_frame must be an integer"),
        (dict(learning_rate=-0.1), "learning_rate"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        LandscapeExplorer(**{**SMALL, **kwargs})


def test_run_trains_like_the_library_and_grows_every_panel(explorer):
    explorer.reset()
    assert explorer.state.step == 0 and len(explorer.figure.data[1].x) == 1
    explorer.run(20)
    assert explorer.state.step == 20
    reference = train.train(explorer.loss_fn, explorer.initial_params, first_order.gradient_descent(1.0), num_steps=20)
    np.testing.assert_allclose(explorer.state.losses[:20], reference.loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(explorer.state.params), jax.tree.leaves(reference.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert len(explorer.figure.data[1].x) == 2  # the path: start and now
    assert all(len(explorer.figure.data[2 + i].y) == 2 for i in range(TOP_K))
    assert list(explorer.figure.data[2 + TOP_K].y) == [2.0, 2.0]  # GD's edge of stability, 2 / lr
    assert "CPU" in explorer.status.value or "GPU" in explorer.status.value
    assert "steps/s" in explorer.status.value and "step 20" in explorer.message()


def test_top_eigenvalues_match_a_dense_eigendecomposition(explorer):
    explorer.reset()
    explorer.run(30)
    flat, unravel = ravel_pytree(explorer.state.params)
    H = jax.hessian(lambda w: explorer.loss_fn(unravel(w)))(flat.astype(jnp.float64))
    exact = np.linalg.eigvalsh(np.asarray(H, dtype=float))[::-1][:TOP_K]
    np.testing.assert_allclose(explorer.state.eigenvalues[-1], exact, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(explorer.figure.data[2].y)[-1], exact[0], rtol=1e-3)


@pytest.mark.parametrize("kind", DIRECTIONS)
def test_the_slice_is_the_loss_along_the_directions(explorer, kind):
    explorer.reset()
    explorer.run(10)
    explorer.directions_toggle.value = kind
    surface = explorer.figure.data[0]
    center = explorer.state.params
    d1, d2 = explorer._directions(center, kind)
    alphas, betas, z = np.asarray(surface.x), np.asarray(surface.y), np.asarray(surface.z)
    for i, j in ((0, 0), (3, 5), (8, 2)):
        a, b = alphas[j], betas[i]
        point = jax.tree.map(lambda p, u, v, a=a, b=b: p + a * u + b * v, center, d1, d2)
        np.testing.assert_allclose(z[i, j], np.log10(float(explorer.loss_fn(point))), rtol=1e-4, atol=1e-5)
    explorer.directions_toggle.value = DIRECTIONS[0]


def test_view_and_optimizer_controls(explorer):
    explorer.view_toggle.value = "surface"
    assert explorer.figure.data[0].type == "surface" and explorer.figure.data[1].type == "scatter3d"
    assert explorer.widget.children[-1] is explorer.figure
    explorer.view_toggle.value = "contour"
    assert explorer.figure.data[0].type == "contour"
    explorer.run(10)
    # Newton-CG has the same default learning rate as GD here (1.0): switching must still restart.
    explorer.optimizer_select.value = "Newton-CG"
    assert explorer.state.step == 0 and explorer.lr_slider.value == OPTIMIZERS["Newton-CG"].learning_rate
    explorer.run(3)
    assert explorer.state.losses[-1] < explorer.state.losses[0]
    assert explorer.figure.data[2 + TOP_K].x == ()  # no 2 / lr line for Newton-CG
    explorer.optimizer_select.value = "GD"


def test_play_runs_a_frame_per_tick_and_stop_resets(explorer):
    explorer.reset()
    explorer.play.value = 1
    explorer.play.value = 2
    assert explorer.state.step == 2 * SMALL["steps_per_frame"]
    explorer.play.value = 0
    assert explorer.state.step == 0


def test_a_non_finite_loss_stops_the_run_with_a_message():
    explorer = LandscapeExplorer("GD", learning_rate=1.0, **SMALL)
    base, start = explorer.loss_fn, float(explorer.loss_fn(explorer.initial_params))
    explorer.loss_fn = lambda p: jnp.where(base(p) < start - 0.02, jnp.nan, base(p))  # NaN once the loss has dropped
    explorer.run(200)
    run = explorer.state
    assert run.diverged_at is not None and run.step == run.diverged_at - 1 < 200
    assert explorer.message() == f"GD: diverged at step {run.diverged_at}"
    assert "diverged" in explorer.status.value
    assert np.isfinite(run.losses).all() and len(run.losses) == run.step + 1
    explorer.run(10)  # nothing more happens, and nothing raises
    assert explorer.state.step == run.step


def test_same_seed_same_run():
    a = LandscapeExplorer("Adam", **SMALL)
    b = LandscapeExplorer("Adam", **SMALL)
    a.run(15)
    b.run(15)
    assert a.state.losses == b.state.losses
    np.testing.assert_array_equal(a.state.eigenvalues[-1], b.state.eigenvalues[-1])


def test_static_figure_has_a_slider_over_the_optimizers(explorer):
    fig = explorer.static_figure(num_steps=40, snapshot_every=20)
    (slider,) = fig.layout.sliders
    assert [step.label for step in slider.steps] == list(OPTIMIZERS)
    assert len(fig.to_json()) < 1_000_000
    for step in slider.steps:
        xs, ys = step.args[0]["x"], step.args[0]["y"]
        assert len(xs[1]) == len(ys[1]) == 3  # the path: 3 snapshots
        assert np.isfinite(np.asarray(step.args[0]["z"][0], dtype=float)).all()
