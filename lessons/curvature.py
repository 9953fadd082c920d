r"""The spectrum of a loss's Hessian: top eigenpairs, trace and spectral density, from Hessian-vector products only.

A ``matvec`` maps a vector of shape ``(dim,)`` to ``A v`` of shape ``(dim,)`` for a symmetric
:math:`A`; the Hessian of a network is the main example (:func:`lessons.autodiff.flat_hvp` gives one
for the cost of about two gradients per product, and never forms the ``dim x dim`` matrix). Every
method here is measured in products:

* :func:`lanczos`, :func:`lanczos_top_k`, :func:`power_iteration` and :func:`power_iteration_top_k`
  find extreme eigenvalues; they live in :mod:`lessons.lanczos` (with :func:`tridiagonal`,
  :class:`LanczosResult` and :class:`PowerIterationResult`) and are re-exported here;
* :func:`hutchinson_trace` estimates :math:`\operatorname{tr} A` from :math:`\mathbb E[v^\top A v]`;
* :func:`slq_density` and :func:`spectral_density` give the whole spectral density by stochastic
  Lanczos quadrature;
* :func:`hessian_top_k`, :func:`hessian_slq` and :func:`hessian_spectrum` run them on the Hessian of a
  loss at given parameters, compiled once per loss function.

Randomness comes from an explicit ``key``; with ``jax_enable_x64`` on, everything runs in float64.

Each call compiles its loop around the given ``matvec`` (about a second on a CPU). To call again and
again, put the call inside a ``jax.jit`` that takes the operator's data (the parameters, the matrix)
as arguments: that compiles once per shape.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons.curvature import hutchinson_trace, lanczos_top_k
    >>> A = jnp.diag(0.5 ** jnp.arange(50.0))  # eigenvalues 1, 1/2, 1/4, ...
    >>> values, vectors = lanczos_top_k(lambda v: A @ v, 50, 3, key=jax.random.key(0))
    >>> [round(float(x), 4) for x in values]
    [1.0, 0.5, 0.25]
    >>> round(float(hutchinson_trace(lambda v: A @ v, 50, key=jax.random.key(0), num_samples=1)), 4)  # exact: A is diagonal
    2.0
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from lessons.autodiff import flat_hvp
from lessons.checks import check_callable, check_key, check_matvec, check_positive, check_positive_int

# The Lanczos machinery lives one layer down; its public names are re-exported (the chapters call
# ``curvature.lanczos`` and friends), and SLQ reuses its loop and Ritz pairs from its own starts.
from lessons.lanczos import (
    LanczosResult,
    Matvec,
    PowerIterationResult,
    _as_dtype,
    _float_dtype,
    _lanczos_loop,
    _top_ritz_pairs,
    _tridiagonal,
    lanczos,
    lanczos_top_k,
    power_iteration,
    power_iteration_top_k,
    tridiagonal,
)

__all__ = [
    "LanczosResult",
    "Matvec",
    "PowerIterationResult",
    "Spectrum",
    "hessian_slq",
    "hessian_spectrum",
    "hessian_top_k",
    "hutchinson_trace",
    "lanczos",
    "lanczos_top_k",
    "power_iteration",
    "power_iteration_top_k",
    "rademacher",
    "slq_density",
    "spectral_density",
    "tridiagonal",
]


# --- Traces and spectral densities ----------------------------------------------------------------


def rademacher(key, num: int, dim: int) -> jax.Array:
    r"""``(num, dim)`` independent signs :math:`\pm 1` with probability 1/2 each, in the default float dtype.

    Their second moment is the identity, :math:`\mathbb E[v v^\top] = I`, and :math:`v_i^2 = 1` exactly:
    the probe vectors of :func:`hutchinson_trace` and the starts of :func:`slq_density`.

    Example::

        >>> import jax
        >>> rademacher(jax.random.key(0), 2, 3).shape
        (2, 3)
    """
    check_key(key)
    check_positive_int(num, "num")
    check_positive_int(dim, "dim")
    return jax.random.rademacher(key, (num, dim), dtype=_float_dtype())


def hutchinson_trace(matvec: Matvec, dim: int, *, key, num_samples: int) -> jax.Array:
    r"""Hutchinson's estimate of :math:`\operatorname{tr} A`: the mean of :math:`v^\top A v` over Rademacher ``v``.

    .. math:: \widehat{\operatorname{tr}} = \frac1N \sum_{s=1}^N v_s^\top A v_s, \qquad
       \mathbb E[v^\top A v] = \operatorname{tr}(A\, \mathbb E[v v^\top]) = \operatorname{tr} A,

    unbiased, with variance :math:`\frac2N \sum_{i \ne j} A_{ij}^2` (exact for a diagonal :math:`A`,
    since :math:`v_i^2 = 1`). The probes are the rows of ``rademacher(key, num_samples, dim)``.

    Cost: ``num_samples`` products, vectorised 32 at a time (``lax.map`` with a batch size).

    Example::

        >>> import jax, jax.numpy as jnp
        >>> A = jnp.diag(jnp.arange(1.0, 5.0))
        >>> float(hutchinson_trace(lambda v: A @ v, 4, key=jax.random.key(0), num_samples=3))
        10.0
    """
    check_positive_int(dim, "dim")
    check_positive_int(num_samples, "num_samples")
    check_key(key)
    dtype = _float_dtype()
    check_matvec(matvec, dim, dtype)
    matvec = _as_dtype(matvec, dtype)
    probes = rademacher(key, num_samples, dim)
    return jnp.mean(lax.map(lambda v: v @ matvec(v), probes, batch_size=min(num_samples, 32)))


def slq_density(matvec: Matvec, dim: int, *, key, num_steps: int, num_starts: int) -> tuple[jax.Array, jax.Array]:
    r"""Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017): the spectral measure as weighted nodes.

    The spectral density :math:`\phi(t) = \frac1{\text{dim}} \sum_i \delta(t - \lambda_i)` is probed
    through :math:`\frac1{\text{dim}} \operatorname{tr} g(A) \approx \frac1{n_v} \sum_{l}
    u_l^\top g(A)\, u_l` with unit starts :math:`u_l = v_l / \|v_l\|` (``v_l`` the rows of
    ``rademacher(key, num_starts, dim)``). Each quadratic form is a Gauss quadrature: ``num_steps``
    Lanczos steps from :math:`u_l` give :math:`T = Y \Theta Y^\top` and

    .. math:: u^\top g(A)\, u \approx \sum_{i=1}^m \tau_i^2\, g(\theta_i), \qquad \tau_i = Y_{0i},

    exact for every polynomial :math:`g` of degree at most :math:`2m - 1`.

    Returns:
        ``(nodes, weights)`` of shape ``(num_starts * num_steps,)``: the :math:`\theta_i` of every start
        and :math:`\tau_i^2 / n_v`; the weights are non-negative and sum to 1, the nodes lie in
        :math:`[\lambda_{\min}, \lambda_{\max}]`. Smooth them with :func:`spectral_density`.

    Cost: ``num_starts * num_steps`` products; the starts run one after another (memory of one basis).

    Example::

        >>> import jax, jax.numpy as jnp
        >>> A = jnp.diag(jnp.linspace(0.0, 1.0, 100))
        >>> nodes, weights = slq_density(lambda v: A @ v, 100, key=jax.random.key(0), num_steps=10, num_starts=4)
        >>> nodes.shape, round(float(weights.sum()), 5)
        ((40,), 1.0)
    """
    check_positive_int(dim, "dim")
    check_positive_int(num_steps, "num_steps", high=dim, high_name="dim")
    check_positive_int(num_starts, "num_starts")
    check_key(key)
    dtype = _float_dtype()
    check_matvec(matvec, dim, dtype)
    runs = _slq_runs(_as_dtype(matvec, dtype), dim, key, num_steps, num_starts, dtype, keep_basis=False)
    return _slq_measure(runs.alphas, runs.betas)


def _slq_runs(matvec, dim: int, key, num_steps: int, num_starts: int, dtype, *, keep_basis: bool) -> LanczosResult:
    """The Lanczos runs of SLQ, stacked along a leading axis of length ``num_starts`` (bases only if kept)."""
    starts = rademacher(key, num_starts, dim) / jnp.sqrt(jnp.asarray(dim, dtype))
    restart_keys = jax.random.split(jax.random.fold_in(key, 1), num_starts)

    def tridiagonalise(args):
        start, restart_key = args
        restarts = jax.random.normal(restart_key, (num_steps - 1, dim), dtype)
        result = _lanczos_loop(matvec, jnp.concatenate([start[None], restarts]))
        return result if keep_basis else result._replace(basis=jnp.zeros((0,), dtype))

    return lax.map(tridiagonalise, (starts, restart_keys))


@jax.jit
def _gauss_quadrature(alphas, betas):
    """Nodes and weights (first eigenvector components squared) of a batch of tridiagonal matrices."""
    theta, y = jnp.linalg.eigh(jax.vmap(_tridiagonal)(alphas, betas))
    return theta, y[:, 0, :] ** 2


def _slq_measure(alphas, betas):
    nodes, weights = _gauss_quadrature(alphas, betas)
    return nodes.reshape(-1), weights.reshape(-1) / alphas.shape[0]


def spectral_density(nodes: jax.Array, weights: jax.Array, grid: jax.Array, *, sigma: float) -> jax.Array:
    r"""The discrete measure :math:`\sum_i w_i \delta_{\theta_i}` smoothed by a Gaussian of width ``sigma``, on ``grid``.

    .. math:: \phi_\sigma(t) = \sum_i w_i\, \frac{1}{\sigma\sqrt{2\pi}} \exp\!\Big(-\frac{(t - \theta_i)^2}{2\sigma^2}\Big),

    which integrates to :math:`\sum_i w_i = 1` over the line (so to about 1 on a grid that extends a few
    ``sigma`` beyond the nodes). Cost: ``len(nodes) * grid.size``.

    Example::

        >>> import jax.numpy as jnp
        >>> grid = jnp.linspace(-5.0, 5.0, 1001)
        >>> density = spectral_density(jnp.array([0.0]), jnp.array([1.0]), grid, sigma=0.5)
        >>> round(float(jnp.sum(density) * (grid[1] - grid[0])), 4)
        1.0
    """
    check_positive(sigma, "sigma")
    nodes, weights, grid = jnp.asarray(nodes), jnp.asarray(weights), jnp.asarray(grid)
    if nodes.ndim != 1 or weights.shape != nodes.shape:
        raise ValueError(f"nodes and weights must be vectors of one shape, got nodes {nodes.shape}, weights {weights.shape}")
    z = (grid[..., None] - nodes) / sigma
    return jnp.exp(-0.5 * z**2) @ weights / (sigma * math.sqrt(2 * math.pi))


# --- The Hessian of a loss, compiled once per loss function ---------------------------------------


def hessian_top_k(loss_fn: Callable, params, k: int, *, key, num_steps: int | None = None) -> tuple[jax.Array, list]:
    r"""The top-``k`` eigenpairs of :math:`\nabla^2 L(\theta)` at ``params``, by :func:`lanczos_top_k` on HVPs.

    ``loss_fn`` maps a parameter pytree to a scalar; the products are
    :func:`lessons.autodiff.flat_hvp` (forward-over-reverse, linearised once). The whole computation is
    one compiled call, cached per ``(loss_fn, k, num_steps)`` and parameter shapes: call it again at
    new parameters (during training, say) without recompiling. Pass the same ``loss_fn`` object each
    time (not a fresh ``lambda``) for the cache to hit.

    Returns:
        ``(eigenvalues, directions)``: eigenvalues of largest value first, shape ``(k,)``, and a list of
        ``k`` orthonormal directions shaped like ``params``.
    """
    check_callable(loss_fn, "loss_fn")
    flat, unravel = ravel_pytree(params)
    check_positive_int(k, "k", high=int(flat.size), high_name="the number of parameters")
    if num_steps is not None:
        check_positive_int(num_steps, "num_steps", low=k, high=int(flat.size), low_name="k", high_name="the number of parameters")
    check_key(key)
    eigenvalues, vectors = _hessian_top_k(loss_fn, params, key, k, num_steps)
    return eigenvalues, [unravel(vectors[:, i]) for i in range(k)]


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _hessian_top_k(loss_fn, params, key, k, num_steps):
    matvec, dim = flat_hvp(loss_fn, params)
    return lanczos_top_k(matvec, dim, k, key=key, num_steps=num_steps)


def hessian_slq(loss_fn: Callable, params, *, key, num_steps: int, num_starts: int) -> tuple[jax.Array, jax.Array]:
    """:func:`slq_density` of :math:`\\nabla^2 L(\\theta)` at ``params``: ``(nodes, weights)``, compiled once per ``loss_fn``.

    Same caching rule as :func:`hessian_top_k`.
    """
    check_callable(loss_fn, "loss_fn")
    dim = int(ravel_pytree(params)[0].size)
    check_positive_int(num_steps, "num_steps", high=dim, high_name="the number of parameters")
    check_positive_int(num_starts, "num_starts")
    check_key(key)
    return _hessian_slq(loss_fn, params, key, num_steps, num_starts)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _hessian_slq(loss_fn, params, key, num_steps, num_starts):
    matvec, dim = flat_hvp(loss_fn, params)
    return slq_density(matvec, dim, key=key, num_steps=num_steps, num_starts=num_starts)


class Spectrum(NamedTuple):
    """What :func:`hessian_spectrum` sees of a Hessian: its top eigenpairs and its spectral measure."""

    eigenvalues: jax.Array
    directions: list
    nodes: jax.Array
    weights: jax.Array


def hessian_spectrum(loss_fn: Callable, params, k: int, *, key, num_steps: int, num_starts: int) -> Spectrum:
    r"""The top-``k`` eigenpairs *and* the SLQ spectral measure of :math:`\nabla^2 L(\theta)`, from one set of Lanczos runs.

    :func:`hessian_slq` already runs Lanczos from ``num_starts`` random unit vectors; the Ritz pairs of the
    first run are the top eigenpairs :func:`hessian_top_k` would find from that start (the extreme Ritz
    values converge first, whatever the start). So one compiled call, ``num_starts * num_steps`` HVPs,
    gives both: what a widget redrawing both panels every frame needs (one compilation, not two).

    Returns:
        :class:`Spectrum`: ``eigenvalues`` (largest first, shape ``(k,)``) and ``directions`` (``k``
        orthonormal pytrees shaped like ``params``) from the first start; ``nodes`` and ``weights``
        exactly as ``hessian_slq(loss_fn, params, key=key, num_steps=num_steps, num_starts=num_starts)``.
    """
    check_callable(loss_fn, "loss_fn")
    flat, unravel = ravel_pytree(params)
    check_positive_int(k, "k", high=int(flat.size), high_name="the number of parameters")
    check_positive_int(num_steps, "num_steps", low=k, high=int(flat.size), low_name="k", high_name="the number of parameters")
    check_positive_int(num_starts, "num_starts")
    check_key(key)
    eigenvalues, vectors, nodes, weights = _hessian_spectrum(loss_fn, params, key, k, num_steps, num_starts)
    return Spectrum(eigenvalues, [unravel(vectors[:, i]) for i in range(k)], nodes, weights)


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _hessian_spectrum(loss_fn, params, key, k, num_steps, num_starts):
    matvec, dim = flat_hvp(loss_fn, params)
    dtype = _float_dtype()
    runs = _slq_runs(_as_dtype(matvec, dtype), dim, key, num_steps, num_starts, dtype, keep_basis=True)
    eigenvalues, vectors = _top_ritz_pairs(runs.alphas[0], runs.betas[0], runs.basis[0], k)
    return (eigenvalues, vectors, *_slq_measure(runs.alphas, runs.betas))
