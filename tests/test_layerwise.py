"""Layerwise Woodbury metrics: the factor recursion against autodiff Jacobians, each layer's metric against the
dense GGN's diagonal block, the step against a dense block solve, and the action view against a closed form
and scipy's ODE solver. Float64 throughout (tests/conftest.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.integrate
import scipy.linalg
from jax.flatten_util import ravel_pytree

from lessons import data, nets, optimizers, train
from lessons.layerwise import (
    action,
    action_excess,
    gradient_flow,
    layer_factors,
    layerwise_metric,
    layerwise_step,
    perturb_path,
    pulled_back_factors,
)
from lessons.natural_gradient import ggn_factor, natural_gradient, output_hessian_factor

CASES = [("squared", (3, 5, 4, 2)), ("logistic", (3, 6, 4, 1)), ("softmax", (2, 5, 4, 3))]


def tiny(sizes, n=5, seed=0):
    params = nets.init_mlp(list(sizes), key=jax.random.key(seed), dtype=jnp.float64)
    params = [(W, 0.3 * jax.random.normal(jax.random.key(seed + 10 + i), b.shape, b.dtype)) for i, (W, b) in enumerate(params)]
    x = jax.random.normal(jax.random.key(seed + 1), (n, sizes[0]), jnp.float64)
    return params, x


def random_like(params, seed=3):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves, strict=True)])


def dense_blocks(params, x, kind, mu, apply=nets.mlp):
    """The diagonal blocks of the damped GGN mu I + K^T K, K the dense factor of ggn_factor (all layers at once)."""
    K = np.asarray(ggn_factor(apply, params, x, kind))
    G = mu * np.eye(K.shape[1]) + K.T @ K
    blocks, start = [], 0
    for layer in params:
        p = ravel_pytree(layer)[0].size
        blocks.append(G[start : start + p, start : start + p])
        start += p
    assert start == K.shape[1]
    return blocks


# --- the factors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "sizes"), CASES)
def test_pulled_back_factors_are_the_output_factor_times_autodiff_jacobians(kind, sizes):
    params, x = tiny(sizes, n=4)
    n, N = x.shape[0], len(params)
    states = [x]  # x_0 .. x_N by a plain loop
    for index, (W, b) in enumerate(params):
        z = states[-1] @ W + b
        states.append(z if index == N - 1 else jnp.tanh(z))
    S = np.asarray(output_hessian_factor(states[-1], kind)) / np.sqrt(n)
    factors = pulled_back_factors(params, x, kind)
    assert len(factors) == N + 1
    for i, L in enumerate(factors):
        if i == N:
            expected = S
        else:  # d x_N / d x_i through the remaining layers, one example at a time
            J = np.asarray(jax.vmap(jax.jacrev(lambda xi, i=i: nets.mlp(params[i:], xi[None])[0]))(states[i]))
            expected = np.einsum("nab,nbd->nad", S, J)
        assert L.shape == (n, sizes[-1], states[i].shape[1])
        np.testing.assert_allclose(np.asarray(L), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("kind", "sizes"), CASES)
def test_each_layer_metric_is_a_diagonal_block_of_the_damped_ggn(kind, sizes):
    mu = 3e-2
    params, x = tiny(sizes, n=5)
    factors = layer_factors(params, x, kind)
    for K, block, layer in zip(factors, dense_blocks(params, x, kind, mu), params, strict=True):
        assert K.shape == (x.shape[0] * sizes[-1], ravel_pytree(layer)[0].size)
        K = np.asarray(K)
        np.testing.assert_allclose(mu * np.eye(K.shape[1]) + K.T @ K, block, rtol=1e-12, atol=1e-15)


# --- the step -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "sizes"), CASES)
@pytest.mark.parametrize("mu", [1e-3, 1e-1])
def test_the_step_is_the_block_diagonal_solve(kind, sizes, mu):
    params, x = tiny(sizes, n=4)
    grads, lr = random_like(params), 0.7
    blocks = dense_blocks(params, x, kind, mu)
    expected = [np.linalg.solve(G, np.asarray(ravel_pytree(g)[0])) for G, g in zip(blocks, grads, strict=True)]

    def close(tree, scale):
        assert jax.tree.structure(tree) == jax.tree.structure(grads)
        for layer, e in zip(tree, expected, strict=True):
            got = np.asarray(ravel_pytree(layer)[0])
            assert np.linalg.norm(got - scale * e) <= 1e-10 * np.linalg.norm(e)

    close(layerwise_step(params, grads, x, mu, kind), 1.0)
    close(jax.jit(layerwise_step, static_argnums=(4,))(params, grads, x, mu, kind), 1.0)  # mu traced
    opt = layerwise_metric(lr, mu=mu, loss_kind=kind)
    injected = optax.inject_hyperparams(layerwise_metric, static_args=("loss_kind", "activation"))(lr, mu=mu, loss_kind=kind)
    for transformation in (opt, injected):
        updates, _ = jax.jit(transformation.update)(grads, transformation.init(params), params, batch=(x, None))
        close(updates, -lr)
    # The loss as an extra argument of update overrides the constructor's (logistic by default).
    default = layerwise_metric(lr, mu=mu)
    updates, _ = default.update(grads, default.init(params), params, batch=(x, None), loss_kind=kind)
    close(updates, -lr)


def test_the_network_may_come_as_an_extra_argument_of_update():
    params, x = tiny((3, 5, 2), n=4)
    grads, mu = random_like(params), 1e-2
    blocks = dense_blocks(params, x, "squared", mu, apply=lambda p, xs: nets.mlp(p, xs, jnp.sin))
    opt = layerwise_metric(1.0, mu=mu, loss_kind="logistic")
    updates, _ = opt.update(grads, opt.init(params), params, batch=(x, None), activation=jnp.sin, loss_kind="squared")
    for G, g, u in zip(blocks, grads, updates, strict=True):
        expected = -np.linalg.solve(G, np.asarray(ravel_pytree(g)[0]))
        np.testing.assert_allclose(np.asarray(ravel_pytree(u)[0]), expected, rtol=1e-10)


@pytest.mark.parametrize(("kind", "c"), [("squared", 2), ("logistic", 1), ("softmax", 3)])
def test_one_layer_is_the_full_natural_gradient(kind, c):
    params, x = tiny((4, c), n=3)  # a linear model: one block is the whole GGN
    grads = random_like(params)
    full = natural_gradient(0.7, damping=2e-2, apply=nets.mlp, loss_kind=kind)
    ours = layerwise_metric(0.7, mu=2e-2, loss_kind=kind)
    expected, _ = full.update(grads, full.init(params), params, batch=(x, None))
    got, _ = ours.update(grads, ours.init(params), params, batch=(x, None))
    np.testing.assert_allclose(np.asarray(ravel_pytree(got)[0]), np.asarray(ravel_pytree(expected)[0]), rtol=1e-10, atol=1e-14)


# --- training through the registry ----------------------------------------------------------------


def spirals(dtype):
    x, y = data.two_spirals(256, key=jax.random.key(0), dtype=dtype)
    params = nets.init_mlp([2, 16, 16, 1], key=jax.random.key(1), dtype=dtype)
    return train.Objective.supervised(nets.mlp, nets.logistic_losses), params, (x, y)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_the_registry_method_trains_the_spirals_mlp(dtype):
    # Measured (both dtypes, the registry's lr 1/3): 0.707 -> 0.181 after 50 steps, falling at every step.
    objective, params, batch = spirals(dtype)
    method = optimizers.get("Layerwise metric")
    history = train.train(
        objective, params, method.transformation(), data=batch, num_steps=50, extras=method.extras, progress=False
    )
    assert not history.diverged, history.message
    assert history.loss.dtype == np.dtype(dtype)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(history.params))
    assert np.all(np.diff(history.loss) <= 1e-6), history.loss
    final = float(objective.value(history.params, batch))
    assert final < 0.3 * float(history.loss[0]), (float(history.loss[0]), final)


def test_moving_mu_and_the_learning_rate_does_not_recompile():
    objective, params, batch = spirals(jnp.float32)
    method = optimizers.get("Layerwise metric")
    opt, state = method.transformation(), method.init(params)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: compiles.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
    )
    run = dict(num_steps=5, extras=method.extras)
    first = train.advance(objective, opt, params, state, batch, **run)
    before = len(compiles)
    second = train.advance(objective, opt, params, optimizers.set_hyperparameters(state, mu=1.0, learning_rate=0.2), batch, **run)
    assert len(compiles) == before
    assert float(second.losses[-1]) > float(first.losses[-1])  # a smaller, more damped step: less progress
    with pytest.raises(ValueError, match="^mu "):
        optimizers.set_hyperparameters(state, mu=0.0)


# --- the action view --------------------------------------------------------------------------------


def quadratic_problem():
    rng = np.random.default_rng(0)
    B, C = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    H, G = B @ B.T + 0.5 * np.eye(3), C @ C.T + 0.3 * np.eye(3)  # Hessian and a non-identity metric
    b = rng.normal(size=3)
    return H, G, b, np.array([1.5, -1.0, 0.5])


def test_gradient_flow_on_a_quadratic_is_the_matrix_exponential():
    H, G, b, w0 = quadratic_problem()
    w_star, M = np.linalg.solve(H, b), np.linalg.solve(G, H)
    errors = []
    for m in (200, 400):
        path = np.asarray(gradient_flow(lambda w: jnp.asarray(H) @ w - jnp.asarray(b), G, w0, 2.0, m))
        assert path.shape == (m + 1, 3)
        expected = [w_star + scipy.linalg.expm(-(k * 2.0 / m) * M) @ (w0 - w_star) for k in range(m + 1)]
        errors.append(np.abs(path - np.array(expected)).max())
    # RK4: fourth order, so halving the step divides the error by about 16 (measured 1.2e-7 -> 7.5e-9).
    assert errors[1] < 2e-8 and errors[0] / errors[1] > 12, errors


def nonlinear_problem():
    G = np.array([[2.0, 0.6], [0.6, 1.0]])
    loss = lambda w: jnp.sum(jnp.log(jnp.cosh(w - 1.0))) + 0.25 * w[0] ** 2 * w[1] ** 2 + 0.1 * jnp.sum(w**2)
    return loss, jax.grad(loss), G, np.array([2.5, -1.5])


def test_gradient_flow_matches_solve_ivp_on_a_nonlinear_problem():
    _, grad, G, w0 = nonlinear_problem()
    path = np.asarray(gradient_flow(grad, G, w0, 3.0, 600))
    grad = jax.jit(grad)
    field = lambda t, w: -np.linalg.solve(G, np.asarray(grad(w)))
    reference = scipy.integrate.solve_ivp(field, (0.0, 3.0), w0, method="DOP853", rtol=1e-12, atol=1e-13, t_eval=[1.0, 3.0])
    np.testing.assert_allclose(path[[200, 600]], reference.y.T, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("problem", ["quadratic", "nonlinear"])
def test_the_gradient_flow_path_has_the_least_action(problem):
    if problem == "quadratic":
        H, G, b, w0 = quadratic_problem()
        loss = lambda w: 0.5 * w @ jnp.asarray(H) @ w - jnp.asarray(b) @ w
        grad = jax.grad(loss)
    else:
        loss, grad, G, w0 = nonlinear_problem()
    T, m = 2.0, 400
    path, dt = gradient_flow(grad, G, w0, T, m), T / m
    drop = float(loss(path[0]) - loss(path[-1]))
    best = float(action(path, dt, grad, G))
    # Along the flow: action = drop (complete the square), exactly for a quadratic up to RK4's error, and
    # up to the O(dt^2) midpoint rule otherwise (measured: 2.4e-5 relative, 6.1e-6 at half the step).
    rtol = 1e-7 if problem == "quadratic" else 5e-5
    np.testing.assert_allclose(best, drop, rtol=rtol)
    assert float(action_excess(path, dt, grad, G)) < 1e-7 * drop
    rng = np.random.default_rng(1)
    for amplitude in (1e-2, 0.1, 1.0):
        for _ in range(3):
            other = perturb_path(path, rng.normal(size=path.shape[1]), amplitude)
            np.testing.assert_array_equal(np.asarray(other)[[0, -1]], np.asarray(path)[[0, -1]])
            cost = float(action(other, dt, grad, G))
            assert cost > best, (amplitude, cost, best)
            # action = drop + excess for every path with these end points (exact for a quadratic).
            excess = float(action_excess(other, dt, grad, G))
            np.testing.assert_allclose(cost - excess, drop, rtol=1e-12 if problem == "quadratic" else 5e-5)


def test_bad_arguments_are_named():
    params, x = tiny((3, 4, 1))
    grads = random_like(params)
    with pytest.raises(ValueError, match="^mu "):
        layerwise_metric(mu=0.0)
    with pytest.raises(ValueError, match="^loss_kind "):
        layerwise_metric(loss_kind="hinge")
    with pytest.raises(TypeError, match="^activation "):
        layerwise_metric(activation="tanh")
    with pytest.raises(ValueError, match="^learning_rate "):
        layerwise_metric(-1.0)
    opt = layerwise_metric()
    with pytest.raises(ValueError, match="batch="):
        opt.update(grads, opt.init(params), params)
    with pytest.raises(ValueError, match="^loss_kind "):
        opt.update(grads, opt.init(params), params, batch=(x, None), loss_kind="hinge")
    with pytest.raises(ValueError, match="^x "):
        layerwise_step(params, grads, x[:, :2], 1e-2)
    with pytest.raises(ValueError, match="^grads "):
        layerwise_step(params, grads[:1], x, 1e-2)
    with pytest.raises(ValueError, match="^metric "):
        gradient_flow(lambda w: w, -np.eye(2), np.ones(2), 1.0, 10)
