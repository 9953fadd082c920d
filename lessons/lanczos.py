r"""Eigenvalues of a symmetric operator we can only multiply by: the Lanczos process and power iteration.

A ``matvec`` maps a vector of shape ``(dim,)`` to ``A v`` of shape ``(dim,)`` for a symmetric
:math:`A`; the Hessian of a network is the main example (:func:`lessons.autodiff.flat_hvp` gives one
for the cost of about two gradients per product, and never forms the ``dim x dim`` matrix). Every
method here is measured in products:

* :func:`lanczos` builds an orthonormal basis :math:`Q_m` of the Krylov space
  :math:`\operatorname{span}\{v, Av, \dots, A^{m-1} v\}` in which :math:`A` is tridiagonal,
  :math:`T_m = Q_m A Q_m^\top`; the eigenvalues of the small :math:`T_m` (Ritz values) approximate
  the extreme eigenvalues of :math:`A` after far fewer than ``dim`` products
  (:func:`lanczos_top_k`);
* :func:`power_iteration` is the baseline used by PyHessian: one eigenvalue at a time, each found by
  repeated products and deflated from the next.

A building block: :mod:`lessons.curvature` runs these on Hessians (and adds traces and spectral
densities) and re-exports every public name here. Randomness comes from an explicit ``key``; with
``jax_enable_x64`` on, everything runs in float64.

Each call compiles its loop around the given ``matvec`` (about a second on a CPU). To call again and
again, put the call inside a ``jax.jit`` that takes the operator's data (the parameters, the matrix)
as arguments: that compiles once per shape.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons.lanczos import lanczos_top_k
    >>> A = jnp.diag(0.5 ** jnp.arange(50.0))  # eigenvalues 1, 1/2, 1/4, ...
    >>> values, vectors = lanczos_top_k(lambda v: A @ v, 50, 3, key=jax.random.key(0))
    >>> [round(float(x), 4) for x in values]
    [1.0, 0.5, 0.25]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from lessons.checks import check_fraction, check_key, check_matvec, check_positive_int

Matvec = Callable[[jax.Array], jax.Array]

# A step whose new direction is this many machine epsilons of the operator's scale (or less) has found an
# invariant subspace: what is left of ``A q`` after reorthogonalisation is rounding noise, not a direction.
_BREAKDOWN_EPS = 100.0


# --- Dtypes ---------------------------------------------------------------------------------------


def _float_dtype():
    """The default float dtype: float32, or float64 when ``jax_enable_x64`` is on."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _as_dtype(matvec: Matvec, dtype) -> Matvec:
    # The loop carries have one dtype; a matvec that returns another (a float32 model under x64) is cast.
    return lambda v: jnp.asarray(matvec(v)).astype(dtype)


# --- Lanczos --------------------------------------------------------------------------------------


class LanczosResult(NamedTuple):
    r"""``m`` Lanczos steps: :math:`T_m = Q A Q^\top` is tridiagonal with diagonal ``alphas`` (m,) and
    off-diagonal ``betas`` (m-1,); ``basis`` (m, dim) holds the orthonormal rows of :math:`Q`."""

    alphas: jax.Array
    betas: jax.Array
    basis: jax.Array


def tridiagonal(alphas: jax.Array, betas: jax.Array) -> jax.Array:
    r"""The dense symmetric tridiagonal ``(m, m)`` matrix with diagonal ``alphas`` and off-diagonals ``betas``.

    .. math:: T = \begin{pmatrix} \alpha_0 & \beta_0 & & \\ \beta_0 & \alpha_1 & \ddots & \\
       & \ddots & \ddots & \beta_{m-2} \\ & & \beta_{m-2} & \alpha_{m-1} \end{pmatrix}

    Example::

        >>> import jax.numpy as jnp
        >>> tridiagonal(jnp.array([1.0, 2.0]), jnp.array([3.0])).tolist()
        [[1.0, 3.0], [3.0, 2.0]]
    """
    alphas, betas = jnp.asarray(alphas), jnp.asarray(betas)
    if alphas.ndim != 1 or betas.shape != (max(alphas.shape[0] - 1, 0),):
        raise ValueError(f"need alphas of shape (m,) and betas of shape (m-1,), got alphas {alphas.shape}, betas {betas.shape}")
    return _tridiagonal(alphas, betas)


# The helpers below are jitted at module level: their compiled code is keyed on shapes only, so it is
# reused across calls. (Eagerly, each small op would compile on its own for every new size: ~0.5 s for eigh.)


@jax.jit
def _tridiagonal(alphas, betas):
    return jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)


