r"""The KL geometry of a model's predictions, and the Fisher matrix: true (labels from the model) or empirical.

A model with outputs :math:`z = f(\theta, x)` predicts a distribution :math:`p(y \mid z)`; the three
kinds of :data:`lessons.natural_gradient.LOSS_KINDS` are the negative log-likelihoods of

* ``squared``: :math:`y \sim \mathcal N(z, I)` (the loss :math:`\tfrac12\|z - y\|^2` up to a constant);
* ``logistic``: :math:`y \sim \mathrm{Bernoulli}(\sigma(z))`, one logit;
* ``softmax``: :math:`y \sim \mathrm{Categorical}(\mathrm{softmax}(z))`, labels one-hot or integer.

Moving the parameters by :math:`d` changes the predictions by a KL divergence whose second-order term is
the **Fisher matrix**:

.. math:: \frac1n \sum_i \mathrm{KL}\big(p(\cdot \mid z_i(\theta)) \,\|\, p(\cdot \mid z_i(\theta + d))\big)
   = \tfrac12\, d^\top F d + O(\|d\|^3), \qquad
   F = \frac1n \sum_i \mathbb E_{y \sim p(\cdot \mid z_i)}\big[s_i(y)\, s_i(y)^\top\big], \quad
   s_i(y) = \nabla_\theta \log p(y \mid z_i).

:func:`fisher` takes the expectation over the model's labels exactly, :func:`sampled_fisher` by Monte
Carlo, and :func:`empirical_fisher` replaces it by the data's own labels (a different matrix: it
is :math:`F` only where the model's predictive distribution is the data's). Every matrix here is dense,
``P x P``: small models only, as references.

Example (a one-parameter logistic model :math:`z = \theta x` at :math:`\theta = 0`, where :math:`p = 1/2`,
so :math:`F = \frac14 \overline{x^2}`)::

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0], [3.0]])
    >>> fisher(lambda w, x: x * w, jnp.zeros(1), x, "logistic")
    Array([[1.25]], dtype=float32)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lessons.checks import check_callable, check_finite_data, check_key, check_positive_int
from lessons.natural_gradient import LOSS_KINDS

__all__ = ["empirical_fisher", "fisher", "log_likelihood", "predictive_kl", "sampled_fisher"]


def _check_kind(kind) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"kind must be one of {LOSS_KINDS}, got {kind!r}")


def _logits(z, kind: str) -> jax.Array:
    z = jnp.asarray(z)
    z = z[:, None] if z.ndim == 1 else z
    if z.ndim != 2:
        raise ValueError(f"outputs must have shape (n, c) or (n,), got {z.shape}")
    if kind == "logistic" and z.shape[1] != 1:
        raise ValueError(f"kind='logistic' needs one logit per example, got outputs of shape {z.shape}")
    return z


def _labels(y, z: jax.Array, kind: str) -> jax.Array:
    """Labels as an ``(n, c)`` float array: one-hot for ``softmax`` (integer classes are accepted)."""
    y = jnp.asarray(y)
    n, c = z.shape
    if kind == "softmax" and y.shape == (n,):
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise TypeError(f"softmax labels of shape (n,) must be integer classes, got dtype {y.dtype}")
        return jax.nn.one_hot(y, c, dtype=z.dtype)
    y = y[:, None] if y.shape == (n,) else y
    if y.shape != (n, c):
        raise ValueError(f"labels must have shape ({n},) or ({n}, {c}) to match the outputs, got {y.shape}")
    return y.astype(z.dtype)


def log_likelihood(z, y, kind: str) -> jax.Array:
    r"""Per example, :math:`\log p(y_i \mid z_i)` (shape ``(n,)``): minus the loss of ``kind``.

    ``squared`` drops the constant :math:`-\tfrac c2 \log 2\pi` (it has no gradient).
    """
    _check_kind(kind)
    z = _logits(z, kind)
    y = _labels(y, z, kind)
    if kind == "squared":
        return -0.5 * jnp.sum((y - z) ** 2, axis=1)
    if kind == "logistic":
        return jnp.sum(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z), axis=1)
    return jnp.sum(y * jax.nn.log_softmax(z, axis=1), axis=1)


def predictive_kl(z_p, z_q, kind: str) -> jax.Array:
    r"""The mean over examples of :math:`\mathrm{KL}(p(\cdot \mid z_{p,i}) \,\|\, p(\cdot \mid z_{q,i}))`.

    In closed form: :math:`\tfrac12\|z_p - z_q\|^2` (``squared``, unit variance);
    :math:`\sum_k p_k (\log p_k - \log q_k)` over the two outcomes (``logistic``) or the ``c`` classes (``softmax``).
    """
    _check_kind(kind)
    z_p, z_q = _logits(z_p, kind), _logits(z_q, kind)
    if z_p.shape != z_q.shape:
        raise ValueError(f"z_p and z_q must have the same shape, got {z_p.shape} and {z_q.shape}")
    if kind == "squared":
        return jnp.mean(0.5 * jnp.sum((z_p - z_q) ** 2, axis=1))
    if kind == "logistic":  # the two outcomes as two logits (z, 0): softmax of them is (sigma(z), 1 - sigma(z))
        z_p, z_q = (jnp.concatenate([z, jnp.zeros_like(z)], axis=1) for z in (z_p, z_q))
    log_p, log_q = jax.nn.log_softmax(z_p, axis=1), jax.nn.log_softmax(z_q, axis=1)
    return jnp.mean(jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=1))


@functools.partial(jax.jit, static_argnames=("apply", "kind"))
def _scores(apply, params, x, y, kind):
    """``(..., n, P)``: the gradient of :math:`\\log p(y_i \\mid f(\\theta, x_i))` for each example, for labels
    ``y`` of shape ``(..., n, c)`` (leading axes: several label draws for the same inputs)."""
    flat, unravel = ravel_pytree(params)

    def one(xi, yi):
        return jax.grad(lambda w: log_likelihood(apply(unravel(w), xi[None]).reshape(1, -1), yi[None], kind)[0])(flat)

    scores = jax.vmap(one)
    for _ in range(y.ndim - 2):
        scores = jax.vmap(scores, in_axes=(None, 0))
    return scores(x, y)


def _prepare(apply, params, x, kind):
    check_callable(apply, "apply", "a model apply(params, x)")
    _check_kind(kind)
    x = jnp.asarray(x)
    check_finite_data(x, "x")
    z = _logits(jnp.reshape(apply(params, x), (x.shape[0], -1)), kind)
    return x, z


def fisher(apply: Callable, params, x, kind: str) -> jax.Array:
    r"""The Fisher matrix of the model ``apply(params, x)``, the expectation over its own labels taken exactly.

    For ``logistic`` and ``softmax`` the labels have finitely many values: :math:`F = \frac1n \sum_i
    \sum_k p_{ik}\, s_{ik} s_{ik}^\top` with :math:`s_{ik}` the score (gradient of the log-likelihood) of
    label :math:`k`. For ``squared`` the score is :math:`J_i^\top \varepsilon` with :math:`\varepsilon \sim
    \mathcal N(0, I_c)`, and only :math:`\mathbb E\,\varepsilon\varepsilon^\top = I` matters; the ``2c``
    points :math:`\varepsilon = \pm\sqrt c\, e_k`, each of weight :math:`1/2c`, have that second moment
    exactly. Shape ``(P, P)``, parameters in ``ravel_pytree`` order.
    """
    x, z = _prepare(apply, params, x, kind)
    n, c = z.shape
    if kind == "squared":
        eps = math.sqrt(c) * jnp.concatenate([jnp.eye(c), -jnp.eye(c)]).astype(z.dtype)  # (2c, c)
        outcomes = z[:, None, :] + eps[None]  # (n, 2c, c)
        weights = jnp.full((n, 2 * c), 1.0 / (2 * c), z.dtype)
    else:
        k = 2 if kind == "logistic" else c
        labels = jnp.eye(k, dtype=z.dtype)
        if kind == "logistic":  # label 1 with probability sigma(z), label 0 otherwise
            labels = labels[:, :1]
            weights = jnp.concatenate([jax.nn.sigmoid(z), jax.nn.sigmoid(-z)], axis=1)
        else:
            weights = jax.nn.softmax(z, axis=1)
        outcomes = jnp.broadcast_to(labels, (n, *labels.shape))
    scores = _scores(apply, params, x, jnp.moveaxis(outcomes, 1, 0), kind)  # (K, n, P)
    return jnp.einsum("nk,knp,knq->pq", weights, scores, scores) / n


def sampled_fisher(apply: Callable, params, x, kind: str, *, key, num_samples: int = 1) -> jax.Array:
    r"""The Fisher matrix by Monte Carlo: :math:`\frac{1}{n S} \sum_i \sum_{s=1}^S s_{is} s_{is}^\top` with
    labels :math:`y_{is} \sim p(\cdot \mid z_i)` drawn from the model (what K-FAC implementations do).

    Unbiased for :func:`fisher`, with an error shrinking like :math:`1/\sqrt{nS}`.
    """
    x, z = _prepare(apply, params, x, kind)
    check_key(key)
    check_positive_int(num_samples, "num_samples")
    n, c = z.shape
    shape = (num_samples, *z.shape)
    if kind == "squared":
        draws = z + jax.random.normal(key, shape, z.dtype)
    elif kind == "logistic":
        draws = jax.random.bernoulli(key, jax.nn.sigmoid(z), shape).astype(z.dtype)
    else:
        draws = jax.nn.one_hot(jax.random.categorical(key, z, axis=1, shape=shape[:2]), c, dtype=z.dtype)
    scores = _scores(apply, params, x, draws, kind)
    scores = scores.reshape(-1, scores.shape[-1])  # (S n, P)
    return scores.T @ scores / scores.shape[0]


def empirical_fisher(apply: Callable, params, x, y, kind: str) -> jax.Array:
    r"""The "empirical Fisher" :math:`\frac1n \sum_i g_i g_i^\top`, with :math:`g_i` the gradient of the
    loss of example :math:`i` at its **data** label: the mean outer product of per-example gradients.

    It is not the Fisher matrix: it measures how much the examples' gradients disagree, not how the
    predictions move. Where the model is far from the data the gradients are large and so is this
    matrix; preconditioning by it shrinks the very steps that would fix the fit.
    """
    x, z = _prepare(apply, params, x, kind)
    scores = _scores(apply, params, x, _labels(y, z, kind), kind)
    return scores.T @ scores / x.shape[0]
