r"""DEER: a nonlinear recurrence solved by Newton's method over the whole trajectory, one parallel scan per step.

A recurrent cell :math:`f` and inputs :math:`x_0, \dots, x_{T-1}` define the trajectory

.. math:: h_t = f(h_{t-1}, x_t), \qquad t = 0, \dots, T-1, \qquad h_{-1} = h_0 \ (\text{the argument ``h0``}),

computed by a loop of :math:`T` dependent steps (:func:`sequential`). DEER (Lim et al. 2024) treats all
:math:`T d` unknowns at once: the trajectory is the root of the residual :math:`r_t(h) = h_t - f(h_{t-1}, x_t)`,
and Newton's method linearises :math:`f` around the current guess :math:`h^{(k)}`,

.. math:: J_t = \frac{\partial f}{\partial h}(h^{(k)}_{t-1}, x_t), \qquad
   b_t = f(h^{(k)}_{t-1}, x_t) - J_t h^{(k)}_{t-1}, \qquad h^{(k+1)}_t = J_t h^{(k+1)}_{t-1} + b_t .

The Newton system is block lower-bidiagonal (:math:`I` on the diagonal, :math:`-J_t` below it), so solving
it *is* a linear recurrence: one :func:`lessons.scan.parallel_scan`, depth :math:`O(\log T)`.

* **Exact after** :math:`T` **iterations.** If the first :math:`k` states of :math:`h^{(k)}` are exact, the
  :math:`(k+1)`-th Newton step leaves them alone and makes state :math:`k` exact:
  :math:`h^{(k+1)}_k = J_k h^\star_{k-1} + f(h^\star_{k-1}, x_k) - J_k h^\star_{k-1} = h^\star_k`. This holds for any
  :math:`J_t`, so for quasi-DEER too; the default ``max_iter`` is :math:`T`.
* **Quadratic near the solution**, as Newton is. For a contracting :math:`f` a handful of iterations suffice
  at any :math:`T`. For a chaotic :math:`f` (largest Lyapunov exponent :math:`\lambda > 0`) the products
  :math:`J_t \cdots J_s` grow like :math:`e^{\lambda (t - s)}`: a wrong early state is amplified across the
  sequence, the iteration stalls near the :math:`T` bound or overflows.
* **quasi-DEER** (Gonzalez et al. 2024) keeps :math:`\mathrm{diag}(J_t)` only: the scan is elementwise,
  :math:`O(T d)` memory and work per iteration instead of :math:`O(T d^2)` and :math:`O(T d^3)`, at the price
  of linear convergence. Here the diagonal is read off the full ``jax.jacfwd`` (``d`` JVPs per step:
  simple, and fine for :math:`d \lesssim 64`; a larger cell would want the diagonal directly).

**Gradients by the implicit function theorem.** At the solution :math:`r(h^\star, \theta) = 0`, so for a loss
with cotangent :math:`\bar g_t = \partial L / \partial h_t` the costate :math:`\lambda` solves the transposed
system :math:`(\partial r / \partial h)^\top \lambda = \bar g`, i.e. the reverse-time recurrence

.. math:: \lambda_{T-1} = \bar g_{T-1}, \qquad \lambda_t = \bar g_t + J_{t+1}^\top \lambda_{t+1},

one ``parallel_scan(..., reverse=True)`` with the true Jacobians at :math:`h^\star`; then
:math:`\bar\theta = \sum_t (\partial f / \partial \theta)^\top \lambda_t` (one batched VJP of :math:`f`),
:math:`\bar x_t = (\partial f / \partial x_t)^\top \lambda_t` and :math:`\bar h_0 = J_0^\top \lambda_0`. That is
backpropagation through time's adjoint, solved by a scan instead of a loop; the Newton iterations are never
differentiated (``jax.custom_vjp``; ``jax.closure_convert`` hoists what :math:`f` closes over, so parameters
held by a ``functools.partial`` get their gradient, and a ``jax.jit`` around the call compiles once).
quasi-DEER's fixed point is the same, and so is its backward pass (dense Jacobians: :math:`O(T d^2)` memory).

**On a CPU** the loop is faster: an iteration does :math:`O(d)` times the loop's work, and a CPU runs the
tree's levels a few lanes at a time. The speed-ups reported for DEER need a GPU; the iteration counts and
the depth (:math:`T` vs iterations :math:`\times\, 2 \log_2 T`) are what carries over.

Example::

    >>> import jax, jax.numpy as jnp
    >>> f = lambda h, x: jnp.tanh(0.5 * h + x)
    >>> xs = jax.random.normal(jax.random.key(0), (100, 3))
    >>> hs, num_iters = deer(f, jnp.zeros(3), xs)
    >>> bool(jnp.allclose(hs, sequential(f, jnp.zeros(3), xs), atol=1e-5)), int(num_iters) <= 8
    (True, True)
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from lessons.checks import check_callable, check_finite_data, check_fraction, check_positive_int
from lessons.scan import _parallel_scan

__all__ = ["DeerResult", "DeerWarning", "deer", "newton_iterates", "quasi_deer", "sequential", "solve"]


class DeerWarning(RuntimeWarning):
    """DEER or quasi-DEER stopped without converging: ``max_iter`` ran out, or a state became non-finite."""


class DeerResult(NamedTuple):
    r"""What :func:`solve` returns. ``hs`` is the last iterate; ``change`` is :math:`\max |h^{(k)} - h^{(k-1)}|` of
    the last iteration (non-finite when the iterate overflowed). ``converged`` is a boolean array:
    ``change <= tol * max(1, max|hs|)``, or the last iterate already solves the recurrence to that tolerance
    (after ``T`` iterations it is exact, whatever the last change). For a chaotic ``f`` such a trajectory,
    right to round-off at every step, still drifts O(1) away from the loop's after a few Lyapunov times:
    so does the loop's own from the exact one."""

    hs: jax.Array  # (T, d)
    num_iters: jax.Array  # int: Newton iterations done
    converged: jax.Array  # bool
    change: jax.Array  # float: max |h^(k) - h^(k-1)| of the last iteration


