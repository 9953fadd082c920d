r"""Linear-quadratic regulators (LQR) by the Riccati recursion, and a network's (Gauss-)Newton step as one.

A finite-horizon, time-varying LQR with cross terms: states :math:`x_i \in \mathbb R^n`, controls
:math:`u_i \in \mathbb R^m`, :math:`N` stages,

.. math:: \min_{u_0, \dots, u_{N-1}} \; \sum_{i=0}^{N-1} \Big[\tfrac12 x_i^\top Q_i x_i + u_i^\top M_i x_i
   + \tfrac12 u_i^\top R_i u_i\Big] + \tfrac12 x_N^\top Q_N x_N + c^\top x_N
   \quad \text{s.t.} \quad x_{i+1} = A_i x_i + B_i u_i .

Dynamic programming: the cost-to-go from stage :math:`i` is :math:`V_i(x) = \tfrac12 x^\top P_i x + s_i^\top x + v_i`,
with :math:`P_N = Q_N`, :math:`s_N = c`, :math:`v_N = 0` and, backwards for :math:`i = N-1, \dots, 0`,

.. math:: S_i = R_i + B_i^\top P_{i+1} B_i, \qquad F_i = M_i + B_i^\top P_{i+1} A_i, \qquad
   K_i = S_i^{-1} F_i, \qquad k_i = S_i^{-1} B_i^\top s_{i+1},

.. math:: P_i = Q_i + A_i^\top P_{i+1} A_i - F_i^\top K_i, \qquad s_i = A_i^\top s_{i+1} - F_i^\top k_i,
   \qquad v_i = v_{i+1} - \tfrac12 k_i^\top S_i k_i,

and the optimal control is the affine feedback :math:`u_i = -(K_i x_i + k_i)`. Each :math:`S_i` is solved
by Cholesky: the problem has a unique minimiser exactly when every :math:`S_i` is positive definite (they
are the pivots of a block elimination of the cost's Hessian in the controls), so :math:`R_i` itself
need not be. Only the symmetric parts of :math:`Q_i, R_i, Q_N` matter.

**Names.** Here :math:`P` is the cost-to-go and :math:`K` the feedback gain, as in control. The LQR view
of ``ALGORITHMS.md`` (Dufort-Labbe et al.) writes :math:`K_i` for the cost-to-go and :math:`P_i` for our
:math:`F_i`; and :mod:`lessons.natural_gradient` uses :math:`K` for the GGN factor. Three meanings:
in this module :math:`K` is always a gain.

**A network's step.** A steepest-descent step under a quadratic model, :math:`\min_d g^\top d + \tfrac12
d^\top (G + \lambda I) d`, is an LQR whose state is the activation perturbation :math:`\delta x_i` of the
whole batch and whose control is layer :math:`i`'s parameter perturbation :math:`\delta\theta_i`, from
:math:`\delta x_0 = 0`; :func:`network_lqr` builds it and :func:`network_lqr_step` solves it. The sizes
change from layer to layer, so the recursion runs in a Python loop (:func:`lqr_step`) rather than one
``lax.scan`` (:func:`riccati`). Every matrix is dense: small networks only.

Example (the double integrator, steered to rest over 50 steps)::

    >>> import jax.numpy as jnp
    >>> A, B = double_integrator(0.1)
    >>> N = 50
    >>> stack = lambda a: jnp.broadcast_to(a, (N, *a.shape))
    >>> P, K = riccati(stack(A), stack(B), stack(jnp.eye(2)), stack(jnp.eye(1)), 100 * jnp.eye(2))
    >>> xs, us = rollout(stack(A), stack(B), K, jnp.array([1.0, 0.0]))
    >>> P.shape, K.shape, bool(jnp.abs(xs[-1]).max() < 0.05)
    ((51, 2, 2), (50, 1, 2), True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_solve

from lessons.checks import check_callable, check_finite_data, check_positive
from lessons.fisher import log_likelihood
from lessons.natural_gradient import _check_kind, _check_mlp_batch

__all__ = [
    "MODES",
    "AffineLQR",
    "NetworkLQR",
    "cost",
    "double_integrator",
    "lqr_step",
    "network_lqr",
    "network_lqr_step",
    "riccati",
    "riccati_affine",
    "rollout",
]

MODES = ("ggn", "newton")
"""The curvature that :func:`network_lqr` puts into the stage costs: the Gauss-Newton matrix or the Hessian."""


class AffineLQR(NamedTuple):
    r"""The solution of :func:`riccati_affine`: the cost-to-go :math:`V_i(x) = \tfrac12 x^\top P_i x + s_i^\top x + v_i`
    and the optimal control :math:`u_i = -(K_i x_i + k_i)`."""

    P: jax.Array  # (N + 1, n, n) cost-to-go matrices, P[N] = Q_final
    K: jax.Array  # (N, m, n) feedback gains
    s: jax.Array  # (N + 1, n) linear terms of the cost-to-go, s[N] = c_final
    k: jax.Array  # (N, m) feed-forward offsets
    v: jax.Array  # (N + 1,) constants of the cost-to-go, v[N] = 0


def _sym(X):
    return 0.5 * (X + jnp.swapaxes(X, -1, -2))


def _stage(P, s, v, A, B, Q, R, M):
    """One backward step of the recursion (module docstring): stage ``i + 1``'s ``(P, s, v)`` to stage ``i``'s."""
    PB = P @ B
    S = _sym(R + B.T @ PB)
    F = M + PB.T @ A  # B^T P A, P symmetric
    chol = jnp.linalg.cholesky(S)
    gains = cho_solve((chol, True), jnp.concatenate([F, (B.T @ s)[:, None]], axis=1))
    K, k = gains[:, :-1], gains[:, -1]
    P = _sym(Q + A.T @ P @ A - F.T @ K)
    return P, A.T @ s - F.T @ k, v - 0.5 * k @ (S @ k), K, k, jnp.all(jnp.isfinite(chol))


def _raise_unless_definite(ok, message: str) -> None:
    """Raise ``message`` (formatted with the last stage whose Cholesky factorisation failed) if one did: its NaN
    runs backwards into every earlier stage. Traced flags pass (the result is NaN then)."""
    if isinstance(ok, jax.core.Tracer):
        return
    failed = [i for i, flag in enumerate(jnp.asarray(ok).tolist()) if not flag]
    if failed:
        raise ValueError(message.format(max(failed)))


_NOT_DEFINITE = (
    "R must make every S_i = R_i + B_i^T P_(i+1) B_i positive definite: S_{0} is not (its Cholesky factorisation failed)"
)


# --- the time-varying LQR of fixed sizes: one reverse scan -----------------------------------------


def _check_stacked(A, B, Q, R, Q_final, M, c_final):
    A, B = jnp.asarray(A), jnp.asarray(B)
    if A.ndim != 3 or A.shape[1] != A.shape[2] or A.shape[0] < 1:
        raise ValueError(f"A must have shape (N, n, n) with N >= 1 stages, got {A.shape}")
    N, n = A.shape[:2]
    if B.ndim != 3 or B.shape[:2] != (N, n):
        raise ValueError(f"B must have shape (N, n, m) = ({N}, {n}, m) to match A, got {B.shape}")
    m = B.shape[2]
    arrays = {"A": A, "B": B, "Q": Q, "R": R, "Q_final": Q_final, "M": M, "c_final": c_final}
    shapes = {"Q": (N, n, n), "R": (N, m, m), "Q_final": (n, n), "M": (N, m, n), "c_final": (n,)}
    for name, shape in shapes.items():
        if arrays[name] is not None:
            arrays[name] = jnp.asarray(arrays[name])
            if arrays[name].shape != shape:
                raise ValueError(f"{name} must have shape {shape} to match A {A.shape} and B {B.shape}, got {arrays[name].shape}")
    given = {name: array for name, array in arrays.items() if array is not None}
    for name, array in given.items():
        check_finite_data(array, name)
    dtype = jnp.result_type(*(array.dtype for array in given.values()), float)
    arrays["M"] = jnp.zeros(shapes["M"], dtype) if M is None else arrays["M"]
    arrays["c_final"] = jnp.zeros(n, dtype) if c_final is None else arrays["c_final"]
    return tuple(arrays[name].astype(dtype) for name in ("A", "B", "Q", "R", "Q_final", "M", "c_final"))


@jax.jit
def _riccati_scan(A, B, Q, R, Q_final, M, c_final):
    def step(carry, stage):
        P, s, v, K, k, ok = _stage(*carry, *stage)
        return (P, s, v), (P, s, v, K, k, ok)

    final = (_sym(Q_final), c_final, jnp.zeros((), c_final.dtype))
    _, (P, s, v, K, k, ok) = lax.scan(step, final, (A, B, Q, R, M), reverse=True)
    P, s, v = (jnp.concatenate([a, b[None]]) for a, b in zip((P, s, v), final, strict=True))
    return AffineLQR(P, K, s, k, v), ok


def riccati_affine(A, B, Q, R, Q_final, c_final, M=None) -> AffineLQR:
    r"""The LQR with a linear terminal term :math:`c^\top x_N` (module docstring): ``(P, K, s, k, v)``, an :class:`AffineLQR`.

    Shapes: ``A`` ``(N, n, n)``, ``B`` ``(N, n, m)``, ``Q`` ``(N, n, n)``, ``R`` ``(N, m, m)``, ``Q_final``
    ``(n, n)``, ``c_final`` ``(n,)``, ``M`` ``(N, m, n)`` (``None``: no cross terms). The optimal control is
    :math:`u_i = -(K_i x_i + k_i)` (:func:`rollout` with ``k``) and the optimal cost from :math:`x_0` is
    :math:`\tfrac12 x_0^\top P_0 x_0 + s_0^\top x_0 + v_0`: :math:`v_0` alone from :math:`x_0 = 0`.

    One ``lax.scan`` backwards over the stages, a Cholesky of :math:`S_i` (``m x m``) per stage:
    :math:`O(N (n^3 + m^3 + n^2 m))`. A ``ValueError`` naming ``R`` when some :math:`S_i` is not positive
    definite, checked when the inputs are concrete (under ``jax.jit`` the result is NaN instead).
    """
    arrays = _check_stacked(A, B, Q, R, Q_final, M, c_final)
    solution, ok = _riccati_scan(*arrays)
    _raise_unless_definite(ok, _NOT_DEFINITE)
    return solution


def riccati(A, B, Q, R, Q_final, M=None) -> tuple[jax.Array, jax.Array]:
    r"""The LQR without a linear term (module docstring): ``(P, K)``, the cost-to-go matrices ``(N + 1, n, n)``
    and the gains ``(N, m, n)``, by the backward recursion from :math:`P_N` = ``Q_final``,

    .. math:: S_i = R_i + B_i^\top P_{i+1} B_i, \quad K_i = S_i^{-1} (M_i + B_i^\top P_{i+1} A_i), \quad
       P_i = Q_i + A_i^\top P_{i+1} A_i - K_i^\top S_i K_i .

    The optimal control is :math:`u_i = -K_i x_i` (:func:`rollout`) and the optimal cost
    :math:`\tfrac12 x_0^\top P_0 x_0`. Shapes, cost and checks as :func:`riccati_affine`."""
    arrays = _check_stacked(A, B, Q, R, Q_final, M, None)
    solution, ok = _riccati_scan(*arrays)
    _raise_unless_definite(ok, _NOT_DEFINITE)
    return solution.P, solution.K


def rollout(A, B, K, x0, k=None) -> tuple[jax.Array, jax.Array]:
    r"""The closed loop :math:`u_i = -(K_i x_i + k_i)`, :math:`x_{i+1} = A_i x_i + B_i u_i` from ``x0``:
    states ``(N + 1, n)`` and controls ``(N, m)``. ``k`` ``(N, m)`` defaults to zero (:func:`riccati`)."""
    A, B, K, x0 = (jnp.asarray(a) for a in (A, B, K, x0))
    if A.ndim != 3 or A.shape[1] != A.shape[2]:
        raise ValueError(f"A must have shape (N, n, n), got {A.shape}")
    N, n = A.shape[:2]
    if B.ndim != 3 or B.shape[:2] != (N, n):
        raise ValueError(f"B must have shape ({N}, {n}, m) to match A, got {B.shape}")
    m = B.shape[2]
    k = jnp.zeros((N, m), K.dtype) if k is None else jnp.asarray(k)
    for name, array, shape in (("K", K, (N, m, n)), ("x0", x0, (n,)), ("k", k, (N, m))):
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match A and B, got {array.shape}")

    def step(x, stage):
        A_i, B_i, K_i, k_i = stage
        u = -(K_i @ x + k_i)
        return A_i @ x + B_i @ u, (x, u)

    x_final, (xs, us) = lax.scan(step, x0.astype(jnp.result_type(x0.dtype, A.dtype, K.dtype, float)), (A, B, K, k))
    return jnp.concatenate([xs, x_final[None]]), us


def cost(Q, R, Q_final, xs, us, M=None, c_final=None) -> jax.Array:
    r"""The LQR cost of a trajectory (module docstring): states ``xs`` ``(N + 1, n)``, controls ``us`` ``(N, m)``;
    ``M`` ``(N, m, n)`` and ``c_final`` ``(n,)`` default to zero."""
    Q, R, Q_final, xs, us = (jnp.asarray(a) for a in (Q, R, Q_final, xs, us))
    if xs.ndim != 2 or us.ndim != 2 or xs.shape[0] != us.shape[0] + 1:
        raise ValueError(f"xs and us must have shapes (N + 1, n) and (N, m), got {xs.shape} and {us.shape}")
    (N, m), n = us.shape, xs.shape[1]
    M = jnp.zeros((N, m, n), xs.dtype) if M is None else jnp.asarray(M)
    c_final = jnp.zeros(n, xs.dtype) if c_final is None else jnp.asarray(c_final)
    arrays = (
        ("Q", Q, (N, n, n)),
        ("R", R, (N, m, m)),
        ("Q_final", Q_final, (n, n)),
        ("M", M, (N, m, n)),
        ("c_final", c_final, (n,)),
    )
    for name, array, shape in arrays:
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match xs and us, got {array.shape}")
    x, x_N = xs[:-1], xs[-1]
    stages = 0.5 * jnp.einsum("ia,iab,ib->", x, Q, x) + jnp.einsum("ia,iab,ib->", us, M, x)
    stages = stages + 0.5 * jnp.einsum("ia,iab,ib->", us, R, us)
    return stages + 0.5 * x_N @ Q_final @ x_N + c_final @ x_N


def double_integrator(dt: float) -> tuple[jax.Array, jax.Array]:
    r"""``(A, B)`` of a unit mass on a line, state (position, velocity), a constant force over each step ``dt``:

    .. math:: A = \begin{pmatrix} 1 & \Delta t \\ 0 & 1 \end{pmatrix}, \qquad
       B = \begin{pmatrix} \Delta t^2 / 2 \\ \Delta t \end{pmatrix},

    the exact discretisation of :math:`\ddot p = u` (zero-order hold). Stack them for :func:`riccati`
    (module docstring)."""
    check_positive(dt, "dt")
    dt = jnp.asarray(dt, jnp.result_type(float))
    return jnp.array([[1.0, dt], [0.0, 1.0]]), jnp.array([[0.5 * dt**2], [dt]])


# --- stages of different sizes: a Python loop ------------------------------------------------------


def _check_stages(A, B, Q, R, Q_final, c_final, M):
    N = len(A) if isinstance(A, Sequence) and len(A) else 0
    for name, value in {"A": A, "B": B, "Q": Q, "R": R, "M": M}.items():
        if not (value is None and name == "M") and (not isinstance(value, Sequence) or len(value) != N or N == 0):
            raise ValueError(f"{name} must be a non-empty list of per-stage matrices as long as A, got {type(value).__name__}")
    lists = {name: [jnp.asarray(a) for a in value] for name, value in {"A": A, "B": B, "Q": Q, "R": R}.items()}
    Q_final, c_final = jnp.asarray(Q_final), jnp.asarray(c_final)
    sizes = [a.shape[1] if a.ndim == 2 else -1 for a in lists["A"]] + [Q_final.shape[0] if Q_final.ndim else -1]
    controls = [b.shape[-1] if b.ndim else -1 for b in lists["B"]]
    lists["M"] = [jnp.zeros((m, n)) for m, n in zip(controls, sizes, strict=False)] if M is None else [jnp.asarray(a) for a in M]
    for i, (n, n_next, m) in enumerate(zip(sizes[:-1], sizes[1:], controls, strict=True)):
        for name, shape in (("A", (n_next, n)), ("B", (n_next, m)), ("Q", (n, n)), ("R", (m, m)), ("M", (m, n))):
            if lists[name][i].shape != shape:
                raise ValueError(
                    f"{name}[{i}] must have shape {shape} to match A[{i}], B[{i}], Q_final: got {lists[name][i].shape}"
                )
    if Q_final.shape != (sizes[-1],) * 2 or c_final.shape != (sizes[-1],):
        raise ValueError(f"Q_final and c_final must have shapes (n_N, n_N) and (n_N,), got {Q_final.shape} and {c_final.shape}")
    dtype = jnp.result_type(*(a.dtype for value in lists.values() for a in value), Q_final.dtype, c_final.dtype, float)
    lists = {name: [a.astype(dtype) for a in value] for name, value in lists.items()}
    return lists, Q_final.astype(dtype), c_final.astype(dtype)


def _solve_stages(A, B, Q, R, M, Q_final, c_final, x0):
    P, s, v = _sym(Q_final), c_final, jnp.zeros((), c_final.dtype)
    gains, ok = [], []
    for i in reversed(range(len(A))):
        P, s, v, K, k, fine = _stage(P, s, v, A[i], B[i], Q[i], R[i], M[i])
        gains.append((K, k))
        ok.append(fine)
    xs, us = [x0], []
    for A_i, B_i, (K, k) in zip(A, B, reversed(gains), strict=True):
        us.append(-(K @ xs[-1] + k))
        xs.append(A_i @ xs[-1] + B_i @ us[-1])
    return xs, us, jnp.stack(ok[::-1])


def lqr_step(A, B, Q, R, Q_final, c_final, M=None, x0=None) -> tuple[list, list]:
    r"""The optimal trajectory of an LQR whose sizes change from stage to stage: lists ``(xs, us)``.

    Lists of length :math:`N` of per-stage matrices: ``A[i]`` ``(n_{i+1}, n_i)``, ``B[i]`` ``(n_{i+1}, m_i)``,
    ``Q[i]`` ``(n_i, n_i)``, ``R[i]`` ``(m_i, m_i)``, ``M[i]`` ``(m_i, n_i)`` (``None``: zeros); ``Q_final``
    ``(n_N, n_N)``, ``c_final`` ``(n_N,)``; ``x0`` defaults to zero, and then the controls are the minimiser of the
    quadratic model: a step. The recursion of the module docstring in a Python loop (stacked arrays
    cannot hold stages of different sizes), then the forward pass :math:`u_i = -(K_i x_i + k_i)`.
    ``ValueError`` naming ``R`` when some :math:`S_i` is not positive definite (concrete inputs).
    """
    lists, Q_final, c_final = _check_stages(A, B, Q, R, Q_final, c_final, M)
    x0 = jnp.zeros(lists["A"][0].shape[1], c_final.dtype) if x0 is None else jnp.asarray(x0)
    if x0.shape != (lists["A"][0].shape[1],):
        raise ValueError(f"x0 must have shape ({lists['A'][0].shape[1]},) to match A[0], got {x0.shape}")
    xs, us, ok = _solve_stages(*(lists[name] for name in "ABQRM"), Q_final, c_final, x0)
    _raise_unless_definite(ok, _NOT_DEFINITE)
    return xs, us


# --- a network's (Gauss-)Newton step as an LQR over its layers --------------------------------------


class NetworkLQR(NamedTuple):
    """The LQR of a network's step (:func:`network_lqr`): per layer ``i`` (lists), and the terminal terms."""

    A: list  # d x_{i+1} / d x_i, (n d_{i+1}, n d_i): block-diagonal over the examples
    B: list  # d x_{i+1} / d theta_i, (n d_{i+1}, p_i)
    Q: list  # (n d_i, n d_i): the xx block of the stage Hamiltonian's Hessian (0 for "ggn")
    R: list  # (p_i, p_i): its theta-theta block (0 for "ggn"), plus damping * I
    M: list  # (p_i, n d_i): its theta-x block (0 for "ggn")
    Q_final: jax.Array  # (n c, n c): the Hessian of the mean loss in the outputs
    c_final: jax.Array  # (n c,): the gradient of the mean loss in the outputs


