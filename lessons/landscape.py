r"""Loss-landscape slices: the loss along one or two directions through a point, and optimizer paths on them.

A 2-D slice through :math:`\theta^\star` along directions :math:`d_1, d_2` is the function

.. math:: (\alpha, \beta) \mapsto L(\theta^\star + \alpha d_1 + \beta d_2),

evaluated on a grid in one batched (``lax.map`` over vmapped blocks) compiled call. Two kinds of
directions:

* **random, filter-normalised** (Li et al. 2018): Gaussian, then each filter (for an MLP layer
  ``W`` of shape ``(d_in, d_out)``: each output unit's column) rescaled to the norm of the same
  filter of :math:`\theta^\star`, biases zero; this makes slices of networks with different weight
  scales comparable;
* **top Hessian eigenvectors** (:func:`eigen_directions`, by Lanczos): the directions of sharpest
  curvature, where the quadratic model says the most.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons import landscape
    >>> loss = lambda p: jnp.sum(p["w"] ** 2)
    >>> params = {"w": jnp.ones(3)}
    >>> d1 = {"w": jnp.array([1.0, 0.0, 0.0])}
    >>> landscape.slice_1d(loss, params, d1, jnp.array([-1.0, 0.0, 1.0]))
    Array([2., 3., 6.], dtype=float32)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lessons.checks import check_callable, check_key, check_nonnegative, check_positive_int, check_shaped_like
from lessons.curvature import hessian_top_k

PyTree = Any


def _check_grid(values, name: str) -> jax.Array:
    values = jnp.asarray(values)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {values.shape}")
    return values


def filter_normalized_direction(params: PyTree, *, key) -> PyTree:
    r"""A random direction, filter-normalised to ``params`` (Li et al. 2018).

    Each leaf gets Gaussian entries; a 2-D leaf (a weight matrix ``(d_in, d_out)``) then has every
    column :math:`j` rescaled to :math:`\|W_{:,j}\|`; 1-D leaves (biases) are set to zero; other
    leaves are rescaled as a whole to the leaf's norm.
    """
    check_key(key)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, leaf in zip(keys, leaves, strict=True):
        leaf = jnp.asarray(leaf)
        if leaf.ndim <= 1:
            out.append(jnp.zeros_like(leaf))
            continue
        d = jax.random.normal(k, leaf.shape, leaf.dtype)
        if leaf.ndim == 2:
            scale = jnp.linalg.norm(leaf, axis=0) / (jnp.linalg.norm(d, axis=0) + 1e-12)
        else:
            scale = jnp.linalg.norm(leaf) / (jnp.linalg.norm(d) + 1e-12)
        out.append(d * scale)
    return jax.tree.unflatten(treedef, out)


def eigen_directions(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, k: int = 2, *, key, num_steps: int | None = None):
    """The top-``k`` Hessian eigenpairs of ``loss_fn`` at ``params``: :func:`lessons.curvature.hessian_top_k`.

    Returns ``(eigenvalues, directions)``: eigenvalues of largest value first, shape ``(k,)``, and a
    list of ``k`` unit-norm directions shaped like ``params``. Compiled once per ``loss_fn``.
    """
    return hessian_top_k(loss_fn, params, k, key=key, num_steps=num_steps)


def _along(params, directions, coefficients):
    """``params + sum_i coefficients[i] * directions[i]``."""
    out = params
    for c, d in zip(coefficients, directions, strict=True):
        out = jax.tree.map(lambda p, v, c=c: p + c * v, out, d)
    return out


def slice_1d(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, direction: PyTree, alphas) -> jax.Array:
    r"""The loss :math:`L(\theta + \alpha d)` for each :math:`\alpha` in ``alphas`` (one vmapped call)."""
    check_callable(loss_fn, "loss_fn")
    check_shaped_like(params, direction, "direction")
    alphas = _check_grid(alphas, "alphas")
    return _slice_1d(loss_fn, params, direction, alphas)


@functools.partial(jax.jit, static_argnums=0)
def _slice_1d(loss_fn, params, direction, alphas):
    return jax.vmap(lambda a: loss_fn(_along(params, [direction], [a])))(alphas)


def slice_2d(
    loss_fn: Callable[[PyTree], jax.Array], params: PyTree, d1: PyTree, d2: PyTree, alphas, betas, *, batch_size: int = 256
) -> jax.Array:
    r"""The loss :math:`L(\theta + \alpha d_1 + \beta d_2)` on a grid: shape ``(len(betas), len(alphas))``.

    Row ``i`` is ``betas[i]``, column ``j`` is ``alphas[j]`` (plotly's ``z`` convention). The grid
    is evaluated in vmapped blocks of ``batch_size`` points (``lax.map``), which bounds memory for
    larger networks while staying one compiled call.
    """
    check_callable(loss_fn, "loss_fn")
    check_shaped_like(params, d1, "d1")
    check_shaped_like(params, d2, "d2")
    alphas, betas = _check_grid(alphas, "alphas"), _check_grid(betas, "betas")
    check_positive_int(batch_size, "batch_size")
    A, B = jnp.meshgrid(alphas, betas)
    points = jnp.stack([A.ravel(), B.ravel()], axis=-1)
    return _slice_2d(loss_fn, params, d1, d2, points, batch_size).reshape(betas.size, alphas.size)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _slice_2d(loss_fn, params, d1, d2, points, batch_size):
    return jax.lax.map(lambda ab: loss_fn(_along(params, [d1, d2], [ab[0], ab[1]])), points, batch_size=batch_size)


def project(points: Sequence[PyTree], center: PyTree, d1: PyTree, d2: PyTree) -> np.ndarray:
    r"""Coordinates :math:`(\alpha, \beta)` of parameter vectors in the plane through ``center``.

    Least squares: :math:`\min_{\alpha, \beta} \|\theta - \theta^\star - \alpha d_1 - \beta d_2\|`,
    so the directions need not be orthogonal (random ones are only nearly so). Returns shape
    ``(len(points), 2)``.
    """
    check_shaped_like(center, d1, "d1")
    check_shaped_like(center, d2, "d2")
    if len(points) == 0:
        raise ValueError("points must be a non-empty list of parameters")
    for i, point in enumerate(points):
        check_shaped_like(center, point, f"points[{i}]")
    c, _ = ravel_pytree(center)
    D = jnp.stack([ravel_pytree(d1)[0], ravel_pytree(d2)[0]], axis=1)
    X = jnp.stack([ravel_pytree(p)[0] - c for p in points])
    coords, *_ = jnp.linalg.lstsq(D, X.T)
    return np.asarray(coords.T)


class Landscape(NamedTuple):
    """A 2-D slice with the optimizer path on it: grid axes, losses, and the path's coordinates."""

    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray
    path: np.ndarray


def landscape_with_path(
    loss_fn: Callable[[PyTree], jax.Array],
    snapshots: Sequence[PyTree],
    d1: PyTree,
    d2: PyTree,
    *,
    num: int = 41,
    margin: float = 0.25,
) -> Landscape:
    """Slice through the last snapshot along ``(d1, d2)``, on a grid that covers the projected path.

    The grid spans the path's coordinates plus ``margin`` of their range on each side (at least
    [-1, 1]), with ``num`` points per axis.
    """
    if not snapshots:
        raise ValueError("snapshots must be a non-empty list of parameters")
    check_positive_int(num, "num")
    check_nonnegative(margin, "margin")
    center = snapshots[-1]
    path = project(snapshots, center, d1, d2)
    lo = np.minimum(path.min(axis=0), -1.0)
    hi = np.maximum(path.max(axis=0), 1.0)
    pad = margin * (hi - lo)
    alphas = np.linspace(lo[0] - pad[0], hi[0] + pad[0], num)
    betas = np.linspace(lo[1] - pad[1], hi[1] + pad[1], num)
    losses = slice_2d(loss_fn, center, d1, d2, jnp.asarray(alphas), jnp.asarray(betas))
    return Landscape(alphas, betas, np.asarray(losses), path)