# --- validation -----------------------------------------------------------------------------------------


def _check(f, h0, xs, init=None):
    """``(h0, xs, x0, init)`` checked and in one floating dtype; ``ValueError``/``TypeError`` naming the argument."""
    check_callable(f, "f", "a function f(h, x) -> next h")
    h0 = jnp.asarray(h0)
    if h0.ndim != 1 or h0.shape[0] < 1:
        raise ValueError(f"h0 must have shape (d,), a single state, got {h0.shape}")
    h0 = h0.astype(jnp.result_type(h0.dtype, float))
    check_finite_data(h0, "h0")
    xs = jax.tree.map(jnp.asarray, xs)
    shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(xs)]
    if not shapes:
        raise ValueError(f"xs must hold at least one array with a leading time axis T, got {xs!r:.60}")
    if any(len(s) == 0 for s in shapes) or len({s[0] for s in shapes}) != 1 or shapes[0][0] < 1:
        raise ValueError(f"xs must have one leading time axis T >= 1 shared by every leaf, got shapes {shapes}")
    check_finite_data(xs, "xs")
    T, d = shapes[0][0], h0.shape[0]
    x0 = jax.tree.map(lambda a: a[0], xs)
    try:
        out = jax.eval_shape(f, h0, x0)
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"f fails on h0 of shape {h0.shape} and x_0 = xs[0]: {error}") from error
    if getattr(out, "shape", None) != (d,) or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"f must return a floating state of shape ({d},) like h0, got {out!r:.80}")
    dtype = jnp.result_type(h0.dtype, out.dtype)
    if init is None:
        init = jnp.zeros((T, d), dtype)
    else:
        init = jnp.asarray(init)
        if init.shape != (T, d):
            raise ValueError(f"init must have shape (T, d) = ({T}, {d}), got {init.shape}")
        check_finite_data(init, "init")
    return h0.astype(dtype), xs, x0, init.astype(dtype)


# --- the reference: a loop ------------------------------------------------------------------------------


def sequential(f: Callable, h0, xs) -> jax.Array:
    r"""The trajectory :math:`h_t = f(h_{t-1}, x_t)`, :math:`h_{-1}` = ``h0``, by ``lax.scan``: ``(T, d)``.

    ``f(h, x)`` maps a state ``(d,)`` and one input ``x_t = xs[t]`` (``xs`` an array or a pytree with leading
    axis ``T``) to the next state. Depth :math:`T`; differentiable by backpropagation through time.
    """
    h0, xs, *_ = _check(f, h0, xs)
    return _sequential(f, h0, xs)


@functools.partial(jax.jit, static_argnums=0)
def _sequential(f, h0, xs):
    def step(h, x):
        h = f(h, x).astype(h0.dtype)
        return h, h

    return lax.scan(step, h0, xs)[1]


# --- one Newton step --------------------------------------------------------------------------------------


def _linearise(g, prev, xs, diagonal: bool):
    r"""``(f(prev_t, x_t), J_t)`` for every ``t`` (``J_t`` ``(d, d)``, or its diagonal ``(d,)``), by one ``jacfwd`` each."""

    def one(h, x):
        def both(h):
            y = g(h, x)
            return y, y

        J, y = jax.jacfwd(both, has_aux=True)(h)
        return y, jnp.diagonal(J) if diagonal else J

    return jax.vmap(one)(prev, xs)


def _shift(h0, hs):
    """The previous states ``[h0, h_0, ..., h_(T-2)]`` of a trajectory ``hs``."""
    return jnp.concatenate([h0[None], hs[:-1]])


