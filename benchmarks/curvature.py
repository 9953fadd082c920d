"""Top Hessian eigenvalues of an MLP: Lanczos (``lessons.curvature.lanczos_top_k``) against power iteration.

The problem: a tanh MLP 64-128-128-10 (26,122 parameters) at its initialisation, with the mean softmax
cross-entropy on 512 synthetic points (Gaussian inputs, labels from a random 64-32-10 teacher), in
float32. There the top of the Hessian spectrum is a dense cluster (0.573, 0.537, 0.511, 0.502, 0.497,
...; the 20th is 0.426, the 21st 0.424) and the bottom is negative (down to -0.336): the hard case for
power iteration, whose rate is the ratio of neighbouring eigenvalues.

For the top 1, 5 and 20 eigenvalues, each method's cost to reach a relative accuracy of 1e-3
(the largest ``|estimate - reference| / |reference|`` over the top k, both sorted by value):

* Lanczos: the smallest ``num_steps`` in ``k + 5, k + 10, ...`` that is accurate; cost = ``num_steps`` HVPs.
  An m-step run is exactly the leading m x m block of a longer run from the same key, so the search
  reads one 300-step run; the chosen m is then run on its own (timed, and its error printed);
* power iteration (the PyHessian method, ``max_iters = 100`` per eigenvalue, PyHessian's default):
  ``tol`` = 1e-2, 1e-3, ..., 1e-6 until accurate, else "not reached" (the ratios are then lower
  bounds); the sweep also stops once every eigenvalue ran to ``max_iters``, since a tighter ``tol``
  changes nothing then. Cost = the HVPs it actually used.

The reference is a 300-step Lanczos run; its agreement with a 300-step run from another start is
printed. Times are medians of compiled runs (compilation excluded). The time ratio is smaller than the
HVP ratio: full reorthogonalisation reads the whole ``num_steps x P`` basis four times per step, which
at 150 steps costs more than the 150 HVPs of this small network. The goal to report against: >= 5x
fewer HVPs than power iteration for the top 5 and top 20.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._common import block, median_seconds, table
from lessons import autodiff, curvature, nets

SIZES = [64, 128, 128, 10]
NUM_POINTS = 512
ACCURACY = 1e-3
REFERENCE_STEPS = 300
MAX_ITERS = 100
TOLS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
KS = (1, 5, 20)
REFERENCE_KEY, LANCZOS_KEY, POWER_KEY = jax.random.key(99), jax.random.key(1), jax.random.key(2)


def problem():
    """Parameters at initialisation and the data, ``(params, x, y)``."""
    k_x, k_teacher, k_params = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k_x, (NUM_POINTS, SIZES[0]))
    y = jnp.argmax(nets.mlp(nets.init_mlp([SIZES[0], 32, SIZES[-1]], key=k_teacher), x), axis=1)
    return nets.init_mlp(SIZES, key=k_params), x, y


def hessian_matvec(params, x, y):
    loss = lambda p: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(nets.mlp(p, x), y))
    return autodiff.flat_hvp(loss, params)


def lanczos_tridiagonal(params, x, y, key, *, num_steps):
    matvec, dim = hessian_matvec(params, x, y)
    result = curvature.lanczos(matvec, dim, num_steps, key=key)
    return result.alphas, result.betas


def lanczos_values(params, x, y, key, *, k, num_steps):
    matvec, dim = hessian_matvec(params, x, y)
    return curvature.lanczos_top_k(matvec, dim, k, key=key, num_steps=num_steps)[0]


def power_values(params, x, y, key, tol, *, k):
    matvec, dim = hessian_matvec(params, x, y)
    result = curvature.power_iteration(matvec, dim, k, key=key, max_iters=MAX_ITERS, tol=tol)
    return result.eigenvalues, result.num_matvecs, result.converged


def compiled(fn, *args, **static):
    """``fn`` with ``static`` fixed, compiled ahead of time for ``args`` (so no timing includes compilation)."""
    return jax.jit(functools.partial(fn, **static)).lower(*args).compile()


def top_values_of(alphas, betas, m, k):
    """The top k Ritz values of the m-step run: the leading m x m block of a longer run's T."""
    T = np.diag(alphas[:m]) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
    return np.linalg.eigvalsh(T)[::-1][:k]


def relative_error(estimates, reference) -> float:
    """Largest relative error over the top k, both sorted by value (largest first)."""
    estimates = np.sort(np.asarray(estimates, float))[::-1]
    return float(np.max(np.abs(estimates - reference[: len(estimates)]) / np.abs(reference[: len(estimates)])))


