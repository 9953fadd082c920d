r"""Layerwise LQR (Dufort-Labbé et al.): learn a structured preconditioner by minimising the LQR cost of its step.

The damped (Gauss-)Newton step minimises the quadratic model of the mean loss,

.. math:: m(d) = g^\top d + \tfrac12\, d^\top G\, d, \qquad G = K^\top K + \lambda I,

with :math:`K` the GGN factor of :func:`lessons.natural_gradient.ggn_factor` (cross-layer coupling included).
Chapter 7 solves it as an LQR problem over the layers. LLQR instead *learns* a cheap block-diagonal
preconditioner :math:`U`, starting from the identity, by minimising the LQR cost of the control
:math:`u = -U g` rolled through the linearised network,

.. math:: J(U) = m(-U g) = -g^\top U g + \tfrac12\, (U g)^\top G\, (U g)
   = -g^\top U g + \frac{1}{2n} \sum_i \|S_i J_i\, U g\|^2 + \frac\lambda2 \|U g\|^2,

where :math:`J_i (U g)` is one Jacobian-vector product of the outputs and :math:`S_i^\top S_i` the output
curvature (:func:`lessons.natural_gradient.output_hessian_factor`): :math:`G` is never formed. Per layer
:math:`(W, b)`, :math:`W` of shape ``(d_in, d_out)``, two structures (:data:`STRUCTURES`):

* ``"diagonal"``: an elementwise scale per parameter, :math:`(U g)_j = u_j g_j`; :math:`J` is a quadratic in
  :math:`u`, minimised where :math:`(G \circ g g^\top)\, u = g \circ g`;
* ``"kronecker"``: :math:`V \mapsto B\, V A` on the weight gradient, :math:`B` ``(d_in, d_in)``, :math:`A`
  ``(d_out, d_out)`` (the block :math:`B \otimes A^\top` in row-major order), and a diagonal scale on the bias.

:func:`fit` takes ``num_steps`` heavy-ball steps on :math:`J` (:math:`M \leftarrow \beta M - \tfrac{\eta}{L}
\nabla J(U)`, :math:`U \leftarrow U + M`) with :math:`g` normalised to :math:`\hat g = g / \|g\|` (:math:`J` is
homogeneous of degree 2 in :math:`g`: same minimiser) and :math:`L` the largest curvature of :math:`J` at the
start, by a few power iterations, so :math:`\eta` is in units of :math:`1/L` (stable for
:math:`\eta < 2(1 + \beta)`); a fit that does not lower :math:`J` is discarded. :func:`llqr` refits every
:math:`T` steps, from the current average, and averages the fits,

.. math:: \bar U_0 = I, \qquad \bar U_k = \rho\, \bar U_{k-1} + (1 - \rho)\, U_k, \qquad
   \Delta\theta = \mathrm{outer}(\bar U g),

an EMA that leaves the identity slowly (it keeps the weight :math:`\rho^k`): one gradient does not determine
:math:`U` (a diagonal :math:`U` fitted to one :math:`g` can reach the full Newton step :math:`G^{-1} g`, with
scales :math:`u_j` of any sign), so averaging fits over many steps is what makes :math:`\bar U` a preconditioner.
The outer optimizer (Adam by default) gets :math:`\bar U g`.

**Cost.** In multiply-adds, with :math:`\Sigma_1 = \sum d_{in} d_{out}` over the layers (an Adam step's
matmuls: :math:`3 n \Sigma_1`) and, for the Kronecker structure, :math:`\Sigma_2 = \sum d_{in} d_{out}
(d_{in} + d_{out})` (none for the diagonal): a step adds :math:`\Sigma_2`, per layer a fraction
:math:`(d_{in} + d_{out}) / (3n)` of its share of an Adam step. A refit on ``n_f`` examples is one forward pass
to linearise, then ``num_steps + 1 + 2 power_iters`` gradients of :math:`J` (a JVP and a VJP of the linearised
network, :math:`4 n_f \Sigma_1 + 3 \Sigma_2`) and two evaluations (:math:`2 n_f \Sigma_1 + \Sigma_2`).
Refitting every :math:`T` steps on a small batch amortises it (``benchmarks/llqr.py``: the diagonal
structure within about 10% of an Adam step at :math:`n = 512`, :math:`T = 100`, :math:`n_f = 32`).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons import nets
    >>> params = nets.init_mlp([2, 3, 1], key=jax.random.key(0))
    >>> [tuple(u.shape for u in layer) for layer in identity(params, "kronecker")]  # (B, A, bias scale)
    [((2, 2), (3, 3), (3,)), ((3, 3), (1, 1), (1,))]
    >>> opt = llqr(1e-2, structure="kronecker")
    >>> x, y = jnp.ones((4, 2)), jnp.ones(4)
    >>> grads = jax.grad(lambda p: nets.binary_cross_entropy(nets.mlp(p, x), y))(params)
    >>> updates, state = opt.update(grads, opt.init(params), params, batch=(x, y))
    >>> int(state.count), int(state.refits)
    (1, 1)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from lessons import nets
from lessons.checks import (
    check_callable,
    check_learning_rate,
    check_momentum,
    check_positive,
    check_positive_int,
    check_shaped_like,
    check_transformation,
)
from lessons.natural_gradient import _check_kind, _check_mlp_batch, _require_batch, output_hessian_factor

__all__ = ["STRUCTURES", "LLQRState", "apply", "fit", "identity", "llqr", "lqr_cost"]

STRUCTURES = ("diagonal", "kronecker")
"""The preconditioner's structure per layer: an elementwise scale, or a Kronecker product on the weights."""


