r"""Networks as plain pytrees: an MLP is a list of ``(W, b)`` layers, nothing more.

Layer ``i`` maps :math:`a_i \mapsto a_{i+1} = \sigma(a_i W_i + b_i)` (no :math:`\sigma` on the last),
with ``W_i`` of shape ``(d_in, d_out)``, so a batch ``x`` of shape ``(n, d_in)`` goes through as
``x @ W + b``. Keeping the list explicit is what the layerwise and control chapters need: the layer
structure is data, not something traced out of a framework.

Example::

    >>> import jax
    >>> from lessons.nets import init_mlp, mlp
    >>> params = init_mlp([2, 16, 16, 1], key=jax.random.key(0))
    >>> mlp(params, jax.numpy.zeros((5, 2))).shape
    (5, 1)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from lessons.checks import check_callable, check_finite_data, check_positive_int
from lessons.data import check_key

Params = list[tuple[jax.Array, jax.Array]]


def init_mlp(sizes: Sequence[int], *, key, dtype=jnp.float32) -> Params:
    r"""LeCun-normal initialisation: :math:`W_{jk} \sim \mathcal N(0, 1/d_{in})`, :math:`b = 0`.

    The weights are drawn in float32 and cast to ``dtype``: one key gives the same network in every
    precision, so a float64 experiment starts where its float32 twin does.
    """
    if isinstance(sizes, str) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a list of layer widths, e.g. [2, 16, 1], got {type(sizes).__name__} {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2 or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f"sizes must be a list of at least two positive integers, got {sizes!r}")
    check_key(key)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}")
    return _init_mlp(key, tuple(sizes), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init_mlp(key, sizes, dtype):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (
            (jax.random.normal(k, (d_in, d_out), jnp.float32) / jnp.sqrt(jnp.float32(d_in))).astype(dtype),
            jnp.zeros((d_out,), dtype),
        )
        for k, d_in, d_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(params: Params, x: jax.Array, activation: Callable[[jax.Array], jax.Array] = jnp.tanh) -> jax.Array:
    """Apply the MLP to a batch ``x`` of shape ``(n, d_in)``; returns ``(n, d_out)`` (linear last layer)."""
    check_callable(activation, "activation")
    if x.ndim != 2 or x.shape[1] != params[0][0].shape[0]:
        raise ValueError(f"x must have shape (n, {params[0][0].shape[0]}), got {x.shape}")
    for W, b in params[:-1]:
        x = activation(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def num_params(params) -> int:
    """Total number of scalars in a pytree of arrays."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(params))