def _newton_step(g, quasi: bool, h0, xs, hs):
    r"""One (quasi-)DEER iteration: linearise at ``hs`` and solve :math:`h_t = J_t h_{t-1} + b_t` by a parallel scan."""
    prev = _shift(h0, hs)
    fs, J = _linearise(g, prev, xs, quasi)
    b = fs - (J * prev if quasi else jnp.einsum("tij,tj->ti", J, prev))
    return _parallel_scan(J, b, h0)


def _max_abs(a):
    """``max |a|``, NaN if ``a`` holds a non-finite entry (XLA's CPU max-reduction may skip NaNs: it is not trusted)."""
    return jnp.where(jnp.all(jnp.isfinite(a)), jnp.max(jnp.abs(a)), jnp.nan)


def _converted(f, consts, dtype):
    return lambda h, x: f(h, x, *consts).astype(dtype)


# --- the solve, with its implicit gradient ----------------------------------------------------------------


_ULPS = 64  # the smallest tolerance, in units of the dtype's eps: float32 changes stall at ~10 eps (d = 64)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _fixed_point(f, quasi, max_iter, consts, h0, xs, tol, init):
    g = _converted(f, consts, h0.dtype)
    tol = jnp.maximum(tol, _ULPS * jnp.finfo(h0.dtype).eps)  # below it the scan's round-off never settles

    def small(change, hs):
        return change <= tol * jnp.maximum(1.0, jnp.max(jnp.abs(hs)))

    def cond(state):
        k, hs, change = state
        return (k < max_iter) & ((k == 0) | (jnp.isfinite(change) & ~small(change, hs)))

    def body(state):
        k, hs, _ = state
        new = _newton_step(g, quasi, h0, xs, hs)
        return k + 1, new, _max_abs(new - hs)

    start = (jnp.zeros((), jnp.int32), init, jnp.asarray(jnp.inf, h0.dtype))
    num_iters, hs, change = lax.while_loop(cond, body, start)
    residual = _max_abs(jax.vmap(g)(_shift(h0, hs), xs) - hs)  # 0 once exact, whatever the last change
    converged = jnp.isfinite(change) & (small(change, hs) | small(residual, hs))
    return DeerResult(hs, num_iters, converged, change)


def _fixed_point_fwd(f, quasi, max_iter, consts, h0, xs, tol, init):
    result = _fixed_point(f, quasi, max_iter, consts, h0, xs, tol, init)
    return result, (result.hs, consts, h0, xs, tol, init)


def _fixed_point_bwd(f, quasi, max_iter, saved, cotangents):
    hs, consts, h0, xs, tol, init = saved
    prev = _shift(h0, hs)
    _, J = _linearise(_converted(f, consts, h0.dtype), prev, xs, False)  # the true Jacobians, for quasi too
    A = jnp.concatenate([jnp.swapaxes(J[1:], 1, 2), jnp.zeros_like(J[:1])])  # lambda_t = g_t + J_(t+1)^T lambda_(t+1)
    costate = _parallel_scan(A, cotangents.hs.astype(hs.dtype), jnp.zeros_like(h0), True)
    _, vjp = jax.vjp(lambda prev, xs, consts: jax.vmap(_converted(f, consts, h0.dtype))(prev, xs), prev, xs, consts)
    prev_bar, xs_bar, consts_bar = vjp(costate)
    return consts_bar, prev_bar[0], xs_bar, jnp.zeros_like(tol), jnp.zeros_like(init)


_fixed_point.defvjp(_fixed_point_fwd, _fixed_point_bwd)
_fixed_point_jit = jax.jit(_fixed_point, static_argnums=(0, 1, 2))


