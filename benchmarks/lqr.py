"""The exact Gauss-Newton step by the Riccati recursion over the layers vs the dense damped GGN solve, as the net deepens.

Each row is one MLP (tanh, logistic loss, two-spirals inputs, widths [2, w, ..., w, 1] with ``depth`` hidden
layers) on one batch. Ours is :func:`lessons.lqr.network_lqr_step` with ``mode="ggn"``: the per-layer
linearisations A_i (n w x n w, dense) and B_i (n w x p_i) by forward-mode Jacobians, then one backward
Riccati sweep with a p_i x p_i Cholesky per layer, then the forward pass of the controls. The baseline forms
the GGN factor K (n x P, :func:`lessons.natural_gradient.ggn_factor`), then damping * I + K^T K (P x P) and
solves it by Cholesky. Both steps are the same vector, -(damping I + K^T K)^{-1} g (the last column says to
what relative difference); both are timed end to end from (params, x, y), compiled, in float64, medians
after a warm-up.

Ours grows linearly with the depth (each layer's stage is the same size), the dense solve with its cube
(P^3 / 3 for the Cholesky). At this batch the Woodbury solve of :mod:`lessons.natural_gradient` (an n x n
system) is cheaper than both; the LQR view is about the structure, and it is what the Newton mode
(stage curvature, no low-rank factor) needs. ``OPENBLAS_NUM_THREADS=1`` gives stable numbers on a busy machine.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_solve

from benchmarks._common import block, float64, median_seconds, table
from lessons import data, lqr, nets
from lessons.natural_gradient import ggn_factor

DAMPING = 1e-2
WIDTH, BATCH = 16, 16

_ours = jax.jit(functools.partial(lqr.network_lqr_step, loss_kind="logistic", damping=DAMPING, mode="ggn"))


@jax.jit
def _dense(params, x, y):
    g, unravel = ravel_pytree(jax.grad(nets.classifier_loss(x, y))(params))
    K = ggn_factor(nets.mlp, params, x, "logistic")
    G = DAMPING * jnp.eye(g.size, dtype=g.dtype) + K.T @ K
    return unravel(-cho_solve((jnp.linalg.cholesky(G), True), g))


def _row(depth: int) -> tuple[str, str, str, str]:
    x, y = data.two_spirals(BATCH, key=jax.random.key(0), dtype=jnp.float64)
    params = nets.init_mlp([2] + [WIDTH] * depth + [1], key=jax.random.key(1), dtype=jnp.float64)
    t_ours = median_seconds(lambda: block(_ours(params, x, y)), repeats=7)
    t_dense = median_seconds(lambda: block(_dense(params, x, y)), repeats=7)
    d_ours, d_dense = (np.asarray(ravel_pytree(f(params, x, y))[0]) for f in (_ours, _dense))
    diff = np.linalg.norm(d_ours - d_dense) / np.linalg.norm(d_dense)
    return (
        f"{depth} hidden layers (P = {nets.num_params(params):,}), ms",
        f"{t_ours * 1e3:.2f}",
        f"{t_dense * 1e3:.2f} (dense {d_dense.size} x {d_dense.size})",
        f"{t_dense / t_ours:.1f}x; steps agree to {diff:.0e}",
    )


def main() -> None:
    with float64():  # float64: the steps are compared to round-off
        rows = [_row(depth) for depth in (2, 4, 8)]
    title = f"LQR (Riccati over the layers) vs dense damped GGN step, width {WIDTH}, batch {BATCH}"
    print(table(title, rows, header=("network", "Riccati (ours)", "dense GGN solve", "dense / ours")))


if __name__ == "__main__":
    main()
