"""Checkers for the exercises of chapter 8 (parallel scans, DEER and generalized teacher forcing).

The framework (:func:`lessons.exercises.compare`, seeded inputs, a :class:`lessons.exercises.CheckResult`
that never raises on a wrong answer) is :mod:`lessons.exercises`'; this module adds the cases and the
references of chapter 8, each written as a plain NumPy loop. Every checker calls your function
**positionally**, in the order its docstring gives.

Example::

    >>> import numpy as np
    >>> from lessons.exercises_scans import check_adaptive_alpha
    >>> check_adaptive_alpha(lambda J: max(0.0, 1 - 1 / max(np.linalg.norm(j, 2) for j in J)))
    ✓ adaptive_alpha: all 4 seeded cases match the reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lessons.exercises import CheckResult, _rng, compare

__all__ = ["check_adaptive_alpha", "check_compose", "check_deer_step"]


def _flat(out) -> np.ndarray | object:
    """A pair of arrays as one flat array (so a tuple answer and a flat one compare alike)."""
    if isinstance(out, tuple) and len(out) == 2:
        return np.concatenate([np.ravel(np.asarray(o, float)) for o in out])
    return out


def check_compose(fn: Callable) -> CheckResult:
    """Exercise 8.1: ``fn(A2, b2, A1, b1)`` -> ``(A, b)``, the affine map "first ``h -> A1 h + b1``, then
    ``h -> A2 h + b2``" as one map ``h -> A h + b``: ``A = A2 A1`` and ``b = A2 b1 + b2`` (``A1``, ``A2``
    of shape ``(d, d)``), as a pair or as one flat array ``[*A.ravel(), *b]``.

    Calls ``fn`` positionally, in that order: ``fn(A2, b2, A1, b1)``.
    """

    def reference(A2, b2, A1, b1):  # apply the two maps to the d unit vectors and to 0: no algebra used
        d = len(b1)
        step = lambda h: A2 @ (A1 @ h + b1) + b2  # noqa: E731
        b = step(np.zeros(d))
        A = np.stack([step(e) - b for e in np.eye(d)], axis=1)
        return np.concatenate([A.ravel(), b])

    rng = _rng(81)
    cases = [
        dict(A2=rng.normal(size=(d, d)), b2=rng.normal(size=d), A1=rng.normal(size=(d, d)), b1=rng.normal(size=d))
        for d in (1, 2, 5)
    ]
    if not callable(fn):
        return compare("compose", fn, reference, cases)
    return compare("compose", lambda *args: _flat(fn(*args)), reference, cases, rtol=1e-6, atol=1e-9)


def check_deer_step(fn: Callable) -> CheckResult:
    """Exercise 8.2: ``fn(hs, h0, W, u)`` -> the next DEER iterate, shape ``(T, d)``, for the recurrence
    ``h_t = tanh(W h_{t-1} + u_t)`` (``h_{-1} = h0``) linearised at the current iterate ``hs`` (``(T, d)``):
    with ``p_t = hs[t-1]`` (``p_0 = h0``), ``J_t = diag(1 - tanh(W p_t + u_t)^2) W`` and
    ``c_t = tanh(W p_t + u_t) - J_t p_t``, return ``g`` with ``g_t = J_t g_{t-1} + c_t``, ``g_{-1} = h0``.

    Calls ``fn`` positionally, in that order: ``fn(hs, h0, W, u)``.
    """

    def reference(hs, h0, W, u):  # the Newton step on the residual r_t = h_t - f(h_{t-1}), written as a loop
        previous = np.vstack([h0, hs[:-1]])
        out, g = np.empty_like(hs), h0
        for t in range(len(hs)):
            value = np.tanh(W @ previous[t] + u[t])
            J = (1 - value**2)[:, None] * W
            g = value + J @ (g - previous[t])
            out[t] = g
        return out

    rng = _rng(82)
    cases = []
    for T, d in ((1, 2), (6, 3), (20, 4)):
        W = rng.normal(size=(d, d)) / np.sqrt(d)
        cases.append(dict(hs=rng.normal(size=(T, d)), h0=rng.normal(size=d), W=W, u=rng.normal(size=(T, d))))
    return compare("deer_step", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_adaptive_alpha(fn: Callable) -> CheckResult:
    """Exercise 8.3: ``fn(J)`` -> the adaptive forcing of generalized teacher forcing,
    ``alpha = max(0, 1 - 1/N)`` with ``N = max_t ||J_t||_2`` (the largest spectral norm of the Jacobians
    ``J`` of shape ``(T, d, d)``).

    Calls ``fn`` positionally: ``fn(J)``.
    """

    def reference(J):  # the spectral norm as the square root of the top eigenvalue of J^T J
        norms = [np.sqrt(np.max(np.linalg.eigvalsh(j.T @ j))) for j in J]
        return max(0.0, 1.0 - 1.0 / max(norms))

    rng = _rng(83)
    cases = [
        dict(J=scale * rng.normal(size=(T, d, d)) / np.sqrt(d))
        for T, d, scale in ((1, 2, 3.0), (5, 3, 0.2), (8, 4, 1.5), (3, 6, 0.9))
    ]
    return compare("adaptive_alpha", fn, reference, cases, rtol=1e-6, atol=1e-9)
