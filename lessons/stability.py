r"""How much the loss landscape moves when one more example is added: Monte Carlo against a closed form.

Per-example losses :math:`\ell_1(w), \dots, \ell_n(w)` in a fixed order define the prefix means
:math:`L_k(w) = \frac1k \sum_{i \le k} \ell_i(w)`, and the change when example :math:`k+1` joins,

.. math:: \Delta_k(w) = L_{k+1}(w) - L_k(w) = \frac{\ell_{k+1}(w) - L_k(w)}{k+1}, \qquad k = 1, \dots, n-1 .

Three ways to measure it near a point :math:`w^\star` (Kiselev & Grabovoy, *Curvature-aligned probing
for local loss-landscape stabilization*):

* at the point itself, :math:`\Delta_1(k) = |\Delta_k(w^\star)|` (:func:`delta1`);
* averaged over isotropic Gaussian perturbations,
  :math:`\Delta_2(k) = \mathbb E_{\varepsilon \sim \mathcal N(0, \sigma^2 I_P)} \Delta_k(w^\star + \varepsilon)^2`
  (:func:`delta2_isotropic`, Monte Carlo);
* in a ``D``-dimensional subspace spanned by the columns of :math:`U \in \mathbb R^{P \times D}` (the top
  Hessian eigenvectors: the directions where the loss bends most),
  :math:`\Delta_2^{(D)}(k) = \mathbb E_{z \sim \mathcal N(0, \sigma^2 I_D)} \Delta_k(w^\star + U z)^2`,
  by Monte Carlo (:func:`delta2_subspace`) or in closed form from the quadratic model of
  :math:`\Delta_k` along :math:`U` (:func:`quadratic_model`, :func:`delta2_curvature_aligned`).

**One evaluation gives every k.** All ``n`` per-example losses at one point give :math:`\Delta_k` for
every ``k`` at once (prefix means by a cumulative sum, :func:`increments`), so every function here
returns a vector over ``k = 1..n-1``: a Monte Carlo estimate with ``S`` samples costs ``S``
evaluations of the per-example losses in all, not ``S`` per ``k``.

**Caveat.** For small :math:`\sigma` the term :math:`a_k^2 = \Delta_k(w^\star)^2` dominates every
criterion: :math:`\Delta_2 \to \Delta_1^2` as :math:`\sigma \to 0`, so agreement between the criteria
there says nothing about curvature. The subspace starts to matter once the :math:`\sigma^2` and
:math:`\sigma^4` terms of :func:`delta2_closed_form` are comparable to :math:`a_k^2`. Note also that
:math:`\Delta_1` decays like :math:`k^{-1}` and the squared criteria like :math:`k^{-2}`: the numerator
:math:`\ell_{k+1} - L_k` stays of the order of the spread of the losses.

A per-example loss is any function ``params -> (n,)`` on a parameter pytree; perturbations act on the
flattened parameters (``jax.flatten_util.ravel_pytree``). Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons import stability
    >>> m = jnp.array([0.0, 1.0, 2.0, 3.0])
    >>> losses = lambda w: 0.5 * (w[0] - m) ** 2  # four examples, one parameter
    >>> stability.delta1(losses, jnp.zeros(1))
    Array([0.25     , 0.5833333, 0.9166667], dtype=float32)
    >>> U = jnp.ones((1, 1))
    >>> stability.delta2_curvature_aligned(losses, jnp.zeros(1), U, 0.1)  # exact: the losses are quadratic
    Array([0.065     , 0.34277776, 0.8427778 ], dtype=float32)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lessons.checks import check_callable, check_key, check_positive, check_positive_int

PyTree = Any
PerExampleLoss = Callable[[PyTree], jax.Array]


# --- Validation -----------------------------------------------------------------------------------


def _check_sigma(sigma) -> None:
    if jnp.ndim(sigma) != 0:
        raise ValueError(f"sigma must be a positive finite scalar, got shape {jnp.shape(sigma)}")
    check_positive(sigma, "sigma")


def _check_losses(shape) -> None:
    """Raise unless ``per_example_loss`` returned a vector of at least two losses (checked at trace time)."""
    if len(shape) != 1 or shape[0] < 2:
        raise ValueError(f"per_example_loss must return a vector of n >= 2 per-example losses, got shape {tuple(shape)}")


def _check_basis(U, params) -> jax.Array:
    """``U`` as an array of the parameters' dtype, after checking it is ``(P, D)``."""
    flat, _ = ravel_pytree(params)
    U = jnp.asarray(U)
    if U.ndim != 2 or U.shape[0] != flat.size or U.shape[1] < 1:
        raise ValueError(f"U must have shape (P, D) with P = {flat.size} parameters and D >= 1, got {U.shape}")
    return U.astype(flat.dtype)