def logistic_losses(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Per-example logistic losses :math:`\log(1 + e^{-s_i z_i})`, :math:`s_i = 2 y_i - 1`, shape ``labels.shape``.

    With :func:`mlp` it makes the supervised objective of the book's classifiers:
    ``lessons.train.Objective.supervised(nets.mlp, nets.logistic_losses)``.
    """
    return optax.sigmoid_binary_cross_entropy(_as_labels(logits, labels), labels)


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Mean logistic loss :math:`\frac1n \sum_i \log(1 + e^{-s_i z_i})`, :math:`s_i = 2 y_i - 1`."""
    return jnp.mean(logistic_losses(logits, labels))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples where ``logits > 0`` agrees with ``labels == 1``."""
    return jnp.mean((_as_labels(logits, labels) > 0) == (labels > 0.5))


def _as_labels(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``logits`` reshaped like ``labels`` (one logit per label: ``(n,)`` or ``(n, 1)``), or a ``ValueError``."""
    if jnp.size(logits) != jnp.size(labels):
        raise ValueError(f"labels must hold one label per logit: got labels {jnp.shape(labels)}, logits {jnp.shape(logits)}")
    return logits.reshape(labels.shape)


def classifier_loss(x: jax.Array, y: jax.Array, activation=jnp.tanh) -> Callable[[Params], jax.Array]:
    """The full-batch logistic loss of an MLP binary classifier on ``(x, y)``, as ``params -> scalar``."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d_in), got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},): one label per row of x, got {y.shape}")
    check_finite_data(x, "x")
    check_finite_data(y, "y")

    def loss(params):
        return binary_cross_entropy(mlp(params, x, activation), y)

    return loss


# --- recurrent cells (chapter 8): one step h_{t-1} -> h_t, for lessons.deer and lessons.gtf ------------


def init_tanh_rnn(dim: int, input_dim: int, *, key, dtype=jnp.float32) -> dict:
    r"""A tanh RNN cell's parameters: ``W`` :math:`(d, d)` with entries :math:`\mathcal N(0, 1/d)`
    (spectral radius close to 1 for large :math:`d`), ``U`` :math:`(d_{in}, d)` with :math:`\mathcal N(0, 1/d_{in})`,
    ``b = 0``. Drawn in float32 and cast to ``dtype``, like :func:`init_mlp`."""
    check_positive_int(dim, "dim")
    check_positive_int(input_dim, "input_dim")
    check_key(key)
    kw, ku = jax.random.split(key)
    W = jax.random.normal(kw, (dim, dim), jnp.float32) / jnp.sqrt(jnp.float32(dim))
    U = jax.random.normal(ku, (input_dim, dim), jnp.float32) / jnp.sqrt(jnp.float32(input_dim))
    return {"W": W.astype(dtype), "U": U.astype(dtype), "b": jnp.zeros((dim,), dtype)}


def tanh_rnn(params: dict, h: jax.Array, x: jax.Array, gain=1.0) -> jax.Array:
    r"""One step :math:`h_t = \tanh(g\, W h_{t-1} + x_t U + b)`, ``h`` of shape ``(d,)``, ``x`` of ``(d_in,)``.

    Its Jacobian is :math:`\mathrm{diag}(1 - h_t^2)\, g W`: for a gain :math:`g < 1` (and :math:`\|W\|_2`
    near 1) the map contracts; for large :math:`g` nearby trajectories separate and the cell is chaotic.
    """
    return jnp.tanh(gain * (params["W"] @ h) + x @ params["U"] + params["b"])


def init_shplrnn(dim: int, hidden: int, *, key, dtype=jnp.float32) -> dict:
    r"""Parameters of a shallow PLRNN (Hess et al. 2023) with ``dim`` latent and ``hidden`` ReLU units.

    ``A`` :math:`\sim U(0.5, 0.9)` (a diagonal, stable linear part), ``W1`` :math:`(M, L)` and ``W2``
    :math:`(L, M)` with entries :math:`\mathcal N(0, 0.1^2/\sqrt{L M})`-scaled so the nonlinear part starts
    small, ``h1 = 0``, ``h2`` :math:`\sim \mathcal N(0, 1)` (kinks spread over the state space). The
    freshly drawn model is contracting: it learns its chaos from the data.
    """
    check_positive_int(dim, "dim")
    check_positive_int(hidden, "hidden")
    check_key(key)
    ka, k1, k2, kh = jax.random.split(key, 4)
    scale = 0.1 / jnp.sqrt(jnp.sqrt(jnp.float32(dim * hidden)))
    params = {
        "A": jax.random.uniform(ka, (dim,), jnp.float32, 0.5, 0.9),
        "W1": scale * jax.random.normal(k1, (dim, hidden), jnp.float32),
        "W2": scale * jax.random.normal(k2, (hidden, dim), jnp.float32),
        "h1": jnp.zeros((dim,), jnp.float32),
        "h2": jax.random.normal(kh, (hidden,), jnp.float32),
    }
    return jax.tree.map(lambda a: a.astype(dtype), params)


def shplrnn(params: dict, z: jax.Array) -> jax.Array:
    r"""One step of the shallow PLRNN, :math:`z_t = A \odot z_{t-1} + W_1 \mathrm{relu}(W_2 z_{t-1} + h_2) + h_1`.

    ``z`` of shape ``(M,)``. Its Jacobian is :math:`\mathrm{diag}(A) + W_1 \mathrm{diag}(\mathbb 1[W_2 z + h_2 > 0]) W_2`:
    piecewise constant, the "piecewise linear" of the name.
    """
    return params["A"] * z + params["W1"] @ jax.nn.relu(params["W2"] @ z + params["h2"]) + params["h1"]
