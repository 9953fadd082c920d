"""LandscapeExplorer, headless: arguments, live training against the library, the panels against direct
evaluation (the slice) and dense linear algebra (the eigenvalues), divergence, controls and the static view.

Every explorer here has the same small configuration, so they share one loss function and everything
compiled for it (the widget caches per configuration): the file runs in well under a minute on 2 cores.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lessons import first_order, optimizers, train
from widgets import LandscapeExplorer, base, landscape_panels
from widgets.landscape_explorer import DIRECTIONS, OPTIMIZERS, TOP_K

SMALL = dict(width=4, num_points=32, grid=9, steps_per_frame=10)


@pytest.fixture(scope="module")
def explorer():
    return LandscapeExplorer("GD", learning_rate=1.0, **SMALL)


_DENSE_HESSIANS = {}


def dense_top_eigenvalues(loss_fn, params):
    """The top eigenvalues of the Hessian, dense, in float64 (the float32 data promote to float64)."""
    flat, unravel = ravel_pytree(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params))
    if loss_fn not in _DENSE_HESSIANS:  # compiled once per loss (all parameters here have one structure)
        _DENSE_HESSIANS[loss_fn] = jax.jit(jax.hessian(lambda w: loss_fn(unravel(w))))
    H = _DENSE_HESSIANS[loss_fn](flat)
    assert H.dtype == jnp.float64
    return np.linalg.eigvalsh(np.asarray(H))[::-1][:TOP_K]


def along(center, d1, d2, a, b):
    return jax.tree.map(lambda p, u, v: p + a * u + b * v, center, d1, d2)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(optimizer="SGD"), "optimizer must be one of"),
        (dict(directions="PCA"), "directions must be one of"),
        (dict(view="heatmap"), "view must be one of"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(width=0), "width must be a positive integer"),
        (dict(num_points=1), "num_points must be an integer >= 2"),
        (dict(seed=-1), "seed must be an integer >= 0"),
        (dict(grid=2), "grid must be an integer >= 3"),
        (dict(steps_per_frame=1.5), "steps_per_frame must be a positive integer"),
        (dict(max_steps=0), "max_steps must be a positive integer"),
        (dict(learning_rate=-0.1), "learning_rate must be a positive finite number"),
        (dict(learning_rate=float("nan")), "learning_rate must be a positive finite number"),
        (dict(learning_rate=100.0), r"learning_rate must lie in \[0.0001, 10\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        LandscapeExplorer(**{**SMALL, **kwargs})


def test_bad_run_and_static_arguments(explorer):
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            explorer.run(steps)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        explorer.static_figure(num_steps=0)
    with pytest.raises(ValueError, match="methods must be a sequence of names in"):
        explorer.static_figure(methods=["GD", "SGD"])


def test_run_trains_like_the_library_and_grows_every_panel(explorer):
    explorer.reset()
    assert explorer.state.step == 0 and len(base.named(explorer.figure, "path").x) == 1
    assert len(explorer.state.eigenvalues) == 1
    explorer.run(20)
    explorer.run(140)  # more than one compiled chunk
    assert explorer.state.step == 160 and len(explorer.state.losses) == 161
    reference = train.train(explorer.loss_fn, explorer.initial_params, first_order.gradient_descent(1.0), num_steps=160)
    np.testing.assert_allclose(explorer.state.losses[:160], reference.loss, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(explorer.state.params), jax.tree.leaves(reference.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert explorer.state.losses[-1] == pytest.approx(float(explorer.loss_fn(reference.params)), rel=1e-6)
    # one frame per run: the path (start, after 20, after 160) and the eigenvalues at those steps
    assert len(base.named(explorer.figure, "path").x) == 3
    assert explorer.state.snapshot_steps == [0, 20, 160]
    for i in range(TOP_K):
        assert list(base.named(explorer.figure, f"λ{i + 1}").x) == [0, 20, 160]
        np.testing.assert_allclose(
            base.named(explorer.figure, f"λ{i + 1}").y, [e[i] for e in explorer.state.eigenvalues], rtol=1e-6
        )
    # the path ends at the centre of the slice, the current parameters
    np.testing.assert_allclose(
        [base.named(explorer.figure, "path").x[-1], base.named(explorer.figure, "path").y[-1]], [0, 0], atol=1e-5
    )
    assert list(base.named(explorer.figure, "edge").y) == [2.0, 2.0]  # GD's edge of stability, 2 / lr
    density = np.asarray(base.named(explorer.figure, "density").y)
    assert density.shape == (200,) and np.all(density > 0)
    assert "CPU" in explorer.status.value or "GPU" in explorer.status.value
    assert "steps/s" in explorer.status.value and "step 160" in explorer.message()
    assert "step 160" in explorer.figure.layout.title.text


def test_recorded_eigenvalues_match_a_dense_eigendecomposition(explorer):
    explorer.reset()
    explorer.run(30)
    for params, values in zip(explorer.state.snapshots, explorer.state.eigenvalues, strict=True):
        np.testing.assert_allclose(values, dense_top_eigenvalues(explorer.loss_fn, params), rtol=1e-4)
    assert np.asarray(base.named(explorer.figure, "λ1").y)[-1] == pytest.approx(explorer.state.eigenvalues[-1][0], rel=1e-6)


@pytest.mark.parametrize("kind", DIRECTIONS)
def test_the_slice_is_the_loss_along_the_directions(explorer, kind):
    explorer.reset()
    explorer.run(10)
    explorer.directions_toggle.value = kind
    contour = base.named(explorer.figure, "surface")
    center = explorer.state.params
    d1, d2 = explorer.directions
    if kind == DIRECTIONS[0]:  # unit-norm eigenvectors
        assert float(ravel_pytree(d1)[0] @ ravel_pytree(d1)[0]) == pytest.approx(1.0, rel=1e-5)
    alphas, betas, z = np.asarray(contour.x), np.asarray(contour.y), np.asarray(contour.z)
    assert z.shape == (SMALL["grid"], SMALL["grid"])
    for i, j in ((0, 0), (3, 5), (8, 2)):
        expected = np.log10(float(explorer.loss_fn(along(center, d1, d2, alphas[j], betas[i]))))
        assert z[i, j] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # the path's first point is the start, projected onto the plane
    start = np.asarray([base.named(explorer.figure, "path").x[0], base.named(explorer.figure, "path").y[0]])
    D = np.stack([ravel_pytree(d1)[0], ravel_pytree(d2)[0]], axis=1)
    offset = ravel_pytree(explorer.initial_params)[0] - ravel_pytree(center)[0]
    np.testing.assert_allclose(start, np.linalg.lstsq(D, offset, rcond=None)[0], rtol=1e-3, atol=1e-5)
    explorer.directions_toggle.value = DIRECTIONS[0]


def test_switching_directions_and_view_redraws(explorer):
    explorer.reset()
    explorer.run(10)
    explorer.directions_toggle.value = DIRECTIONS[0]
    eigen_z = np.asarray(base.named(explorer.figure, "surface").z)
    explorer.directions_toggle.value = DIRECTIONS[1]
    assert not np.allclose(np.asarray(base.named(explorer.figure, "surface").z), eigen_z)
    assert explorer.state.step == 10  # a new slice, not a new run

    old = explorer.figure
    explorer.view_toggle.value = "surface"
    fig = explorer.figure
    assert fig is not old and explorer.widget.children[-1] is fig
    assert base.named(fig, "surface").type == "surface" and base.named(fig, "path").type == "scatter3d"
    assert len(base.named(fig, "path").z) == len(base.named(fig, "path").x) == 2
    # the path is drawn on the surface (interpolated there)
    z = np.asarray(base.named(fig, "surface").z)
    assert np.nanmin(z) - 1e-6 <= base.named(fig, "path").z[-1] <= np.nanmax(z) + 1e-6
    explorer.run(10)  # training goes on in the new view
    assert len(base.named(explorer.figure, "path").x) == 3

    explorer.view_toggle.value = "contour"
    explorer.directions_toggle.value = DIRECTIONS[0]
    assert base.named(explorer.figure, "surface").type == "contour" and explorer.widget.children[-1] is explorer.figure
    np.testing.assert_allclose(base.named(explorer.figure, "surface").z, explorer.panel["z"], rtol=1e-6)


def test_optimizer_and_learning_rate_controls_restart(explorer):
    explorer.reset()
    explorer.run(10)
    explorer.lr_slider.value = 0.5
    assert explorer.state.step == 0 and list(base.named(explorer.figure, "edge").y) == [4.0, 4.0]
    explorer.run(10)
    # Newton-CG has the same default learning rate as GD (1.0): switching must still restart.
    explorer.optimizer_select.value = "Newton-CG"
    assert explorer.state.step == 0 and explorer.lr_slider.value == optimizers.get("Newton-CG").defaults["learning_rate"]
    explorer.run(5)
    assert explorer.state.losses[-1] < explorer.state.losses[0]
    assert base.named(explorer.figure, "edge").x == ()  # no 2 / lr line for Newton-CG
    assert explorer.message().startswith("Newton-CG: step 5")
    explorer.optimizer_select.value = "GD"
    assert explorer.lr_slider.value == 1.0 and explorer.state.step == 0


def test_play_runs_a_frame_per_tick_and_stop_resets(explorer):
    explorer.reset()
    explorer.play.value = 1
    explorer.play.value = 2
    assert explorer.state.step == 2 * SMALL["steps_per_frame"]
    explorer.play.value = 0  # the Play widget's stop button rewinds to 0
    assert explorer.state.step == 0 and len(base.named(explorer.figure, "path").x) == 1


def test_reset_restores_the_initial_state(explorer):
    explorer.reset()
    initial = (
        list(explorer.state.losses),
        explorer.state.eigenvalues[0].copy(),
        np.asarray(base.named(explorer.figure, "surface").z),
    )
    explorer.run(25)
    explorer.reset_button.click()
    run = explorer.state
    assert run.step == 0 and run.diverged_at is None and run.snapshot_steps == [0]
    assert run.params is explorer.initial_params
    assert run.losses == initial[0]
    np.testing.assert_array_equal(run.eigenvalues[0], initial[1])
    np.testing.assert_array_equal(np.asarray(base.named(explorer.figure, "surface").z), initial[2])
    assert len(base.named(explorer.figure, "path").x) == 1 and "step 0" in explorer.status.value


def test_max_steps_stops_play():
    explorer = LandscapeExplorer("GD", **{**SMALL, "max_steps": 25})
    explorer.play.playing = True
    for tick in range(1, 5):
        explorer.play.value = tick
    assert explorer.state.step == 25 and not explorer.play.playing


def test_a_huge_learning_rate_diverges_with_a_message():
    # The squared loss blows up past the edge of stability (the logistic loss only grows linearly).
    explorer = LandscapeExplorer("GD", learning_rate=10.0, loss="squared", **SMALL)
    frame = (np.asarray(base.named(explorer.figure, "surface").z), list(base.named(explorer.figure, "path").x))
    explorer.play.playing = True
    explorer.run(300)  # does not raise
    run = explorer.state
    assert run.diverged_at is not None and run.step == run.diverged_at - 1 < 300
    assert f"GD: diverged at step {run.diverged_at}" in explorer.message()
    assert "diverged" in explorer.status.value and "diverged" in explorer.figure.layout.title.text
    assert not explorer.play.playing  # Play stops
    assert np.isfinite(run.losses).all() and len(run.losses) == run.step + 1
    assert np.isfinite(float(explorer.loss_fn(run.params)))  # the last parameters with a finite loss
    # the panels keep the last frame: no curvature of a blown-up point
    np.testing.assert_array_equal(np.asarray(base.named(explorer.figure, "surface").z), frame[0])
    assert list(base.named(explorer.figure, "path").x) == frame[1]
    explorer.run(10)  # nothing more happens, and nothing raises
    assert explorer.state.step == run.step
    explorer.reset()
    assert explorer.state.diverged_at is None and explorer.state.step == 0


def test_same_seed_same_run():
    a = LandscapeExplorer("Adam", **SMALL)
    b = LandscapeExplorer("Adam", **SMALL)
    a.run(15)
    b.run(15)
    assert a.state.losses == b.state.losses
    np.testing.assert_array_equal(a.state.eigenvalues[-1], b.state.eigenvalues[-1])
    np.testing.assert_array_equal(np.asarray(base.named(a.figure, "surface").z), np.asarray(base.named(b.figure, "surface").z))
    # another seed, other data and initial parameters (not built as an explorer: that would compile anew)
    other = landscape_panels.setup(SMALL["width"], SMALL["num_points"], 1, "logistic")
    assert not np.array_equal(other.data[0], a.setup.data[0]) and not np.array_equal(
        other.initial_params[0][0], a.initial_params[0][0]
    )


def test_static_figure_has_a_slider_over_the_optimizers(explorer):
    fig = explorer.static_figure(num_steps=40, snapshot_every=20)
    assert type(fig).__name__ == "Figure"  # a plain figure, not a widget: no kernel needed
    (slider,) = fig.layout.sliders
    assert [step.label for step in slider.steps] == list(OPTIMIZERS) == ["GD", "Heavy ball", "Adam", "Newton-CG"]
    assert slider.active == 0  # the explorer's optimizer
    assert len(fig.to_json()) < 1_000_000
    titles = set()
    for step in slider.steps:
        data, layout, indices = step.args
        at = {fig.data[i].meta: k for k, i in enumerate(indices)}  # trace name -> position in the step's lists
        assert set(at) == {t.meta for t in fig.data}
        assert len(data["x"][at["path"]]) == len(data["y"][at["path"]]) == 3  # the path: 3 snapshots
        assert data["x"][at["λ1"]] == [0, 20, 40] and len(data["y"][at["λ1"]]) == 3  # the top eigenvalue at each
        z = np.asarray(data["z"][at["surface"]], dtype=float)
        assert z.shape == (SMALL["grid"], SMALL["grid"]) and np.isfinite(z).all()
        assert (data["y"][at["edge"]] == [2.0, 2.0]) == (step.label == "GD")  # 2 / lr for GD (lr 1)
        assert (data["y"][at["edge"]] == []) == (step.label in ("Adam", "Newton-CG"))  # no edge for these
        titles.add(layout["title.text"])
    assert len(titles) == len(OPTIMIZERS)
    # the first step is what the figure shows before the slider moves
    data, _, indices = slider.steps[0].args
    at = {fig.data[i].meta: k for k, i in enumerate(indices)}
    np.testing.assert_allclose(base.named(fig, "path").x, data["x"][at["path"]], rtol=1e-3, atol=1e-4)
    # the eigenvalues of the static view are those of the library's training run at the same steps
    h = train.train(explorer.loss_fn, explorer.initial_params, first_order.gradient_descent(1.0), num_steps=40, snapshot_every=20)
    np.testing.assert_allclose(
        data["y"][at["λ1"]], [dense_top_eigenvalues(explorer.loss_fn, p)[0] for _, p in h.snapshots], rtol=1e-3
    )


def test_the_explorer_trains_in_float32(explorer):
    # Tests switch x64 on; the explorer (as in the book) still trains in float32.
    explorer.reset()
    explorer.run(40)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(explorer.state.params))
    assert explorer.state.losses[-1] < explorer.state.losses[0]
