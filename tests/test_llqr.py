"""Layerwise LQR: the cost against the dense quadratic model, the diagonal fit against the closed-form minimiser
of that quadratic, the optimizer against plain SGD (identity preconditioner) and its own refit/EMA rule, and
training through the registry. Float64 throughout (tests/conftest.py) unless a test says otherwise."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lessons import data, llqr, nets, optimizers, train
from lessons.natural_gradient import ggn_factor

CASES = [("squared", (3, 5, 4, 2)), ("logistic", (3, 6, 4, 1)), ("softmax", (2, 5, 4, 3))]
STATIC = ("outer", "structure", "refit_every", "fit_steps", "loss_kind", "fit_batch", "power_iters", "activation")


def tiny(sizes, n=5, seed=0):
    params = nets.init_mlp(list(sizes), key=jax.random.key(seed), dtype=jnp.float64)
    params = [(W, 0.3 * jax.random.normal(jax.random.key(seed + 10 + i), b.shape, b.dtype)) for i, (W, b) in enumerate(params)]
    x = jax.random.normal(jax.random.key(seed + 1), (n, sizes[0]), jnp.float64)
    return params, x


def random_like(tree, seed=3, scale=1.0):
    leaves, structure = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        structure, [scale * jax.random.normal(k, t.shape, t.dtype) for k, t in zip(keys, leaves, strict=True)]
    )


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


def dense_model(params, x, grads, kind, damping):
    """g and the damped GGN G = K^T K + damping I of the mean loss, dense (ggn_factor: explicit Jacobians)."""
    K = np.asarray(ggn_factor(nets.mlp, params, x, kind))
    return flat(grads), K.T @ K + damping * np.eye(K.shape[1])


def spirals(dtype=jnp.float64, n=256, scale=(1.0, 1.0)):
    x, y = data.two_spirals(n, key=jax.random.key(0), dtype=dtype)
    params = nets.init_mlp([2, 16, 16, 1], key=jax.random.key(1), dtype=dtype)
    return params, (x * jnp.asarray(scale, dtype), y)


def spirals_gradient(params, batch):
    return jax.grad(lambda p: nets.binary_cross_entropy(nets.mlp(p, batch[0]), batch[1]))(params)


# --- the cost and the structures ------------------------------------------------------------------


@pytest.mark.parametrize("structure", llqr.STRUCTURES)
@pytest.mark.parametrize(("kind", "sizes"), CASES)
def test_the_lqr_cost_is_the_dense_quadratic_model_at_minus_U_g(kind, sizes, structure):
    params, x = tiny(sizes)
    grads, damping = random_like(params), 3e-2
    g, G = dense_model(params, x, grads, kind, damping)
    U = jax.tree.map(jnp.add, llqr.identity(params, structure), random_like(llqr.identity(params, structure), seed=5, scale=0.3))
    v = flat(llqr.apply(U, grads, structure))
    # The structure by hand: elementwise scales, or B V A on each weight matrix and a scale on each bias.
    pairs = zip(U, grads, strict=True)
    by_hand = [(u[0] * gW, u[1] * gb) if structure == "diagonal" else (u[0] @ gW @ u[1], u[2] * gb) for u, (gW, gb) in pairs]
    np.testing.assert_allclose(v, flat(by_hand), rtol=1e-14)
    expected = -g @ v + 0.5 * v @ G @ v
    got = llqr.lqr_cost(params, (x, None), U, grads, loss_kind=kind, damping=damping, structure=structure)
    np.testing.assert_allclose(float(got), expected, rtol=1e-12)


def test_the_identity_leaves_the_gradient_unchanged():
    params, _ = tiny((3, 5, 2))
    grads = random_like(params)
    for structure in llqr.STRUCTURES:
        np.testing.assert_array_equal(flat(llqr.apply(llqr.identity(params, structure), grads, structure)), flat(grads))


@pytest.mark.parametrize(("kind", "sizes"), CASES)
def test_the_diagonal_fit_reaches_the_closed_form_minimiser(kind, sizes):
    # J(u) = -sum_j u_j g_j^2 + 1/2 (u o g)^T G (u o g) is a quadratic in u, least where (G o g g^T) u = g o g.
    # Gradient entries away from 0 and a large damping keep that system well conditioned (cond <= 12 here).
    params, x = tiny(sizes, n=8)
    grads = jax.tree.map(lambda t: jnp.sign(t) * (1 + jnp.abs(t) / 3), random_like(params))
    damping = 0.5
    g, G = dense_model(params, x, grads, kind, damping)
    u_star = np.linalg.solve(G * np.outer(g, g), g * g)
    J_star = -g @ (u_star * g) + 0.5 * (u_star * g) @ G @ (u_star * g)
    run = dict(loss_kind=kind, damping=damping, structure="diagonal")
    U = llqr.fit(params, (x, None), grads, llqr.identity(params), num_steps=600, learning_rate=1.0, **run)
    # Measured (relative error in u): 5e-8 after 300 steps, 4e-16 after 1000 (heavy ball, momentum 0.9, step 1/L).
    np.testing.assert_allclose(flat(U), u_star, rtol=1e-9)
    np.testing.assert_allclose(float(llqr.lqr_cost(params, (x, None), U, grads, **run)), J_star, rtol=1e-12)


@pytest.mark.parametrize("structure", llqr.STRUCTURES)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_fitted_preconditioner_lowers_the_lqr_cost(structure, seed):
    params, batch = spirals(n=128)
    params = nets.init_mlp([2, 16, 16, 1], key=jax.random.key(seed), dtype=jnp.float64)
    grads = spirals_gradient(params, batch)
    U0 = llqr.identity(params, structure)
    U = llqr.fit(params, batch, grads, U0, structure=structure)
    before = float(llqr.lqr_cost(params, batch, U0, grads, structure=structure))
    after = float(llqr.lqr_cost(params, batch, U, grads, structure=structure))
    # Measured: J falls to 1.4-2.0 times its value at the identity in 50 steps (both structures, both seeds).
    assert after < 1.2 * before < 0, (before, after)
    # No steps: nothing to fit.
    assert flat(llqr.fit(params, batch, grads, U0, num_steps=0, structure=structure)).tolist() == flat(U0).tolist()


# --- the optimizer --------------------------------------------------------------------------------


@pytest.mark.parametrize("structure", llqr.STRUCTURES)
def test_the_identity_preconditioner_with_sgd_is_plain_sgd(structure):
    params, batch = spirals(n=64)
    objective = train.Objective.supervised(nets.mlp, nets.logistic_losses)
    run = dict(data=batch, num_steps=12, extras=train.ALL_EXTRAS, progress=False)
    ours = train.train(objective, params, llqr.llqr(outer=optax.sgd(0.3), structure=structure, fit_steps=0), **run)
    plain = train.train(objective, params, optax.sgd(0.3), **run)
    np.testing.assert_array_equal(ours.loss, plain.loss)
    np.testing.assert_array_equal(flat(ours.params), flat(plain.params))


def test_refits_every_T_steps_from_the_average_and_averages_the_fits():
    params, batch = spirals(n=32)
    grads = spirals_gradient(params, batch)
    ema = 0.8
    opt = llqr.llqr(outer=optax.identity(), refit_every=3, ema=ema, fit_steps=20, damping=1e-2, structure="kronecker")
    fit = dict(num_steps=20, damping=1e-2, structure="kronecker")
    state, update = opt.init(params), jax.jit(opt.update)
    expected = llqr.identity(params, "kronecker")
    for step in range(7):
        if step % 3 == 0:  # refits at 0, 3, 6, each from the current average: U <- ema U + (1 - ema) fit(U)
            fitted = llqr.fit(params, batch, grads, expected, **fit)
            expected = jax.tree.map(lambda u, f: ema * u + (1 - ema) * f, expected, fitted)
        updates, state = update(grads, state, params, batch=batch)
        assert int(state.count) == step + 1 and int(state.refits) == step // 3 + 1
        np.testing.assert_allclose(flat(state.preconditioner), flat(expected), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(flat(updates), flat(llqr.apply(expected, grads, "kronecker")), rtol=1e-10, atol=1e-14)
    assert float(state.cost) < -1.0  # J(U; g / |g|) after the fit; -1 + ... at the identity


def test_outer_identity_chained_with_adam_is_the_default_and_hyperparameters_inject():
    params, batch = spirals(n=32)
    grads = spirals_gradient(params, batch)
    default = llqr.llqr(1e-2, fit_steps=10, fit_batch=16)
    chained = optax.chain(llqr.llqr(outer=optax.identity(), fit_steps=10, fit_batch=16), optax.adam(1e-2))
    injected = optax.inject_hyperparams(llqr.llqr, static_args=STATIC)(1e-2, fit_steps=10, fit_batch=16)
    results = []
    for opt in (default, chained, injected):
        state, update = opt.init(params), jax.jit(opt.update)
        for _ in range(3):
            updates, state = update(grads, state, params, batch=batch)
        results.append(flat(updates))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)
    np.testing.assert_allclose(results[2], results[0], rtol=1e-12)


def test_fit_batch_uses_the_first_rows_only():
    params, (x, y) = spirals(n=32)
    grads = spirals_gradient(params, (x, y))
    opt = llqr.llqr(outer=optax.identity(), fit_steps=5, fit_batch=8, ema=0.0)  # ema = 0: U is the last fit
    _, state = opt.update(grads, opt.init(params), params, batch=(x, y))
    expected = llqr.fit(params, (x[:8], None), grads, llqr.identity(params), num_steps=5)
    np.testing.assert_allclose(flat(state.preconditioner), flat(expected), rtol=1e-12)


# --- training ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_the_registry_method_trains_the_spirals_mlp(dtype):
    params, batch = spirals(dtype)
    objective = train.Objective.supervised(nets.mlp, nets.logistic_losses)
    method = optimizers.get("LLQR")
    history = train.train(
        objective, params, method.transformation(), data=batch, num_steps=150, extras=method.extras, progress=False
    )
    assert not history.diverged, history.message
    assert history.loss.dtype == np.dtype(dtype)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(history.params))
    final = float(objective.value(history.params, batch))
    assert final < 0.5 * float(history.loss[0]), (float(history.loss[0]), final)
    assert method.stability_edge() is None
    state = optimizers.set_hyperparameters(method.init(params), learning_rate=0.01)
    assert float(optimizers.hyperparameters(state)["learning_rate"]) == pytest.approx(0.01)


@pytest.mark.parametrize("seed", [1, 2])
def test_on_an_ill_conditioned_problem_it_beats_its_outer_optimizer_alone(seed):
    # Inputs scaled by (1, 30), squared loss: SGD's step is capped by the steep directions (lr 1 diverges) and the
    # loss creeps along a plateau near 0.1. Kronecker LLQR around the same SGD ends lower after 400 steps.
    # Measured (seeds 1, 2; also under XLA_FLAGS=--xla_cpu_max_isa=SSE4_2): 0.0972 vs 0.1014 and 0.0947 vs 0.0987.
    # A modest gain; the diagonal structure with SGD is not stable above lr 0.1 here, and against Adam the gain
    # is mixed (seed-dependent), so neither is asserted.
    _, batch = spirals(scale=(1.0, 30.0))
    params = nets.init_mlp([2, 16, 16, 1], key=jax.random.key(seed), dtype=jnp.float64)
    objective = train.Objective.supervised(nets.mlp, lambda out, y: 0.5 * (out.reshape(y.shape) - y) ** 2)
    run = dict(data=batch, num_steps=400, extras=train.ALL_EXTRAS, progress=False)
    ours = train.train(objective, params, llqr.llqr(outer=optax.sgd(0.1), structure="kronecker", loss_kind="squared"), **run)
    alone = train.train(objective, params, optax.sgd(0.1), **run)
    assert not ours.diverged and not alone.diverged
    final = [float(objective.value(h.params, batch)) for h in (ours, alone)]
    assert final[0] < 0.98 * final[1], final


def test_bad_arguments_are_named():
    params, x = tiny((3, 4, 1))
    grads = random_like(params)
    with pytest.raises(ValueError, match="^structure "):
        llqr.llqr(structure="full")
    with pytest.raises(ValueError, match="^refit_every "):
        llqr.llqr(refit_every=0)
    with pytest.raises(ValueError, match="^ema "):
        llqr.llqr(ema=1.0)
    with pytest.raises(ValueError, match="^damping "):
        llqr.lqr_cost(params, (x, None), llqr.identity(params), grads, damping=0.0)
    with pytest.raises(ValueError, match="^U "):
        llqr.lqr_cost(params, (x, None), llqr.identity(params, "kronecker"), grads)
    with pytest.raises(ValueError, match="^x "):
        llqr.fit(params, (x[:, :2], None), grads, llqr.identity(params))
    opt = llqr.llqr()
    with pytest.raises(ValueError, match="batch="):
        opt.update(grads, opt.init(params), params)
