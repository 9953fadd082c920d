"""First-order optimizers: against NumPy loops in float64, optax's own SGD, and the rate theory."""

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lessons import checks, first_order, problems, train
from lessons.first_order import gradient_descent, heavy_ball, nesterov


def spd(n, kappa, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return Q @ np.diag(np.geomspace(1.0, kappa, n)) @ Q.T


def run(opt, grad, x0, steps):
    x, state, xs = jnp.asarray(x0), opt.init(jnp.asarray(x0)), [np.asarray(x0)]
    for _ in range(steps):
        updates, state = opt.update(grad(x), state, x)
        x = optax.apply_updates(x, updates)
        xs.append(np.asarray(x))
    return np.array(xs)


def test_gradient_descent_equals_numpy_loop():
    H = spd(4, 30.0)
    x0 = np.arange(1.0, 5.0)
    ours = run(gradient_descent(0.05), lambda x: jnp.asarray(H) @ x, x0, 50)
    ref = [x0]
    for _ in range(50):
        ref.append(ref[-1] - 0.05 * H @ ref[-1])
    np.testing.assert_allclose(ours, np.array(ref), rtol=1e-12, atol=1e-14)


def test_heavy_ball_equals_polyak_recursion():
    H = spd(3, 50.0, seed=1)
    x0 = np.array([1.0, -2.0, 0.5])
    lr, beta = 0.02, 0.85
    ours = run(heavy_ball(lr, beta), lambda x: jnp.asarray(H) @ x, x0, 60)
    prev, x, ref = x0, x0, [x0]
    for _ in range(60):
        prev, x = x, x - lr * H @ x + beta * (x - prev)
        ref.append(x)
    np.testing.assert_allclose(ours, np.array(ref), rtol=1e-11, atol=1e-13)


def test_nesterov_equals_sutskever_form():
    H = spd(3, 20.0, seed=2)
    x0 = np.array([0.3, 1.0, -1.0])
    lr, beta = 0.05, 0.9
    ours = run(nesterov(lr, beta), lambda x: jnp.asarray(H) @ x, x0, 40)
    # Sutskever et al.: v <- beta v - lr grad(theta + beta v); theta <- theta + v. Our iterate is phi = theta + beta v.
    theta, v, ref = x0.copy(), np.zeros(3), [x0]
    for _ in range(40):
        v = beta * v - lr * H @ (theta + beta * v)
        theta = theta + v
        ref.append(theta + beta * v)
    np.testing.assert_allclose(ours, np.array(ref), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (gradient_descent(0.1), optax.sgd(0.1)),
        (heavy_ball(0.1, 0.9), optax.sgd(0.1, momentum=0.9)),
        (nesterov(0.1, 0.9), optax.sgd(0.1, momentum=0.9, nesterov=True)),
    ],
    ids=["gd", "heavy_ball", "nesterov"],
)
def test_same_updates_as_optax_sgd(ours, theirs):
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(0.5)}
    s1, s2 = ours.init(params), theirs.init(params)
    rng = np.random.default_rng(3)
    for _ in range(5):
        g = {"w": jnp.asarray(rng.normal(size=2)), "b": jnp.asarray(rng.normal())}
        u1, s1 = ours.update(g, s1, params)
        u2, s2 = theirs.update(g, s2, params)
        for k in params:
            np.testing.assert_allclose(u1[k], u2[k], rtol=1e-12)


def test_chains_with_optax_and_trains():
    opt = optax.chain(optax.clip_by_global_norm(10.0), heavy_ball(0.1, 0.5))
    H = jnp.asarray(spd(3, 5.0))
    h = train.train(lambda w: 0.5 * w @ H @ w, jnp.ones(3), opt, num_steps=200, progress=False)
    assert h.loss[-1] < 1e-10 * h.loss[0]
    # and inside optax's own wrappers
    masked = optax.masked(gradient_descent(0.1), {"a": True, "b": False})
    updates, _ = masked.update({"a": jnp.ones(2), "b": jnp.ones(2)}, masked.init({"a": jnp.ones(2), "b": jnp.ones(2)}))
    np.testing.assert_allclose(updates["a"], -0.1)
    np.testing.assert_allclose(updates["b"], 1.0)


@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_gd_converges_at_the_theoretical_rate(kappa):
    mu, L = 1.0 / kappa, 1.0
    for lr in (0.3, 1.0, 2.0 / (L + mu), 1.95):
        p = problems.quadratic(kappa)
        traj = train.trajectory(p.value, jnp.asarray(p.start), gradient_descent(lr), 300, blowup=np.inf)
        measured = (np.linalg.norm(traj.points[-1]) / np.linalg.norm(traj.points[0])) ** (1 / 300)
        assert measured == pytest.approx(first_order.gd_rate(lr, mu, L), rel=0.01)


def test_stability_limit_is_sharp():
    p = problems.quadratic(10.0)
    below = train.trajectory(p.value, jnp.asarray(p.start), gradient_descent(1.98), 2000, blowup=np.inf)
    above = train.trajectory(p.value, jnp.asarray(p.start), gradient_descent(2.02), 2000, blowup=np.inf)
    assert np.linalg.norm(below.points[-1]) < 1e-6
    assert np.linalg.norm(above.points[-1]) > 1e6
    assert first_order.stability_limit(4.0) == 0.5


def test_heavy_ball_optimal_rate_is_the_spectral_radius():
    mu, L = 0.01, 1.0
    t = first_order.heavy_ball_optimal(mu, L)
    radii = []
    for lam in np.linspace(mu, L, 41):
        # companion matrix of c_{t+1} = (1 + beta - lr lam) c_t - beta c_{t-1}
        M = np.array([[1 + t.momentum - t.learning_rate * lam, -t.momentum], [1.0, 0.0]])
        radii.append(np.abs(np.linalg.eigvals(M)).max())
    assert max(radii) == pytest.approx(t.rate, rel=1e-6)
    assert t.rate == pytest.approx((math.sqrt(100) - 1) / (math.sqrt(100) + 1))
    g = first_order.gd_optimal(mu, L)
    assert g.rate == pytest.approx(first_order.gd_rate(g.learning_rate, mu, L))


@pytest.mark.parametrize("make", [gradient_descent, heavy_ball, nesterov])
@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_learning_rate_names_the_argument(make, lr):
    with pytest.raises(ValueError, match="learning_rate"):
        make(lr)


@pytest.mark.parametrize("momentum", [-0.1, 1.0, 1.5])
def test_bad_momentum_names_the_argument(momentum):
    with pytest.raises(ValueError, match="momentum"):
        heavy_ball(0.1, momentum)
    with pytest.raises(ValueError, match="momentum"):
        nesterov(0.1, momentum)


def test_bad_theory_arguments():
    with pytest.raises(ValueError, match="mu"):
        first_order.gd_optimal(0.0, 1.0)
    with pytest.raises(ValueError, match="tol"):
        first_order.steps_predicted(0.5, 2.0)
    with pytest.raises(ValueError, match="L must"):
        first_order.stability_limit(0.0)


def test_first_order_re_exports_the_checks_and_stays_below_the_training_loops():
    # Widgets call ``first_order.check_learning_rate``; the experiments that run train live in lessons.rates.
    assert first_order.check_learning_rate is checks.check_learning_rate
    assert first_order.check_momentum is checks.check_momentum
    assert not hasattr(first_order, "contraction_rates") and not hasattr(first_order, "kappa_sweep")
