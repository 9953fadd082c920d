r"""Natural gradient with the generalised Gauss-Newton (GGN) matrix, solved in batch space by Woodbury.

For a supervised loss :math:`L(\theta) = \frac1n \sum_i \ell(f(\theta, x_i), y_i)` with outputs
:math:`z_i = f(\theta, x_i) \in \mathbb R^c`, the GGN is

.. math:: G = \frac1n \sum_i J_i^\top Q_i J_i = K^\top K, \qquad
   Q_i = \nabla_z^2 \ell = S_i^\top S_i, \qquad K = \tfrac{1}{\sqrt n} \begin{pmatrix} S_1 J_1 \\ \vdots \\ S_n J_n \end{pmatrix},

with :math:`J_i` the Jacobian of :math:`z_i` with respect to the :math:`P` parameters. For the
cross-entropies (a model's log-likelihood in its natural parameters) it equals the Fisher matrix.
:math:`K` has :math:`r = n c` rows, so the damped step

.. math:: d = -(\lambda I + K^\top K)^{-1} g

needs only an ``r x r`` solve (:func:`woodbury_solve`). :func:`gram_layerwise` computes
:math:`J J^\top` of a dense MLP without forming :math:`J`. :func:`kfac` approximates :math:`K^\top K`
instead, block-diagonal with Kronecker-factored blocks, for :math:`O(d^3)` per layer.

Example::

    >>> import jax.numpy as jnp
    >>> K = jnp.array([[1.0, 0.0, 0.0]]); g = jnp.array([2.0, 1.0, 1.0])
    >>> woodbury_solve(K, g, 1.0)  # (I + K^T K) x = g: the first coordinate is halved
    Array([1., 1., 1.], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_solve

from lessons.checks import check_callable, check_learning_rate, check_positive

__all__ = [
    "LOSS_KINDS",
    "ggn_factor",
    "gram_layerwise",
    "jacobian_matrix",
    "kfac",
    "kfac_factors",
    "natural_gradient",
    "output_hessian_factor",
    "woodbury_solve",
]

LOSS_KINDS = ("squared", "logistic", "softmax")
r"""The per-example losses whose output Hessian :func:`output_hessian_factor` knows: ``squared``
(:math:`\tfrac12 \|z - y\|^2`), ``logistic`` (sigmoid cross-entropy, one logit, as
:func:`lessons.nets.logistic_losses`), ``softmax`` (softmax cross-entropy over ``c`` logits)."""


def _check_kind(kind, name: str = "kind") -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"{name} must be one of {LOSS_KINDS}, got {kind!r}")


# --- the solve -----------------------------------------------------------------------------------


def woodbury_solve(K, g, damping) -> jax.Array:
    r"""Solve :math:`(\lambda I_p + K^\top K)\, x = g` through an ``r x r`` system only.

    The Woodbury identity (push-through form) gives

    .. math:: (\lambda I_p + K^\top K)^{-1} g = \frac{1}{\lambda}\Big(g - K^\top (\lambda I_r + K K^\top)^{-1} K g\Big),

    and :math:`\lambda I_r + K K^\top` is symmetric positive definite for :math:`\lambda > 0`, so it is
    solved by Cholesky. Cost :math:`O(r^2 p + r^3)` (forming :math:`K K^\top`, then factoring it) instead of
    :math:`O(p^3)` for the ``p x p`` system: a win when the batch is small, :math:`r \ll p`.

    Args:
        K: shape ``(r, p)``, a factor of the curvature :math:`K^\top K`.
        g: shape ``(p,)``.
        damping: :math:`\lambda > 0` (may be traced; checked when concrete).
    """
    K, g = jnp.asarray(K), jnp.asarray(g)
    if K.ndim != 2:
        raise ValueError(f"K must be a matrix of shape (r, p), got shape {K.shape}")
    if g.shape != (K.shape[1],):
        raise ValueError(f"g must have shape ({K.shape[1]},) to match K of shape {K.shape}, got {g.shape}")
    check_positive(damping, "damping")
    dtype = jnp.result_type(K.dtype, g.dtype)
    K, g, lam = K.astype(dtype), g.astype(dtype), jnp.asarray(damping, dtype)
    small = lam * jnp.eye(K.shape[0], dtype=dtype) + K @ K.T
    y = cho_solve((jnp.linalg.cholesky(small), True), K @ g)
    return (g - K.T @ y) / lam


# --- Jacobians and output curvature (dense, small problems) --------------------------------------


def _per_example_jacobian(apply, params, x):
    """``(n, c, P)``: the Jacobian of each example's flattened outputs w.r.t. the flattened params."""
    flat, unravel = ravel_pytree(params)

    def one(xi):
        return jax.jacrev(lambda w: apply(unravel(w), xi[None]).reshape(-1))(flat)

    return jax.vmap(one)(x)