def solve(f: Callable, h0, xs, *, quasi: bool = False, max_iter: int | None = None, tol=1e-6, init=None) -> DeerResult:
    r"""Newton's method over the whole trajectory of :math:`h_t = f(h_{t-1}, x_t)` (module docstring): a :class:`DeerResult`.

    ``quasi=True`` keeps :math:`\mathrm{diag}(J_t)` only (quasi-DEER). ``max_iter`` defaults to ``T`` (both
    variants are exact after ``T`` iterations), ``init`` (the guess :math:`h^{(0)}`, ``(T, d)``) to zeros. The
    iteration stops when :math:`\max|h^{(k+1)} - h^{(k)}| \le` ``tol`` :math:`\cdot \max(1, \max|h^{(k+1)}|)`,
    or on a non-finite iterate (then ``converged`` is ``False``). ``tol`` is raised to 64 ulps when smaller
    (:math:`64\,\varepsilon`: 7.6e-6 in float32): the scan's round-off leaves changes of about
    :math:`10\,\varepsilon` that no iteration removes, so a float32 run would otherwise never stop.
    ``converged`` is also true when the last iterate solves the recurrence to that tolerance (after ``T``
    iterations it is exact, whatever its last change). Works under ``jax.jit`` (``lax.while_loop``) and
    never warns: :func:`deer` and :func:`quasi_deer` do. Differentiable in reverse mode with respect to
    ``h0``, ``xs`` and whatever ``f`` closes over, by the implicit function theorem (module docstring).

    Per iteration: :math:`T` Jacobians by ``jax.jacfwd`` (:math:`d` JVPs each) and one scan, :math:`O(T d^3)`
    work and :math:`O(T d^2)` memory (quasi: :math:`O(T d)` memory, the scan :math:`O(T d)`).
    To avoid recompiling for new parameter values, call it inside your own ``jax.jit`` with the parameters
    as arguments: ``jax.jit(lambda p: solve(functools.partial(cell, p), h0, xs))``.
    """
    check_fraction(tol, "tol")
    if max_iter is not None:
        check_positive_int(max_iter, "max_iter")
    h0, xs, x0, init = _check(f, h0, xs, init)
    max_iter = init.shape[0] if max_iter is None else int(max_iter)
    f_converted, consts = jax.closure_convert(f, h0, x0)
    tol = jnp.asarray(tol, h0.dtype)
    return _fixed_point_jit(f_converted, bool(quasi), max_iter, consts, h0, xs, tol, init)


def _warn(name: str, num_iters, converged, change, stacklevel: int = 2) -> None:
    if bool(converged):
        return
    if not math.isfinite(float(change)):
        message = f"{name}: non-finite state at iteration {int(num_iters)} (the Jacobian products overflowed: is f chaotic?)"
    else:
        message = f"{name} did not converge in {int(num_iters)} iterations: the last change was {float(change):.3g}"
    warnings.warn(message, DeerWarning, stacklevel=stacklevel)


def _report(name: str, result: DeerResult):
    """Warn if ``result`` did not converge: now when it is concrete, when the computation runs under ``jax.jit``."""
    try:
        values = bool(result.converged), int(result.num_iters), float(result.change)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
        jax.debug.callback(functools.partial(_warn, name), result.num_iters, result.converged, result.change)
    else:
        _warn(name, values[1], values[0], values[2], stacklevel=4)
    return result.hs, result.num_iters


def deer(f: Callable, h0, xs, *, max_iter: int | None = None, tol=1e-6, init=None) -> tuple[jax.Array, jax.Array]:
    r"""DEER (Lim et al. 2024): the trajectory ``(T, d)`` of :math:`h_t = f(h_{t-1}, x_t)` and the Newton iterations it took.

    :func:`solve` with dense Jacobians; warns a :class:`DeerWarning` when it did not converge (the number of
    iterations and the last change, or "non-finite state at iteration k"), also under ``jax.jit`` (by
    ``jax.debug.callback``). Gradients: implicit, one transposed reverse-time scan (module docstring); the
    iteration count is an integer and has none.
    """
    return _report("deer", solve(f, h0, xs, max_iter=max_iter, tol=tol, init=init))


def quasi_deer(f: Callable, h0, xs, *, max_iter: int | None = None, tol=1e-6, init=None) -> tuple[jax.Array, jax.Array]:
    r"""quasi-DEER (Gonzalez et al. 2024): as :func:`deer` with :math:`\mathrm{diag}(J_t)` only.

    :math:`O(T d)` memory and scan work per iteration; linear convergence, so more iterations (still at most
    ``T``). Same fixed point, so the same gradient, computed with the true Jacobians.
    """
    return _report("quasi_deer", solve(f, h0, xs, quasi=True, max_iter=max_iter, tol=tol, init=init))


def newton_iterates(f: Callable, h0, xs, num_iters: int, *, quasi: bool = False, init=None) -> jax.Array:
    r"""Every iterate :math:`h^{(0)}, \dots, h^{(K)}` of (quasi-)DEER, ``K = num_iters`` fixed: ``(K + 1, T, d)``.

    No stopping rule (a ``lax.scan`` over the iterations), for figures: after ``k`` iterations the first ``k``
    states are exact. ``init`` defaults to zeros. Not meant to be differentiated.
    """
    check_positive_int(num_iters, "num_iters", low=0)
    h0, xs, _, init = _check(f, h0, xs, init)
    return _newton_iterates(f, bool(quasi), int(num_iters), h0, xs, init)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _newton_iterates(f, quasi, num_iters, h0, xs, init):
    g = lambda h, x: f(h, x).astype(h0.dtype)

    def step(hs, _):
        hs = _newton_step(g, quasi, h0, xs, hs)
        return hs, hs

    return jnp.concatenate([init[None], lax.scan(step, init, None, length=num_iters)[1]])