def long_run(args, key):
    """``(alphas, betas)`` of a ``REFERENCE_STEPS``-step Lanczos run, in float64 for the small eigenproblems."""
    run = jax.jit(functools.partial(lanczos_tridiagonal, num_steps=REFERENCE_STEPS))
    return tuple(np.asarray(a, float) for a in block(run(*args, key)))


def lanczos_cost(args, long, reference, k):
    """``(num_steps, seconds, error)`` of the cheapest accurate Lanczos run, or ``None``.

    ``long`` is a longer run from ``LANCZOS_KEY``: its leading blocks give every shorter run's answer.
    """
    accurate = [
        m for m in range(k + 5, REFERENCE_STEPS + 1, 5) if relative_error(top_values_of(*long, m, k), reference) <= ACCURACY
    ]
    if not accurate:
        return None
    m = accurate[0]
    run = compiled(lanczos_values, *args, LANCZOS_KEY, k=k, num_steps=m)
    error = relative_error(block(run(*args, LANCZOS_KEY)), reference)  # the m-step run on its own
    return m, median_seconds(lambda: block(run(*args, LANCZOS_KEY)), repeats=5, warmup=1), error


def power_cost(args, reference, k):
    """``(tol, matvecs, seconds, error, reached)`` for the loosest accurate ``tol``, else for the last one tried."""
    run = compiled(power_values, *args, POWER_KEY, jnp.float32(TOLS[0]), k=k)
    for tol in TOLS:
        values, matvecs, converged = block(run(*args, POWER_KEY, jnp.float32(tol)))
        error = relative_error(values, reference)
        if error <= ACCURACY or not np.any(np.asarray(converged)):
            break  # accurate, or every eigenvalue stopped at max_iters: a tighter tol changes nothing
    repeats = 3 if int(matvecs) < 1000 else 1
    seconds = median_seconds(lambda: block(run(*args, POWER_KEY, jnp.float32(tol))), repeats=repeats, warmup=0)
    return tol, int(matvecs), seconds, error, error <= ACCURACY


def comparison_rows(k, lanczos, power):
    m, lanczos_seconds, lanczos_error = lanczos
    tol, matvecs, power_seconds, power_error, reached = power
    ours = f"{m} (num_steps={m}, err {lanczos_error:.0e})"
    if reached:
        baseline, bound, note = f"{matvecs} (tol={tol:g}, err {power_error:.0e})", "", ""
    else:  # power iteration would need more than it used: the ratios are lower bounds
        baseline = f"not reached (tol={tol:g}, max_iters={MAX_ITERS}): err {power_error:.0e} after {matvecs}"
        bound, note = "> ", " (not accurate)"
    return [
        (f"top {k}: HVPs to rel. err {ACCURACY:g}", ours, baseline, f"{bound}{matvecs / m:.1f}x"),
        (
            f"top {k}: seconds",
            f"{lanczos_seconds:.3f}",
            f"{power_seconds:.3f}{note}",
            f"{bound}{power_seconds / lanczos_seconds:.1f}x",
        ),
    ]


def main() -> None:
    params, x, y = problem()
    args = (params, x, y)
    t0 = time.perf_counter()
    reference = top_values_of(*long_run(args, REFERENCE_KEY), REFERENCE_STEPS, max(KS))
    reference_seconds = time.perf_counter() - t0
    long = long_run(args, LANCZOS_KEY)
    agreement = relative_error(top_values_of(*long, REFERENCE_STEPS, max(KS)), reference)
    rows = [
        (
            f"reference: top {max(KS)} of a {REFERENCE_STEPS}-step Lanczos run",
            f"{reference[0]:.4f} ... {reference[-1]:.4f}",
            f"vs another start: {agreement:.0e} ({reference_seconds:.0f} s)",
            "-",
        )
    ]
    ratios = {}
    for k in KS:
        lanczos = lanczos_cost(args, long, reference, k)
        if lanczos is None:
            rows.append((f"top {k}: HVPs to rel. err {ACCURACY:g}", f"not reached in {REFERENCE_STEPS} steps", "-", "-"))
            ratios[k] = 0.0
            continue
        power = power_cost(args, reference, k)
        rows += comparison_rows(k, lanczos, power)
        ratios[k] = power[1] / lanczos[0]
    met = ratios[5] >= 5 and ratios[20] >= 5
    rows.append(("goal: >= 5x fewer HVPs for the top 5 and 20", "met" if met else "not met", "-", "-"))
    title = f"Top Hessian eigenvalues, MLP {'-'.join(map(str, SIZES))} (P={nets.num_params(params):,})"
    print(table(title, rows, header=("measure", "Lanczos", "power iteration (PyHessian)", "power / Lanczos")))


if __name__ == "__main__":
    main()