def _check_labels(y, n: int, c: int, loss_kind: str):
    y = jnp.asarray(y)
    allowed = [(n, c)] + ([(n,)] if c == 1 or loss_kind == "softmax" else [])
    if y.shape not in allowed:
        raise ValueError(f"y must have shape {' or '.join(map(str, allowed))} to match x and the outputs, got {y.shape}")
    if loss_kind == "softmax" and y.shape == (n,) and not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"y must hold integer classes (shape ({n},)) or one-hot rows ({n}, {c}), got dtype {y.dtype}")
    check_finite_data(y, "y")
    return y


def _check_network(params, x, y, loss_kind, damping, mode, activation):
    _check_kind(loss_kind, "loss_kind")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_positive(damping, "damping")
    check_callable(activation, "activation")
    x = _check_mlp_batch(params, x)
    check_finite_data(x, "x")
    return x, _check_labels(y, x.shape[0], params[-1][0].shape[-1], loss_kind)


@functools.partial(jax.jit, static_argnames=("loss_kind", "mode", "activation"))
def _build(params, x, y, damping, loss_kind, mode, activation):
    n = x.shape[0]
    layers, states, a = [], [], x
    for index, layer in enumerate(params):
        theta, unravel = ravel_pytree(layer)

        def f(state, control, unravel=unravel, shape=a.shape, last=index == len(params) - 1):
            W, b = unravel(control)
            z = state.reshape(shape) @ W + b
            return (z if last else activation(z)).reshape(-1)

        layers.append((f, theta))
        states.append(a.reshape(-1))
        a = f(states[-1], theta).reshape(n, -1)
    dtype = a.dtype
    loss = lambda z: -jnp.mean(log_likelihood(z.reshape(n, -1), y, loss_kind))
    c_final, Q_final = jax.grad(loss)(a.reshape(-1)), jax.hessian(loss)(a.reshape(-1))
    lam = jnp.asarray(damping, dtype)
    A, B, Q, R, M, costate = [], [], [], [], [], c_final
    for (f, theta), state in zip(reversed(layers), reversed(states), strict=True):
        A.append(jax.jacfwd(f, 0)(state, theta))
        B.append(jax.jacfwd(f, 1)(state, theta))
        if mode == "newton":  # the Hessian of H_i = lambda_{i+1}^T f_i(x_i, theta_i)
            hamiltonian = lambda s, t, costate=costate, f=f: costate @ f(s, t)
            (Hxx, _), (Htx, Htt) = jax.hessian(hamiltonian, argnums=(0, 1))(state, theta)
        else:
            d, p = state.size, theta.size
            Hxx, Htx, Htt = jnp.zeros((d, d), dtype), jnp.zeros((p, d), dtype), jnp.zeros((p, p), dtype)
        Q.append(Hxx)
        M.append(Htx)
        R.append(Htt + lam * jnp.eye(theta.size, dtype=dtype))
        costate = A[-1].T @ costate  # lambda_i = A_i^T lambda_{i+1}
    return NetworkLQR(A[::-1], B[::-1], Q[::-1], R[::-1], M[::-1], Q_final, c_final)


