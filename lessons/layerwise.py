r"""Layerwise Woodbury metrics ("Riemannian modules", Pehle & Slotine): one damped GGN block per layer.

Write :func:`lessons.nets.mlp` as a chain of states :math:`x_{i+1} = f_i(x_i, \theta_i)`, :math:`i = 0..N-1`
(:math:`x_0` the input, :math:`x_N` the outputs, :math:`\theta_i = (W_i, b_i)`), with the forward Jacobians
:math:`A_i = \partial x_{i+1} / \partial x_i` and :math:`B_i = \partial x_{i+1} / \partial \theta_i`. The
output metric has the factor :math:`S` of the loss Hessian (:func:`lessons.natural_gradient.output_hessian_factor`).
One backward sweep carries, per example, a factor :math:`L_i` (shape ``(c, d_i)``) next to the costate:

.. math:: L_N = S / \sqrt n, \qquad K_i = L_{i+1} B_i, \qquad L_i = L_{i+1} A_i,

and each layer takes its own damped natural-gradient step with the metric :math:`G_i = \mu I + K_i^\top K_i`:

.. math:: \Delta\theta_i = -\eta\, (\mu I + K_i^\top K_i)^{-1} g_i .

:math:`K_i` stacks the rows of the GGN factor :math:`K` (:func:`lessons.natural_gradient.ggn_factor`) that
belong to layer ``i``, so :math:`G_i` is *exactly* the ``i``-th diagonal block of the damped GGN
:math:`\mu I + K^\top K`: a block-diagonal natural gradient (no Kronecker approximation, unlike K-FAC),
each block solved by Woodbury in an ``r x r`` system, :math:`r = n c`. The blocks ignore each other, so
the N layer steps add up to more than one full step: take :math:`\eta \approx 1/N` or a line search.

The *action view* (:func:`gradient_flow`, :func:`action`): along the gradient flow
:math:`w' = -G^{-1} \nabla L(w)` of a fixed metric, the action
:math:`\int \tfrac12 w'^\top G w' + \tfrac12 \nabla L^\top G^{-1} \nabla L \, dt` equals
:math:`L(w_0) - L(w_T)`, and every other path between the same end points costs more.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons import nets
    >>> params = nets.init_mlp([2, 3, 1], key=jax.random.key(0))
    >>> [K.shape for K in layer_factors(params, jnp.ones((4, 2)))]  # (n c, d_in d_out + d_out) per layer
    [(4, 9), (4, 4)]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.scipy.linalg import cho_solve

from lessons.checks import (
    check_callable,
    check_finite,
    check_learning_rate,
    check_positive,
    check_positive_int,
    check_shaped_like,
)
from lessons.natural_gradient import _check_kind, _check_mlp_batch, _empty_init, _require_batch, _spd_solve, output_hessian_factor

__all__ = [
    "action",
    "action_excess",
    "gradient_flow",
    "layer_factors",
    "layerwise_metric",
    "layerwise_step",
    "perturb_path",
    "pulled_back_factors",
]


# --- the backward sweep of factors ---------------------------------------------------------------


def _check_network(params, x, loss_kind, activation):
    _check_kind(loss_kind, "loss_kind")
    check_callable(activation, "activation")
    return _check_mlp_batch(params, x)


def _sweep(params, x, loss_kind, activation):
    """``(inputs, states, pre)``: per layer its input :math:`x_i` ``(n, d_i)``; the factors :math:`L_0..L_N`
    and, per layer, the factor at its pre-activation, both stored row-major as ``(c, n, d)``."""
    n, a = x.shape[0], x
    inputs, pullbacks = [], []
    for index, (W, b) in enumerate(params):

        def layer(a_in, shift, W=W, b=b, last=index == len(params) - 1):
            z = a_in @ W + b + shift  # shift = 0: its cotangent is the factor at the pre-activation
            return z if last else activation(z)

        inputs.append(a)
        a, pullback = jax.vjp(layer, a, jnp.zeros((n, b.shape[-1]), jnp.result_type(a.dtype, b.dtype)))
        pullbacks.append(pullback)
    S = output_hessian_factor(a, loss_kind).astype(a.dtype) / math.sqrt(n)  # (n, c, c)
    L = jnp.swapaxes(S, 0, 1)  # row r of every example's L_N: (c, n, c)
    states, pre = [L], []
    for pullback in reversed(pullbacks):  # rows are independent: vmap the layer's VJP over them
        L, E = jax.vmap(pullback)(L)
        states.append(L)
        pre.append(E)
    return inputs, states[::-1], pre[::-1]


def pulled_back_factors(params, x, loss_kind: str = "logistic", activation: Callable = jnp.tanh) -> list:
    r"""The factors :math:`L_0, \dots, L_N` of the output metric pulled back to every state, shape ``(n, c, d_i)``.

    State :math:`x_i` is the input of layer ``i`` (:math:`x_0` = ``x``, :math:`x_N` the outputs). Per example,

    .. math:: L_N = S / \sqrt n, \qquad L_i = L_{i+1} A_i = \frac{S}{\sqrt n}\, \frac{\partial x_N}{\partial x_i},

    computed by the backward recursion: each row of :math:`L_{i+1}` goes through the vector-Jacobian
    product of layer ``i`` alone (:math:`O(n c\, d_i d_{i+1})` per layer). :math:`L_i^\top L_i` is the
    metric that the loss induces on state :math:`x_i`.
    """
    x = _check_network(params, x, loss_kind, activation)
    return [jnp.swapaxes(L, 0, 1) for L in _sweep(params, x, loss_kind, activation)[1]]


def layer_factors(params, x, loss_kind: str = "logistic", activation: Callable = jnp.tanh) -> list:
    r"""Per layer, :math:`K_i = L_{i+1} B_i`, shape ``(n c, p_i)``, so that :math:`\mu I + K_i^\top K_i = G_i`.

    For a dense layer with input :math:`a` and the factor :math:`E = L_{i+1}\, \partial x_{i+1}/\partial z_i`
    at its pre-activation :math:`z_i = a W_i + b_i`, row ``r`` of example ``k`` is
    :math:`[\,a_k \otimes E_{kr},\ E_{kr}\,]`: the columns follow ``ravel_pytree((W_i, b_i))`` (``W`` row-major,
    then ``b``) and the rows are example-major, as in :func:`lessons.natural_gradient.ggn_factor`, whose
    columns of layer ``i`` these are. Dense, small problems: :func:`layerwise_step` never forms them.
    """
    x = _check_network(params, x, loss_kind, activation)
    inputs, _, pre = _sweep(params, x, loss_kind, activation)
    factors = []
    for a, E in zip(inputs, pre, strict=True):
        c, n, d_out = E.shape
        K_W = jnp.einsum("nj,rnk->nrjk", a, E).reshape(n * c, -1)
        factors.append(jnp.concatenate([K_W, jnp.swapaxes(E, 0, 1).reshape(n * c, d_out)], axis=1))
    return factors


# --- the step --------------------------------------------------------------------------------------


def _block_solve(a, E, gW, gb, mu):
    r""":math:`(\mu I + K^\top K)^{-1} g` for one dense layer, by Woodbury, without :math:`K`."""
    c, n, _ = E.shape
    gram = (a @ a.T + 1)[:, None, :, None] * jnp.einsum("rnk,smk->nrms", E, E)  # K K^T, example-major
    Kg = jnp.einsum("nk,rnk->nr", a @ gW + gb, E).reshape(n * c)
    y = _spd_solve(mu * jnp.eye(n * c, dtype=E.dtype) + gram.reshape(n * c, n * c), Kg)
    V = jnp.einsum("nr,rnk->nk", y.reshape(n, c), E)  # K^T y = (a^T V, sum_n V_n)
    return (gW - a.T @ V) / mu, (gb - V.sum(axis=0)) / mu


def layerwise_step(params, grads, x, mu, loss_kind: str = "logistic", activation: Callable = jnp.tanh):
    r"""Per layer, the direction :math:`G_i^{-1} g_i = (\mu I + K_i^\top K_i)^{-1} g_i` (shaped like ``grads``).

    Each block is solved by Woodbury in an ``r x r`` system, :math:`r = n c`,

    .. math:: (\mu I + K_i^\top K_i)^{-1} g_i = \frac1\mu \big(g_i - K_i^\top (\mu I + K_i K_i^\top)^{-1} K_i g_i\big),

    without forming :math:`K_i`: for a dense layer :math:`(K_i K_i^\top)_{kr,\,ls} = (a_k \cdot a_l + 1)(E_{kr} \cdot E_{ls})`,
    an elementwise product of two small Gram matrices (as in :func:`lessons.natural_gradient.gram_layerwise`),
    :math:`(K_i g_i)_{kr} = (a_k g_W + g_b) \cdot E_{kr}`, and :math:`K_i^\top y = (a^\top V, \sum_k V_k)` with
    :math:`V_k = \sum_r y_{kr} E_{kr}`. Cost per layer :math:`O(r^2 (d_{in} + d_{out}) + r^3 + n\, d_{in} d_{out})`
    against :math:`O(p_i^3)` for the dense ``p_i x p_i`` block. ``mu`` may be traced.
    """
    x = _check_network(params, x, loss_kind, activation)
    check_shaped_like(params, grads, "grads")
    check_positive(mu, "mu")
    inputs, _, pre = _sweep(params, x, loss_kind, activation)
    leaves = jax.tree.leaves(grads)
    directions = []
    for a, E, gW, gb in zip(inputs, pre, leaves[::2], leaves[1::2], strict=True):
        dtype = jnp.result_type(gW.dtype, gb.dtype)
        dW, db = _block_solve(a.astype(dtype), E.astype(dtype), gW.astype(dtype), gb.astype(dtype), jnp.asarray(mu, dtype))
        directions += [dW.astype(gW.dtype), db.astype(gb.dtype)]
    return jax.tree.unflatten(jax.tree.structure(grads), directions)


def layerwise_metric(
    learning_rate: float = 1.0,
    *,
    mu: float = 1e-2,
    loss_kind: str = "logistic",
    activation: Callable = jnp.tanh,
) -> optax.GradientTransformationExtraArgs:
    r"""The layerwise Woodbury metric as an optax transformation, for :func:`lessons.nets.mlp`:

    .. math:: \Delta\theta_i = -\eta\, (\mu I + K_i^\top K_i)^{-1} g_i \quad \text{for every layer } i,

    with :math:`K_i` from the backward sweep on the batch (:func:`layer_factors`) and the solve of
    :func:`layerwise_step`. The state is empty: the metric is rebuilt from the batch at every step.
    ``update(grads, state, params, batch=(x, y))`` needs the data, as :func:`lessons.train.train` passes
    it with ``extras=train.ALL_EXTRAS``. The network and the loss may come as extra arguments of
    ``update`` too: ``activation=`` and ``loss_kind=`` there override the values given here.

    ``learning_rate`` and ``mu`` are used only in arithmetic, so they may be traced and injected:
    ``optax.inject_hyperparams(layerwise_metric, static_args=("loss_kind", "activation"))(...)``.
    """
    check_learning_rate(learning_rate)
    check_positive(mu, "mu")
    _check_kind(loss_kind, "loss_kind")
    check_callable(activation, "activation")

    def update(grads, state, params=None, *, batch=None, activation=activation, loss_kind=loss_kind, **extra):
        del extra
        _require_batch("layerwise_metric", params, batch)
        directions = layerwise_step(params, grads, batch[0], mu, loss_kind, activation)
        return jax.tree.map(lambda d: -jnp.asarray(learning_rate, d.dtype) * d, directions), state

    return optax.GradientTransformationExtraArgs(_empty_init, update)


# --- the action view: gradient flow under a fixed metric -----------------------------------------


def _check_metric(metric, p: int):
    G = jnp.asarray(metric)
    if G.shape != (p, p):
        raise ValueError(f"metric must be a matrix of shape ({p}, {p}), got shape {G.shape}")
    chol = jnp.linalg.cholesky(G)
    if not isinstance(chol, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError("metric must be symmetric positive definite (its Cholesky factorisation failed)")
    return G, chol


@functools.partial(jax.jit, static_argnames=("grad_fn", "num_steps"))
def _rk4(grad_fn, chol, w0, dt, num_steps):
    def field(w):
        return -cho_solve((chol, True), grad_fn(w))

    def step(w, _):
        k1 = field(w)
        k2 = field(w + 0.5 * dt * k1)
        k3 = field(w + 0.5 * dt * k2)
        k4 = field(w + dt * k3)
        w = w + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return w, w

    _, path = lax.scan(step, w0, None, length=num_steps)
    return jnp.concatenate([w0[None], path])


def gradient_flow(grad_fn: Callable, metric, w0, t_final: float, num_steps: int) -> jax.Array:
    r"""The path of the gradient flow :math:`w' = -G^{-1} \nabla L(w)` from ``w0``, shape ``(num_steps + 1, p)``.

    The metric :math:`G` is a fixed, dense, symmetric positive definite ``(p, p)`` matrix (small problems);
    classical fourth-order Runge-Kutta with the fixed step :math:`\Delta t` = ``t_final / num_steps``
    (global error :math:`O(\Delta t^4)`), :math:`G^{-1}` applied by one Cholesky factorisation.
    Row ``k`` is :math:`w(k \Delta t)`. ``grad_fn(w)`` returns :math:`\nabla L(w)`, shape ``(p,)``.
    """
    check_callable(grad_fn, "grad_fn", "a function w -> grad L(w)")
    w0 = jnp.asarray(w0)
    if w0.ndim != 1:
        raise ValueError(f"w0 must be a vector of shape (p,), got shape {w0.shape}")
    w0 = w0.astype(jnp.result_type(w0.dtype, float))
    _, chol = _check_metric(jnp.asarray(metric, w0.dtype), w0.size)
    check_positive(t_final, "t_final")
    check_positive_int(num_steps, "num_steps")
    return _rk4(grad_fn, chol, w0, jnp.asarray(t_final / num_steps, w0.dtype), num_steps)


def _segments(path, dt, grad_fn, metric):
    """Per segment of the path: its velocity, the gradient at its midpoint, and the metric's Cholesky factor."""
    check_callable(grad_fn, "grad_fn", "a function w -> grad L(w)")
    path = jnp.asarray(path)
    if path.ndim != 2 or path.shape[0] < 2:
        raise ValueError(f"path must have shape (m + 1, p) with m >= 1 segments, got shape {path.shape}")
    check_positive(dt, "dt")
    G, chol = _check_metric(jnp.asarray(metric, path.dtype), path.shape[1])
    velocity = jnp.diff(path, axis=0) / dt
    gradient = jax.vmap(grad_fn)(0.5 * (path[1:] + path[:-1]))
    return velocity, gradient, G, chol