@functools.partial(jax.jit, static_argnums=(3,))
def _top_ritz_pairs(alphas, betas, basis, k: int):
    theta, y = jnp.linalg.eigh(_tridiagonal(alphas, betas))
    # eigh sorts ascending: the last k are the largest.
    return theta[::-1][:k], basis.T @ y[:, ::-1][:, :k]


def _orthogonalise(w: jax.Array, basis: jax.Array, in_basis: jax.Array) -> jax.Array:
    # Classical Gram-Schmidt against the rows of ``basis`` where ``in_basis`` is true. Once is not enough in
    # floating point when w is nearly in the span (it is, once Ritz values converge); twice is (Kahan).
    for _ in range(2):
        w = w - basis.T @ jnp.where(in_basis, basis @ w, 0)
    return w


def _normalise(w: jax.Array) -> jax.Array:
    norm = jnp.linalg.norm(w)
    return w / jnp.where(norm > 0, norm, 1)


@jax.jit
def _initial_carry(basis):
    num_steps, dtype = basis.shape[0], basis.dtype
    zeros = jnp.zeros((num_steps,), dtype)
    return basis, zeros, zeros, jnp.zeros((), dtype)


@jax.jit
def _as_result(basis, alphas, betas):
    return LanczosResult(alphas, betas[:-1], basis)


def _lanczos_loop(matvec: Matvec, basis: jax.Array) -> LanczosResult:
    """Lanczos from the unit vector ``basis[0]``; rows ``1:`` hold independent random vectors, used to restart.

    Row ``j + 1`` is overwritten at step ``j``, so until then it is a fresh random direction, drawn in
    advance: a restart needs no memory and no random numbers inside the loop.
    """
    num_steps = basis.shape[0]
    rows = jnp.arange(num_steps)
    tolerance = _BREAKDOWN_EPS * jnp.finfo(basis.dtype).eps

    def step(j, carry):
        basis, alphas, betas, scale = carry
        q, in_basis = basis[j], rows <= j
        w = matvec(q)
        alpha = q @ w
        scale = jnp.maximum(scale, jnp.linalg.norm(w))
        w = _orthogonalise(w, basis, in_basis)
        beta = jnp.linalg.norm(w)
        breakdown = beta <= tolerance * scale
        # The Krylov space is invariant: continue in a new direction and decouple T there (beta = 0).
        restart = lambda: _normalise(_orthogonalise(basis[j + 1], basis, in_basis))
        following = lax.cond(breakdown, restart, lambda: w / jnp.where(breakdown, 1, beta))
        basis = basis.at[j + 1].set(following, mode="drop")  # the last step has no successor
        return basis, alphas.at[j].set(alpha), betas.at[j].set(jnp.where(breakdown, 0, beta)), scale

    basis, alphas, betas, _ = lax.fori_loop(0, num_steps, step, _initial_carry(basis))
    return _as_result(basis, alphas, betas)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _random_basis(key, num_steps: int, dim: int, dtype):
    """A random unit start (independent of ``num_steps``) stacked on ``num_steps - 1`` random restart vectors."""
    start_key, restart_key = jax.random.split(key)
    start = _normalise(jax.random.normal(start_key, (dim,), dtype))
    return jnp.concatenate([start[None], jax.random.normal(restart_key, (num_steps - 1, dim), dtype)])