def _check_structure(structure) -> None:
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")


def _check_layers(params, name: str = "params") -> None:
    if not isinstance(params, (list, tuple)) or not params or not all(len(layer) == 2 for layer in params):
        raise TypeError(f"{name} must be a non-empty list of (W, b) layers (lessons.nets.mlp), got {type(params).__name__}")
    for W, b in params:
        if jnp.ndim(W) != 2 or jnp.shape(b) != (jnp.shape(W)[1],):
            raise ValueError(f"{name} must hold layers (W, b): W (d_in, d_out), b (d_out,); got {jnp.shape(W)}, {jnp.shape(b)}")


# --- the preconditioner --------------------------------------------------------------------------


def identity(params, structure: str = "diagonal") -> list:
    r"""The identity preconditioner for ``params`` (or grads): per layer ``(ones_like(W), ones_like(b))`` for
    ``"diagonal"``, ``(eye(d_in), eye(d_out), ones_like(b))`` (:math:`B`, :math:`A`, bias scale) for ``"kronecker"``."""
    _check_structure(structure)
    _check_layers(params)
    if structure == "diagonal":
        return [(jnp.ones_like(W), jnp.ones_like(b)) for W, b in params]
    return [(jnp.eye(W.shape[0], dtype=W.dtype), jnp.eye(W.shape[1], dtype=W.dtype), jnp.ones_like(b)) for W, b in params]


def _apply(U, grads, structure):
    if structure == "diagonal":
        out = [(sW * gW, sb * gb) for (sW, sb), (gW, gb) in zip(U, grads, strict=True)]
    else:
        out = [(B @ gW @ A, sb * gb) for (B, A, sb), (gW, gb) in zip(U, grads, strict=True)]
    return type(grads)(out) if isinstance(grads, (list, tuple)) else out


def _check_preconditioner(params, U, structure) -> None:
    check_shaped_like(identity(params, structure), U, "U")


def apply(U, grads, structure: str = "diagonal"):
    r"""The preconditioned gradient :math:`U g`, shaped like ``grads``: per layer :math:`(u_W \circ g_W, u_b \circ g_b)`
    (``"diagonal"``) or :math:`(B\, g_W A,\ u_b \circ g_b)` (``"kronecker"``). ``U`` is shaped like :func:`identity`."""
    _check_structure(structure)
    _check_layers(grads, "grads")
    _check_preconditioner(grads, U, structure)
    return _apply(U, grads, structure)


