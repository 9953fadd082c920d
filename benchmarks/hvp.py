"""Hessian-vector products against a gradient, for an MLP 784-256-256-10 on a batch of 512.

Softmax cross-entropy on random inputs and labels (the cost does not depend on the data). Each
HVP flavour of ``lessons.autodiff`` is timed against ``jax.grad`` of the same loss, medians after a
warm-up, all jitted. Goal: an HVP costs at most 2.5 gradients.
"""

from __future__ import annotations

import jax
import optax
from jax.flatten_util import ravel_pytree

from benchmarks._common import block, median_seconds, table
from lessons import autodiff, nets


def main() -> None:
    kx, ky, kp, kv = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(kx, (512, 784))
    labels = jax.random.randint(ky, (512,), 0, 10)
    params = nets.init_mlp([784, 256, 256, 10], key=kp)
    loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(nets.mlp(p, x), labels).mean()
    flat, unravel = ravel_pytree(params)
    v = unravel(jax.random.normal(kv, flat.shape))

    grad = jax.jit(jax.grad(loss))
    grad_s = median_seconds(lambda: block(grad(params)), repeats=10)
    rows = []
    for name, fn in (
        ("HVP forward-over-reverse (autodiff.hvp)", autodiff.hvp),
        ("HVP reverse-over-reverse (grad of grad)", autodiff.hvp_reverse_over_reverse),
        ("HVP reverse-over-forward (grad of jvp)", autodiff.hvp_reverse_over_forward),
    ):
        jitted = jax.jit(lambda p, v, fn=fn: fn(loss, p, v))
        seconds = median_seconds(lambda jitted=jitted: block(jitted(params, v)), repeats=10)
        rows.append((name, f"{seconds * 1e3:.1f} ms", f"{grad_s * 1e3:.1f} ms (gradient)", f"{seconds / grad_s:.2f}x"))
    matvec, _ = autodiff.flat_hvp(loss, params)
    jitted = jax.jit(matvec)
    vf = ravel_pytree(v)[0]
    seconds = median_seconds(lambda: block(jitted(vf)), repeats=10)
    rows.append(
        (
            "HVP, linearised once (autodiff.flat_hvp)",
            f"{seconds * 1e3:.1f} ms",
            f"{grad_s * 1e3:.1f} ms (gradient)",
            f"{seconds / grad_s:.2f}x",
        )
    )
    print(table(f"HVP vs gradient, MLP 784-256-256-10, batch 512, P = {flat.size:,} (goal <= 2.5x)", rows))


if __name__ == "__main__":
    main()
