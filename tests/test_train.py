"""Training loops: chunked scans against step-by-step NumPy, divergence stops, trajectories."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lessons import data, first_order, nets, newton, optimizers, problems, train


def quad(H):
    H = jnp.asarray(H)
    return lambda w: 0.5 * w @ H @ w


H3 = np.diag([1.0, 3.0, 9.0])


def test_losses_equal_a_numpy_loop():
    h = train.train(quad(H3), jnp.ones(3), first_order.gradient_descent(0.1), num_steps=37, chunk_size=10, progress=False)
    w, ref = np.ones(3), []
    for _ in range(37):
        ref.append(0.5 * w @ H3 @ w)
        w = w - 0.1 * H3 @ w
    np.testing.assert_allclose(h.loss, ref, rtol=1e-12)
    np.testing.assert_allclose(h.params, w, rtol=1e-12)
    assert h.steps == 37 and not h.diverged and "finished 37 steps" in h.message


@pytest.mark.parametrize("chunk_size", [1, 7, 500])
def test_chunking_does_not_change_the_result(chunk_size):
    ref = train.train(quad(H3), jnp.ones(3), optax.adam(0.1), num_steps=50, chunk_size=50, progress=False)
    h = train.train(quad(H3), jnp.ones(3), optax.adam(0.1), num_steps=50, chunk_size=chunk_size, progress=False)
    np.testing.assert_allclose(h.loss, ref.loss, rtol=1e-12)
    np.testing.assert_allclose(h.params, ref.params, rtol=1e-12)


def test_divergence_stops_with_a_message_and_the_last_good_params():
    # lr = 0.3 > 2/9: the 9-curvature coordinate grows by |1 - 2.7| = 1.7 per step until float32 overflows.
    d = H3.diagonal().astype(np.float32)
    loss = lambda w: 0.5 * jnp.sum(jnp.asarray(d) * w * w)
    h = train.train(
        loss, jnp.ones(3, jnp.float32), first_order.gradient_descent(0.3), num_steps=5000, chunk_size=64, progress=False
    )
    w, k = np.ones(3, np.float32), 0
    with np.errstate(over="ignore"):
        while np.isfinite(np.float32(0.5) * np.sum(d * w * w)):
            w, k = w - np.float32(0.3) * d * w, k + 1
    assert h.diverged and h.diverged_at == k
    assert h.steps == k and len(h.loss) == k and np.all(np.isfinite(h.loss))
    assert f"diverged at step {k}" in h.message
    assert np.all(np.isfinite(h.params)) and np.isfinite(loss(h.params))
    # the parameters kept are those of step k - 1 (the last finite loss)
    w_prev = np.ones(3, np.float32)
    for _ in range(k - 1):
        w_prev = w_prev - np.float32(0.3) * d * w_prev
    np.testing.assert_allclose(h.params, w_prev, rtol=1e-5)


def test_divergence_at_step_zero():
    h = train.train(lambda w: jnp.sum(w) * jnp.nan, jnp.ones(2), first_order.gradient_descent(0.1), num_steps=10, progress=False)
    assert h.diverged_at == 0 and h.steps == 0 and len(h.loss) == 0
    np.testing.assert_array_equal(h.params, jnp.ones(2))
    assert "initial parameters is not finite" in h.message and "data" in h.message


def test_snapshots_and_resume():
    h = train.train(quad(H3), jnp.ones(3), first_order.heavy_ball(0.05, 0.5), num_steps=30, snapshot_every=10, progress=False)
    assert [s for s, _ in h.snapshots] == [0, 10, 20, 30]
    first = train.train(quad(H3), jnp.ones(3), first_order.heavy_ball(0.05, 0.5), num_steps=10, progress=False)
    np.testing.assert_allclose(h.snapshots[1][1], first.params, rtol=1e-12)
    rest = train.train(
        quad(H3), first.params, first_order.heavy_ball(0.05, 0.5), num_steps=20, opt_state=first.opt_state, progress=False
    )
    np.testing.assert_allclose(rest.params, h.params, rtol=1e-12)


def test_second_order_optax_transformations_get_their_extra_arguments():
    # optax.lbfgs needs value, grad and value_fn: train passes them.
    h = train.train(quad(H3), jnp.ones(3), optax.lbfgs(), num_steps=20, progress=False)
    assert h.loss[-1] < 1e-20


def test_trajectory_records_every_iterate_and_cuts_divergence():
    p = problems.quadratic(10.0)
    t = train.trajectory(p.value, p.start, first_order.gradient_descent(0.5), 25)
    assert t.points.shape == (26, 2) and t.diverged_at is None
    np.testing.assert_allclose(t.values, [float(p.value(jnp.asarray(x))) for x in t.points], rtol=1e-10)
    bad = train.trajectory(p.value, p.start, first_order.gradient_descent(3.0), 200, blowup=100.0)
    assert bad.diverged_at is not None and len(bad.points) == bad.diverged_at
    assert np.abs(bad.points).max() <= 100.0


def test_steps_to_tolerance_matches_a_loop():
    Hd = jnp.asarray(np.diag([0.1, 1.0]))
    k = train.steps_to_tolerance(
        lambda x: 0.5 * x @ Hd @ x, jnp.ones(2), jnp.zeros(2), first_order.gradient_descent(1.0), tol=1e-3, max_steps=10_000
    )
    x, n = np.ones(2), 0
    while np.linalg.norm(x) > 1e-3 * np.sqrt(2):
        x, n = x - np.diag([0.1, 1.0]) @ x, n + 1
    assert int(k) == n
    capped = train.steps_to_tolerance(
        lambda x: 0.5 * x @ Hd @ x, jnp.ones(2), jnp.zeros(2), first_order.gradient_descent(1e-3), tol=1e-3, max_steps=50
    )
    assert int(capped) == 50


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_steps=-1), "num_steps"),
        (dict(num_steps=3, chunk_size=0), "chunk_size"),
        (dict(num_steps=3, snapshot_every=0), "snapshot_every"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        train.train(quad(H3), jnp.ones(3), first_order.gradient_descent(0.1), progress=False, **kwargs)


# --- the contract: objective + data as arguments, one advance, extras in one place -----------------


def _spirals(dtype=jnp.float64, n=64):
    x, y = data.two_spirals(n, key=jax.random.key(0), dtype=dtype)
    params = nets.init_mlp([2, 6, 1], key=jax.random.key(1), dtype=dtype)
    objective = train.Objective.supervised(nets.mlp, nets.logistic_losses)
    return objective, params, (x, y)


def test_supervised_objective_equals_the_closure_loss():
    objective, params, (x, y) = _spirals()
    np.testing.assert_allclose(objective.value(params, (x, y)), nets.classifier_loss(x, y)(params), rtol=1e-12)
    h = train.train(objective, params, first_order.gradient_descent(0.5), data=(x, y), num_steps=40, progress=False)
    ref = train.train(nets.classifier_loss(x, y), params, first_order.gradient_descent(0.5), num_steps=40, progress=False)
    np.testing.assert_allclose(h.loss, ref.loss, rtol=1e-12)


def test_advance_takes_new_data_without_recompiling():
    objective, params, (x, y) = _spirals()
    opt = first_order.gradient_descent(0.1)
    state = opt.init(params)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: compiles.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
    )
    reversed_data = (x[::-1], y[::-1])
    train.advance(objective, opt, params, state, (x, y), num_steps=5)
    before = len(compiles)
    chunk = train.advance(objective, opt, params, state, reversed_data, num_steps=5, num_active=3)
    assert len(compiles) == before  # new data and a shorter chunk: the same compiled code
    assert int(chunk.diverged) == 5  # nothing diverged
    # the data were used: a permutation of a full batch leaves the mean loss unchanged at the start
    np.testing.assert_allclose(chunk.losses[0], objective.value(params, (x, y)), rtol=1e-12)


def test_every_update_gets_the_extras_it_may_need():
    objective, params, batch = _spirals()
    seen = {}

    def spy():
        def init(params):
            return optax.EmptyState()

        def update(grads, state, params=None, *, value, grad, value_fn, batch, key, outputs, **extra):
            seen.update(value=value, value_fn=value_fn(params), batch=batch, key=key, outputs=outputs)
            return jax.tree.map(jnp.zeros_like, grads), state

        return optax.GradientTransformationExtraArgs(init, update)

    opt = spy()
    jax.jit(lambda p, s, d, k: train.step(objective, opt, p, s, d, k, train.ALL_EXTRAS)[2])(
        params, opt.init(params), batch, jax.random.key(3)
    )
    # (values seen inside jit are tracers: check the shapes the update saw)
    assert seen["outputs"].shape == (64, 1) and seen["batch"][0].shape == (64, 2) and seen["value"].shape == ()


def test_nan_in_the_data_is_named_before_training():
    objective, params, (x, y) = _spirals()
    x = x.at[3, 1].set(jnp.nan)
    with pytest.raises(ValueError, match=r"data\[0\] holds 1 non-finite"):
        train.train(objective, params, first_order.gradient_descent(0.1), data=(x, y), num_steps=3, progress=False)


@pytest.mark.parametrize("name", list(optimizers.REGISTRY))
def test_every_registry_method_trains_in_float32(name):
    # The book and the widgets run float32: every method keeps the dtype and lowers the loss.
    objective, params, batch = _spirals(jnp.float32, n=32)
    if name == "Newton":  # undamped Newton heads for saddles of a network: race it on Rosenbrock instead
        banana = problems.rosenbrock()
        objective, params, batch = train.Objective.of(banana.value), jnp.asarray(banana.start, jnp.float32), None
    method = optimizers.get(name)
    lr = {"GD": 0.5, "Heavy ball": 0.1, "Nesterov": 0.1, "Adam": 0.01, "LLQR": 0.03}.get(name, 1.0)
    state = method.init(params, learning_rate=lr, **({"damping": 1.0} if "damping" in method.defaults else {}))
    run = dict(data=batch, num_steps=20, opt_state=state, extras=method.extras, progress=False)
    h = train.train(objective, params, method.transformation(), **run)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(h.params))
    assert not h.diverged and h.loss[-1] < h.loss[0], (name, h.loss[[0, -1]])


def test_a_learning_rate_change_does_not_recompile():
    objective, params, batch = _spirals(jnp.float32)
    method = optimizers.get("Heavy ball")
    opt = method.transformation()
    state = method.init(params)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: compiles.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
    )
    first = train.advance(objective, opt, params, state, batch, num_steps=10)
    before = len(compiles)
    state = optimizers.set_hyperparameters(state, learning_rate=0.01, momentum=0.5)
    second = train.advance(objective, opt, params, state, batch, num_steps=10)
    assert len(compiles) == before
    assert not np.allclose(first.losses[-1], second.losses[-1])


def test_newton_cg_in_the_registry_matches_the_direct_transformation():
    objective, params, batch = _spirals(n=32)
    method = optimizers.get("Newton-CG")
    h = train.train(objective, params, method.transformation(), data=batch, num_steps=5, progress=False)
    ref = train.train(
        nets.classifier_loss(*batch), params, newton.newton_cg(1.0, damping=1.0, max_cg_iters=20), num_steps=5, progress=False
    )
    np.testing.assert_allclose(h.loss, ref.loss, rtol=1e-10)


def test_registry_errors_name_the_argument():
    with pytest.raises(ValueError, match="method must be one of"):
        optimizers.get("SGD")
    with pytest.raises(TypeError, match="method must be a name"):
        optimizers.get(3)
    state = optimizers.get("GD").init(jnp.zeros(2))
    with pytest.raises(ValueError, match="unknown hyperparameter 'momentum'"):
        optimizers.set_hyperparameters(state, momentum=0.5)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.set_hyperparameters(state, learning_rate=-1.0)
    assert optimizers.color("Newton-CG") != optimizers.color("Newton")


def test_every_method_has_its_own_colour_and_the_palette_stays_clear_of_them():
    from widgets import plots

    colours = [m.color for m in optimizers.REGISTRY.values()]
    assert len(set(colours)) == len(colours)
    assert not set(colours) & set(plots.PALETTE)


def test_the_heavy_ball_edge_is_where_its_companion_matrix_leaves_the_unit_disc():
    # Independent reference: the spectral radius of [[1 + b - lr lam, -b], [1, 0]] crosses 1 at lam = edge.
    method = optimizers.get("Heavy ball")
    for lr, beta in ((0.1, 0.9), (0.5, 0.3)):
        edge = method.stability_edge(learning_rate=lr, momentum=beta)
        radius = lambda lam, lr=lr, beta=beta: max(abs(np.linalg.eigvals([[1 + beta - lr * lam, -beta], [1.0, 0.0]])))
        assert radius(0.99 * edge) < 1 < radius(1.01 * edge)
    assert optimizers.get("GD").stability_edge(learning_rate=0.5) == 4.0
    assert optimizers.get("Adam").stability_edge() is None