def _check_perturbations(perturbations, params) -> jax.Array:
    flat, _ = ravel_pytree(params)
    eps = jnp.asarray(perturbations)
    if eps.ndim != 2 or eps.shape[1] != flat.size or eps.shape[0] < 1:
        raise ValueError(f"perturbations must have shape (S, P) with P = {flat.size} parameters and S >= 1, got {eps.shape}")
    return eps.astype(flat.dtype)


def _as_float(values) -> jax.Array:
    values = jnp.asarray(values)
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jax.dtypes.canonicalize_dtype(jnp.float64))
    return values


# --- Prefix means and increments ------------------------------------------------------------------


def prefix_means(values) -> jax.Array:
    r"""Running means along axis 0: :math:`L_k = \frac1k \sum_{i \le k} v_i` for :math:`k = 1, \dots, n`.

    ``values`` has shape ``(n, ...)`` (losses ``(n,)``, gradients ``(n, D)``, Hessians ``(n, D, D)``);
    the result has the same shape. One cumulative sum: :math:`O(n)` work per entry.

    Example::

        >>> prefix_means(jnp.array([1.0, 3.0, 5.0]))
        Array([1., 2., 3.], dtype=float32)
    """
    values = _as_float(values)
    if values.ndim < 1 or values.shape[0] < 1:
        raise ValueError(f"values must have shape (n, ...) with n >= 1, got {values.shape}")
    return _prefix_means(values)


@jax.jit
def _prefix_means(values):
    counts = jnp.arange(1, values.shape[0] + 1, dtype=values.dtype).reshape((-1,) + (1,) * (values.ndim - 1))
    return jnp.cumsum(values, axis=0) / counts


def increments(values) -> jax.Array:
    r"""The increments :math:`\Delta_k = L_{k+1} - L_k` of the prefix means, for :math:`k = 1, \dots, n-1`.

    Computed by the identity :math:`\Delta_k = (v_{k+1} - L_k) / (k+1)` (no difference of two nearly
    equal means). ``values`` has shape ``(n, ...)`` with ``n >= 2``; the result ``(n - 1, ...)``.
    Linear in ``values``: the increments of per-example gradients and Hessians are the gradients and
    Hessians of :math:`\Delta_k`.

    Example::

        >>> increments(jnp.array([1.0, 3.0, 5.0]))  # L = 1, 2, 3
        Array([1., 1.], dtype=float32)
    """
    values = _as_float(values)
    if values.ndim < 1 or values.shape[0] < 2:
        raise ValueError(f"values must have shape (n, ...) with n >= 2, got {values.shape}")
    return _increments(values)


@jax.jit
def _increments(values):
    ks = jnp.arange(2, values.shape[0] + 1, dtype=values.dtype).reshape((-1,) + (1,) * (values.ndim - 1))
    return (values[1:] - _prefix_means(values)[:-1]) / ks


def expected_squared_increment(values) -> jax.Array:
    r"""The average of :math:`\Delta_k^2` over all :math:`n!` orderings of fixed values, exactly.

    For values :math:`v_1, \dots, v_n` with population variance
    :math:`s^2 = \frac1n \sum_i (v_i - \bar v)^2`, draw an ordering uniformly at random. Then
    :math:`\mathbb E\, v_{k+1} = \mathbb E\, L_k`, :math:`\operatorname{Var} L_k = \frac{s^2}{k}\frac{n - k}{n - 1}`
    (sampling without replacement) and :math:`\operatorname{Cov}(v_{k+1}, L_k) = -\frac{s^2}{n - 1}`, so

    .. math:: \mathbb E\, \Delta_k^2 = \frac{\operatorname{Var}(v_{k+1} - L_k)}{(k+1)^2}
       = \frac{n\, s^2}{(n - 1)\, k\, (k + 1)}, \qquad k = 1, \dots, n - 1 :

    the :math:`k^{-2}` decay of the squared criteria, with its constant. ``values`` has shape ``(n,)``,
    ``n >= 2``; the result has shape ``(n - 1,)``. Apply it to the per-example losses at
    :math:`w^\star` for the ordering average of :math:`\Delta_1^2`.

    Example::

        >>> expected_squared_increment(jnp.array([0.0, 2.0]))  # the two orders give Delta_1 = +-1
        Array([1.], dtype=float32)
    """
    values = _as_float(values)
    if values.ndim != 1 or values.shape[0] < 2:
        raise ValueError(f"values must have shape (n,) with n >= 2, got {values.shape}")
    n = values.shape[0]
    k = jnp.arange(1, n, dtype=values.dtype)
    return n * jnp.var(values) / ((n - 1) * k * (k + 1))


