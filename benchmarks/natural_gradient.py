"""The damped natural-gradient (GGN) step three ways: dense, Woodbury with an explicit Jacobian, Woodbury
from per-layer Gram matrices (no Jacobian at all).

Each row is one MLP (tanh, logistic loss, two-spirals inputs) and one batch size. The dense step forms
the P x P matrix lambda I + K^T K and solves it, up to P ~ 1e4 (10^8 entries, about 10^12 flops: one
repeat); at P ~ 1e5 the matrix alone would take 80 GB, so it is skipped and the table says so. The
Woodbury steps solve an r x r system, r = batch size (one logit per example). The ratio column is
dense / Woodbury (or, where dense is skipped, explicit-J / Gram) and Gram / one gradient, with the
largest relative difference between the steps.
Everything in float64, compiled, medians after a warm-up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from benchmarks._common import block, float64, median_seconds, table
from lessons import data, nets
from lessons import natural_gradient as ng

DAMPING = 1e-2
DENSE_LIMIT = 12_000  # parameters: above this the dense solve is skipped (P = 1e5: 80 GB for the matrix)
WIDTHS = (16, 100, 316)  # P = 337, 10,501 and 101,437 parameters
BATCHES = (32, 128, 512)


def _step(method: str):
    opt = ng.natural_gradient(1.0, damping=DAMPING, apply=nets.mlp, loss_kind="logistic", method=method)
    return jax.jit(lambda g, p, batch: ravel_pytree(opt.update(g, opt.init(p), p, batch=batch)[0])[0])


@jax.jit
def _dense(params, x, g):
    K = ng.ggn_factor(nets.mlp, params, x, "logistic")
    G = K.T @ K + DAMPING * jnp.eye(K.shape[1], dtype=K.dtype)
    return -jnp.linalg.solve(G, g)


def _row(woodbury, gram, width: int, batch_size: int) -> tuple[str, str, str, str]:
    x, y = data.two_spirals(batch_size, key=jax.random.key(0), dtype=jnp.float64)
    params = nets.init_mlp([2, width, width, 1], key=jax.random.key(1), dtype=jnp.float64)
    P = nets.num_params(params)
    gradient = jax.jit(jax.grad(nets.classifier_loss(x, y)))
    grads = gradient(params)
    g = ravel_pytree(grads)[0]
    t_wood = median_seconds(lambda: block(woodbury(grads, params, (x, y))), repeats=7)
    t_gram = median_seconds(lambda: block(gram(grads, params, (x, y))), repeats=7)
    t_grad = median_seconds(lambda: block(gradient(params)), repeats=7)
    d_wood, d_gram = np.asarray(woodbury(grads, params, (x, y))), np.asarray(gram(grads, params, (x, y)))
    diff = np.linalg.norm(d_wood - d_gram) / np.linalg.norm(d_wood)
    if P <= DENSE_LIMIT:
        t_dense = median_seconds(lambda: block(_dense(params, x, g)), repeats=1 if P > 1000 else 3)
        d_dense = np.asarray(_dense(params, x, g))
        diff = max(diff, np.linalg.norm(d_wood - d_dense) / np.linalg.norm(d_dense))
        baseline, ratio = f"{t_dense * 1e3:.1f} ms (dense)", f"dense / Woodbury (J) {t_dense / t_wood:.0f}x"
    else:
        baseline, ratio = "dense skipped (P x P too big)", f"J / Gram {t_wood / t_gram:.1f}x"
    return (
        f"P = {P:,}, batch {batch_size}: Woodbury (J) / (Gram) / one gradient, ms",
        f"{t_wood * 1e3:.2f} / {t_gram * 1e3:.2f} / {t_grad * 1e3:.2f}",
        baseline,
        f"{ratio}; Gram / gradient {t_gram / t_grad:.1f}x; steps agree to {diff:.0e}",
    )


def main() -> None:
    with float64():  # float64: the steps are compared to 1e-10
        woodbury, gram = _step("jacobian"), _step("gram")
        rows = [_row(woodbury, gram, width, batch) for width in WIDTHS for batch in BATCHES]
    print(table("Natural-gradient step: dense vs Woodbury in batch space", rows))
    print(
        "Goals (issue 10): Woodbury >= 300x dense at P ~ 1e4, batch 128, steps equal to 1e-10; the Gram route\n"
        ">= 10x explicit-J Woodbury at P ~ 1e5, batch 128, and within 5x one gradient for batch <= 128."
    )


if __name__ == "__main__":
    main()
