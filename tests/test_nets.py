"""The MLP as a list of (W, b): forward pass against NumPy, initialisation, losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import nets


def test_forward_matches_numpy():
    params = nets.init_mlp([3, 5, 4, 2], key=jax.random.key(0), dtype=jnp.float64)
    x = np.random.default_rng(0).normal(size=(7, 3))
    a = x
    for W, b in params[:-1]:
        a = np.tanh(a @ np.asarray(W) + np.asarray(b))
    ref = a @ np.asarray(params[-1][0]) + np.asarray(params[-1][1])
    np.testing.assert_allclose(nets.mlp(params, jnp.asarray(x)), ref, rtol=1e-12)
    assert nets.num_params(params) == 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2


def test_init_is_lecun_normal():
    (W, b), *_ = nets.init_mlp([400, 300, 1], key=jax.random.key(1))
    assert W.shape == (400, 300) and W.dtype == jnp.float32
    assert np.std(np.asarray(W)) == pytest.approx(1 / np.sqrt(400), rel=0.02)
    assert np.all(np.asarray(b) == 0)


def test_binary_cross_entropy_and_accuracy_match_formulas():
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=50), (rng.random(50) > 0.5).astype(float)
    ref = np.mean(np.log1p(np.exp(-(2 * y - 1) * z)))
    assert float(nets.binary_cross_entropy(jnp.asarray(z)[:, None], jnp.asarray(y))) == pytest.approx(ref, rel=1e-12)
    assert float(nets.accuracy(jnp.asarray(z), jnp.asarray(y))) == pytest.approx(np.mean((z > 0) == (y > 0.5)))


def test_classifier_loss_gradient_matches_finite_differences():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(20, 2)))
    y = jnp.asarray((np.random.default_rng(4).random(20) > 0.5).astype(float))
    params = nets.init_mlp([2, 4, 1], key=jax.random.key(5), dtype=jnp.float64)
    loss = nets.classifier_loss(x, y)
    g = jax.grad(loss)(params)
    W0 = np.asarray(params[0][0])
    E = np.zeros_like(W0)
    E[1, 2] = 1e-6
    plus = [(params[0][0] + E, params[0][1]), params[1]]
    minus = [(params[0][0] - E, params[0][1]), params[1]]
    fd = (float(loss(plus)) - float(loss(minus))) / 2e-6
    assert float(g[0][0][1, 2]) == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("sizes", [[3], [], [2, 0, 1], [2, 3.5, 1]])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes"):
        nets.init_mlp(sizes, key=jax.random.key(0))


def test_wrong_input_shape_and_key():
    params = nets.init_mlp([2, 3, 1], key=jax.random.key(0))
    with pytest.raises(ValueError, match="x must have shape"):
        nets.mlp(params, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="key"):
        nets.init_mlp([2, 3, 1], key=42)


def test_init_mlp_is_the_same_network_in_every_precision():
    p32 = nets.init_mlp([2, 5, 1], key=jax.random.key(3))
    p64 = nets.init_mlp([2, 5, 1], key=jax.random.key(3), dtype=jnp.float64)
    for (w32, b32), (w64, b64) in zip(p32, p64, strict=True):
        assert w32.dtype == jnp.float32 and w64.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(w32, np.float64), np.asarray(w64))
        np.testing.assert_array_equal(np.asarray(b32, np.float64), np.asarray(b64))
    with pytest.raises(TypeError, match="dtype"):
        nets.init_mlp([2, 3, 1], key=jax.random.key(0), dtype=jnp.int32)


def test_tanh_rnn_step_matches_numpy_and_its_jacobian_is_diag_times_gain_W():
    params = nets.init_tanh_rnn(5, 2, key=jax.random.key(6), dtype=jnp.float64)
    W, U, b = (np.asarray(params[k]) for k in ("W", "U", "b"))
    h, x = np.random.default_rng(7).normal(size=5), np.random.default_rng(8).normal(size=2)
    out = np.tanh(1.7 * W @ h + x @ U + b)
    np.testing.assert_allclose(nets.tanh_rnn(params, jnp.asarray(h), jnp.asarray(x), 1.7), out, rtol=1e-13)
    jac = jax.jacfwd(lambda h: nets.tanh_rnn(params, h, jnp.asarray(x), 1.7))(jnp.asarray(h))
    np.testing.assert_allclose(jac, np.diag(1 - out**2) @ (1.7 * W), rtol=1e-12, atol=1e-14)
    assert params["W"].shape == (5, 5) and params["U"].shape == (2, 5) and params["W"].dtype == jnp.float64


def test_shplrnn_step_matches_numpy_and_starts_contracting():
    params = nets.init_shplrnn(3, 20, key=jax.random.key(9), dtype=jnp.float64)
    A, W1, W2, h1, h2 = (np.asarray(params[k]) for k in ("A", "W1", "W2", "h1", "h2"))
    z = np.random.default_rng(10).normal(size=3)
    ref = A * z + W1 @ np.maximum(W2 @ z + h2, 0) + h1
    np.testing.assert_allclose(nets.shplrnn(params, jnp.asarray(z)), ref, rtol=1e-13)
    assert np.all((A >= 0.5) & (A <= 0.9))
    # the freshly drawn model contracts: every Jacobian diag(A) + W1 D W2 has spectral norm below 1
    for mask in np.random.default_rng(11).integers(0, 2, size=(20, 20)):
        assert np.linalg.norm(np.diag(A) + W1 @ np.diag(mask) @ W2, 2) < 1
