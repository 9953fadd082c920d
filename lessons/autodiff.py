r"""Derivative products, the building blocks of every second-order method: HVPs and the dense Hessian.

Hessian-vector products (HVPs) three ways, after the JAX Autodiff Cookbook; all return
:math:`H(\theta) v` as a pytree shaped like ``params``, for about the cost of 2-3 gradients:

* :func:`hvp` (forward-over-reverse): ``jvp`` of ``grad`` — the cheapest in memory and time;
* :func:`hvp_reverse_over_reverse` (grad-of-grad): :math:`\nabla_\theta \langle \nabla f(\theta), v\rangle`;
* :func:`hvp_reverse_over_forward`: :math:`\nabla_\theta\, \partial_v f(\theta)`, the gradient of a JVP.

:func:`flat_hvp` gives the product as a function of flat vectors (what the solvers of
:mod:`lessons.linalg` and the eigensolvers of :mod:`lessons.lanczos` take), and
:func:`hessian_matrix` the dense ``(P, P)`` Hessian for small problems. A bottom-layer module: it
imports only :mod:`lessons.checks`.

Example::

    >>> import jax.numpy as jnp
    >>> from lessons.autodiff import hvp
    >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)
    >>> hvp(f, jnp.ones(2), jnp.array([1.0, 1.0]))
    Array([1., 4.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lessons.checks import check_callable, check_shaped_like

PyTree = Any


def hvp(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    r"""Hessian-vector product :math:`\nabla^2 f(\theta)\, v` by forward-over-reverse differentiation.

    ``jax.jvp(jax.grad(f), (params,), (v,))``: one forward-mode pass through the gradient
    computation. Cost about 2-3 gradients; memory about one gradient's.
    """
    check_callable(f, "f")
    check_shaped_like(params, v, "v")
    return jax.jvp(jax.grad(f), (params,), (v,))[1]


def hvp_reverse_over_reverse(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    r"""HVP as the gradient of :math:`\theta \mapsto \langle \nabla f(\theta), v \rangle` (grad-of-grad)."""
    check_callable(f, "f")
    check_shaped_like(params, v, "v")

    def directional_gradient(p):
        g = jax.grad(f)(p)
        return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(v), strict=True))

    return jax.grad(directional_gradient)(params)


def hvp_reverse_over_forward(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    r"""HVP as the gradient of the directional derivative :math:`\theta \mapsto \partial_v f(\theta)` (a JVP)."""
    check_callable(f, "f")
    check_shaped_like(params, v, "v")
    return jax.grad(lambda p: jax.jvp(f, (p,), (v,))[1])(params)


def hessian_matrix(f: Callable[[PyTree], jax.Array], params: PyTree) -> jax.Array:
    """The dense Hessian of ``f`` at ``params`` as a ``(P, P)`` matrix over the flattened parameters.

    Built from ``P`` HVPs (vmapped over the identity); memory ``O(P^2)``: small problems only.
    """
    check_callable(f, "f")
    flat, unravel = ravel_pytree(params)
    g = lambda w: f(unravel(w))
    return jax.vmap(lambda e: jax.jvp(jax.grad(g), (flat,), (e,))[1])(jnp.eye(flat.size, dtype=flat.dtype))


def flat_hvp(f: Callable[[PyTree], jax.Array], params: PyTree) -> tuple[Callable[[jax.Array], jax.Array], int]:
    """``(matvec, dim)``: the HVP at ``params`` as a function of flat vectors of shape ``(dim,)``.

    The form that the eigensolvers of :mod:`lessons.lanczos` and :mod:`lessons.curvature` and the
    conjugate gradients of :mod:`lessons.linalg` expect. Linearising once (``jax.linearize`` of the
    gradient) makes each product cheaper than a fresh :func:`hvp`.
    """
    check_callable(f, "f")
    flat, unravel = ravel_pytree(params)
    _, hvp_lin = jax.linearize(jax.grad(lambda w: f(unravel(w))), flat)
    # Accept vectors of any float dtype (float64 Lanczos on a float32 model under x64): cast to the parameters'.
    return (lambda v: hvp_lin(jnp.asarray(v).astype(flat.dtype))), int(flat.size)
