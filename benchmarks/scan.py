"""Parallel scans and DEER against the sequential loop: time, Newton iterations, memory and depth.

Three measurements, side by side in one process, each a median after a warm-up, compiled:

1. The linear recurrence h_t = A_t h_(t-1) + b_t: :func:`lessons.scan.parallel_scan` (``lax.associative_scan``)
   vs :func:`lessons.scan.sequential_scan` (``lax.scan``), dense and diagonal A.
2. A tanh RNN (:func:`lessons.nets.tanh_rnn`, gain 0.7: contracting) over T steps: DEER and quasi-DEER
   (:mod:`lessons.deer`) vs the loop (:func:`lessons.deer.sequential`), forward only and forward + gradient
   of sum(w * h) with respect to the cell's parameters (DEER: implicit, one reverse scan; the loop: BPTT).
   Each row gives the Newton iterations, the bytes of the Jacobians DEER stores (T d^2 dense, T d quasi; the
   scan's temporaries come on top), and the depth in dependent steps: T for the loop, iterations x
   (1 + levels of the scan tree ~ 2 log2 T) for DEER.
3. The goals: DEER <= 8 iterations in float64 at every T, quasi-DEER <= 100, and DEER's implicit gradient
   equal to BPTT's to 1e-4 (relative, float32).

Float32 by default (the float64 check is on the iteration counts only). Combinations whose dense Jacobians
exceed ~1 GB are skipped ("skipped: memory"). ``python -m benchmarks.scan --quick`` runs T = 1000 only. On a CPU the loop wins (an
iteration costs O(d) loop-steps of work, and a CPU runs a tree level a few lanes at a time); the depth column
is what a GPU turns into time. ``OPENBLAS_NUM_THREADS=1`` gives stable numbers on a busy machine.
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import block, float64, median_seconds, table
from lessons import deer, nets, scan

GAIN, INPUT_DIM = 0.7, 4
DIMS = (4, 16, 64)
LENGTHS, QUICK_LENGTHS = (1_000, 10_000, 100_000), (1_000,)
MEMORY_LIMIT = 1e9  # bytes of dense Jacobians (T d^2 floats) above which a combination is skipped
METHODS = ("sequential", "deer", "quasi_deer")


def _repeats(T: int) -> int:
    return 5 if T <= 10_000 else 2  # fewer at T = 1e5: the full run stays under ~10 minutes on 2 cores


def _run(method, params, h0, xs):
    f = functools.partial(nets.tanh_rnn, params, gain=GAIN)
    if method == "sequential":
        return deer.sequential(f, h0, xs), jnp.zeros((), jnp.int32)
    return getattr(deer, method)(f, h0, xs)


_forward = jax.jit(_run, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def _gradient(method, params, h0, xs, weights):
    def loss(params):
        hs, num_iters = _run(method, params, h0, xs)
        return jnp.sum(weights * hs), num_iters

    return jax.grad(loss, has_aux=True)(params)


def _problem(d: int, T: int, dtype=jnp.float32):
    params = nets.init_tanh_rnn(d, INPUT_DIM, key=jax.random.key(d), dtype=dtype)
    xs = jax.random.normal(jax.random.key(T), (T, INPUT_DIM), dtype)
    return params, jnp.zeros(d, dtype), xs, jax.random.normal(jax.random.key(1), (T, d), dtype)


def _blocked(fn, *args):
    return block(fn(*args))


def _too_big(d: int, T: int) -> bool:
    return T * d * d * 4 > MEMORY_LIMIT


def _megabytes(n: float) -> str:
    return f"{n / 1e6:.3g} MB"


# --- 1. the linear recurrence --------------------------------------------------------------------------


def linear_rows(lengths) -> list[tuple[str, str, str, str]]:
    rows = []
    for d in DIMS:
        for diagonal in (False, True):
            for T in lengths:
                name = f"{'diagonal' if diagonal else 'dense'} d={d}, T={T:,}"
                if not diagonal and _too_big(d, T):
                    rows.append((name, "skipped: memory", "", ""))
                    continue
                key_a, key_b = jax.random.split(jax.random.key(T + d))
                shape = (T, d) if diagonal else (T, d, d)
                A = 0.9 * jax.random.uniform(key_a, shape, jnp.float32, -1.0, 1.0) / (1.0 if diagonal else np.sqrt(d))
                b, h0 = jax.random.normal(key_b, (T, d), jnp.float32), jnp.zeros(d, jnp.float32)
                t_par = median_seconds(functools.partial(_blocked, scan.parallel_scan, A, b, h0), repeats=_repeats(T))
                t_seq = median_seconds(functools.partial(_blocked, scan.sequential_scan, A, b, h0), repeats=_repeats(T))
                depth = scan.work_depth(T, d, diagonal=diagonal)
                rows.append(
                    (
                        name,
                        f"{t_par * 1e3:.3g} ms",
                        f"{t_seq * 1e3:.3g} ms",
                        f"{t_par / t_seq:.2g}x (depth {depth['parallel_depth']} vs {T:,}, work x{depth['work_ratio']:.2g})",
                    )
                )
    return rows


# --- 2. DEER vs the loop ---------------------------------------------------------------------------------


def _relative_error(tree, reference) -> float:
    a, b = (np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(t)]) for t in (tree, reference))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def deer_rows(lengths, goals: dict) -> tuple[list, list]:
    forward, backward = [], []
    for d in DIMS:
        for T in lengths:
            name = f"d={d}, T={T:,}"
            if _too_big(d, T):
                forward.append((name, "skipped: memory", f"(Jacobians {_megabytes(4 * T * d * d)})", ""))
                continue
            params, h0, xs, weights = _problem(d, T)
            repeats, levels = _repeats(T), scan.work_depth(T, d, diagonal=False)["parallel_depth"]
            times, grad_times, iters, grad_iters, grads = {}, {}, {}, {}, {}
            for method in METHODS:
                times[method] = median_seconds(functools.partial(_blocked, _forward, method, params, h0, xs), repeats=repeats)
                call = functools.partial(_blocked, _gradient, method, params, h0, xs, weights)
                grad_times[method] = median_seconds(call, repeats=repeats)
                iters[method] = int(_forward(method, params, h0, xs)[1])
                grads[method], grad_iters[method] = _gradient(method, params, h0, xs, weights)
            goals["gradient"].append((name, _relative_error(grads["deer"], grads["sequential"])))
            goals["quasi_float32"].append((name, iters["quasi_deer"]))
            for method, memory in (("deer", 4 * T * d * d), ("quasi_deer", 4 * T * d)):
                label = "DEER" if method == "deer" else "quasi"
                forward.append(
                    (
                        f"{name}, {label}",
                        f"{times[method] * 1e3:.3g} ms, {iters[method]} it",
                        f"{times['sequential'] * 1e3:.3g} ms",
                        f"{times[method] / times['sequential']:.2g}x; J {_megabytes(memory)}; "
                        f"depth {iters[method] * levels:,} vs {T:,}",
                    )
                )
                backward.append(
                    (
                        f"{name}, {label}",
                        f"{grad_times[method] * 1e3:.3g} ms, {int(grad_iters[method])} it",
                        f"{grad_times['sequential'] * 1e3:.3g} ms",
                        f"{grad_times[method] / grad_times['sequential']:.2g}x; depth "
                        f"{(int(grad_iters[method]) + 1) * levels:,} vs {2 * T:,}",
                    )
                )
    return forward, backward


def float64_iterations(lengths, goals: dict) -> None:
    """DEER's and quasi-DEER's iteration counts in float64 (one run each: no timing)."""
    with float64():
        for d in DIMS:
            for T in lengths:
                if _too_big(d, T):
                    continue
                params, h0, xs, _ = _problem(d, T, jnp.float64)
                for method in ("deer", "quasi_deer"):
                    goals[method].append((f"d={d}, T={T:,}", int(_forward(method, params, h0, xs)[1])))


def goal_rows(goals: dict) -> list[tuple[str, str, str, str]]:
    def row(label, values, limit, fmt):
        if not values:
            return (label, "(not measured)", "", "")
        worst = max(values, key=lambda v: v[1])
        met = all(v <= limit for _, v in values)
        return (label, f"worst {fmt(worst[1])} at {worst[0]}", f"<= {fmt(limit)}", "met" if met else "NOT MET")

    return [
        row("DEER iterations, float64, every T", goals["deer"], 8, str),
        row("quasi-DEER iterations, float64", goals["quasi_deer"], 100, str),
        row("quasi-DEER iterations, float32", goals["quasi_float32"], 100, str),
        row("DEER gradient vs BPTT, rel. error, float32", goals["gradient"], 1e-4, lambda v: f"{v:.1e}"),
    ]


def main(quick: bool = False) -> None:
    lengths = QUICK_LENGTHS if quick else LENGTHS
    goals = {"deer": [], "quasi_deer": [], "quasi_float32": [], "gradient": []}
    header = ("recurrence", "parallel scan", "sequential scan", "parallel / sequential")
    print(table("Linear recurrence h_t = A_t h_(t-1) + b_t, float32", linear_rows(lengths), header=header))
    forward, backward = deer_rows(lengths, goals)
    title = f"tanh RNN (gain {GAIN}), float32: DEER / quasi-DEER vs the loop, forward"
    print(table(title, forward, header=("RNN, method", "Newton solve", "loop", "solve / loop; memory; depth")))
    title = f"tanh RNN (gain {GAIN}), float32: forward + gradient w.r.t. the cell's parameters"
    print(table(title, backward, header=("RNN, method", "implicit gradient", "BPTT", "ours / BPTT; depth")))
    float64_iterations(lengths, goals)
    print(table("Goals", goal_rows(goals), header=("goal", "measured", "target", "")))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 1000 only")
    main(quick=parser.parse_args().quick)
