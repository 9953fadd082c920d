"""Natural gradient: the Woodbury solve, GGN = Fisher, the layerwise Gram matrix, the optimizer, and K-FAC."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lessons import data, nets, train
from lessons.natural_gradient import (
    ggn_factor,
    gram_layerwise,
    jacobian_matrix,
    kfac,
    kfac_factors,
    natural_gradient,
    output_hessian_factor,
    woodbury_solve,
)


def tiny(sizes=(3, 5, 2), n=6, seed=0):
    params = nets.init_mlp(list(sizes), key=jax.random.key(seed), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(seed + 1), (n, sizes[0]), jnp.float64)
    return params, x


@pytest.mark.parametrize("damping", [1e-4, 1e-2, 1.0, 10.0])
def test_woodbury_solve_matches_dense_solve(damping):
    rng = np.random.default_rng(0)
    r, p = 4, 30
    K, g = rng.normal(size=(r, p)), rng.normal(size=p)
    x = woodbury_solve(jnp.asarray(K), jnp.asarray(g), damping)
    expected = np.linalg.solve(damping * np.eye(p) + K.T @ K, g)
    # Norm-wise: at damping 1e-4 the p x p system has condition ~1e6, so single small components of
    # either answer carry relative errors ~1e-9; the vectors agree to 1e-10 relative in norm.
    assert np.linalg.norm(np.asarray(x) - expected) <= 1e-10 * np.linalg.norm(expected)


def test_woodbury_solve_under_jit_with_traced_damping():
    rng = np.random.default_rng(1)
    K, g = rng.normal(size=(3, 10)), rng.normal(size=10)
    x = jax.jit(woodbury_solve)(K, g, 0.5)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(0.5 * np.eye(10) + K.T @ K, g), rtol=1e-10)


@pytest.mark.parametrize(
    ("K", "g", "damping", "name"),
    [
        (np.ones((2, 5)), np.ones(5), 0.0, "damping"),
        (np.ones((2, 5)), np.ones(5), -1.0, "damping"),
        (np.ones((2, 5)), np.ones(4), 1.0, "g"),
        (np.ones(5), np.ones(5), 1.0, "K"),
        (np.ones((2, 5)), np.ones((5, 1)), 1.0, "g"),
    ],
)
def test_woodbury_solve_rejects_bad_input_by_name(K, g, damping, name):
    with pytest.raises(ValueError, match=f"^{name} "):
        woodbury_solve(K, g, damping)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="^loss_kind "):
        natural_gradient(apply=nets.mlp, loss_kind="hinge")
    with pytest.raises(ValueError, match="^damping "):
        natural_gradient(apply=nets.mlp, damping=0.0)
    with pytest.raises(ValueError, match="^learning_rate "):
        natural_gradient(-1.0, apply=nets.mlp)
    with pytest.raises(ValueError, match="^method "):
        natural_gradient(apply=nets.mlp, method="dense")
    with pytest.raises(TypeError, match="^apply "):
        natural_gradient(apply="mlp")
    with pytest.raises(ValueError, match="^kind "):
        output_hessian_factor(jnp.zeros((3, 1)), "hinge")
    with pytest.raises(ValueError, match="^logits "):
        output_hessian_factor(jnp.zeros((3, 2)), "logistic")
    params, x = tiny((3, 4, 1))
    opt = natural_gradient(apply=nets.mlp)
    with pytest.raises(ValueError, match="batch="):
        opt.update(params, opt.init(params), params)


@pytest.mark.parametrize(("kind", "c"), [("squared", 3), ("logistic", 1), ("softmax", 4)])
def test_output_hessian_factor_squares_to_the_loss_hessian(kind, c):
    z = jax.random.normal(jax.random.key(2), (5, c), jnp.float64)
    y = jax.nn.one_hot(jnp.arange(5) % c, c) if kind != "logistic" else jnp.ones((5, 1))
    losses = {
        "squared": lambda zi, yi: 0.5 * jnp.sum((zi - yi) ** 2),
        "logistic": lambda zi, yi: jnp.sum(optax.sigmoid_binary_cross_entropy(zi, yi)),
        "softmax": lambda zi, yi: optax.softmax_cross_entropy(zi, yi),
    }
    H = jax.vmap(jax.hessian(losses[kind]))(z, y)
    S = output_hessian_factor(z, kind)
    np.testing.assert_allclose(np.asarray(jnp.einsum("nab,nac->nbc", S, S)), np.asarray(H), rtol=1e-12, atol=1e-14)


def test_jacobian_matrix_matches_jacrev_of_the_whole_batch():
    params, x = tiny()
    flat, unravel = ravel_pytree(params)
    J = jax.jacrev(lambda w: nets.mlp(unravel(w), x).reshape(-1))(flat)
    np.testing.assert_allclose(np.asarray(jacobian_matrix(nets.mlp, params, x)), np.asarray(J), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("kind", "sizes"), [("softmax", (3, 5, 4)), ("logistic", (3, 5, 1))])
def test_ggn_equals_the_fisher_for_cross_entropy(kind, sizes):
    params, x = tiny(sizes, n=7)
    flat, unravel = ravel_pytree(params)
    n = x.shape[0]

    def log_probs(w, xi):  # log p(y | x_i) for every label y, under the model
        z = nets.mlp(unravel(w), xi[None])[0]
        if kind == "logistic":
            return jnp.stack([jax.nn.log_sigmoid(-z[0]), jax.nn.log_sigmoid(z[0])])
        return jax.nn.log_softmax(z)

    scores = np.asarray(jax.vmap(lambda xi: jax.jacrev(log_probs)(flat, xi))(x))  # (n, labels, P)
    probs = np.exp(np.asarray(jax.vmap(lambda xi: log_probs(flat, xi))(x)))  # (n, labels)
    fisher = np.einsum("ny,nyp,nyq->pq", probs, scores, scores) / n
    K = np.asarray(ggn_factor(nets.mlp, params, x, kind))
    np.testing.assert_allclose(K.T @ K, fisher, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sizes", [(3, 5, 1), (2, 4, 3, 2)])
def test_gram_layerwise_equals_j_jt(sizes):
    params, x = tiny(sizes, n=5)
    J = np.asarray(jacobian_matrix(nets.mlp, params, x))
    np.testing.assert_allclose(np.asarray(gram_layerwise(params, x)), J @ J.T, rtol=1e-10, atol=1e-12)


def dense_step(params, x, y, loss, learning_rate, damping):
    """The damped GGN step from the full Jacobian and the Hessian of the mean loss w.r.t. all outputs."""
    flat, unravel = ravel_pytree(params)
    out = nets.mlp(params, x)
    J = np.asarray(jax.jacrev(lambda w: nets.mlp(unravel(w), x).reshape(-1))(flat))
    H = np.asarray(jax.hessian(lambda z: jnp.mean(loss(z.reshape(out.shape), y)))(out.reshape(-1)))
    g = np.asarray(jax.grad(lambda w: jnp.mean(loss(nets.mlp(unravel(w), x), y)))(flat))
    G = J.T @ H @ J
    return -learning_rate * np.linalg.solve(G + damping * np.eye(flat.size), g), g


@pytest.mark.parametrize(
    ("kind", "sizes"),
    [("logistic", (3, 6, 1)), ("softmax", (3, 6, 3)), ("squared", (3, 6, 2))],
)
def test_update_equals_the_dense_damped_ggn_solve(kind, sizes):
    params, x = tiny(sizes, n=4)  # n c < P: Woodbury's regime
    c = sizes[-1]
    if kind == "logistic":
        y, loss = (jnp.arange(4) % 2).astype(jnp.float64), nets.logistic_losses
    elif kind == "softmax":
        y = jax.nn.one_hot(jnp.arange(4) % c, c)
        loss = optax.softmax_cross_entropy
    else:
        y = jax.random.normal(jax.random.key(5), (4, c), jnp.float64)

        def loss(z, t):
            return 0.5 * jnp.sum((z - t) ** 2, axis=-1)

    expected, g = dense_step(params, x, y, loss, 0.7, 1e-2)
    _, unravel = ravel_pytree(params)
    opt = natural_gradient(0.7, damping=1e-2, apply=nets.mlp, loss_kind=kind)
    updates, _ = jax.jit(opt.update)(unravel(jnp.asarray(g)), opt.init(params), params, batch=(x, y))
    np.testing.assert_allclose(np.asarray(ravel_pytree(updates)[0]), expected, rtol=1e-8, atol=1e-12)

    # The same step without forming J (layerwise Gram, one JVP, one VJP).
    gram = natural_gradient(0.7, damping=1e-2, apply=nets.mlp, loss_kind=kind, method="gram")
    updates, _ = jax.jit(gram.update)(unravel(jnp.asarray(g)), gram.init(params), params, batch=(x, y))
    np.testing.assert_allclose(np.asarray(ravel_pytree(updates)[0]), expected, rtol=1e-8, atol=1e-12)

    # The same step with the hyperparameters injected (traced inside the jitted update).
    injected = optax.inject_hyperparams(natural_gradient, static_args=("apply", "loss_kind"))(
        0.7, damping=1e-2, apply=nets.mlp, loss_kind=kind
    )
    updates, _ = jax.jit(injected.update)(unravel(jnp.asarray(g)), injected.init(params), params, batch=(x, y))
    np.testing.assert_allclose(np.asarray(ravel_pytree(updates)[0]), expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("method", ["jacobian", "gram"])
def test_trains_the_spirals_mlp_in_float32(method):
    x, y = data.two_spirals(64, key=jax.random.key(0), dtype=jnp.float32)
    params = nets.init_mlp([2, 8, 1], key=jax.random.key(1), dtype=jnp.float32)
    history = train.train(
        train.Objective.supervised(nets.mlp, nets.logistic_losses),
        params,
        natural_gradient(1.0, damping=1e-2, apply=nets.mlp, method=method),
        data=(x, y),
        num_steps=30,
        extras=train.ALL_EXTRAS,
    )
    assert not history.diverged, history.message
    assert history.loss.dtype == np.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(history.params))
    final = train.Objective.supervised(nets.mlp, nets.logistic_losses).value(history.params, (x, y))
    assert final.dtype == jnp.float32
    assert float(final) < 0.5 * float(history.loss[0]), (float(history.loss[0]), float(final))


# --- K-FAC -------------------------------------------------------------------------------------------


def test_kfac_is_exact_for_one_linear_layer_under_the_squared_loss():
    # One layer: no activation, outputs z = x W + b, output Hessian I, so every example's sum_r g g^T
    # is I and the layer's GGN block (1/n) sum_i [x_i; 1][x_i; 1]^T kron I is exactly A kron G.
    params, x = tiny((4, 3), n=7)
    ((A, G),) = kfac_factors(params, x, "squared")
    assert A.shape == (5, 5) and G.shape == (3, 3)
    np.testing.assert_allclose(np.asarray(G), np.eye(3), rtol=1e-14)
    K = np.asarray(ggn_factor(nets.mlp, params, x, "squared"))  # columns: W row-major, then b
    np.testing.assert_allclose(K.T @ K, np.kron(np.asarray(A), np.asarray(G)), rtol=1e-12, atol=1e-14)
    xa = np.concatenate([np.asarray(x), np.ones((7, 1))], axis=1)
    np.testing.assert_allclose(np.asarray(A), xa.T @ xa / 7, rtol=1e-12)


@pytest.mark.parametrize(("kind", "sizes"), [("logistic", (3, 5, 1)), ("softmax", (2, 4, 3, 3)), ("squared", (3, 4, 2))])
def test_kfac_factors_average_the_per_example_kronecker_blocks(kind, sizes):
    # The exact GGN diagonal block of each layer is (1/n) sum_i abar_i abar_i^T kron Gamma_i; K-FAC's
    # factors are the means of the two sides, checked here against the dense K of ggn_factor.
    params, x = tiny(sizes, n=5)
    n = x.shape[0]
    K = np.asarray(ggn_factor(nets.mlp, params, x, kind)).reshape(n, -1, nets.num_params(params))
    start, a = 0, np.asarray(x)
    for index, ((W, b), (A, G)) in enumerate(zip(params, kfac_factors(params, x, kind), strict=True)):
        d_in, d_out = W.shape
        size = (d_in + 1) * d_out
        rows = K[:, :, start : start + size].reshape(n, -1, d_in + 1, d_out) * np.sqrt(n)
        start += size
        abar = np.concatenate([a, np.ones((n, 1))], axis=1)
        g = rows[:, :, -1, :]  # the bias block of row r of example i is g_ir
        np.testing.assert_allclose(rows, abar[:, None, :, None] * g[:, :, None, :], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(np.asarray(A), abar.T @ abar / n, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(G), np.einsum("nrd,nre->de", g, g) / n, rtol=1e-10, atol=1e-14)
        if index < len(params) - 1:
            a = np.tanh(a @ np.asarray(W) + np.asarray(b))


@pytest.mark.parametrize(("kind", "sizes"), [("logistic", (3, 5, 1)), ("softmax", (3, 4, 3)), ("squared", (2, 4, 3, 2))])
def test_kfac_step_is_the_damped_kronecker_solve_per_layer(kind, sizes):
    params, x = tiny(sizes, n=6)
    grads = nets.init_mlp(list(sizes), key=jax.random.key(9), dtype=jnp.float64)  # any gradient will do
    grads = [(W, jax.random.normal(jax.random.key(i), b.shape, b.dtype)) for i, (W, b) in enumerate(grads)]
    lr, lam = 0.7, 3e-2
    factors = [(np.asarray(A), np.asarray(G)) for A, G in kfac_factors(params, x, kind)]
    opt = kfac(lr, damping=lam, loss_kind=kind)
    injected = optax.inject_hyperparams(kfac, static_args=("loss_kind", "activation"))(lr, damping=lam, loss_kind=kind)
    for transformation in (opt, injected):
        updates, _ = jax.jit(transformation.update)(grads, transformation.init(params), params, batch=(x, None))
        assert jax.tree.structure(updates) == jax.tree.structure(grads)
        for (A, G), layer_grad, layer_update in zip(factors, grads, updates, strict=True):
            v = np.asarray(ravel_pytree(layer_grad)[0])  # W row-major then b: vec of [W; b] row-major
            eps = np.sqrt(lam)
            M = np.kron(A + eps * np.eye(A.shape[0]), G + eps * np.eye(G.shape[0]))
            expected = -lr * np.linalg.solve(M, v)
            np.testing.assert_allclose(np.asarray(ravel_pytree(layer_update)[0]), expected, rtol=1e-9, atol=1e-13)


def test_kfac_trains_the_spirals_mlp_in_float32():
    # lr 1.0, damping 1e-2 (the defaults): the loss falls at every step, from 0.75 to about 0.48 in 30 steps.
    x, y = data.two_spirals(64, key=jax.random.key(0), dtype=jnp.float32)
    params = nets.init_mlp([2, 8, 1], key=jax.random.key(1), dtype=jnp.float32)
    objective = train.Objective.supervised(nets.mlp, nets.logistic_losses)
    history = train.train(
        objective, params, kfac(1.0, damping=1e-2), data=(x, y), num_steps=30, extras=train.ALL_EXTRAS, progress=False
    )
    assert not history.diverged, history.message
    assert history.loss.dtype == np.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(history.params))
    final = objective.value(history.params, (x, y))
    assert final.dtype == jnp.float32
    assert np.all(np.diff(history.loss) <= 1e-6), history.loss
    assert float(final) < 0.7 * float(history.loss[0]), (float(history.loss[0]), float(final))


def test_kfac_bad_arguments_are_named():
    for damping in (0.0, -1.0):
        with pytest.raises(ValueError, match="^damping "):
            kfac(damping=damping)
    with pytest.raises(ValueError, match="^loss_kind "):
        kfac(loss_kind="hinge")
    with pytest.raises(ValueError, match="^learning_rate "):
        kfac(-1.0)
    with pytest.raises(TypeError, match="^activation "):
        kfac(activation="tanh")
    params, x = tiny((3, 4, 1))
    with pytest.raises(ValueError, match="^loss_kind "):
        kfac_factors(params, x, "hinge")
    with pytest.raises(ValueError, match="^x "):
        kfac_factors(params, x[:, :2], "logistic")
    opt = kfac()
    with pytest.raises(ValueError, match="batch="):
        opt.update(params, opt.init(params), params)
