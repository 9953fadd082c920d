r"""Newton's method: dense Newton steps, saddle-free Newton, Levenberg-Marquardt and Newton-CG, as optax transformations.

Each optimizer needs the loss as well as its gradient: ``update(grads, state, params, value_fn=loss_fn)``
(:func:`lessons.train.train` passes it). On small problems the steps use the dense Hessian
(:func:`newton`, :func:`saddle_free_newton`, :func:`levenberg_marquardt`: :math:`O(P^3)` per step);
:func:`newton_cg` only multiplies by it, one Hessian-vector product per conjugate-gradient iteration.

The building blocks live one layer down and are re-exported here, so ``newton.hvp`` keeps working:

* :mod:`lessons.autodiff`: :func:`~lessons.autodiff.hvp`, :func:`~lessons.autodiff.hvp_reverse_over_reverse`,
  :func:`~lessons.autodiff.hvp_reverse_over_forward`, :func:`~lessons.autodiff.hessian_matrix`,
  :func:`~lessons.autodiff.flat_hvp`;
* :mod:`lessons.linalg`: :func:`~lessons.linalg.conjugate_gradient` and its :class:`~lessons.linalg.CGResult`;
* :mod:`lessons.checks`: :func:`~lessons.checks.check_damping`;

and the cost measurements of chapter 2 in :mod:`lessons.costs`: :func:`~lessons.costs.compiled_flops`,
:func:`~lessons.costs.measure_costs`, :class:`~lessons.costs.Costs`.

Example::

    >>> import jax, jax.numpy as jnp, optax
    >>> from lessons.newton import newton
    >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)  # a quadratic: one step solves it
    >>> params = jnp.ones(2); opt = newton(); state = opt.init(params)
    >>> updates, state = opt.update(jax.grad(f)(params), state, params, value_fn=f)
    >>> optax.apply_updates(params, updates)
    Array([0., 0.], dtype=float32)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

# The building blocks and cost measurements are re-exported (see the module docstring): the chapters
# and widgets call them as ``newton.hvp``, ``newton.measure_costs``, ``newton.check_damping``.
from lessons.autodiff import flat_hvp, hessian_matrix, hvp, hvp_reverse_over_forward, hvp_reverse_over_reverse
from lessons.checks import check_damping, check_fraction, check_learning_rate, check_positive_int, concrete
from lessons.costs import Costs, compiled_flops, measure_costs
from lessons.linalg import CGResult, conjugate_gradient

__all__ = [
    "CGResult",
    "Costs",
    "LevenbergMarquardtState",
    "NewtonCGState",
    "check_damping",
    "compiled_flops",
    "conjugate_gradient",
    "flat_hvp",
    "hessian_matrix",
    "hvp",
    "hvp_reverse_over_forward",
    "hvp_reverse_over_reverse",
    "levenberg_marquardt",
    "measure_costs",
    "newton",
    "newton_cg",
    "saddle_free_newton",
]


# --- Newton steps on small problems (dense) -------------------------------------------------------


def _needs_value_fn(value_fn, name: str):
    if value_fn is None:
        raise ValueError(
            f"{name} needs the loss: call update(grads, state, params, value_fn=loss_fn) (lessons.train passes it automatically)"
        )


def _dense(value_fn, params):
    flat, unravel = ravel_pytree(params)
    f = lambda w: value_fn(unravel(w))
    return flat, unravel, jax.hessian(f)(flat)


def newton(learning_rate: float = 1.0, damping: float = 0.0) -> optax.GradientTransformationExtraArgs:
    r"""Newton's method with a dense Hessian, optionally damped (small problems).

    .. math:: \Delta\theta = -\eta\, (H + \lambda I)^{-1} g, \qquad H = \nabla^2 f(\theta),

    one solve of a ``P x P`` system per step: :math:`O(P^2)` memory, :math:`O(P^3)` time. With
    :math:`\lambda = 0` and :math:`\eta = 1` it is the pure Newton step, exact in one step on a
    quadratic and attracted to any stationary point, saddles included. ``update`` needs the loss
    as ``value_fn=...``.
    """
    check_learning_rate(learning_rate)
    check_damping(damping)

    def init(params):
        del params
        return optax.EmptyState()

    def update(grads, state, params=None, *, value_fn=None, **extra):
        del extra
        _needs_value_fn(value_fn, "newton")
        _, unravel = ravel_pytree(params)
        flat, _, H = _dense(value_fn, params)
        g, _ = ravel_pytree(grads)
        step = jnp.linalg.solve(H + damping * jnp.eye(flat.size, dtype=H.dtype), g)
        return unravel(-learning_rate * step), state

    return optax.GradientTransformationExtraArgs(init, update)


def saddle_free_newton(learning_rate: float = 1.0, damping: float = 0.0) -> optax.GradientTransformationExtraArgs:
    r"""Saddle-free Newton (Dauphin et al. 2014): rescale by the *absolute* curvature.

    .. math:: \Delta\theta = -\eta\, (|H| + \lambda I)^{-1} g, \qquad |H| = V |\Lambda| V^\top
       \text{ for } H = V \Lambda V^\top .

    Along a direction of negative curvature the step goes *downhill* (Newton's goes uphill, towards
    the saddle). Needs an eigendecomposition: :math:`O(P^3)`, small problems only.
    """
    check_learning_rate(learning_rate)
    check_damping(damping)

    def init(params):
        del params
        return optax.EmptyState()

    def update(grads, state, params=None, *, value_fn=None, **extra):
        del extra
        _needs_value_fn(value_fn, "saddle_free_newton")
        _, unravel, H = _dense(value_fn, params)
        g, _ = ravel_pytree(grads)
        lam, V = jnp.linalg.eigh(H)
        step = V @ ((V.T @ g) / (jnp.abs(lam) + damping))
        return unravel(-learning_rate * step), state

    return optax.GradientTransformationExtraArgs(init, update)


class LevenbergMarquardtState(NamedTuple):
    r"""The current damping :math:`\lambda` and the last ratio of actual to predicted reduction."""

    damping: jax.Array
    ratio: jax.Array


def levenberg_marquardt(
    initial_damping: float = 1.0, *, decrease: float = 2.0 / 3.0, increase: float = 1.5
) -> optax.GradientTransformationExtraArgs:
    r"""Damped Newton with the damping adapted by the quality of the quadratic model (Levenberg-Marquardt).

    Each step proposes :math:`d = -(H + \lambda I)^{-1} g` and compares the actual reduction
    :math:`f(\theta) - f(\theta + d)` with the reduction the quadratic model predicts,
    :math:`-(g^\top d + \tfrac12 d^\top H d)`. With :math:`\rho` their ratio: if :math:`\rho > 3/4`
    the model is trusted more (:math:`\lambda \leftarrow` ``decrease`` :math:`\lambda`), if
    :math:`\rho < 1/4` less (:math:`\lambda \leftarrow` ``increase`` :math:`\lambda`), and a step that
    does not reduce :math:`f` is rejected (zero update). The factors 2/3 and 3/2 follow Martens (2010).
    Large :math:`\lambda` gives short gradient steps of length :math:`\approx \|g\| / \lambda`; small
    :math:`\lambda` gives Newton's step.
    """
    check_damping(initial_damping, "initial_damping")
    if not 0 < concrete(decrease, "decrease") < 1 < concrete(increase, "increase"):
        raise ValueError(f"need 0 < decrease < 1 < increase, got decrease={decrease}, increase={increase}")

    def init(params):
        dtype = ravel_pytree(params)[0].dtype
        return LevenbergMarquardtState(jnp.asarray(initial_damping, dtype), jnp.asarray(1.0, dtype))

    def update(grads, state, params=None, *, value_fn=None, **extra):
        del extra
        _needs_value_fn(value_fn, "levenberg_marquardt")
        flat, unravel, H = _dense(value_fn, params)
        g, _ = ravel_pytree(grads)
        d = -jnp.linalg.solve(H + state.damping * jnp.eye(flat.size, dtype=H.dtype), g)
        predicted = -(g @ d + 0.5 * d @ H @ d)
        actual = value_fn(params) - value_fn(unravel(flat + d))
        # The state keeps the parameters' dtype, even when the loss is computed in another (float64 data).
        ratio = (actual / jnp.where(predicted > 0, predicted, jnp.finfo(flat.dtype).tiny)).astype(state.damping.dtype)
        accept = jnp.isfinite(actual) & (actual > 0)
        damping = _adapt(state.damping, jnp.where(accept, ratio, 0.0), decrease, increase).astype(state.damping.dtype)
        return unravel(jnp.where(accept, d, 0.0)), LevenbergMarquardtState(damping, ratio)

    return optax.GradientTransformationExtraArgs(init, update)


# --- Newton-CG (Hessian-free) --------------------------------------------------------------------


class NewtonCGState(NamedTuple):
    r"""Newton-CG's damping :math:`\lambda`, and diagnostics of the last step: HVPs used by CG, whether
    CG met negative curvature, the ratio of actual to predicted reduction, and whether the step was taken."""

    damping: jax.Array
    cg_iterations: jax.Array
    negative_curvature: jax.Array
    ratio: jax.Array
    accepted: jax.Array


def _adapt(damping, ratio, decrease, increase):
    return jnp.where(ratio > 0.75, damping * decrease, jnp.where(ratio < 0.25, damping * increase, damping))


def newton_cg(
    learning_rate: float = 1.0,
    *,
    damping: float = 1.0,
    max_cg_iters: int = 20,
    cg_tol: float = 1e-4,
    damping_decrease: float = 2.0 / 3.0,
    damping_increase: float = 1.5,
) -> optax.GradientTransformationExtraArgs:
    r"""Newton-CG (Hessian-free Newton): solve the damped Newton system with conjugate gradients on HVPs.

    .. math:: s = \eta\, d, \qquad (H + \lambda I)\, d \approx -g,

    solved by :func:`lessons.linalg.conjugate_gradient`, truncated after ``max_cg_iters`` products, at
    relative residual ``cg_tol`` (in ``(0, 1)``), or at negative curvature. It never forms :math:`H`: each CG iteration is
    one Hessian-vector product (about 2-3 gradients), so a step costs :math:`O(\text{max\_cg\_iters} \cdot P)`.

    On a non-convex loss the quadratic model can be badly wrong far from the current point, so the
    damping adapts as in Levenberg-Marquardt (Martens 2010): with

    .. math:: \rho = \frac{f(\theta) - f(\theta + s)}{-(g^\top s + \tfrac12 s^\top H s)},

    :math:`\lambda` shrinks by ``damping_decrease`` when :math:`\rho > 3/4`, grows by
    ``damping_increase`` when :math:`\rho < 1/4`, and a step that does not reduce the loss is
    rejected (zero update). That costs one more HVP and one loss per step. With both factors equal
    to 1 the damping stays fixed (steps are still rejected when they increase the loss).

    The loss is an extra argument of ``update``, as for ``optax.lbfgs``::

        updates, state = opt.update(grads, state, params, value_fn=loss_fn)

    (:func:`lessons.train.train` passes it). Chains with optax: ``optax.chain(newton_cg(), ...)``.
    """
    check_learning_rate(learning_rate)
    check_damping(damping)
    check_positive_int(max_cg_iters, "max_cg_iters")
    check_fraction(cg_tol, "cg_tol")
    if not (0 < concrete(damping_decrease, "damping_decrease") <= 1 <= concrete(damping_increase, "damping_increase")):
        raise ValueError(
            f"need 0 < damping_decrease <= 1 <= damping_increase, got damping_decrease={damping_decrease}, "
            f"damping_increase={damping_increase}"
        )

    def init(params):
        dtype = ravel_pytree(params)[0].dtype
        return NewtonCGState(
            jnp.asarray(damping, dtype), jnp.int32(0), jnp.bool_(False), jnp.asarray(1.0, dtype), jnp.bool_(True)
        )

    def update(grads, state, params=None, *, value_fn=None, **extra):
        del extra
        _needs_value_fn(value_fn, "newton_cg")
        matvec, _ = flat_hvp(value_fn, params)
        g, unravel = ravel_pytree(grads)
        flat, _ = ravel_pytree(params)
        lam = state.damping
        result = conjugate_gradient(lambda v: matvec(v) + lam * v, -g, max_iters=max_cg_iters, tol=cg_tol)
        step = learning_rate * result.x
        predicted = -(g @ step + 0.5 * step @ matvec(step))
        actual = value_fn(params) - value_fn(unravel(flat + step))
        # The state keeps the parameters' dtype, even when the loss is computed in another (float64 data).
        ratio = (actual / jnp.where(predicted > 0, predicted, jnp.finfo(flat.dtype).tiny)).astype(lam.dtype)
        accept = jnp.isfinite(actual) & (actual > 0)
        new_state = NewtonCGState(
            _adapt(lam, jnp.where(accept, ratio, 0.0), damping_decrease, damping_increase).astype(lam.dtype),
            result.iterations,
            result.negative_curvature,
            ratio,
            accept,
        )
        return unravel(jnp.where(accept, step, 0.0).astype(flat.dtype)), new_state

    return optax.GradientTransformationExtraArgs(init, update)