def lanczos(matvec: Matvec, dim: int, num_steps: int, *, key) -> LanczosResult:
    r"""``num_steps`` steps of the Lanczos process with full reorthogonalisation, from a random start.

    From a unit vector :math:`q_0`, step :math:`j` computes

    .. math:: \alpha_j = q_j^\top A q_j, \qquad w = (I - Q_j^\top Q_j)\, A q_j, \qquad
       \beta_j = \|w\|, \qquad q_{j+1} = w / \beta_j,

    where :math:`Q_j` stacks :math:`q_0, \dots, q_j` as rows. In exact arithmetic the projection only
    removes :math:`\alpha_j q_j + \beta_{j-1} q_{j-1}` (the three-term recurrence); in floating point the
    :math:`q_j` lose orthogonality as soon as a Ritz value converges and spurious copies of it appear.
    Projecting against the whole basis (classical Gram-Schmidt, applied twice) keeps :math:`Q` orthonormal
    to rounding, so that :math:`Q A Q^\top = T` (:func:`tridiagonal`).

    If :math:`\beta_j` falls below ``100 eps`` times the largest :math:`\|A q_i\|` seen, the Krylov space
    is invariant (e.g. :math:`A` has fewer than ``num_steps`` distinct eigenvalues): the process
    restarts from a fresh random vector orthogonalised against the basis and records
    :math:`\beta_j = 0`, so :math:`T` splits into independent blocks and nothing is divided by zero.
    The restart vectors are drawn with the start, into the rows of the preallocated basis that are not
    yet in use: no extra memory, no random numbers inside the loop.

    Cost: ``num_steps`` products, :math:`O(\text{num\_steps}^2\, \text{dim})` work for the
    reorthogonalisation (it reads the whole basis four times per step, and can cost more than the
    products when these are cheap), and ``num_steps x dim`` memory. The steps are one
    ``lax.fori_loop`` over the preallocated basis, so compilation does not grow with ``num_steps``;
    it runs under ``jit`` with ``dim`` and ``num_steps`` static.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> A = jnp.diag(jnp.arange(1.0, 11.0))
        >>> r = lanczos(lambda v: A @ v, 10, 4, key=jax.random.key(0))
        >>> r.alphas.shape, r.betas.shape, r.basis.shape
        ((4,), (3,), (4, 10))
    """
    check_positive_int(dim, "dim")
    check_positive_int(num_steps, "num_steps", high=dim, high_name="dim")
    check_key(key)
    dtype = _float_dtype()
    check_matvec(matvec, dim, dtype)
    return _lanczos_loop(_as_dtype(matvec, dtype), _random_basis(key, num_steps, dim, dtype))


def lanczos_top_k(matvec: Matvec, dim: int, k: int, *, key, num_steps: int | None = None) -> tuple[jax.Array, jax.Array]:
    r"""The ``k`` largest eigenvalues of :math:`A` (by value, largest first) and their eigenvectors, by Lanczos.

    The Ritz pairs: with :math:`T = Y \Theta Y^\top` the eigendecomposition of the ``m x m`` tridiagonal
    matrix from :func:`lanczos`, the eigenvalue estimates are the largest :math:`\theta_i` and the
    vectors are :math:`u_i = Q^\top y_i`. The top Ritz value approaches :math:`\lambda_1` from below with
    an error that shrinks like :math:`\exp(-4 m \sqrt{\gamma})` for the gap ratio
    :math:`\gamma = (\lambda_1 - \lambda_2) / (\lambda_2 - \lambda_{\min})` (Kaniel-Paige), against
    :math:`(\lambda_2 / \lambda_1)^{2m} \approx \exp(-2 m \gamma')` for power iteration
    (:math:`\gamma' = (\lambda_1 - \lambda_2) / \lambda_1`): a square root of the gap instead of the
    gap, which is what matters when the top eigenvalues are close. Default
    ``num_steps = min(dim, 2 k + 20)``.

    A repeated eigenvalue appears once per Krylov space: its extra copies are only found after a
    breakdown restart, so ask for ``num_steps = dim`` (or use a dense solver) when multiplicities matter.

    Returns:
        ``(eigenvalues, eigenvectors)`` of shapes ``(k,)`` and ``(dim, k)``, the columns orthonormal.

    Cost: ``num_steps`` products plus :math:`O(\text{num\_steps}^2\, \text{dim} + \text{num\_steps}^3)`.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> A = jnp.diag(jnp.array([-5.0, 1.0, 2.0, 3.0]))
        >>> values, vectors = lanczos_top_k(lambda v: A @ v, 4, 2, key=jax.random.key(0))
        >>> [round(float(x), 4) for x in values], vectors.shape
        ([3.0, 2.0], (4, 2))
    """
    check_positive_int(dim, "dim")
    check_positive_int(k, "k", high=dim, high_name="dim")
    if num_steps is None:
        num_steps = min(dim, 2 * k + 20)
    check_positive_int(num_steps, "num_steps", low=k, high=dim, low_name="k", high_name="dim")
    result = lanczos(matvec, dim, num_steps, key=key)
    return _top_ritz_pairs(result.alphas, result.betas, result.basis, k)


# --- Power iteration (the baseline) ---------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _random_rows(key, num: int, dim: int, dtype):
    return jax.random.normal(key, (num, dim), dtype)


class PowerIterationResult(NamedTuple):
    """Eigenpairs in the order power iteration found them, the products used in all, and which of
    the ``k`` runs met the tolerance (the others stopped at ``max_iters``)."""

    eigenvalues: jax.Array
    eigenvectors: jax.Array
    num_matvecs: jax.Array
    converged: jax.Array