def delta1(per_example_loss: PerExampleLoss, params: PyTree) -> jax.Array:
    r""":math:`\Delta_1(k) = |\Delta_k(w)|` for :math:`k = 1, \dots, n-1`: shape ``(n - 1,)``.

    Cost: one evaluation of the ``n`` per-example losses.
    """
    check_callable(per_example_loss, "per_example_loss")
    return _delta1(per_example_loss, params)


@functools.partial(jax.jit, static_argnums=0)
def _delta1(per_example_loss, params):
    return jnp.abs(_increments_at(per_example_loss, params))


# --- Monte Carlo ----------------------------------------------------------------------------------


class Delta2Estimate(NamedTuple):
    r"""A Monte Carlo estimate of :math:`\mathbb E\, \Delta_k^2` for every ``k``: the sample mean and its
    standard error :math:`s / \sqrt S` (sample standard deviation :math:`s`; ``nan`` when ``S = 1``)."""

    mean: jax.Array
    standard_error: jax.Array


def squared_increments(per_example_loss: PerExampleLoss, params: PyTree, perturbations, *, batch_size: int = 1024) -> jax.Array:
    r"""The per-sample values :math:`\Delta_k(w + \varepsilon_s)^2`: shape ``(S, n - 1)``.

    ``perturbations`` is an ``(S, P)`` array of flat parameter perturbations :math:`\varepsilon_s`.
    Evaluated in vmapped blocks of ``batch_size`` samples (``lax.map``), one compiled call. Cost:
    ``S`` evaluations of the ``n`` per-example losses.
    """
    check_callable(per_example_loss, "per_example_loss")
    eps = _check_perturbations(perturbations, params)
    check_positive_int(batch_size, "batch_size")
    return _squared_increments(per_example_loss, params, eps, batch_size)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _squared_increments(per_example_loss, params, eps, batch_size):
    flat, unravel = ravel_pytree(params)
    return jax.lax.map(lambda e: _increments_at(per_example_loss, unravel(flat + e)) ** 2, eps, batch_size=batch_size)


def _increments_at(per_example_loss, params):
    losses = per_example_loss(params)
    _check_losses(losses.shape)
    return increments(losses)


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _monte_carlo(per_example_loss, params, U, sigma, key, num_samples, batch_size):
    """Mean and standard error of ``Delta_k(w + sigma U z)^2``, z standard normal (``U = None``: ``z`` in R^P)."""
    flat, unravel = ravel_pytree(params)
    dim = flat.size if U is None else U.shape[1]

    def sample(z):
        return _increments_at(per_example_loss, unravel(flat + (z if U is None else U @ z))) ** 2

    z = sigma * jax.random.normal(key, (num_samples, dim), flat.dtype)
    values = jax.lax.map(sample, z, batch_size=batch_size)
    mean = values.mean(axis=0)
    spread = jnp.std(values, axis=0, ddof=1) if num_samples > 1 else jnp.full_like(mean, jnp.nan)
    return Delta2Estimate(mean, spread / np.sqrt(num_samples))


def delta2_isotropic_estimate(
    per_example_loss: PerExampleLoss, params: PyTree, sigma, *, key, num_samples: int, batch_size: int = 1024
) -> Delta2Estimate:
    r""":func:`delta2_isotropic` with its standard error (a :class:`Delta2Estimate`)."""
    check_callable(per_example_loss, "per_example_loss")
    _check_sigma(sigma)
    check_key(key)
    check_positive_int(num_samples, "num_samples")
    check_positive_int(batch_size, "batch_size")
    dtype = ravel_pytree(params)[0].dtype
    return _monte_carlo(per_example_loss, params, None, jnp.asarray(sigma, dtype), key, int(num_samples), int(batch_size))