def action(path, dt: float, grad_fn: Callable, metric) -> jax.Array:
    r"""The discretised action of a path under the metric :math:`G`,

    .. math:: \mathcal A[w] = \int_0^T \tfrac12\, w'^\top G\, w' + \tfrac12\, \nabla L^\top G^{-1} \nabla L \; dt .

    ``path`` has shape ``(m + 1, p)``, its points :math:`\Delta t` = ``dt`` apart. Midpoint rule: on each
    segment :math:`w' \approx (w_{k+1} - w_k)/\Delta t` and :math:`\nabla L` at :math:`(w_k + w_{k+1})/2`
    (both second-order accurate). Completing the square,

    .. math:: \mathcal A[w] = L(w_0) - L(w_T) + \tfrac12 \int_0^T \|w' + G^{-1}\nabla L\|_G^2 \, dt
       \;\ge\; L(w_0) - L(w_T),

    since the cross term :math:`w'^\top \nabla L = dL/dt` integrates to :math:`L(w_T) - L(w_0)`. Equality
    holds exactly along the gradient flow (:func:`gradient_flow`); any other path with the same end points and duration
    (:func:`perturb_path`) has a larger action, by :func:`action_excess`. Discretised, the cross term is
    :math:`\sum_k (w_{k+1} - w_k)^\top \nabla L(\text{midpoint})`, which equals :math:`L(w_T) - L(w_0)`
    exactly for a quadratic :math:`L` and to :math:`O(\Delta t^2)` otherwise.
    """
    velocity, gradient, G, chol = _segments(path, dt, grad_fn, metric)
    kinetic = jnp.einsum("kp,pq,kq->", velocity, G, velocity)
    potential = jnp.sum(gradient * cho_solve((chol, True), gradient.T).T)
    return 0.5 * dt * (kinetic + potential)