def network_lqr(params, x, y, loss_kind: str = "logistic", damping=1e-2, mode: str = "ggn", activation: Callable = jnp.tanh):
    r"""The LQR whose solution from :math:`\delta x_0 = 0` is the damped (Gauss-)Newton step of :func:`lessons.nets.mlp`.

    The mean loss :math:`L = \frac1n \sum_j \ell(x_{N,j}, y_j)` of :data:`lessons.natural_gradient.LOSS_KINDS`
    (labels as :func:`lessons.fisher.log_likelihood` takes them). State :math:`x_i`: the input of layer ``i``
    for the whole batch, flattened example-major (``n d_i``; :math:`x_N` the outputs). Control
    :math:`\theta_i`: layer ``i``'s parameters in ``ravel_pytree((W_i, b_i))`` order (``p_i``). Dynamics
    :math:`x_{i+1} = f_i(x_i, \theta_i)` linearised: :math:`A_i = \partial f_i / \partial x_i`,
    :math:`B_i = \partial f_i / \partial \theta_i` (``jax.jacfwd``). Terminal: :math:`c = \nabla_{x_N} L`,
    :math:`Q_N = \nabla^2_{x_N} L` (block-diagonal over examples; for these losses it is
    :math:`S^\top S / n` of :func:`lessons.natural_gradient.output_hessian_factor`).

    * ``mode="newton"``: with the costates :math:`\lambda_N = c`, :math:`\lambda_i = A_i^\top \lambda_{i+1}`
      (back-propagation), :math:`(Q_i, M_i, R_i)` are the ``xx``, ``theta-x`` and ``theta-theta`` blocks of the
      Hessian of :math:`H_i = \lambda_{i+1}^\top f_i(x_i, \theta_i)`, plus :math:`\lambda I` in :math:`R_i`:
      the solution is :math:`-(\nabla^2 L + \lambda I)^{-1} g`.
    * ``mode="ggn"``: the stage second-order terms vanish (:math:`Q_i = 0`, :math:`M_i = 0`,
      :math:`R_i = \lambda I`): the solution is :math:`-(\lambda I + J^\top Q_N J)^{-1} g`, the damped GGN step.

    Dense: :math:`A_i` is ``(n d_{i+1}, n d_i)`` and the Hessians are formed, small problems only.
    """
    x, y = _check_network(params, x, y, loss_kind, damping, mode, activation)
    return _build(params, x, y, damping, loss_kind, mode, activation)