def delta2_isotropic(
    per_example_loss: PerExampleLoss, params: PyTree, sigma, *, key, num_samples: int, batch_size: int = 1024
) -> jax.Array:
    r"""Monte Carlo :math:`\Delta_2(k) = \mathbb E_{\varepsilon \sim \mathcal N(0, \sigma^2 I_P)} \Delta_k(w + \varepsilon)^2`.

    The mean over ``num_samples`` independent perturbations of all ``P`` flat parameters; shape
    ``(n - 1,)``. Cost: ``num_samples`` evaluations of the per-example losses (in vmapped blocks of
    ``batch_size``); the standard error shrinks like ``num_samples ** -0.5``
    (:func:`delta2_isotropic_estimate` returns it). The draws depend on ``key`` and ``num_samples``
    only, not on ``batch_size``; they are made at once (``num_samples x P`` numbers in memory).
    """
    return delta2_isotropic_estimate(
        per_example_loss, params, sigma, key=key, num_samples=num_samples, batch_size=batch_size
    ).mean


def delta2_subspace_estimate(
    per_example_loss: PerExampleLoss, params: PyTree, U, sigma, *, key, num_samples: int, batch_size: int = 1024
) -> Delta2Estimate:
    r""":func:`delta2_subspace` with its standard error (a :class:`Delta2Estimate`)."""
    check_callable(per_example_loss, "per_example_loss")
    U = _check_basis(U, params)
    _check_sigma(sigma)
    check_key(key)
    check_positive_int(num_samples, "num_samples")
    check_positive_int(batch_size, "batch_size")
    return _monte_carlo(per_example_loss, params, U, jnp.asarray(sigma, U.dtype), key, int(num_samples), int(batch_size))


def delta2_subspace(
    per_example_loss: PerExampleLoss, params: PyTree, U, sigma, *, key, num_samples: int, batch_size: int = 1024
) -> jax.Array:
    r"""Monte Carlo :math:`\Delta_2^{(D)}(k) = \mathbb E_{z \sim \mathcal N(0, \sigma^2 I_D)} \Delta_k(w + U z)^2`.

    ``U`` has shape ``(P, D)``, normally with orthonormal columns (then :math:`Uz` has standard
    deviation :math:`\sigma` along each of them; the estimate is defined for any ``U``). Shape
    ``(n - 1,)``. Cost: ``num_samples`` evaluations of the per-example losses;
    :func:`delta2_curvature_aligned` gives the same quantity in closed form when :math:`\Delta_k` is
    quadratic along ``U``.
    """
    return delta2_subspace_estimate(
        per_example_loss, params, U, sigma, key=key, num_samples=num_samples, batch_size=batch_size
    ).mean


# --- The quadratic model and the closed form ------------------------------------------------------


class QuadraticModel(NamedTuple):
    r"""Second-order Taylor model of every increment along ``U``:
    :math:`\Delta_k(w + U z) \approx a_k + c_k^\top z + \tfrac12 z^\top B_k z`.

    Shapes ``a: (n - 1,)``, ``c: (n - 1, D)``, ``B: (n - 1, D, D)`` (symmetric).
    """

    a: jax.Array
    c: jax.Array
    B: jax.Array


def quadratic_model(per_example_loss: PerExampleLoss, params: PyTree, U) -> QuadraticModel:
    r"""The quadratic model of :math:`\Delta_k` along the columns of ``U``, for every ``k``.

    With :math:`h(z) = (\ell_1, \dots, \ell_n)(w + U z)`, its per-example gradients
    :math:`G_i = U^\top \nabla \ell_i(w)` and projected Hessians :math:`H_i = U^\top \nabla^2 \ell_i(w)\, U`
    at :math:`z = 0` give, by linearity of :func:`increments`,

    .. math:: a_k = \Delta_k(w), \qquad c_k = U^\top (\nabla L_{k+1} - \nabla L_k)(w) = \mathrm{incr}(G)_k,
       \qquad B_k = U^\top (\nabla^2 L_{k+1} - \nabla^2 L_k)(w)\, U = \mathrm{incr}(H)_k .

    The derivatives are taken in the ``D`` coordinates :math:`z` by forward mode
    (``jax.jacfwd`` of ``jax.jacfwd``): ``D`` first-order and :math:`D^2` second-order tangent passes,
    each over all ``n`` examples at once. Reverse mode would need one backward pass per example, as
    :math:`h` has ``n`` outputs. Cheap for ``D`` up to about 20; memory :math:`O(n D^2)`.
    """
    check_callable(per_example_loss, "per_example_loss")
    U = _check_basis(U, params)
    return _quadratic_model(per_example_loss, params, U)


