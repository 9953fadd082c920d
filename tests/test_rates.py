"""Chapter 1's measurements (lessons.rates): contraction and steps to tolerance against lessons.first_order's theory."""

import jax.numpy as jnp
import numpy as np
import pytest

from lessons import first_order, problems, rates


def test_contraction_rates_match_theory():
    p = problems.quadratic(20.0)
    lrs = np.linspace(0.1, 1.9, 10)
    measured = np.asarray(rates.contraction_rates(p, lrs, num_steps=200))
    predicted = [first_order.gd_rate(lr, *p.curvature) for lr in lrs]
    np.testing.assert_allclose(measured, predicted, rtol=0.02)


def test_contraction_rates_with_momentum_match_the_heavy_ball_theory():
    # With Polyak's tuning both eigen-directions contract at (sqrt(kappa) - 1) / (sqrt(kappa) + 1), but the
    # iteration matrix has a double eigenvalue there (a Jordan block): the error goes like T r^T, so the
    # measured rate sits a factor (c T)^(1/T) above r (5% at T = 100). Longer runs underflow float32.
    p = problems.quadratic(25.0)
    t = first_order.heavy_ball_optimal(*p.curvature)
    measured = float(rates.contraction_rates(p, [t.learning_rate], num_steps=100, momentum=t.momentum)[0])
    assert t.rate < measured < 1.06 * t.rate
    assert measured < first_order.gd_optimal(*p.curvature).rate


def test_heavy_ball_beats_gd_as_sqrt_kappa():
    sweep = rates.kappa_sweep([10.0, 100.0, 1000.0, 10000.0], tol=1e-6)
    gd = first_order.loglog_slope(sweep.kappas, sweep.gd_steps)
    hb = first_order.loglog_slope(sweep.kappas, sweep.heavy_ball_steps)
    assert 0.95 < gd < 1.05
    assert 0.4 < hb < 0.65
    np.testing.assert_allclose(sweep.gd_steps, sweep.gd_predicted, rtol=0.05)
    # a direct NumPy count at one kappa, as an independent reference for the vmapped while_loop
    p = problems.quadratic(100.0)
    H = np.asarray(p.hessian(jnp.zeros(2)))
    t = first_order.gd_optimal(0.01, 1.0)
    x, k = np.asarray(p.start, float), 0
    while np.linalg.norm(x) > 1e-6 * np.linalg.norm(p.start):
        x, k = x - t.learning_rate * H @ x, k + 1
    assert int(sweep.gd_steps[1]) == k


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: rates.kappa_sweep([10.0], tol=2.0), "tol"),
        (lambda: rates.kappa_sweep([0.5]), "kappas"),
        (lambda: rates.kappa_sweep([10.0], max_steps=0), "max_steps"),
        (lambda: rates.contraction_rates(problems.quadratic(2.0), [0.1, -1.0]), "learning_rates"),
        (lambda: rates.contraction_rates(problems.quadratic(2.0), []), "learning_rates"),
        (lambda: rates.contraction_rates(problems.quadratic(2.0), [0.1], momentum=1.0), "momentum"),
        (lambda: rates.contraction_rates(problems.quadratic(2.0), [0.1], num_steps=0), "num_steps"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