def action_excess(path, dt: float, grad_fn: Callable, metric) -> jax.Array:
    r"""The square completed in :func:`action`: :math:`\tfrac12 \int_0^T \|w' + G^{-1}\nabla L\|_G^2\, dt \ge 0`,
    discretised the same way, so that ``action - action_excess`` is :math:`L(w_0) - L(w_T)` (exactly for a
    quadratic). Zero along the gradient flow, up to the integrator's error."""
    velocity, gradient, G, chol = _segments(path, dt, grad_fn, metric)
    residual = velocity + cho_solve((chol, True), gradient.T).T
    return 0.5 * dt * jnp.einsum("kp,pq,kq->", residual, G, residual)


def perturb_path(path, direction, amplitude: float = 1.0) -> jax.Array:
    r"""``path`` plus :math:`a \sin(\pi k / m)\, v`: another path with the same end points (row ``k`` of ``m + 1``)."""
    path, direction = jnp.asarray(path), jnp.asarray(direction)
    if path.ndim != 2 or path.shape[0] < 2:
        raise ValueError(f"path must have shape (m + 1, p) with m >= 1 segments, got shape {path.shape}")
    if direction.shape != path.shape[1:]:
        raise ValueError(f"direction must have shape {path.shape[1:]} to match path, got {direction.shape}")
    check_finite(amplitude, "amplitude")
    bump = jnp.sin(jnp.pi * jnp.linspace(0.0, 1.0, path.shape[0], dtype=path.dtype))
    bump = bump.at[-1].set(0.0)  # sin(pi) is not exactly 0 in floating point
    return path + amplitude * bump[:, None] * direction
