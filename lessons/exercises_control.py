"""Checkers for the exercises of chapters 6 and 7 (training as optimal control; LQR and Layerwise LQR).

The framework (:func:`lessons.exercises.compare`, seeded inputs, a :class:`lessons.exercises.CheckResult`
that never raises on a wrong answer) is :mod:`lessons.exercises`'; this module only adds the cases and
references of the control chapters. Every checker calls your function **positionally**, in the order
its docstring gives.

Example::

    >>> import numpy as np
    >>> from lessons.exercises_control import check_kronecker_precondition
    >>> check_kronecker_precondition(lambda B, A, V: B @ V @ A.T)
    ✓ kronecker_precondition: all 3 seeded cases match the reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lessons.exercises import CheckResult, _rng, _spd, compare

__all__ = [
    "check_costate_step",
    "check_emsa_objective",
    "check_hamiltonian_gradient",
    "check_kronecker_precondition",
    "check_llqr_cost",
    "check_riccati_step",
]


def _layer(x, W, b, h):
    import jax.numpy as jnp

    return x + h * jnp.tanh(x @ W + b)


# --- Chapter 6: training as optimal control --------------------------------------------------------


def check_costate_step(fn: Callable) -> CheckResult:
    """Exercise 6.1: ``fn(p_next, W, z, h)`` -> the costate ``p = (df/dx)^T p_next`` of one example through the
    residual layer ``f(x) = x + h tanh(x W + b)``, with ``z = x W + b`` its pre-activation (all NumPy, ``W`` (d, d)).

    Calls ``fn`` positionally, in that order: ``fn(p_next, W, z, h)``.
    """
    import jax
    import jax.numpy as jnp

    def reference(p_next, W, z, h):  # a vector-Jacobian product by autodiff, at the x with x W + b = z
        W64, z64 = jnp.asarray(W, jnp.float64), jnp.asarray(z, jnp.float64)
        _, pullback = jax.vjp(lambda x: x + h * jnp.tanh(x @ W64 + z64), jnp.zeros(W64.shape[0], jnp.float64))
        return np.asarray(pullback(jnp.asarray(p_next, jnp.float64))[0])

    rng = _rng(61)
    cases = [
        dict(p_next=rng.normal(size=d), W=rng.normal(size=(d, d)), z=rng.normal(size=d), h=h)
        for d, h in ((1, 0.25), (3, 0.5), (5, 0.25))
    ]
    return compare("costate_step", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_hamiltonian_gradient(fn: Callable) -> CheckResult:
    """Exercise 6.2: ``fn(x, p_next, W, b, h)`` -> the gradient with respect to ``W`` of the layer's Hamiltonian
    ``sum_s p_next[s] . f(x[s])`` for ``f(x) = x + h tanh(x W + b)``; ``x`` and ``p_next`` are ``(S, d)``.

    Calls ``fn`` positionally, in that order: ``fn(x, p_next, W, b, h)``.
    """
    import jax
    import jax.numpy as jnp

    def reference(x, p_next, W, b, h):
        x, p_next, b = (jnp.asarray(a, jnp.float64) for a in (x, p_next, b))
        return np.asarray(jax.grad(lambda W: jnp.sum(p_next * _layer(x, W, b, h)))(jnp.asarray(W, jnp.float64)))

    rng = _rng(62)
    cases = [
        dict(x=rng.normal(size=(s, d)), p_next=rng.normal(size=(s, d)), W=rng.normal(size=(d, d)), b=rng.normal(size=d), h=0.25)
        for s, d in ((1, 2), (4, 3), (10, 5))
    ]
    return compare("hamiltonian_gradient", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_emsa_objective(fn: Callable) -> CheckResult:
    """Exercise 6.3: ``fn(x, x_next, P, P_next, W, b, h, rho)`` -> one layer's E-MSA objective at ``(W, b)``:
    the mean over the ``S`` examples of ``-P_next . f(x) + rho/2 |x_next - f(x)|^2 + rho/2 |P - (df/dx)^T P_next|^2``
    for ``f(x) = x + h tanh(x W + b)`` (no regulariser); the arrays other than ``W``, ``b`` are ``(S, d)``.

    Calls ``fn`` positionally, in that order: ``fn(x, x_next, P, P_next, W, b, h, rho)``.
    """
    import jax
    import jax.numpy as jnp

    def reference(x, x_next, P, P_next, W, b, h, rho):
        x, x_next, P, P_next, W, b = (jnp.asarray(a, jnp.float64) for a in (x, x_next, P, P_next, W, b))
        out, pullback = jax.vjp(lambda x: _layer(x, W, b, h), x)
        terms = -jnp.sum(P_next * out) + 0.5 * rho * (jnp.sum((x_next - out) ** 2) + jnp.sum((P - pullback(P_next)[0]) ** 2))
        return float(terms / x.shape[0])

    rng = _rng(63)
    cases = []
    for s, d, rho in ((1, 2, 1.0), (5, 3, 6.0), (8, 5, 0.5)):
        arrays = {name: rng.normal(size=(s, d)) for name in ("x", "x_next", "P", "P_next")}
        cases.append(dict(**arrays, W=rng.normal(size=(d, d)), b=rng.normal(size=d), h=0.25, rho=rho))
    return compare("emsa_objective", fn, reference, cases, rtol=1e-6, atol=1e-9)


# --- Chapter 7: LQR and Layerwise LQR ------------------------------------------------------------------


def check_riccati_step(fn: Callable) -> CheckResult:
    """Exercise 7.1: ``fn(P_next, A, B, Q, R)`` -> ``(P, K)``, one backward step of the Riccati recursion without
    cross terms: ``K = (R + B^T P_next B)^{-1} B^T P_next A`` and ``P = Q + A^T P_next A - A^T P_next B K``,
    as a pair or as one flat array ``[*P.ravel(), *K.ravel()]``.

    Calls ``fn`` positionally, in that order: ``fn(P_next, A, B, Q, R)``.
    """

    def reference(P_next, A, B, Q, R):
        K = np.linalg.solve(R + B.T @ P_next @ B, B.T @ P_next @ A)
        return np.concatenate([(Q + A.T @ P_next @ A - A.T @ P_next @ B @ K).ravel(), K.ravel()])

    def flattened(P_next, A, B, Q, R):
        out = fn(P_next, A, B, Q, R)
        if isinstance(out, tuple) and len(out) == 2:
            return np.concatenate([np.ravel(np.asarray(o, float)) for o in out])
        return out

    rng = _rng(71)
    cases = [
        dict(P_next=_spd(rng, n), A=rng.normal(size=(n, n)), B=rng.normal(size=(n, m)), Q=_spd(rng, n), R=_spd(rng, m))
        for n, m in ((1, 1), (2, 1), (4, 2))
    ]
    if not callable(fn):
        return compare("riccati_step", fn, reference, cases)
    return compare("riccati_step", flattened, reference, cases, rtol=1e-6, atol=1e-9)


def check_llqr_cost(fn: Callable) -> CheckResult:
    """Exercise 7.2: ``fn(u, g, G, damping)`` -> the LQR cost of the preconditioned step ``d = -(u * g)``
    (a diagonal preconditioner ``u``): ``g^T d + 1/2 d^T (G + damping I) d``.

    Calls ``fn`` positionally, in that order: ``fn(u, g, G, damping)``.
    """

    def reference(u, g, G, damping):
        d = -(u * g)
        return float(g @ d + 0.5 * d @ (G + damping * np.eye(len(g))) @ d)

    rng = _rng(72)
    cases = [
        dict(u=rng.uniform(0, 2, size=n), g=rng.normal(size=n), G=_spd(rng, n), damping=lam)
        for n, lam in ((2, 0.1), (5, 1e-3), (9, 1.0))
    ]
    return compare("llqr_cost", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_kronecker_precondition(fn: Callable) -> CheckResult:
    """Exercise 7.3: ``fn(B, A, V)`` -> the Kronecker-structured preconditioner ``(B kron A)`` applied to a weight
    matrix's gradient ``V`` (``(m, k)``, flattened row-major), returned as an ``(m, k)`` matrix, without forming
    the Kronecker product: ``B`` is ``(m, m)``, ``A`` is ``(k, k)``.

    Calls ``fn`` positionally, in that order: ``fn(B, A, V)``.
    """

    def reference(B, A, V):
        return (np.kron(B, A) @ V.ravel()).reshape(V.shape)

    rng = _rng(73)
    cases = [
        dict(B=rng.normal(size=(m, m)), A=rng.normal(size=(k, k)), V=rng.normal(size=(m, k))) for m, k in ((1, 2), (3, 3), (4, 2))
    ]
    return compare("kronecker_precondition", fn, reference, cases, rtol=1e-6, atol=1e-9)