def jacobian_matrix(apply: Callable, params, x) -> jax.Array:
    r"""The ``(n c, P)`` Jacobian :math:`J` of the outputs ``apply(params, x)`` (flattened, example-major:
    row ``i c + k`` is output ``k`` of example ``i``) w.r.t. the flattened parameters (``ravel_pytree`` order).

    One reverse pass per output of each example (``jax.vmap`` over examples of ``jax.jacrev``):
    :math:`O(n c P)` memory, small problems only.
    """
    check_callable(apply, "apply", "a model apply(params, x)")
    J = _per_example_jacobian(apply, params, jnp.asarray(x))
    return J.reshape(-1, J.shape[-1])


def _as_logits(logits, kind):
    logits = jnp.asarray(logits)
    if logits.ndim == 1:
        logits = logits[:, None]
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (n, c) or (n,), got {logits.shape}")
    if kind == "logistic" and logits.shape[1] != 1:
        raise ValueError(f"logits must hold one logit per example for kind='logistic', got shape {logits.shape}")
    return logits


def output_hessian_factor(logits, kind: str) -> jax.Array:
    r"""Per example, a square root :math:`S_i` (shape ``(n, c, c)``) of the per-example loss Hessian
    :math:`Q_i = \nabla_z^2 \ell(z_i, y_i) = S_i^\top S_i` (it does not depend on the label).

    * ``squared``, :math:`\ell = \tfrac12\|z - y\|^2`: :math:`Q = I`, :math:`S = I`;
    * ``logistic``, :math:`p = \sigma(z)`: :math:`Q = p(1-p)`, :math:`S = \sqrt{p(1-p)}`;
    * ``softmax``, :math:`p = \mathrm{softmax}(z)`: :math:`Q = \mathrm{diag}(p) - p p^\top` and
      :math:`S = \mathrm{diag}(\sqrt p) - \sqrt p\, p^\top` (expand :math:`S^\top S` with :math:`\sum_k p_k = 1`).

    ``logits`` has shape ``(n, c)`` (or ``(n,)`` for one logit per example).
    """
    _check_kind(kind)
    z = _as_logits(logits, kind)
    n, c = z.shape
    if kind == "squared":
        return jnp.broadcast_to(jnp.eye(c, dtype=z.dtype), (n, c, c))
    if kind == "logistic":
        p = jax.nn.sigmoid(z)
        return jnp.sqrt(p * (1 - p))[:, :, None]
    p = jax.nn.softmax(z, axis=-1)
    s = jnp.sqrt(p)
    return jax.vmap(jnp.diag)(s) - s[:, :, None] * p[:, None, :]


def ggn_factor(apply: Callable, params, x, kind: str) -> jax.Array:
    r"""The ``(n c, P)`` factor :math:`K` with :math:`K^\top K` the GGN of the *mean* loss over the batch ``x``.

    Row block ``i`` is :math:`S_i J_i / \sqrt n` (:func:`output_hessian_factor`, :func:`jacobian_matrix`).
    """
    check_callable(apply, "apply", "a model apply(params, x)")
    _check_kind(kind)
    x = jnp.asarray(x)
    J = _per_example_jacobian(apply, params, x)  # (n, c, P)
    S = output_hessian_factor(apply(params, x).reshape(x.shape[0], -1), kind).astype(J.dtype)
    K = jnp.einsum("nab,nbp->nap", S, J) * (1.0 / math.sqrt(x.shape[0]))
    return K.reshape(-1, J.shape[-1])


# --- the Gram matrix J J^T of a dense MLP without J -----------------------------------------------


def _check_mlp_batch(params, x):
    if not isinstance(params, (list, tuple)) or not params or not all(len(layer) == 2 for layer in params):
        raise TypeError(f"params must be a non-empty list of (W, b) layers (lessons.nets.mlp), got {type(params).__name__}")
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != params[0][0].shape[0]:
        raise ValueError(f"x must have shape (n, {params[0][0].shape[0]}), got {x.shape}")
    return x