def power_iteration(matvec: Matvec, dim: int, k: int, *, key, max_iters: int = 100, tol: float = 1e-3) -> PowerIterationResult:
    r"""``k`` eigenpairs one after another by power iteration with deflation (PyHessian, Yao et al. 2020).

    For :math:`i = 0, \dots, k-1`: start from a random unit :math:`v` and repeat

    .. math:: \lambda \leftarrow v^\top A v, \qquad v \leftarrow \frac{(I - U U^\top) A v}{\|(I - U U^\top) A v\|},

    where the columns of :math:`U` are the eigenvectors already found, until
    :math:`|\lambda - \lambda_{\text{prev}}| \le \text{tol}\, (|\lambda_{\text{prev}}| + 10^{-12})` or
    after ``max_iters`` products (``0 < tol < 1``). The returned vector is the last iterate (one power step past the
    vector whose Rayleigh quotient is the returned eigenvalue).

    Power iteration converges to the eigenvalue of largest *magnitude* of the deflated operator, at the
    rate :math:`|\lambda_{i+1} / \lambda_i|` per product for the vector (squared for the Rayleigh
    quotient). So the eigenvalues come back **in the order found, not sorted**: a large negative
    eigenvalue comes before smaller positive ones, and within a cluster of close eigenvalues the runs
    stop (the Rayleigh quotient barely moves) on mixtures and can come out misordered. The stopping
    test measures the change per step, not the error: on a cluster it stops early and wrong.

    Cost: ``num_matvecs`` products, at most ``k * max_iters``, plus :math:`O(k\, \text{dim})` each.
    ``tol`` may be traced (a ``jit`` argument); ``dim``, ``k`` and ``max_iters`` are static.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> A = jnp.diag(jnp.array([-4.0, 1.0, 2.0]))
        >>> r = power_iteration(lambda v: A @ v, 3, 2, key=jax.random.key(0), max_iters=500, tol=1e-8)
        >>> [round(float(x), 3) for x in r.eigenvalues]  # largest magnitude first
        [-4.0, 2.0]
    """
    check_positive_int(dim, "dim")
    check_positive_int(k, "k", high=dim, high_name="dim")
    check_positive_int(max_iters, "max_iters")
    check_fraction(tol, "tol")
    check_key(key)
    dtype = _float_dtype()
    check_matvec(matvec, dim, dtype)
    matvec = _as_dtype(matvec, dtype)
    starts = _random_rows(key, k, dim, dtype)

    def eigenpair(i, carry):
        values, vectors, converged, count = carry
        deflate = lambda v: v - vectors @ (vectors.T @ v)  # columns not yet found are zero

        def not_done(state):
            _, _, iteration, done = state
            return (iteration < max_iters) & ~done

        def power_step(state):
            v, previous, iteration, _ = state
            av = matvec(v)
            value = v @ av
            done = (iteration > 0) & (jnp.abs(value - previous) <= tol * (jnp.abs(previous) + 1e-12))
            return _normalise(deflate(av)), value, iteration + 1, done

        start = _normalise(deflate(starts[i]))
        init = (start, jnp.zeros((), dtype), jnp.int32(0), jnp.bool_(False))
        v, value, iterations, done = lax.while_loop(not_done, power_step, init)
        return values.at[i].set(value), vectors.at[:, i].set(v), converged.at[i].set(done), count + iterations

    init = (jnp.zeros((k,), dtype), jnp.zeros((dim, k), dtype), jnp.zeros((k,), bool), jnp.int32(0))
    values, vectors, converged, count = lax.fori_loop(0, k, eigenpair, init)
    return PowerIterationResult(values, vectors, count, converged)


def power_iteration_top_k(
    matvec: Matvec, dim: int, k: int, *, key, max_iters: int = 100, tol: float = 1e-3
) -> tuple[jax.Array, jax.Array]:
    """``(eigenvalues, eigenvectors)`` of :func:`power_iteration`, shapes ``(k,)`` and ``(dim, k)``.

    Same shapes as :func:`lanczos_top_k`, but in the order found (largest magnitude first, roughly):
    see :func:`power_iteration` for why that is not the order of the values.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> A = jnp.diag(jnp.array([1.0, 2.0, 10.0]))
        >>> values, vectors = power_iteration_top_k(lambda v: A @ v, 3, 1, key=jax.random.key(0), tol=1e-6)
        >>> round(float(values[0]), 3), vectors.shape
        (10.0, (3, 1))
    """
    result = power_iteration(matvec, dim, k, key=key, max_iters=max_iters, tol=tol)
    return result.eigenvalues, result.eigenvectors