# --- the LQR cost ----------------------------------------------------------------------------------


def _dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _cost_fn(params, x, grads, structure, loss_kind, damping, activation):
    r""":math:`U \mapsto J(U)`, the network linearised once at ``params`` (each call: one JVP, no forward pass)."""
    outputs, jvp = jax.linearize(lambda p: nets.mlp(p, x, activation), params)
    S = output_hessian_factor(outputs, loss_kind).astype(outputs.dtype) / math.sqrt(x.shape[0])
    lam = jnp.asarray(damping, outputs.dtype)

    def cost(U):
        v = _apply(U, grads, structure)
        Kv = jnp.einsum("nab,nb->na", S, jvp(v))  # rows of the GGN factor K times v, one JVP
        return -_dot(grads, v) + 0.5 * (jnp.sum(Kv**2) + lam * _dot(v, v))

    return cost


@functools.partial(jax.jit, static_argnames=("structure", "loss_kind", "activation"))
def _lqr_cost(params, x, U, grads, damping, *, structure, loss_kind, activation):
    return _cost_fn(params, x, grads, structure, loss_kind, damping, activation)(U)


def _check_inputs(params, batch, grads, U, structure, loss_kind, damping, activation):
    _check_structure(structure)
    _check_kind(loss_kind, "loss_kind")
    check_positive(damping, "damping")
    check_callable(activation, "activation")
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        raise TypeError(f"batch must be a pair (x, y) (y may be None), got {type(batch).__name__}")
    x = _check_mlp_batch(params, batch[0])
    check_shaped_like(params, grads, "grads")
    _check_preconditioner(params, U, structure)
    return x


def lqr_cost(
    params,
    batch,
    U,
    grads,
    *,
    loss_kind: str = "logistic",
    damping: float = 1e-3,
    structure: str = "diagonal",
    activation: Callable = jnp.tanh,
) -> jax.Array:
    r"""The LQR cost :math:`J(U) = -g^\top U g + \tfrac12 (U g)^\top (K^\top K + \lambda I)(U g)` of the step :math:`-U g`.

    :math:`K^\top K` is the GGN of the mean loss of :func:`lessons.nets.mlp` on ``batch = (x, y)`` (the
    labels are not needed), applied by one JVP along :math:`U g`; ``grads`` is :math:`g`, shaped like
    ``params``; ``damping`` is :math:`\lambda` (may be traced). Cost: a forward pass and a JVP on the batch.
    """
    x = _check_inputs(params, batch, grads, U, structure, loss_kind, damping, activation)
    return _lqr_cost(params, x, U, grads, damping, structure=structure, loss_kind=loss_kind, activation=activation)


# --- fitting U -------------------------------------------------------------------------------------


def _tree_where(pred, a, b):
    return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)


def _unit(tree):
    norm = jnp.sqrt(_dot(tree, tree))
    return jax.tree.map(lambda t: t / jnp.where(norm > 0, norm, 1), tree), norm


def _fit(params, x, grads, U0, lr, momentum, damping, *, num_steps, power_iters, structure, loss_kind, activation):
    """``(U, J(U; g / |g|))``: heavy ball on the normalised cost from ``U0``; ``U0`` back if it did not lower ``J``."""
    g_hat, _ = _unit(grads)
    cost = _cost_fn(params, x, g_hat, structure, loss_kind, damping, activation)
    c0 = cost(U0)
    if num_steps == 0:
        return U0, c0
    grad = jax.grad(cost)

    def power(_, carry):  # the largest curvature of J at U0, from below: |H v| for a unit v
        v, _ = carry
        return _unit(jax.jvp(grad, (U0,), (v,))[1])

    dtype = c0.dtype
    _, L = lax.fori_loop(0, power_iters, power, (_unit(grad(U0))[0], jnp.zeros((), dtype)))
    eta = jnp.where(L > 0, jnp.asarray(lr, dtype) / jnp.where(L > 0, L, 1), 0)
    beta = jnp.asarray(momentum, dtype)

    def step(_, carry):
        U, M = carry
        M = jax.tree.map(lambda m, d: beta * m - eta * d, M, grad(U))
        return jax.tree.map(jnp.add, U, M), M

    U, _ = lax.fori_loop(0, num_steps, step, (U0, jax.tree.map(jnp.zeros_like, U0)))
    c1 = cost(U)
    better = jnp.isfinite(c1) & (c1 <= c0)
    return _tree_where(better, U, U0), jnp.where(better, c1, c0)