@functools.partial(jax.jit, static_argnames=("loss_kind", "mode", "activation"))
def _network_step(params, x, y, damping, loss_kind, mode, activation):
    problem = _build(params, x, y, damping, loss_kind, mode, activation)
    x0 = jnp.zeros(problem.A[0].shape[1], problem.c_final.dtype)
    _, us, ok = _solve_stages(problem.A, problem.B, problem.Q, problem.R, problem.M, problem.Q_final, problem.c_final, x0)
    step = []
    for layer, u in zip(params, us, strict=True):
        theta, unravel = ravel_pytree(layer)
        step.append(unravel(u.astype(theta.dtype)))
    return type(params)(step), ok


def network_lqr_step(params, x, y, loss_kind: str = "logistic", damping=1e-2, mode: str = "ggn", activation: Callable = jnp.tanh):
    r"""The damped (Gauss-)Newton step of :func:`lessons.nets.mlp` by the Riccati recursion over its layers.

    Shaped like ``params``, the direction to *add* to them:

    .. math:: \Delta\theta = -(G + \lambda I)^{-1} g, \qquad G = J^\top Q_N J \ (\texttt{"ggn"}) \ \text{or}\
       \nabla^2 L \ (\texttt{"newton"}),

    :math:`g` the gradient of the mean loss (:func:`network_lqr` for the problem, :func:`lqr_step` for the
    recursion, all layers coupled: the exact step, not a block-diagonal one). Per layer a Cholesky of
    :math:`S_i` (``p_i x p_i``) and dense products with :math:`A_i`: :math:`O(\sum_i p_i^3 + (n d_i)^2 (n d_{i+1} + p_i))`
    instead of :math:`O(P^3)` for the dense solve: small problems only. ``damping`` may be traced. With
    ``mode="newton"`` a ``ValueError`` naming ``damping`` when :math:`\nabla^2 L + \lambda I` is not positive
    definite (checked when concrete).
    """
    x, y = _check_network(params, x, y, loss_kind, damping, mode, activation)
    step, ok = _network_step(params, x, y, damping, loss_kind, mode, activation)
    _raise_unless_definite(ok, "damping is too small: the damped Hessian is not positive definite (S_i fails at layer {})")
    return step