def _forward_with_shifts(params, x, shifts, activation):
    """:func:`lessons.nets.mlp` with ``shifts`` added to each layer's pre-activation (zeros: the network).

    Returns ``(outputs, inputs)``, ``inputs[i]`` the input of layer ``i``. Differentiating the outputs
    with respect to the shifts back-propagates to the pre-activations, which both the layerwise Gram
    matrix and the K-FAC factors need. ``x`` may be one example or a batch.
    """
    inputs, a = [], x
    for index, ((W, b), shift) in enumerate(zip(params, shifts, strict=True)):
        inputs.append(a)
        z = a @ W + b + shift
        a = z if index == len(params) - 1 else activation(z)
    return a, inputs


def gram_layerwise(params, x, activation: Callable = jnp.tanh) -> jax.Array:
    r"""The ``(n c, n c)`` Gram matrix :math:`J J^\top` of :func:`lessons.nets.mlp`, without forming :math:`J`.

    For a dense layer :math:`z = a W + b`, the derivative of output ``k`` of example ``i`` with respect
    to :math:`W` is the outer product :math:`a_i\, g_{ik}^\top` (:math:`a_i` the layer's input,
    :math:`g_{ik} = \partial f_{ik} / \partial z_i`), and with respect to :math:`b` it is :math:`g_{ik}`. So

    .. math:: (J J^\top)_{ik,\, jl} = \sum_{\text{layers}} (a_i \cdot a_j + 1)\,(g_{ik} \cdot g_{jl}),

    elementwise products of small Gram matrices, one per layer: :math:`O(n^2 c^2 d)` per layer of
    width :math:`d` instead of :math:`O(n c P)` memory for :math:`J`. Rows are example-major, as in
    :func:`jacobian_matrix`.
    """
    check_callable(activation, "activation")
    x = _check_mlp_batch(params, x)

    def forward(shifts, xi):  # one example
        return _forward_with_shifts(params, xi, shifts, activation)

    def per_example(xi):
        zeros = [jnp.zeros_like(b) for _, b in params]
        grads = jax.jacrev(lambda s: forward(s, xi)[0])(zeros)  # per layer: (c, d_out)
        return grads, forward(zeros, xi)[1]

    grads, inputs = jax.vmap(per_example)(x)  # per layer: (n, c, d_out) and (n, d_in)
    n, c = grads[-1].shape[:2]
    gram = 0.0
    for G, A in zip(grads, inputs, strict=True):
        gram = gram + (A @ A.T + 1)[:, None, :, None] * jnp.einsum("ikd,jld->ikjl", G, G)
    return jnp.reshape(gram, (n * c, n * c))


def _gram_step(apply, params, x, g, lam, kind):
    r""":func:`woodbury_solve` for :math:`K = S J / \sqrt n` without :math:`J` (a dense tanh MLP)."""
    n = x.shape[0]
    flat, unravel = ravel_pytree(params)
    outputs, Jg = jax.jvp(lambda w: apply(unravel(w), x), (flat,), (g.astype(flat.dtype),))
    c = Jg.size // n
    S = output_hessian_factor(outputs.reshape(n, c), kind).astype(g.dtype)
    gram = gram_layerwise(params, x).reshape(n, c, n, c).astype(g.dtype)
    small = jnp.einsum("iak,ikjl,jbl->iajb", S, gram, S).reshape(n * c, n * c) / n
    Kg = jnp.einsum("iak,ik->ia", S, Jg.reshape(n, c).astype(g.dtype)).reshape(-1) / math.sqrt(n)
    y = cho_solve((jnp.linalg.cholesky(lam * jnp.eye(n * c, dtype=g.dtype) + small), True), Kg)
    cotangent = jnp.einsum("iak,ia->ik", S, y.reshape(n, c)) / math.sqrt(n)
    (KTy,) = jax.vjp(lambda w: apply(unravel(w), x), flat)[1](cotangent.reshape(outputs.shape).astype(outputs.dtype))
    return (g - KTy.astype(g.dtype)) / lam


# --- the optimizer ---------------------------------------------------------------------------------


def _empty_init(params):
    del params
    return optax.EmptyState()


def _require_batch(name: str, params, batch) -> None:
    if batch is None or params is None:
        raise ValueError(
            f"{name} needs params and the data: call update(grads, state, params, batch=(x, y)) "
            "(lessons.train.train passes it with extras=train.ALL_EXTRAS)"
        )