_fit_jit = jax.jit(_fit, static_argnames=("num_steps", "power_iters", "structure", "loss_kind", "activation"))


def fit(
    params,
    batch,
    grads,
    U0,
    *,
    num_steps: int = 50,
    learning_rate: float = 0.3,
    momentum: float = 0.9,
    damping: float = 1e-3,
    loss_kind: str = "logistic",
    structure: str = "diagonal",
    activation: Callable = jnp.tanh,
    power_iters: int = 5,
):
    r"""The preconditioner fitted from ``U0`` by ``num_steps`` heavy-ball steps on :func:`lqr_cost` (see the module).

    The cost is taken with :math:`\hat g = g/\|g\|` (same minimiser) and the step is ``learning_rate`` :math:`/L`,
    :math:`L` the largest curvature of :math:`J` at ``U0`` from ``power_iters`` power iterations (Hessian-vector
    products of :math:`J`): ``learning_rate`` is in units of :math:`1/L`. The result replaces ``U0`` only if it
    lowers :math:`J` (a non-finite or worse fit gives ``U0`` back). Compiled; the loops are ``lax.fori_loop``.
    Cost: one forward pass, then ``num_steps + 1 + 2 power_iters`` JVP-and-VJP pairs on the batch.
    """
    x = _check_inputs(params, batch, grads, U0, structure, loss_kind, damping, activation)
    check_positive_int(num_steps, "num_steps", low=0)
    check_positive_int(power_iters, "power_iters")
    check_learning_rate(learning_rate)
    check_momentum(momentum)
    static = dict(num_steps=num_steps, power_iters=power_iters, structure=structure, loss_kind=loss_kind, activation=activation)
    return _fit_jit(params, x, grads, U0, learning_rate, momentum, damping, **static)[0]


# --- the optimizer ---------------------------------------------------------------------------------


class LLQRState(NamedTuple):
    r"""The state of :func:`llqr`: ``count`` steps taken, ``refits`` so far, the averaged ``preconditioner``
    :math:`\bar U`, ``cost`` :math:`J(U; g/\|g\|)` of the last fit (a diagnostic), and the ``outer`` state."""

    count: jax.Array
    refits: jax.Array
    preconditioner: Any
    cost: jax.Array
    outer: Any


