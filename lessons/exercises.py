"""Checkers for the book's exercises: your function against the reference, on seeded inputs.

Each ``check_*`` function calls the reader's function on a handful of inputs drawn from a fixed
seed, compares with the library's reference implementation, and returns a :class:`CheckResult`
that says what matched or, at the first mismatch, what went in and what came out. A checker never
raises on a wrong answer (a notebook keeps running); it raises ``TypeError`` only when it is given
something that is not callable.

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
    """Call ``user_fn(**case)`` and ``reference_fn(**case)`` for every case and compare the results."""
    if not callable(user_fn):
        raise TypeError(f"{name}: expected a function, got {type(user_fn).__name__}")
    for i, case in enumerate(cases):
        shown = ", ".join(f"{k}={_describe(v)}" for k, v in case.items())
        try:
            got = user_fn(**case)
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
    """Exercise 1.1: ``fn(learning_rate, mu, L)`` -> GD's worst-case contraction per step."""
    from lessons.first_order import gd_rate

    rng = _rng(11)
    cases = []
    for _ in range(20):
        mu = float(rng.uniform(0.01, 1.0))
        L = float(mu * rng.uniform(1.0, 100.0))
        cases.append(dict(learning_rate=float(rng.uniform(0.01, 2.5) / L), mu=mu, L=L))
    return compare("gd_rate", fn, gd_rate, cases)


def check_heavy_ball_step(fn: Callable) -> CheckResult:
    """Exercise 1.2: ``fn(x, x_prev, grad, learning_rate, momentum)`` -> the next heavy-ball iterate."""
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
    """Exercise 1.3: ``fn(H)`` -> the supremum of stable GD steps on ``f(x) = x^T H x / 2``, ``H`` SPD."""
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