def natural_gradient(
    learning_rate: float = 1.0,
    *,
    damping: float = 1e-2,
    apply: Callable,
    loss_kind: str = "logistic",
    method: str = "jacobian",
) -> optax.GradientTransformationExtraArgs:
    r"""The damped natural-gradient (GGN) step, solved in batch space by Woodbury.

    .. math:: \Delta\theta = -\eta\, (\lambda I + K^\top K)^{-1} g,

    with :math:`K` from :func:`ggn_factor` on the batch (an explicit Jacobian: small models) and the
    solve by :func:`woodbury_solve` (an ``n c x n c`` Cholesky). :math:`K^\top K` is the GGN of the
    mean loss; for ``loss_kind`` ``"logistic"`` or ``"softmax"`` it is the Fisher matrix. ``update``
    needs the data: ``update(grads, state, params, batch=(x, y))``, as :func:`lessons.train.train`
    passes it with ``extras=train.ALL_EXTRAS``.

    ``method="gram"`` (for :func:`lessons.nets.mlp` with ``tanh`` only: ``apply`` is then used for the
    products) never forms :math:`J`: :math:`K K^\top` comes from :func:`gram_layerwise`, :math:`K g`
    from one Jacobian-vector product and :math:`K^\top y` from one vector-Jacobian product: the same
    step, to round-off.

    ``learning_rate`` and ``damping`` are used only in arithmetic, so they may be traced and
    injected: ``optax.inject_hyperparams(natural_gradient, static_args=("apply", "loss_kind"))(...)``.
    """
    check_learning_rate(learning_rate)
    check_positive(damping, "damping")
    check_callable(apply, "apply", "a model apply(params, x)")
    _check_kind(loss_kind, "loss_kind")
    if method not in ("jacobian", "gram"):
        raise ValueError(f"method must be 'jacobian' or 'gram', got {method!r}")

    def update(grads, state, params=None, *, batch=None, **extra):
        del extra
        _require_batch("natural_gradient", params, batch)
        g, unravel = ravel_pytree(grads)
        dtype = g.dtype
        lam = jnp.asarray(damping, dtype)
        if method == "gram":
            d = _gram_step(apply, params, jnp.asarray(batch[0]), g, lam, loss_kind)
        else:
            d = woodbury_solve(ggn_factor(apply, params, batch[0], loss_kind).astype(dtype), g, lam)
        return unravel(-jnp.asarray(learning_rate, dtype) * d), state

    return optax.GradientTransformationExtraArgs(_empty_init, update)


# --- K-FAC: block-diagonal, Kronecker-factored curvature ----------------------------------------


def kfac_factors(params, x, loss_kind: str = "logistic", activation: Callable = jnp.tanh) -> list:
    r"""Per dense layer of :func:`lessons.nets.mlp`, the K-FAC factors ``(A, G)`` on the batch ``x``.

    With :math:`\bar a_i = [a_i; 1]` the layer's input of example ``i`` (the bias folded in as a constant
    input) and :math:`g_{ir} = (S_i)_{r,:}\, \partial z_i / \partial s_i` row ``r`` of the output-Hessian
    factor (:func:`output_hessian_factor`) back-propagated to the layer's pre-activation :math:`s_i`,

    .. math:: A = \frac1n \sum_i \bar a_i \bar a_i^\top \ \ (d_{in}+1)^2, \qquad
       G = \frac1n \sum_i \sum_r g_{ir} g_{ir}^\top \ \ (d_{out})^2.

    The layer's exact GGN block is :math:`\frac1n \sum_i \bar a_i \bar a_i^\top \otimes \sum_r g_{ir} g_{ir}^\top`;
    K-FAC replaces this mean of Kronecker products by :math:`A \otimes G`, the Kronecker product of the
    means (exact when :math:`\sum_r g_{ir} g_{ir}^\top` is the same for every example: one linear
    layer under the squared loss). The order matches ``ravel_pytree`` of ``(W, b)`` (``W`` row-major,
    then ``b``): the block is ``jnp.kron(A, G)``.
    """
    _check_kind(loss_kind, "loss_kind")
    check_callable(activation, "activation")
    x = _check_mlp_batch(params, x)
    n = x.shape[0]

    def forward(shifts):  # the whole batch at once
        return _forward_with_shifts(params, x, shifts, activation)

    zeros = [jnp.zeros((n, b.shape[-1]), jnp.result_type(x.dtype, b.dtype)) for _, b in params]
    outputs, pullback, inputs = jax.vjp(forward, zeros, has_aux=True)
    S = output_hessian_factor(outputs, loss_kind).astype(outputs.dtype)  # (n, c, c)
    # Row r of every S_i back-propagated at once (examples are independent): per layer (c, n, d_out).
    (rows,) = jax.vmap(pullback, in_axes=1)(S)
    factors = []
    for a, g in zip(inputs, rows, strict=True):
        a = jnp.concatenate([a, jnp.ones((n, 1), a.dtype)], axis=1)
        factors.append((a.T @ a / n, jnp.einsum("rnd,rne->de", g, g) / n))
    return factors


