r"""Chapter 1's measurements: contraction per step, and steps to tolerance across condition numbers.

The theory of :mod:`lessons.first_order` predicts, on a quadratic with curvatures in ``[mu, L]``,
the contraction of gradient descent per step, :math:`\max(|1 - \eta\mu|, |1 - \eta L|)`, and the
steps to shrink the error by ``tol``: about :math:`\frac{\kappa}{2} \log\frac1{\mathrm{tol}}` for
gradient descent and :math:`\frac{\sqrt\kappa}{2} \log\frac1{\mathrm{tol}}` for heavy ball.
This module runs the optimizers to measure both:

* :func:`contraction_rates`: :math:`(\|x_T - x^\star\| / \|x_0 - x^\star\|)^{1/T}` for many learning
  rates at once;
* :func:`kappa_sweep`: the steps each method needs, for many condition numbers at once.

The runs use the training contract of :mod:`lessons.train` and the registry of :mod:`lessons.optimizers`,
which is why these experiments live here and not next to the theory: :mod:`lessons.first_order` stays
below the training loops.

Example::

    >>> from lessons import first_order, problems, rates
    >>> p = problems.quadratic(10.0)  # curvatures 0.1 and 1
    >>> [round(float(r), 2) for r in rates.contraction_rates(p, [0.5, 1.0], num_steps=100)]
    [0.95, 0.9]
    >>> [first_order.gd_rate(lr, *p.curvature) for lr in (0.5, 1.0)]  # the theory
    [0.95, 0.9]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lessons import optimizers, train
from lessons.checks import check_fraction, check_learning_rate, check_momentum, check_positive_int, concrete
from lessons.first_order import gd_optimal, heavy_ball, heavy_ball_optimal, steps_predicted
from lessons.problems import Problem, quadratic


def contraction_rates(problem, learning_rates, *, num_steps: int = 200, momentum: float | None = None):
    r"""Measured contraction per step, :math:`(\|x_T - x^\star\| / \|x_0 - x^\star\|)^{1/T}`, for each learning rate.

    Gradient descent (or heavy ball with the given ``momentum``) runs ``num_steps`` steps on
    ``problem`` from its default start, for all learning rates at once (one vmapped, compiled scan).
    A value above 1 means the run diverges.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a lessons.problems.Problem, e.g. problems.quadratic(10.0), got {problem!r:.60}")
    if np.ndim(learning_rates) != 1 or np.size(learning_rates) == 0:
        raise ValueError(f"learning_rates must be a non-empty 1-D sequence, got shape {np.shape(learning_rates)}")
    for lr in learning_rates:
        check_learning_rate(lr, name="learning_rates")
    lrs = jnp.asarray(learning_rates, dtype=jnp.float32)
    if momentum is not None:
        check_momentum(momentum)
    check_positive_int(num_steps, "num_steps")
    x0 = jnp.asarray(problem.start, dtype=jnp.float32)
    x_star = jnp.asarray(problem.minimisers[0], dtype=jnp.float32)

    method = optimizers.get("GD" if momentum is None else "Heavy ball")
    objective, optimizer = train.Objective.of(problem.value), method.transformation()
    fixed = {} if momentum is None else {"momentum": momentum}

    def ratio(lr):
        # The learning rate lives in the optimizer state: one compiled run, vmapped over the states.
        chunk = train.advance(objective, optimizer, x0, method.init(x0, learning_rate=lr, **fixed), num_steps=num_steps)
        return jnp.linalg.norm(chunk.params - x_star) / jnp.linalg.norm(x0 - x_star)

    ratios = jax.jit(jax.vmap(ratio))(lrs)
    return jnp.asarray(ratios) ** (1.0 / num_steps)


class KappaSweep(NamedTuple):
    """Measured and predicted steps to a relative tolerance, for each condition number."""

    kappas: jnp.ndarray
    gd_steps: jnp.ndarray
    heavy_ball_steps: jnp.ndarray
    gd_predicted: jnp.ndarray
    heavy_ball_predicted: jnp.ndarray


def _quadratic_value(x, H):
    return 0.5 * x @ H @ x


_QUADRATIC = train.Objective(function=_quadratic_value, takes_data=True)
"""The quadratic :math:`\tfrac12 x^\top H x` with :math:`H` passed as data: one objective for every condition number."""


def kappa_sweep(kappas, *, tol: float = 1e-4, max_steps: int = 200_000, angle: float = math.pi / 6) -> KappaSweep:
    """Count the steps GD and heavy ball (both optimally tuned) need to shrink the error by ``tol``.

    The problem is :func:`lessons.problems.quadratic` (curvatures ``1/kappa`` and ``1``) from its
    default start. All condition numbers run in one compiled, vmapped ``while_loop``.
    """
    kappas = [concrete(k, "kappas") for k in kappas]
    if not kappas or min(kappas) < 1:
        raise ValueError(f"kappas must be a non-empty list of numbers >= 1, got {kappas}")
    check_fraction(tol, "tol")
    check_positive_int(max_steps, "max_steps")
    x0 = jnp.asarray(quadratic(1.0, angle=angle).start)
    c, s = math.cos(angle), math.sin(angle)
    R = jnp.array([[c, -s], [s, c]], dtype=x0.dtype)

    def count(kappa, lr, beta):
        H = R @ jnp.diag(jnp.stack([1.0 / kappa, jnp.ones_like(kappa)])) @ R.T  # the problem's data
        return train.steps_to_tolerance(
            _QUADRATIC, x0, jnp.zeros(2, x0.dtype), heavy_ball(lr, beta), tol=tol, max_steps=max_steps, data=H
        )

    gd = [gd_optimal(1 / k, 1.0) for k in kappas]
    hb = [heavy_ball_optimal(1 / k, 1.0) for k in kappas]
    k_arr = jnp.asarray(kappas, dtype=x0.dtype)
    counter = jax.jit(jax.vmap(count))
    gd_steps = counter(k_arr, jnp.asarray([t.learning_rate for t in gd], x0.dtype), jnp.zeros_like(k_arr))
    hb_steps = counter(
        k_arr,
        jnp.asarray([t.learning_rate for t in hb], x0.dtype),
        jnp.asarray([t.momentum for t in hb], x0.dtype),
    )
    return KappaSweep(
        kappas=k_arr,
        gd_steps=gd_steps,
        heavy_ball_steps=hb_steps,
        gd_predicted=jnp.asarray([steps_predicted(t.rate, tol) for t in gd]),
        heavy_ball_predicted=jnp.asarray([steps_predicted(t.rate, tol) for t in hb]),
    )
