"""The layerwise metric's step: Woodbury in batch space per layer vs a dense solve of the largest layer's block.

Each row is one MLP (tanh, logistic loss, two-spirals inputs, widths [2, w, w, 1]) and one batch size. Ours
is the whole step of :func:`lessons.layerwise.layerwise_step`: the backward sweep of factors and, for every
layer, an r x r Cholesky (r = batch size, one logit per example) built from small Gram matrices, never the
factor K_i itself. The baseline does less: only the largest layer's block, formed densely
(G_i = mu I + K_i^T K_i, p_i x p_i, from :func:`lessons.layerwise.layer_factors`) and solved by Cholesky, so
the ratio baseline / ours understates the gain. The last column is the relative difference between the two
directions of that layer. Everything in float64, compiled; medians after a warm-up, except the dense solve
of a block above 10^4 parameters (tens of seconds on a CPU), timed once after compiling it.

On a busy machine with few cores, the threads of OpenBLAS (behind XLA's CPU Cholesky) can stall each
call of size >= 128 by tens of milliseconds (measured here: 48 ms instead of 0.1 ms under a load of 5
on 2 cores); ``OPENBLAS_NUM_THREADS=1`` gives stable numbers there.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_solve

from benchmarks._common import block, float64, median_seconds, table
from lessons import data, layerwise, nets

MU = 1e-2
LARGEST = 1  # in [2, w, w, 1] the w x w layer is the largest


@jax.jit
def _ours(params, grads, x):
    return layerwise.layerwise_step(params, grads, x, MU)


@functools.partial(jax.jit, static_argnums=(3,))
def _dense_block(params, x, g, index):
    K = layerwise.layer_factors(params, x)[index]
    G = MU * jnp.eye(K.shape[1], dtype=K.dtype) + K.T @ K
    return cho_solve((jnp.linalg.cholesky(G), True), g)


def _row(width: int, batch_size: int) -> tuple[str, str, str, str]:
    x, y = data.two_spirals(batch_size, key=jax.random.key(0), dtype=jnp.float64)
    params = nets.init_mlp([2, width, width, 1], key=jax.random.key(1), dtype=jnp.float64)
    gradient = jax.jit(jax.grad(nets.classifier_loss(x, y)))
    grads = gradient(params)
    g = ravel_pytree(grads[LARGEST])[0]
    p = g.size
    t_ours = median_seconds(lambda: block(_ours(params, grads, x)), repeats=7)
    t_grad = median_seconds(lambda: block(gradient(params)), repeats=7)
    if p > 10_000:
        compiled = _dense_block.lower(params, x, g, LARGEST).compile()  # compile apart, then one timed call
        start = time.perf_counter()
        d_dense = np.asarray(block(compiled(params, x, g)))
        t_dense = time.perf_counter() - start
    else:
        t_dense = median_seconds(lambda: block(_dense_block(params, x, g, LARGEST)), repeats=3)
        d_dense = np.asarray(_dense_block(params, x, g, LARGEST))
    d_ours = np.asarray(ravel_pytree(_ours(params, grads, x)[LARGEST])[0])
    diff = np.linalg.norm(d_ours - d_dense) / np.linalg.norm(d_dense)
    return (
        f"p_i = {p:,} (P = {nets.num_params(params):,}), batch {batch_size}: all layers / one gradient, ms",
        f"{t_ours * 1e3:.2f} / {t_grad * 1e3:.2f}",
        f"{t_dense * 1e3:.0f} ms (dense block {p} x {p})",
        f"{t_dense / t_ours:.0f}x; steps agree to {diff:.0e}",
    )


def main() -> None:
    with float64():  # float64: the steps are compared to round-off
        rows = [_row(width, batch) for width in (64, 128) for batch in (32, 128)]
    print(table("Layerwise metric: Woodbury per layer vs a dense solve of the largest block", rows))


if __name__ == "__main__":
    main()