@functools.partial(jax.jit, static_argnums=0)
def _quadratic_model(per_example_loss, params, U):
    flat, unravel = ravel_pytree(params)
    h = lambda z: per_example_loss(unravel(flat + U @ z))
    z0 = jnp.zeros(U.shape[1], flat.dtype)
    losses = h(z0)
    _check_losses(losses.shape)
    G = jax.jacfwd(h)(z0)  # (n, D): D JVPs
    H = jax.jacfwd(jax.jacfwd(h))(z0)  # (n, D, D): D^2 JVPs of JVPs, sharing the D first-order tangents
    return QuadraticModel(increments(losses), increments(G), increments(H))


def delta2_closed_form(a, c, B, sigma) -> jax.Array:
    r""":math:`\mathbb E_{z \sim \mathcal N(0, \sigma^2 I_D)} (a + c^\top z + \tfrac12 z^\top B z)^2`, exactly.

    With :math:`\mathbb E\, z^\top B z = \sigma^2 \operatorname{tr} B`,
    :math:`\mathbb E (z^\top B z)^2 = \sigma^4 (2 \operatorname{tr} B^2 + (\operatorname{tr} B)^2)` for symmetric
    :math:`B`, and the odd moments zero:

    .. math:: a^2 + a \sigma^2 \operatorname{tr} B + \sigma^2 \|c\|^2
       + \frac{\sigma^4}{4} \left(2 \operatorname{tr} B^2 + (\operatorname{tr} B)^2\right)
       = \left(a + \tfrac{\sigma^2}{2} \operatorname{tr} B\right)^2 + \sigma^2 \|c\|^2
       + \frac{\sigma^4}{2} \operatorname{tr} B^2 ,

    the mean squared plus the variance; the second form (used here) is a sum of non-negative terms.
    Only the symmetric part of ``B`` enters. ``a`` may carry leading batch axes: ``a (...)``,
    ``c (..., D)``, ``B (..., D, D)`` give shape ``(...)``. Cost :math:`O(D^2)` per entry.

    Example::

        >>> delta2_closed_form(1.0, jnp.zeros(1), jnp.ones((1, 1)), 1.0)  # z ~ N(0, 1): E (1 + z^2 / 2)^2
        Array(2.75, dtype=float32)
    """
    _check_sigma(sigma)
    a, c, B = _as_float(a), _as_float(c), _as_float(B)
    if c.ndim != a.ndim + 1 or c.shape[:-1] != a.shape or c.shape[-1] < 1:
        raise ValueError(f"c must have shape {a.shape + ('D',)} to match a of shape {a.shape}, got {c.shape}")
    if B.shape != c.shape + c.shape[-1:]:
        raise ValueError(f"B must have shape {c.shape + c.shape[-1:]} to match c of shape {c.shape}, got {B.shape}")
    return _closed_form(a, c, B, jnp.asarray(sigma, jnp.result_type(a, c, B)))


@jax.jit
def _closed_form(a, c, B, sigma):
    s2 = sigma**2
    sym = 0.5 * (B + jnp.swapaxes(B, -1, -2))
    trace = jnp.trace(B, axis1=-2, axis2=-1)
    return (a + 0.5 * s2 * trace) ** 2 + s2 * jnp.sum(c * c, axis=-1) + 0.5 * s2**2 * jnp.sum(sym * sym, axis=(-2, -1))


def delta2_curvature_aligned(per_example_loss: PerExampleLoss, params: PyTree, U, sigma) -> jax.Array:
    r""":math:`\Delta_2^{(D)}(k)` for every ``k`` in closed form: :func:`delta2_closed_form` of :func:`quadratic_model`.

    Exact when the per-example losses are quadratic along ``U``; otherwise the Gaussian average of the
    second-order Taylor model, accurate while :math:`\sigma` is small against the scale on which the
    curvature changes. Cost: the model (:math:`D^2` second-order tangent passes over the ``n``
    examples, see :func:`quadratic_model`) plus :math:`O(n D^2)`; no sampling; one compiled call.
    The model does not depend on ``sigma``: for a sweep over :math:`\sigma` compute it once and call
    :func:`delta2_closed_form` per value.
    """
    check_callable(per_example_loss, "per_example_loss")
    U = _check_basis(U, params)
    _check_sigma(sigma)
    return _curvature_aligned(per_example_loss, params, U, jnp.asarray(sigma, U.dtype))


@functools.partial(jax.jit, static_argnums=0)
def _curvature_aligned(per_example_loss, params, U, sigma):
    model = _quadratic_model(per_example_loss, params, U)
    return _closed_form(*model, sigma.astype(model.a.dtype))