def _spd_solve(M, B):
    return cho_solve((jnp.linalg.cholesky(M), True), B)


def kfac(
    learning_rate: float = 1.0,
    *,
    damping: float = 1e-2,
    loss_kind: str = "logistic",
    activation: Callable = jnp.tanh,
) -> optax.GradientTransformationExtraArgs:
    r"""K-FAC (Martens & Grosse, 2015) for :func:`lessons.nets.mlp`: a Kronecker-factored natural gradient.

    Two approximations of the GGN (the Fisher matrix for the cross-entropies) make it cheap: it is
    taken **block-diagonal**, one block per layer (cross-layer curvature dropped), and each block
    :math:`\mathbb E[\bar a \bar a^\top \otimes g g^\top]` is replaced by the **Kronecker product**
    :math:`A \otimes G` of :func:`kfac_factors`. With :math:`V = [\nabla_W; \nabla_b^\top]` the layer's
    gradient, shape ``(d_in + 1, d_out)``, and the damping split equally between the factors
    (:math:`\pi = 1`),

    .. math:: \Delta [W; b^\top] = -\eta\, (A + \sqrt\lambda I)^{-1}\, V\, (G + \sqrt\lambda I)^{-1},

    since :math:`(A \otimes G)\,\mathrm{vec}(V) = \mathrm{vec}(A V G)` (row-major vec). Two Cholesky
    solves per layer: :math:`O(d_{in}^3 + d_{out}^3)` to factor, against :math:`O((d_{in} d_{out})^3)` for
    the block itself. Note :math:`(A + \sqrt\lambda I) \otimes (G + \sqrt\lambda I) = A \otimes G +
    \sqrt\lambda (A \otimes I + I \otimes G) + \lambda I`: more than :math:`\lambda I` of damping.

    :math:`G` uses the deterministic factor of the output Hessian (:func:`output_hessian_factor`), not
    labels sampled from the model; the factors are recomputed from the batch at every step (no moving
    average, so the state is empty). ``update`` needs the data: ``update(grads, state, params,
    batch=(x, y))``, as :func:`lessons.train.train` passes it with ``extras=train.ALL_EXTRAS``.
    ``learning_rate`` and ``damping`` are used only in arithmetic, so they may be injected:
    ``optax.inject_hyperparams(kfac, static_args=("loss_kind", "activation"))(...)``.
    """
    check_learning_rate(learning_rate)
    check_positive(damping, "damping")
    _check_kind(loss_kind, "loss_kind")
    check_callable(activation, "activation")

    def update(grads, state, params=None, *, batch=None, **extra):
        del extra
        _require_batch("kfac", params, batch)
        factors = kfac_factors(params, batch[0], loss_kind, activation)
        updates = []
        for (gW, gb), (A, G) in zip(grads, factors, strict=True):
            dtype = jnp.result_type(gW.dtype, gb.dtype)
            eps = jnp.sqrt(jnp.asarray(damping, dtype))
            A, G = A.astype(dtype), G.astype(dtype)
            V = jnp.concatenate([gW, gb[None]], axis=0).astype(dtype)
            U = _spd_solve(A + eps * jnp.eye(A.shape[0], dtype=dtype), V)
            U = _spd_solve(G + eps * jnp.eye(G.shape[0], dtype=dtype), U.T).T
            U = -jnp.asarray(learning_rate, dtype) * U
            updates.append((U[:-1].astype(gW.dtype), U[-1].astype(gb.dtype)))
        return type(grads)(updates) if isinstance(grads, (list, tuple)) else updates, state

    return optax.GradientTransformationExtraArgs(_empty_init, update)
