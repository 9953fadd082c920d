"""Checkers for the book's exercises: your function against the reference, on seeded inputs.

Each ``check_*`` function calls the reader's function on a handful of inputs drawn from a fixed
seed, compares with the library's reference implementation, and returns a :class:`CheckResult`
that says what matched or, at the first mismatch, what went in and what came out. A checker never
raises on a wrong answer (a notebook keeps running); it raises ``TypeError`` only when it is given
something that is not callable.

Every checker calls your function **positionally**, in the order its docstring gives: name your
parameters as you like (``def my_gd_rate(eta, m, big_l)`` passes ``check_gd_rate``); only their
order matters.

Example::

    >>> from lessons.exercises import check_gd_rate
    >>> check_gd_rate(lambda learning_rate, mu, L: max(abs(1 - learning_rate * mu), abs(1 - learning_rate * L)))
    ✓ gd_rate: all 20 seeded cases match the reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lessons import checks


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The verdict of a checker: truthy when every case matched; its repr is the message."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message


def _describe(value) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return f"{float(arr):.6g}" if np.issubdtype(arr.dtype, np.number) else repr(value)
    return np.array2string(arr, precision=4, suppress_small=True, threshold=12)


def compare(
    name: str,
    user_fn: Callable,
    reference_fn: Callable,
    cases: Sequence[dict[str, Any]],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> CheckResult:
    """Call ``user_fn(*case.values())`` and ``reference_fn(**case)`` for every case and compare the results.

    The reader's function is called positionally, in the order of each case's keys (the order the
    checker's docstring gives), so the names of its parameters do not matter. ``rtol`` and ``atol``
    are the tolerances of ``np.allclose``.
    """
    if not callable(user_fn):
        raise TypeError(f"{name}: expected a function as fn, got {type(user_fn).__name__}")
    checks.check_nonnegative(rtol, "rtol")
    checks.check_nonnegative(atol, "atol")
    if len(cases) == 0:
        raise ValueError(f"{name}: cases must be a non-empty list of inputs")
    for i, case in enumerate(cases):
        shown = ", ".join(f"{k}={_describe(v)}" for k, v in case.items())
        try:
            got = user_fn(*case.values())
        except NotImplementedError:
            return CheckResult(False, f"✗ {name}: not implemented yet.")
        except Exception as err:  # the reader's code can fail in any way; report it, do not crash
            return CheckResult(False, f"✗ {name}: raised {type(err).__name__}: {err}\n  on input {shown}")
        if got is None or got is Ellipsis:
            return CheckResult(False, f"✗ {name}: returned {got!r}; fill in the body and return the result.")
        expected = np.asarray(reference_fn(**case))
        try:
            got_arr = np.asarray(got, dtype=expected.dtype)
        except (TypeError, ValueError):
            return CheckResult(False, f"✗ {name}: returned {type(got).__name__}, expected an array like {_describe(expected)}")
        if got_arr.shape != expected.shape:
            return CheckResult(False, f"✗ {name}: returned shape {got_arr.shape}, expected {expected.shape}\n  on input {shown}")
        if not np.allclose(got_arr, expected, rtol=rtol, atol=atol, equal_nan=True):
            err = float(np.max(np.abs(got_arr - expected)))
            return CheckResult(
                False,
                f"✗ {name}: case {i + 1} of {len(cases)} differs (max abs error {err:.3g})\n"
                f"  input:    {shown}\n  yours:    {_describe(got_arr)}\n  expected: {_describe(expected)}",
            )
    return CheckResult(True, f"✓ {name}: all {len(cases)} seeded cases match the reference.")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- Chapter 1: gradient descent ------------------------------------------------------------------


def check_gd_rate(fn: Callable[[float, float, float], float]) -> CheckResult:
    """Exercise 1.1: ``fn(learning_rate, mu, L)`` -> GD's worst-case contraction per step.

    Calls ``fn`` positionally, in that order: ``fn(learning_rate, mu, L)``.
    """
    from lessons.first_order import gd_rate

    rng = _rng(11)
    cases = []
    for _ in range(20):
        mu = float(rng.uniform(0.01, 1.0))
        L = float(mu * rng.uniform(1.0, 100.0))
        cases.append(dict(learning_rate=float(rng.uniform(0.01, 2.5) / L), mu=mu, L=L))
    return compare("gd_rate", fn, gd_rate, cases)


def check_heavy_ball_step(fn: Callable) -> CheckResult:
    """Exercise 1.2: ``fn(x, x_prev, grad, learning_rate, momentum)`` -> the next heavy-ball iterate.

    Calls ``fn`` positionally, in that order: ``fn(x, x_prev, grad, learning_rate, momentum)``.
    """
    import jax.numpy as jnp

    from lessons.first_order import MomentumState, heavy_ball

    def reference(x, x_prev, grad, learning_rate, momentum):
        opt = heavy_ball(learning_rate, momentum)
        # The velocity of the previous step is the last displacement, v_{t-1} = x_t - x_{t-1}.
        updates, _ = opt.update(jnp.asarray(grad), MomentumState(jnp.asarray(x - x_prev)))
        return np.asarray(x + np.asarray(updates))

    rng = _rng(12)
    cases = [
        dict(
            x=rng.normal(size=3),
            x_prev=rng.normal(size=3),
            grad=rng.normal(size=3),
            learning_rate=float(rng.uniform(0.01, 0.5)),
            momentum=float(rng.uniform(0.0, 0.95)),
        )
        for _ in range(10)
    ]
    return compare("heavy_ball_step", fn, reference, cases)


def check_max_stable_learning_rate(fn: Callable[[np.ndarray], float]) -> CheckResult:
    """Exercise 1.3: ``fn(H)`` -> the supremum of stable GD steps on ``f(x) = x^T H x / 2``, ``H`` SPD.

    Calls ``fn`` positionally with the one argument: ``fn(H)``.
    """
    from lessons.first_order import stability_limit

    def reference(H):
        return stability_limit(float(np.linalg.eigvalsh(H)[-1]))

    rng = _rng(13)
    cases = []
    for n in (2, 3, 5, 8, 8):
        Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        H = Q @ np.diag(rng.uniform(0.1, 10.0, size=n)) @ Q.T
        cases.append(dict(H=(H + H.T) / 2))
    return compare("max_stable_learning_rate", fn, reference, cases, rtol=1e-6)


# --- Chapter 2: Newton's method -------------------------------------------------------------------


def _spd(rng: np.random.Generator, n: int, low: float = 0.1, high: float = 10.0) -> np.ndarray:
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    H = Q @ np.diag(rng.uniform(low, high, size=n)) @ Q.T
    return (H + H.T) / 2


def check_newton_step(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> CheckResult:
    """Exercise 2.1: ``fn(H, g)`` -> the Newton step ``-H^{-1} g`` for an SPD ``H``.

    Calls ``fn`` positionally, in that order: ``fn(H, g)``.
    """
    rng = _rng(21)
    cases = [dict(H=_spd(rng, n), g=rng.normal(size=n)) for n in (2, 3, 5, 8)]
    return compare("newton_step", fn, lambda H, g: -np.linalg.solve(H, g), cases, rtol=1e-6, atol=1e-9)


def _test_function(A, B):
    import jax.numpy as jnp

    A, B = jnp.asarray(A), jnp.asarray(B)
    return lambda x: jnp.sum(jnp.sin(A @ x)) + 0.5 * x @ B @ x + jnp.sum(x**4) / 12


def check_hvp(fn: Callable) -> CheckResult:
    """Exercise 2.2: ``fn(f, x, v)`` -> the Hessian-vector product of ``f`` at ``x`` along ``v`` (JAX).

    Calls ``fn`` positionally, in that order: ``fn(f, x, v)``.
    """
    import jax
    import jax.numpy as jnp

    rng = _rng(22)
    cases = []
    for n in (2, 4, 6):
        f = _test_function(rng.normal(size=(3, n)), _spd(rng, n))
        cases.append(dict(f=f, x=jnp.asarray(rng.normal(size=n)), v=jnp.asarray(rng.normal(size=n))))

    def reference(f, x, v):
        return np.asarray(jax.hessian(f)(x) @ v)

    return compare("hvp", fn, reference, cases, rtol=1e-4, atol=1e-5)


def check_conjugate_gradient(fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> CheckResult:
    """Exercise 2.3: ``fn(A, b, num_iters)`` -> the CG iterate after ``num_iters`` steps from ``x_0 = 0``.

    Calls ``fn`` positionally, in that order: ``fn(A, b, num_iters)``.
    """
    import jax.numpy as jnp

    from lessons.linalg import conjugate_gradient

    def reference(A, b, num_iters):
        result = conjugate_gradient(lambda v: jnp.asarray(A) @ v, jnp.asarray(b), max_iters=num_iters, tol=1e-30)
        return np.asarray(result.x)

    rng = _rng(23)
    cases = [dict(A=_spd(rng, n), b=rng.normal(size=n), num_iters=k) for n, k in ((4, 1), (6, 3), (10, 4), (8, 8))]
    return compare("conjugate_gradient", fn, reference, cases, rtol=1e-4, atol=1e-6)


# --- Chapter 3: curvature and landscapes ----------------------------------------------------------


def _symmetric(rng: np.random.Generator, n: int) -> np.ndarray:
    A = rng.normal(size=(n, n))
    return (A + A.T) / 2


def check_power_step(fn: Callable[[np.ndarray, np.ndarray], tuple]) -> CheckResult:
    """Exercise 3.1: ``fn(A, v)`` -> ``(w, rho)``: the next unit vector ``A v / ||A v||`` and the Rayleigh
    quotient ``rho = v^T A v / v^T v`` of the current ``v``, as one flat array ``[*w, rho]`` or a pair.

    Calls ``fn`` positionally, in that order: ``fn(A, v)``.
    """

    def reference(A, v):
        w = A @ v
        return np.concatenate([w / np.linalg.norm(w), [v @ A @ v / (v @ v)]])

    def flattened(A, v):
        out = fn(A, v)
        if isinstance(out, tuple) and len(out) == 2:
            return np.concatenate([np.ravel(np.asarray(out[0], float)), np.ravel(np.asarray(out[1], float))])
        return out

    rng = _rng(31)
    cases = [dict(A=_symmetric(rng, n), v=rng.normal(size=n)) for n in (2, 3, 5, 8)]
    if not callable(fn):
        return compare("power_step", fn, reference, cases)
    return compare("power_step", flattened, reference, cases, rtol=1e-6, atol=1e-9)


def check_hutchinson(fn: Callable[[np.ndarray, np.ndarray], float]) -> CheckResult:
    """Exercise 3.2: ``fn(matvec, probes)`` -> the Hutchinson estimate ``mean_l v_l^T A v_l`` over the rows of ``probes``.

    Calls ``fn`` positionally, in that order: ``fn(matvec, probes)``.
    """
    rng = _rng(32)
    cases = []
    for n, s in ((3, 1), (5, 4), (10, 7), (20, 50)):
        A = _symmetric(rng, n)
        cases.append(dict(matvec=lambda v, A=A: A @ v, probes=rng.choice([-1.0, 1.0], size=(s, n))))
    reference = lambda matvec, probes: np.mean([v @ matvec(v) for v in probes])
    return compare("hutchinson", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_delta2_closed_form(fn: Callable) -> CheckResult:
    """Exercise 3.3: ``fn(a, c, B, sigma)`` -> ``E (a + c^T z + z^T B z / 2)^2`` for ``z ~ N(0, sigma^2 I)``, ``B`` symmetric.

    Calls ``fn`` positionally, in that order: ``fn(a, c, B, sigma)``.
    """
    from lessons.stability import delta2_closed_form

    rng = _rng(33)
    cases = [
        dict(a=float(rng.normal()), c=rng.normal(size=d), B=_symmetric(rng, d), sigma=float(rng.uniform(0.1, 2.0)))
        for d in (1, 2, 3, 5, 8)
    ]
    reference = lambda a, c, B, sigma: float(delta2_closed_form(a, np.asarray(c, np.float64), np.asarray(B, np.float64), sigma))
    return compare("delta2_closed_form", fn, reference, cases, rtol=1e-4, atol=1e-8)


# --- Chapter 4: natural gradient ------------------------------------------------------------------


def check_woodbury_solve(fn: Callable[[np.ndarray, np.ndarray, float], np.ndarray]) -> CheckResult:
    """Exercise 4.1: ``fn(K, g, damping)`` -> ``x`` solving ``(damping I + K^T K) x = g`` for ``K`` of shape
    ``(r, p)``, ``r < p`` (solve an ``r x r`` system only).

    Calls ``fn`` positionally, in that order: ``fn(K, g, damping)``.
    """
    rng = _rng(41)
    cases = [
        dict(K=rng.normal(size=(r, p)), g=rng.normal(size=p), damping=lam)
        for r, p, lam in ((1, 3, 1.0), (2, 5, 0.1), (4, 20, 1e-2), (8, 30, 3.0))
    ]
    reference = lambda K, g, damping: np.linalg.solve(damping * np.eye(K.shape[1]) + K.T @ K, g)
    return compare("woodbury_solve", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_softmax_hessian(fn: Callable[[np.ndarray], np.ndarray]) -> CheckResult:
    """Exercise 4.2: ``fn(z)`` -> the Hessian of the softmax cross-entropy with respect to the logits ``z``
    (shape ``(c,)``): ``diag(p) - p p^T`` with ``p = softmax(z)`` (it does not depend on the label).

    Calls ``fn`` positionally, in that order: ``fn(z)``.
    """
    import jax
    import jax.numpy as jnp

    def reference(z):
        return np.asarray(jax.hessian(lambda v: -jax.nn.log_softmax(v)[0])(jnp.asarray(z, jnp.float64)))

    rng = _rng(42)
    cases = [dict(z=rng.normal(size=c) * s) for c, s in ((2, 1.0), (3, 0.5), (5, 2.0), (10, 1.0))]
    return compare("softmax_hessian", fn, reference, cases, rtol=1e-5, atol=1e-8)


def check_kfac_layer_step(fn: Callable) -> CheckResult:
    """Exercise 4.3: ``fn(A, G, V, damping)`` -> the K-FAC direction ``(A + sqrt(damping) I)^{-1} V (G + sqrt(damping) I)^{-1}``
    for a layer with input factor ``A`` (``(m, m)``), output factor ``G`` (``(k, k)``) and gradient ``V`` (``(m, k)``).

    Calls ``fn`` positionally, in that order: ``fn(A, G, V, damping)``.
    """
    rng = _rng(43)
    cases = [
        dict(A=_spd(rng, m, 0.0, 2.0), G=_spd(rng, k, 0.0, 1.0), V=rng.normal(size=(m, k)), damping=lam)
        for m, k, lam in ((2, 1, 0.1), (3, 4, 1e-2), (5, 2, 1.0))
    ]

    def reference(A, G, V, damping):
        eps = np.sqrt(damping)
        return np.linalg.solve(A + eps * np.eye(len(A)), V) @ np.linalg.inv(G + eps * np.eye(len(G)))

    return compare("kfac_layer_step", fn, reference, cases, rtol=1e-6, atol=1e-9)


# --- Chapter 5: layerwise Woodbury metrics --------------------------------------------------------


def check_layer_gram(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> CheckResult:
    """Exercise 5.1: ``fn(a, g)`` -> the ``(n, n)`` Gram matrix ``K K^T`` of a dense layer ``z = a W + b``
    whose row ``i`` of ``K`` is the derivative of ``g_i . z_i`` with respect to ``(W, b)``: ``(a a^T + 1) * (g g^T)``
    elementwise, for inputs ``a`` (``(n, d_in)``) and back-propagated rows ``g`` (``(n, d_out)``).

    Calls ``fn`` positionally, in that order: ``fn(a, g)``.
    """

    def reference(a, g):  # build K explicitly: row i is vec([a_i; 1] g_i^T)
        rows = [np.outer(np.append(ai, 1.0), gi).ravel() for ai, gi in zip(a, g, strict=True)]
        K = np.stack(rows)
        return K @ K.T

    rng = _rng(51)
    cases = [dict(a=rng.normal(size=(n, d)), g=rng.normal(size=(n, k))) for n, d, k in ((2, 1, 1), (3, 2, 4), (6, 5, 3))]
    return compare("layer_gram", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_path_action(fn: Callable) -> CheckResult:
    """Exercise 5.2: ``fn(path, dt, grads, G)`` -> the discretised action
    ``sum_k dt * (1/2 v_k^T G v_k + 1/2 gbar_k^T G^{-1} gbar_k)`` of a path of ``m + 1`` points (``(m + 1, p)``), with
    ``v_k = (w_{k+1} - w_k) / dt`` and ``gbar_k`` the mean of the gradients (``(m + 1, p)``) at the two ends of segment ``k``.

    Calls ``fn`` positionally, in that order: ``fn(path, dt, grads, G)``.
    """

    def reference(path, dt, grads, G):
        total = 0.0
        for k in range(len(path) - 1):
            v = (path[k + 1] - path[k]) / dt
            gbar = (grads[k] + grads[k + 1]) / 2
            total += dt * (0.5 * v @ G @ v + 0.5 * gbar @ np.linalg.solve(G, gbar))
        return total

    rng = _rng(52)
    cases = [
        dict(path=rng.normal(size=(m + 1, p)), dt=dt, grads=rng.normal(size=(m + 1, p)), G=_spd(rng, p))
        for m, p, dt in ((1, 2, 0.5), (5, 3, 0.1), (20, 4, 0.05))
    ]
    return compare("path_action", fn, reference, cases, rtol=1e-6, atol=1e-9)


def check_factor_pullback(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> CheckResult:
    """Exercise 5.3: ``fn(L, W, z)`` -> one step of the backward sweep through ``x_next = tanh(x W + b)``: the factor
    ``L_next`` (``(c, d_out)``, at the layer's output) pulled back to its input, ``L_next diag(1 - tanh(z)^2) W^T``
    (``(c, d_in)``), with ``z`` (``(d_out,)``) the layer's pre-activation and ``W`` of shape ``(d_in, d_out)``.

    Calls ``fn`` positionally, in that order: ``fn(L, W, z)``.
    """
    import jax
    import jax.numpy as jnp

    def reference(L, W, z):  # the Jacobian of x -> tanh(x W + b) at the x with x W + b = z, by autodiff
        W64, z64 = jnp.asarray(W, jnp.float64), jnp.asarray(z, jnp.float64)
        x0 = jnp.zeros(W64.shape[0], jnp.float64)
        jac = jax.jacfwd(lambda x: jnp.tanh(x @ W64 + z64))(x0)  # (d_out, d_in)
        return np.asarray(jnp.asarray(L, jnp.float64) @ jac)

    rng = _rng(53)
    cases = [
        dict(L=rng.normal(size=(c, k)), W=rng.normal(size=(d, k)), z=rng.normal(size=k))
        for c, d, k in ((1, 2, 3), (3, 4, 4), (2, 5, 1))
    ]
    return compare("factor_pullback", fn, reference, cases, rtol=1e-6, atol=1e-9)
