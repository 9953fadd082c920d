"""The Fisher matrix and the KL geometry (lessons.fisher), in float64, against independent references:
per-example gradients of optax's losses, the dense GGN, Monte Carlo, and a finite expansion of the KL."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lessons import data, fisher, natural_gradient, nets

X, Y = data.two_spirals(24, key=jax.random.key(0), dtype=jnp.float64)


def relative(A, B):
    return float(jnp.linalg.norm(A - B) / jnp.linalg.norm(B))


def per_example_loss_gradients(params, loss_of_example):
    flat, unravel = ravel_pytree(params)
    return jax.vmap(lambda xi, yi: jax.grad(lambda w: loss_of_example(unravel(w), xi, yi))(flat))(X, Y)


@pytest.mark.parametrize(
    "kind, sizes", [("logistic", [2, 5, 1]), ("softmax", [2, 4, 3]), ("squared", [2, 3, 2]), ("squared", [2, 4, 4, 1])]
)
def test_the_fisher_equals_the_ggn(kind, sizes):
    params = nets.init_mlp(sizes, key=jax.random.key(1), dtype=jnp.float64)
    K = natural_gradient.ggn_factor(nets.mlp, params, X, kind)
    np.testing.assert_allclose(fisher.fisher(nets.mlp, params, X, kind), K.T @ K, rtol=1e-10, atol=1e-13)


def test_the_empirical_fisher_is_the_mean_outer_product_of_optax_loss_gradients():
    params = nets.init_mlp([2, 5, 1], key=jax.random.key(2), dtype=jnp.float64)
    loss = lambda p, xi, yi: optax.sigmoid_binary_cross_entropy(nets.mlp(p, xi[None])[0, 0], yi)
    G = per_example_loss_gradients(params, loss)
    empirical = fisher.empirical_fisher(nets.mlp, params, X, Y, "logistic")
    np.testing.assert_allclose(empirical, G.T @ G / len(X), rtol=1e-10, atol=1e-14)


def test_the_empirical_fisher_with_integer_softmax_labels():
    params = nets.init_mlp([2, 4, 3], key=jax.random.key(3), dtype=jnp.float64)
    classes = (jnp.arange(len(X)) % 3).astype(jnp.int32)
    flat, unravel = ravel_pytree(params)

    def loss(w, xi, ci):
        return optax.softmax_cross_entropy_with_integer_labels(nets.mlp(unravel(w), xi[None])[0], ci)

    G = jax.vmap(lambda xi, ci: jax.grad(loss)(flat, xi, ci))(X, classes)
    empirical = fisher.empirical_fisher(nets.mlp, params, X, classes, "softmax")
    np.testing.assert_allclose(empirical, G.T @ G / len(X), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind, sizes", [("logistic", [2, 4, 1]), ("softmax", [2, 3, 3]), ("squared", [2, 3, 2])])
def test_the_sampled_fisher_converges_to_the_fisher(kind, sizes):
    params = nets.init_mlp(sizes, key=jax.random.key(4), dtype=jnp.float64)
    exact = fisher.fisher(nets.mlp, params, X, kind)
    few = relative(fisher.sampled_fisher(nets.mlp, params, X, kind, key=jax.random.key(5), num_samples=4), exact)
    many = relative(fisher.sampled_fisher(nets.mlp, params, X, kind, key=jax.random.key(5), num_samples=1024), exact)
    assert many < 0.1 and many < few / 4  # Monte Carlo: error ~ 1/sqrt(samples), 16x fewer samples -> ~4x error


@pytest.mark.parametrize("kind, sizes", [("logistic", [2, 4, 1]), ("softmax", [2, 3, 3]), ("squared", [2, 3, 2])])
def test_the_kl_divergence_is_half_the_fisher_quadratic_form_to_second_order(kind, sizes):
    params = nets.init_mlp(sizes, key=jax.random.key(6), dtype=jnp.float64)
    flat, unravel = ravel_pytree(params)
    F = fisher.fisher(nets.mlp, params, X, kind)
    d = jax.random.normal(jax.random.key(7), flat.shape, jnp.float64)
    errors = []
    for t in (1e-2, 1e-3):
        kl = fisher.predictive_kl(nets.mlp(params, X), nets.mlp(unravel(flat + t * d), X), kind)
        errors.append(abs(kl / (0.5 * t**2 * d @ F @ d) - 1))
    assert errors[1] < 2e-2 and errors[1] < errors[0] / 5  # the relative error is O(t): the cubic term


def test_predictive_kl_against_direct_sums():
    rng = np.random.default_rng(0)
    zp, zq = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    p = np.exp(zp) / np.exp(zp).sum(1, keepdims=True)
    q = np.exp(zq) / np.exp(zq).sum(1, keepdims=True)
    np.testing.assert_allclose(fisher.predictive_kl(zp, zq, "softmax"), np.mean(np.sum(p * np.log(p / q), 1)), rtol=1e-12)
    sp, sq = 1 / (1 + np.exp(-zp[:, 0])), 1 / (1 + np.exp(-zq[:, 0]))
    bernoulli = sp * np.log(sp / sq) + (1 - sp) * np.log((1 - sp) / (1 - sq))
    np.testing.assert_allclose(fisher.predictive_kl(zp[:, 0], zq[:, 0], "logistic"), bernoulli.mean(), rtol=1e-12)
    np.testing.assert_allclose(fisher.predictive_kl(zp, zq, "squared"), np.mean(0.5 * np.sum((zp - zq) ** 2, 1)), rtol=1e-12)
    assert float(fisher.predictive_kl(zp, zp, "softmax")) == pytest.approx(0.0, abs=1e-15)


def test_log_likelihood_is_minus_the_optax_losses():
    rng = np.random.default_rng(1)
    z, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    np.testing.assert_allclose(
        fisher.log_likelihood(z, labels, "softmax"), -optax.softmax_cross_entropy_with_integer_labels(z, labels), rtol=1e-12
    )
    y01 = (labels % 2).astype(float)
    np.testing.assert_allclose(
        fisher.log_likelihood(z[:, 0], y01, "logistic"), -optax.sigmoid_binary_cross_entropy(z[:, 0], y01), rtol=1e-12
    )


def test_the_natural_gradient_step_is_invariant_to_a_linear_reparametrisation():
    # theta = A phi: the natural step in phi, mapped back, is the natural step in theta; GD's is not.
    model = lambda w, x: x @ w[:2, None] + w[2]
    A = jnp.array([[2.0, 0.5, 0.0], [0.0, 0.3, 0.0], [1.0, 0.0, 4.0]])
    loss = lambda w, m: -jnp.mean(fisher.log_likelihood(m(w, X), Y, "logistic"))
    theta = jnp.array([0.3, -0.2, 0.1])
    phi = jnp.linalg.solve(A, theta)
    in_phi = lambda p, x: model(A @ p, x)
    step_theta = jnp.linalg.solve(fisher.fisher(model, theta, X, "logistic"), jax.grad(loss)(theta, model))
    step_phi = jnp.linalg.solve(fisher.fisher(in_phi, phi, X, "logistic"), jax.grad(loss)(phi, in_phi))
    np.testing.assert_allclose(A @ step_phi, step_theta, rtol=1e-9)
    gd_phi = A @ jax.grad(loss)(phi, in_phi)
    assert relative(gd_phi, jax.grad(loss)(theta, model)) > 0.5