def llqr(
    learning_rate: float = 1e-3,
    *,
    outer: optax.GradientTransformation | None = None,
    structure: str = "diagonal",
    refit_every: int = 10,
    fit_steps: int = 50,
    fit_learning_rate: float = 0.3,
    fit_momentum: float = 0.9,
    ema: float = 0.9,
    damping: float = 1e-3,
    loss_kind: str = "logistic",
    fit_batch: int | None = None,
    power_iters: int = 5,
    activation: Callable = jnp.tanh,
) -> optax.GradientTransformationExtraArgs:
    r"""Layerwise LQR for :func:`lessons.nets.mlp` as an optax transformation:

    .. math:: U_k = \mathrm{fit}(\bar U_{k-1}) \text{ every } T \text{ steps}, \qquad
       \bar U_k = \rho\, \bar U_{k-1} + (1 - \rho)\, U_k, \qquad \Delta\theta = \mathrm{outer}(\bar U g),

    with :func:`fit` (``fit_steps`` heavy-ball steps on :func:`lqr_cost`, from the current :math:`\bar U`,
    at ``fit_learning_rate`` in units of :math:`1/L` with momentum ``fit_momentum``) on the step's batch, or its
    first ``fit_batch`` rows; :math:`T` = ``refit_every``, :math:`\rho` = ``ema``. The refit runs at steps
    :math:`0, T, 2T, \dots` inside ``lax.cond``, so one compiled step serves every step. ``outer`` defaults to
    ``optax.adam(learning_rate)`` (``learning_rate`` is unused when ``outer`` is given); ``outer=optax.identity()``
    returns :math:`\bar U g` itself, to chain: ``optax.chain(llqr(outer=optax.identity()), optax.adam(1e-3))``.
    With ``fit_steps=0`` the preconditioner stays the identity and the outer optimizer runs alone. Adam divides
    each coordinate by its own scale, so it cancels much of a diagonal :math:`\bar U`; under SGD the fitted scales
    set the step (towards the damped Newton step), so SGD's stable learning rate is lower than it alone allows.

    ``update(grads, state, params, batch=(x, y))`` needs the data, as :func:`lessons.train.train` passes it
    with ``extras=train.ALL_EXTRAS``. ``learning_rate``, ``fit_learning_rate``, ``fit_momentum``, ``ema`` and
    ``damping`` are used only in arithmetic, so they may be injected:
    ``optax.inject_hyperparams(llqr, static_args=("outer", "structure", "refit_every", "fit_steps",
    "loss_kind", "fit_batch", "power_iters", "activation"))(...)``. Cost: see the module docstring.
    """
    check_learning_rate(learning_rate)
    if outer is not None:
        check_transformation(outer, "outer")
    _check_structure(structure)
    check_positive_int(refit_every, "refit_every")
    check_positive_int(fit_steps, "fit_steps", low=0)
    check_learning_rate(fit_learning_rate, "fit_learning_rate")
    check_momentum(fit_momentum, "fit_momentum")
    check_momentum(ema, "ema")
    check_positive(damping, "damping")
    _check_kind(loss_kind, "loss_kind")
    if fit_batch is not None:
        check_positive_int(fit_batch, "fit_batch")
    check_positive_int(power_iters, "power_iters")
    check_callable(activation, "activation")
    outer = optax.with_extra_args_support(optax.adam(learning_rate) if outer is None else outer)
    static = dict(num_steps=fit_steps, power_iters=power_iters, structure=structure, loss_kind=loss_kind, activation=activation)

    def init(params):
        U = identity(params, structure)
        dtype = jnp.result_type(*jax.tree.leaves(params))
        zero = jnp.zeros([], jnp.int32)
        return LLQRState(zero, zero, U, jnp.zeros([], dtype), outer.init(params))

    def update(grads, state, params=None, *, batch=None, **extra):
        _require_batch("llqr", params, batch)
        x = _check_mlp_batch(params, batch[0])
        x = x if fit_batch is None else x[:fit_batch]
        check_shaped_like(params, grads, "grads")
        _check_preconditioner(params, state.preconditioner, structure)
        refit_now = state.count % refit_every == 0

        def refit(U):
            fitted, cost = _fit(params, x, grads, U, fit_learning_rate, fit_momentum, damping, **static)
            rho = jnp.asarray(ema, cost.dtype)
            return jax.tree.map(lambda u, f: (u + (1 - rho) * (f - u)).astype(u.dtype), U, fitted), cost.astype(state.cost.dtype)

        U, cost = lax.cond(refit_now, refit, lambda U: (U, state.cost), state.preconditioner)
        updates, outer_state = outer.update(_apply(U, grads, structure), state.outer, params, **extra)
        refits = state.refits + refit_now.astype(jnp.int32)
        return updates, LLQRState(state.count + 1, refits, U, cost, outer_state)

    return optax.GradientTransformationExtraArgs(init, update)
