r"""What second-order information costs: XLA's FLOP counts and wall-clock seconds of gradients, HVPs, Hessians.

For a network with :math:`P` parameters, theory says a gradient and a Hessian-vector product cost
:math:`O(P)` (an HVP about 2-3 gradients), the dense Hessian :math:`O(P^2)` (``P`` HVPs) and the
Newton solve :math:`O(P^3)`. :func:`measure_costs` measures all four on MLPs of growing width, and
:func:`compiled_flops` counts the operations of any compiled function. Chapter 2's cost plot.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from lessons.costs import compiled_flops
    >>> compiled_flops(lambda x: x @ x, jnp.ones((4, 4)))  # 4^3 multiply-adds
    128.0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lessons import nets
from lessons.checks import check_callable, check_positive_int


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
    check_callable(fn, "fn")
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
    if isinstance(widths, str) or not hasattr(widths, "__iter__"):
        raise TypeError(f"widths must be a list of positive integers, got {type(widths).__name__} {widths!r}")
    widths = list(widths)
    if not widths:
        raise ValueError(f"widths must be a non-empty list of positive integers, got {widths}")
    for w in widths:
        check_positive_int(w, "widths")
    widths = [int(w) for w in widths]
    check_positive_int(repeats, "repeats")
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
