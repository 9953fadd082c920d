"""Delta2(D) in closed form (``lessons.stability``) against Monte Carlo, for a trained MLP on two spirals.

The problem: a 2-32-32-1 tanh MLP trained by Adam (1,000 steps) on 1,024 two-spirals points, per-example
logistic losses, float32. ``U`` holds the top-D Hessian eigenvectors (Lanczos; this setup is shared by
the closed form and the subspace Monte Carlo, and not timed). For every k = 1..n-1 at once:

* closed form, whole: the quadratic model (``stability.quadratic_model``: D^2 second-order forward-mode
  tangents over the n examples) and the Gaussian-moment formula;
* closed form, formula only: ``stability.delta2_closed_form`` on a model already computed (what a sweep
  over sigma costs per value);
* Monte Carlo in the subspace (``delta2_subspace``) and isotropic (``delta2_isotropic``), S = 256 samples.

Times are medians of compiled calls. The goal to report against: >= 100x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from benchmarks._common import block, median_seconds, table
from lessons import curvature, data, nets, stability, train

SIGMA = 0.05
NUM_SAMPLES = 256
DIMS = (2, 5, 10)


def problem():
    x, y = data.two_spirals(1024, key=jax.random.key(0))
    loss = nets.classifier_loss(x, y)
    params = nets.init_mlp([2, 32, 32, 1], key=jax.random.key(1))
    params = train.train(loss, params, optax.adam(0.01), num_steps=1000).params
    per_example = lambda p: optax.sigmoid_binary_cross_entropy(nets.mlp(p, x)[:, 0], y)
    return loss, per_example, params


def main() -> None:
    loss, per_example, params = problem()
    _, directions = curvature.hessian_top_k(loss, params, max(DIMS), key=jax.random.key(2))
    flat = [jax.flatten_util.ravel_pytree(d)[0] for d in directions]
    rows = []
    for D in DIMS:
        U = jnp.stack(flat[:D], axis=1)
        whole = jax.jit(lambda p, U: stability.delta2_curvature_aligned(per_example, p, U, SIGMA))
        model = block(stability.quadratic_model(per_example, params, U))
        formula = jax.jit(lambda a, c, B: stability.delta2_closed_form(a, c, B, SIGMA))
        subspace = jax.jit(
            lambda p, U, key: stability.delta2_subspace(per_example, p, U, SIGMA, key=key, num_samples=NUM_SAMPLES)
        )
        key = jax.random.key(3)
        t_whole = median_seconds(lambda U=U, whole=whole: block(whole(params, U)))
        t_formula = median_seconds(lambda model=model, formula=formula: block(formula(*model)), repeats=20)
        t_sub = median_seconds(lambda U=U, subspace=subspace, key=key: block(subspace(params, U, key)))
        rows += [
            (
                f"D={D}: closed form (model + formula) vs subspace MC",
                f"{t_whole * 1e3:.2f} ms",
                f"{t_sub * 1e3:.2f} ms",
                f"{t_sub / t_whole:.1f}x",
            ),
            (
                f"D={D}: formula only (model given) vs subspace MC",
                f"{t_formula * 1e3:.3f} ms",
                f"{t_sub * 1e3:.2f} ms",
                f"{t_sub / t_formula:.0f}x",
            ),
        ]
    isotropic = jax.jit(lambda p, key: stability.delta2_isotropic(per_example, p, SIGMA, key=key, num_samples=NUM_SAMPLES))
    t_iso = median_seconds(lambda: block(isotropic(params, jax.random.key(4))))
    U = jnp.stack(flat[: DIMS[0]], axis=1)
    whole = jax.jit(lambda p, U: stability.delta2_curvature_aligned(per_example, p, U, SIGMA))
    t_whole = median_seconds(lambda: block(whole(params, U)))
    rows.append(
        (
            f"D={DIMS[0]}: closed form (model + formula) vs isotropic MC",
            f"{t_whole * 1e3:.2f} ms",
            f"{t_iso * 1e3:.2f} ms",
            f"{t_iso / t_whole:.1f}x",
        )
    )
    P = nets.num_params(params)
    print(table(f"Delta2 for all k = 1..1023: closed form vs Monte Carlo, S = {NUM_SAMPLES}, P = {P} (goal >= 100x)", rows))


if __name__ == "__main__":
    main()
