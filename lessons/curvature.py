r"""Spectra of symmetric linear operators that we can only multiply by: Lanczos, power iteration, traces, densities.

A ``matvec`` maps a vector of shape ``(dim,)`` to ``A v`` of shape ``(dim,)`` for a symmetric
:math:`A`; the Hessian of a network is the main example (:func:`lessons.newton.flat_hvp` gives one
for the cost of about two gradients per product, and never forms the ``dim x dim`` matrix). Every
method here is measured in products:

* :func:`lanczos` builds an orthonormal basis :math:`Q_m` of the Krylov space
  :math:`\operatorname{span}\{v, Av, \dots, A^{m-1} v\}` in which :math:`A` is tridiagonal,
  :math:`T_m = Q_m A Q_m^\top`; the eigenvalues of the small :math:`T_m` (Ritz values) approximate
  the extreme eigenvalues of :math:`A` after far fewer than ``dim`` products
  (:func:`lanczos_top_k`);
* :func:`power_iteration` is the baseline used by PyHessian: one eigenvalue at a time, each found by
  repeated products and deflated from the next;
* :func:`hutchinson_trace` estimates :math:`\operatorname{tr} A` from :math:`\mathbb E[v^\top A v]`;
* :func:`slq_density` and :func:`spectral_density` give the whole spectral density by stochastic
  Lanczos quadrature.

Randomness comes from an explicit ``key``; with ``jax_enable_x64`` on, everything runs in float64.

Each call compiles its loop around the given ``matvec`` (about a second on a CPU). To call again and
again, put the call inside a ``jax.jit`` that takes the operator's data (the parameters, the matrix)
as arguments: that compiles once per shape.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons.curvature import lanczos_top_k
    >>> A = jnp.diag(0.5 ** jnp.arange(50.0))  # eigenvalues 1, 1/2, 1/4, ...
    >>> values, vectors = lanczos_top_k(lambda v: A @ v, 50, 3, key=jax.random.key(0))
    >>> [round(float(x), 4) for x in values]
    [1.0, 0.5, 0.25]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from lessons.data import check_key
from lessons.newton import flat_hvp

Matvec = Callable[[jax.Array], jax.Array]

# A step whose new direction is this many machine epsilons of the operator's scale (or less) has found an
# invariant subspace: what is left of ``A q`` after reorthogonalisation is rounding noise, not a direction.
_BREAKDOWN_EPS = 100.0


# --- Validation -----------------------------------------------------------------------------------


def _float_dtype():
    """The default float dtype: float32, or float64 when ``jax_enable_x64`` is on."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _check_int(value, name: str, *, low: int = 1, high: int | None = None, low_name=None, high_name=None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        bound = f"{low_name} ({low})" if low_name else low
        raise ValueError(f"{name} must be an integer >= {bound}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high_name or high} ({high}), got {value!r}")


def _concrete(value):
    """``float(value)``, or ``None`` when ``value`` is traced (checked where it is concrete)."""
    try:
        return float(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def _check_positive(value, name: str) -> None:
    number = _concrete(value)
    if number is not None and not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_matvec(matvec: Matvec, dim: int, dtype) -> None:
    if not callable(matvec):
        raise ValueError(f"matvec must be a function of a vector of shape ({dim},), got {type(matvec).__name__}")
    try:
        out = jax.eval_shape(matvec, jax.ShapeDtypeStruct((dim,), dtype))
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"matvec fails on a vector of shape ({dim},): {error}") from error
    if getattr(out, "shape", None) != (dim,):
        raise ValueError(f"matvec must map shape ({dim},) to ({dim},), got {getattr(out, 'shape', type(out).__name__)}")


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


@jax.jit
def _gauss_quadrature(alphas, betas):
    """Nodes and weights (first eigenvector components squared) of a batch of tridiagonal matrices."""
    theta, y = jnp.linalg.eigh(jax.vmap(_tridiagonal)(alphas, betas))
    return theta, y[:, 0, :] ** 2


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
    _check_int(dim, "dim")
    _check_int(num_steps, "num_steps", high=dim, high_name="dim")
    check_key(key)
    dtype = _float_dtype()
    _check_matvec(matvec, dim, dtype)
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
    _check_int(dim, "dim")
    _check_int(k, "k", high=dim, high_name="dim")
    if num_steps is None:
        num_steps = min(dim, 2 * k + 20)
    _check_int(num_steps, "num_steps", low=k, high=dim, low_name="k", high_name="dim")
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
    after ``max_iters`` products. The returned vector is the last iterate (one power step past the
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
    _check_int(dim, "dim")
    _check_int(k, "k", high=dim, high_name="dim")
    _check_int(max_iters, "max_iters")
    _check_positive(tol, "tol")
    check_key(key)
    dtype = _float_dtype()
    _check_matvec(matvec, dim, dtype)
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
    _check_int(num, "num")
    _check_int(dim, "dim")
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
    _check_int(dim, "dim")
    _check_int(num_samples, "num_samples")
    check_key(key)
    dtype = _float_dtype()
    _check_matvec(matvec, dim, dtype)
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
    _check_int(dim, "dim")
    _check_int(num_steps, "num_steps", high=dim, high_name="dim")
    _check_int(num_starts, "num_starts")
    check_key(key)
    dtype = _float_dtype()
    _check_matvec(matvec, dim, dtype)
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
    _check_positive(sigma, "sigma")
    nodes, weights, grid = jnp.asarray(nodes), jnp.asarray(weights), jnp.asarray(grid)
    if nodes.ndim != 1 or weights.shape != nodes.shape:
        raise ValueError(f"nodes and weights must be vectors of one shape, got nodes {nodes.shape}, weights {weights.shape}")
    z = (grid[..., None] - nodes) / sigma
    return jnp.exp(-0.5 * z**2) @ weights / (sigma * math.sqrt(2 * math.pi))


# --- The Hessian of a loss, compiled once per loss function ---------------------------------------


def hessian_top_k(loss_fn: Callable, params, k: int, *, key, num_steps: int | None = None) -> tuple[jax.Array, list]:
    r"""The top-``k`` eigenpairs of :math:`\nabla^2 L(\theta)` at ``params``, by :func:`lanczos_top_k` on HVPs.

    ``loss_fn`` maps a parameter pytree to a scalar; the products are
    :func:`lessons.newton.flat_hvp` (forward-over-reverse, linearised once). The whole computation is
    one compiled call, cached per ``(loss_fn, k, num_steps)`` and parameter shapes: call it again at
    new parameters (during training, say) without recompiling. Pass the same ``loss_fn`` object each
    time (not a fresh ``lambda``) for the cache to hit.

    Returns:
        ``(eigenvalues, directions)``: eigenvalues of largest value first, shape ``(k,)``, and a list of
        ``k`` orthonormal directions shaped like ``params``.
    """
    flat, unravel = ravel_pytree(params)
    _check_int(k, "k", high=int(flat.size), high_name="the number of parameters")
    if num_steps is not None:
        _check_int(num_steps, "num_steps", low=k, high=int(flat.size), low_name="k", high_name="the number of parameters")
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
    dim = int(ravel_pytree(params)[0].size)
    _check_int(num_steps, "num_steps", high=dim, high_name="the number of parameters")
    _check_int(num_starts, "num_starts")
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
    flat, unravel = ravel_pytree(params)
    _check_int(k, "k", high=int(flat.size), high_name="the number of parameters")
    _check_int(num_steps, "num_steps", low=k, high=int(flat.size), low_name="k", high_name="the number of parameters")
    _check_int(num_starts, "num_starts")
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
