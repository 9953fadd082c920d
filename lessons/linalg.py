r"""Linear solvers on operators we can only multiply by: conjugate gradients, truncated at negative curvature.

A ``matvec`` maps a vector of shape ``(dim,)`` to :math:`A v`; for Newton-CG it is the damped
Hessian-vector product :math:`v \mapsto (H + \lambda I) v` of :func:`lessons.autodiff.flat_hvp`,
so the ``dim x dim`` matrix is never formed. A bottom-layer module: it imports only
:mod:`lessons.checks`.

Example::

    >>> import jax.numpy as jnp
    >>> from lessons.linalg import conjugate_gradient
    >>> A = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    >>> result = conjugate_gradient(lambda v: A @ v, jnp.array([1.0, 2.0]), max_iters=2)
    >>> [round(float(x), 4) for x in result.x], int(result.iterations)
    ([0.0909, 0.6364], 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from lessons.checks import check_fraction, check_matvec, check_positive_int


class CGResult(NamedTuple):
    """Conjugate gradients' answer: the solution, iterations used, final residual, and whether a
    direction of non-positive curvature stopped it."""

    x: jax.Array
    iterations: jax.Array
    residual_norm: jax.Array
    negative_curvature: jax.Array


def conjugate_gradient(matvec: Callable[[jax.Array], jax.Array], b: jax.Array, *, max_iters: int, tol: float = 1e-5) -> CGResult:
    r"""Solve :math:`A x = b` for symmetric :math:`A` by conjugate gradients from :math:`x_0 = 0`, truncated.

    .. math:: \alpha_j = \frac{r_j^\top r_j}{p_j^\top A p_j}, \quad x_{j+1} = x_j + \alpha_j p_j, \quad
       r_{j+1} = r_j - \alpha_j A p_j, \quad p_{j+1} = r_{j+1} + \frac{r_{j+1}^\top r_{j+1}}{r_j^\top r_j} p_j .

    Stops after ``max_iters`` products, when :math:`\|r\| \le` ``tol`` :math:`\|b\|` (``0 < tol < 1``), or at a
    direction with :math:`p^\top A p \le 0` (truncated Newton, Nocedal & Wright Alg. 7.1): then it
    returns the iterate so far, or :math:`b` itself if that happens at the first step. Each
    iteration costs one ``matvec``; in exact arithmetic CG solves an SPD system in at most
    ``dim`` iterations, and fast when the eigenvalues cluster.
    """
    check_positive_int(max_iters, "max_iters")
    check_fraction(tol, "tol")
    b = jnp.asarray(b)
    if b.ndim != 1:
        raise ValueError(f"b must be a vector of shape (dim,), got shape {b.shape}")
    check_matvec(matvec, b.shape[0], b.dtype)
    b_norm = jnp.linalg.norm(b)

    def cond(carry):
        x, r, p, rr, j, stop = carry
        return (j < max_iters) & ~stop & (jnp.sqrt(rr) > tol * b_norm)

    def body(carry):
        x, r, p, rr, j, _ = carry
        Ap = matvec(p)
        curvature = p @ Ap
        negative = curvature <= 0
        alpha = rr / jnp.where(negative, 1.0, curvature)
        x_new = jnp.where(negative, jnp.where(j == 0, b, x), x + alpha * p)
        r_new = jnp.where(negative, r, r - alpha * Ap)
        rr_new = r_new @ r_new
        p_new = r_new + (rr_new / rr) * p
        return x_new, r_new, jnp.where(negative, p, p_new), jnp.where(negative, rr, rr_new), j + 1, negative

    zero = jnp.zeros_like(b)
    init = (zero, b, b, b @ b, jnp.int32(0), jnp.bool_(False))
    x, r, _, rr, j, negative = lax.while_loop(cond, body, init)
    return CGResult(x, j, jnp.sqrt(rr), negative)
