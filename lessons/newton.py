r"""Newton's method: Hessian-vector products, dense Hessians, Newton steps, and Newton-CG.

Hessian-vector products (HVPs) three ways, after the JAX Autodiff Cookbook; all return
:math:`H(\theta) v` as a pytree shaped like ``params``, for about the cost of 2-3 gradients:

* :func:`hvp` (forward-over-reverse): ``jvp`` of ``grad`` — the cheapest in memory and time;
* :func:`hvp_reverse_over_reverse` (grad-of-grad): :math:`\nabla_\theta \langle \nabla f(\theta), v\rangle`;
* :func:`hvp_reverse_over_forward`: :math:`\nabla_\theta\, \partial_v f(\theta)`, the gradient of a JVP.

Example::

    >>> import jax.numpy as jnp
    >>> from lessons.newton import hvp
    >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)
    >>> hvp(f, jnp.ones(2), jnp.array([1.0, 1.0]))
    Array([1., 4.], dtype=float32)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

PyTree = Any


def _check_like(params, v) -> None:
    p_struct, v_struct = jax.tree.structure(params), jax.tree.structure(v)
    if p_struct != v_struct:
        raise ValueError(f"v must be a pytree shaped like params: got structure {v_struct}, expected {p_struct}")
    for p, w in zip(jax.tree.leaves(params), jax.tree.leaves(v), strict=True):
        if jnp.shape(p) != jnp.shape(w):
            raise ValueError(
                f"v must be a pytree shaped like params: leaf of shape {jnp.shape(w)} where params has {jnp.shape(p)}"
            )


def hvp(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    r"""Hessian-vector product :math:`\nabla^2 f(\theta)\, v` by forward-over-reverse differentiation.

    ``jax.jvp(jax.grad(f), (params,), (v,))``: one forward-mode pass through the gradient
    computation. Cost about 2-3 gradients; memory about one gradient's.
    """
    _check_like(params, v)
    return jax.jvp(jax.grad(f), (params,), (v,))[1]


def hvp_reverse_over_reverse(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    r"""HVP as the gradient of :math:`\theta \mapsto \langle \nabla f(\theta), v \rangle` (grad-of-grad)."""
    _check_like(params, v)

    def directional_gradient(p):
        g = jax.grad(f)(p)
        return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(v), strict=True))

    return jax.grad(directional_gradient)(params)


def hvp_reverse_over_forward(f: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    r"""HVP as the gradient of the directional derivative :math:`\theta \mapsto \partial_v f(\theta)` (a JVP)."""
    _check_like(params, v)
    return jax.grad(lambda p: jax.jvp(f, (p,), (v,))[1])(params)


def hessian_matrix(f: Callable[[PyTree], jax.Array], params: PyTree) -> jax.Array:
    """The dense Hessian of ``f`` at ``params`` as a ``(P, P)`` matrix over the flattened parameters.

    Built from ``P`` HVPs (vmapped over the identity); memory ``O(P^2)``: small problems only.
    """
    flat, unravel = ravel_pytree(params)
    g = lambda w: f(unravel(w))
    return jax.vmap(lambda e: jax.jvp(jax.grad(g), (flat,), (e,))[1])(jnp.eye(flat.size, dtype=flat.dtype))


def flat_hvp(f: Callable[[PyTree], jax.Array], params: PyTree) -> tuple[Callable[[jax.Array], jax.Array], int]:
    """``(matvec, dim)``: the HVP at ``params`` as a function of flat vectors of shape ``(dim,)``.

    The form the eigensolvers of :mod:`lessons.curvature` expect. Linearising once
    (``jax.linearize`` of the gradient) makes each product cheaper than a fresh :func:`hvp`.
    """
    flat, unravel = ravel_pytree(params)
    _, hvp_lin = jax.linearize(jax.grad(lambda w: f(unravel(w))), flat)
    # Accept vectors of any float dtype (float64 Lanczos on a float32 model under x64): cast to the parameters'.
    return (lambda v: hvp_lin(jnp.asarray(v).astype(flat.dtype))), int(flat.size)


# --- Newton steps on small problems (dense) -------------------------------------------------------


def check_damping(damping, name: str = "damping") -> None:
    """Raise ``ValueError`` unless ``damping`` is a finite number >= 0 (tracers pass)."""
    try:
        value = float(damping)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return  # traced: checked where it is concrete
    if not (value >= 0 and value < float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {damping}")


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
    from lessons.first_order import check_learning_rate

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
    from lessons.first_order import check_learning_rate

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
    if not 0 < decrease < 1 < increase:
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


# --- Conjugate gradients and Newton-CG (Hessian-free) ---------------------------------------------


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

    Stops after ``max_iters`` products, when :math:`\|r\| \le` ``tol`` :math:`\|b\|`, or at a
    direction with :math:`p^\top A p \le 0` (truncated Newton, Nocedal & Wright Alg. 7.1): then it
    returns the iterate so far, or :math:`b` itself if that happens at the first step. Each
    iteration costs one ``matvec``; in exact arithmetic CG solves an SPD system in at most
    ``dim`` iterations, and fast when the eigenvalues cluster.
    """
    if not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    b = jnp.asarray(b)
    out = jax.eval_shape(matvec, jax.ShapeDtypeStruct(b.shape, b.dtype))
    if out.shape != b.shape:
        raise ValueError(f"matvec must map shape {b.shape} to itself, got {out.shape}")
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

        .. math:: s = \eta\, d, \qquad (H + \lambda I)\, d pprox -g,

        solved by :func:`conjugate_gradient`, truncated after ``max_cg_iters`` products, at relative
        residual ``cg_tol``, or at negative curvature. It never forms :math:`H`: each CG iteration is one
        Hessian-vector product (about 2-3 gradients), so a step costs :math:`O(	ext{max\_cg\_iters} \cdot P)`.

        On a non-convex loss the quadratic model can be badly wrong far from the current point, so the
        damping adapts as in Levenberg-Marquardt (Martens 2010): with
        :math:`
    ho = (f(	heta) - f(	heta + s)) / -(g^	op s + 	frac12 s^	op H s)`,
        :math:`\lambda` shrinks by ``damping_decrease`` when :math:`
    ho > 3/4`, grows by
        ``damping_increase`` when :math:`
    ho < 1/4`, and a step that does not reduce the loss is
        rejected (zero update). That costs one more HVP and one loss per step. With both factors equal
        to 1 the damping stays fixed (steps are still rejected when they increase the loss).

        The loss is an extra argument of ``update``, as for ``optax.lbfgs``::

            updates, state = opt.update(grads, state, params, value_fn=loss_fn)

        (:func:`lessons.train.train` passes it). Chains with optax: ``optax.chain(newton_cg(), ...)``.
    """
    from lessons.first_order import check_learning_rate

    check_learning_rate(learning_rate)
    check_damping(damping)
    if not isinstance(max_cg_iters, int) or max_cg_iters < 1:
        raise ValueError(f"max_cg_iters must be a positive integer, got {max_cg_iters!r}")
    if not cg_tol > 0:
        raise ValueError(f"cg_tol must be positive, got {cg_tol}")
    if not (0 < damping_decrease <= 1 <= damping_increase):
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


# --- What it costs --------------------------------------------------------------------------------


def _flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def compiled_flops(fn: Callable, *args) -> float:
    """XLA's count of floating-point operations for ``jax.jit(fn)(*args)`` (deterministic, no timing).

    Custom calls (LAPACK factorizations on the CPU) are not counted: use it for autodiff passes,
    not for ``jnp.linalg.solve``.
    """
    return _flops(jax.jit(fn).lower(*args).compile())


class Costs(NamedTuple):
    """Per network size: parameter count, XLA FLOPs and median seconds of each operation."""

    num_params: np.ndarray
    grad_flops: np.ndarray
    hvp_flops: np.ndarray
    hessian_flops: np.ndarray
    grad_seconds: np.ndarray
    hvp_seconds: np.ndarray
    hessian_seconds: np.ndarray
    solve_seconds: np.ndarray


def _flops_and_seconds(fn, *args, repeats: int) -> tuple[float, float, jax.Array]:
    """Compile ``fn`` once; return its XLA FLOPs, the median seconds of ``repeats`` calls, and its output."""
    compiled = jax.jit(fn).lower(*args).compile()
    out = jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return _flops(compiled), float(np.median(times)), out


def measure_costs(widths, x, y, *, key, repeats: int = 3) -> Costs:
    """Cost of a gradient, an HVP, the dense Hessian and the dense Newton solve for MLPs of growing width.

    The networks are ``[d_in, w, w, 1]`` tanh MLPs with the logistic loss on ``(x, y)``, one per
    width in ``widths``. FLOPs come from XLA's cost analysis (deterministic); seconds are medians of
    ``repeats`` runs after a warm-up (they depend on the machine: plot them, do not assert on them).
    Theory: gradient and HVP :math:`O(P)`, dense Hessian :math:`O(P^2)` (P HVPs), solve :math:`O(P^3)`.
    """
    from lessons import nets

    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be a non-empty list of positive integers, got {widths}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    loss = nets.classifier_loss(x, y)
    rows = []
    for w in widths:
        flat, unravel = ravel_pytree(nets.init_mlp([x.shape[1], w, w, 1], key=key))
        f = lambda p, unravel=unravel: loss(unravel(p))
        v = jnp.ones_like(flat) / jnp.sqrt(flat.size)
        grad_flops, grad_s, _ = _flops_and_seconds(jax.grad(f), flat, repeats=repeats)
        hvp_flops, hvp_s, _ = _flops_and_seconds(lambda p, v, f=f: jax.jvp(jax.grad(f), (p,), (v,))[1], flat, v, repeats=repeats)
        hess_flops, hess_s, H = _flops_and_seconds(jax.hessian(f), flat, repeats=repeats)
        solve = lambda H, g: jnp.linalg.solve(H + 1e-3 * jnp.eye(H.shape[0], dtype=H.dtype), g)
        _, solve_s, _ = _flops_and_seconds(solve, H, v, repeats=repeats)
        rows.append((flat.size, grad_flops, hvp_flops, hess_flops, grad_s, hvp_s, hess_s, solve_s))
    columns = [np.asarray(c, dtype=float) for c in zip(*rows, strict=True)]
    columns[0] = columns[0].astype(int)
    return Costs(*columns)
