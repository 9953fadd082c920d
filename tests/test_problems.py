"""The 2-D test functions: hand-written derivatives against finite differences and autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import problems

ALL = [
    problems.quadratic(7.0),
    problems.quadratic(1000.0, angle=0.3),
    problems.rosenbrock(),
    problems.saddle(),
    problems.himmelblau(),
]
IDS = ["quadratic7", "quadratic1000", "rosenbrock", "saddle", "himmelblau"]


def central_gradient(f, x, h=1e-6):
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * h)
    return g


def sample_points(problem, n=6, seed=0):
    (x0, x1), (y0, y1) = problem.bounds
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], axis=1)


@pytest.mark.parametrize("problem", ALL, ids=IDS)
def test_gradient_matches_finite_differences(problem):
    for x in sample_points(problem):
        fd = central_gradient(problem.value, x)
        np.testing.assert_allclose(problem.grad(jnp.asarray(x)), fd, rtol=1e-6, atol=1e-5 * (1 + np.abs(fd).max()))


@pytest.mark.parametrize("problem", ALL, ids=IDS)
def test_hessian_matches_finite_differences_of_gradient_and_autodiff(problem):
    for x in sample_points(problem, seed=1):
        H = np.asarray(problem.hessian(jnp.asarray(x)))
        fd = np.stack([central_gradient(lambda z, i=i: problem.grad(z)[i], x) for i in range(2)])
        np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-5 * (1 + np.abs(fd).max()))
        np.testing.assert_allclose(H, jax.hessian(problem.value)(jnp.asarray(x)), rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(H, H.T, atol=1e-12)


@pytest.mark.parametrize("problem", ALL, ids=IDS)
def test_minimisers_are_stationary_and_minimal(problem):
    for m in problem.minimisers:
        x = jnp.asarray(m)
        assert np.linalg.norm(problem.grad(x)) < 1e-9
        assert np.linalg.eigvalsh(np.asarray(problem.hessian(x))).min() > 0
        assert float(problem.value(x)) == pytest.approx(problem.min_value, abs=1e-12)
    # no sampled point is below the minimum value
    pts = sample_points(problem, n=200, seed=2)
    assert np.all(np.asarray(jax.vmap(problem.value)(jnp.asarray(pts))) >= problem.min_value - 1e-12)


def test_saddle_is_a_saddle():
    p = problems.saddle()
    for s in p.saddles:
        ev = np.linalg.eigvalsh(np.asarray(p.hessian(jnp.asarray(s))))
        assert np.linalg.norm(p.grad(jnp.asarray(s))) < 1e-12
        assert ev[0] < 0 < ev[1]


@pytest.mark.parametrize("kappa", [1.0, 10.0, 1e4])
def test_quadratic_curvature_is_as_documented(kappa):
    p = problems.quadratic(kappa)
    ev = np.linalg.eigvalsh(np.asarray(p.hessian(jnp.zeros(2))))
    np.testing.assert_allclose(ev, [1.0 / kappa, 1.0], rtol=1e-12)
    assert p.curvature == pytest.approx((1.0 / kappa, 1.0))


def test_grid_matches_direct_evaluation():
    p = problems.rosenbrock()
    xs, ys, Z = p.grid(9)
    for i in (0, 4, 8):
        for j in (0, 3, 8):
            assert Z[i, j] == pytest.approx(float(p.value(jnp.array([xs[j], ys[i]]))), rel=1e-12)


@pytest.mark.parametrize("kappa", [0.5, 0.0, -3.0, float("nan"), float("inf")])
def test_bad_kappa_names_the_argument(kappa):
    with pytest.raises(ValueError, match="kappa"):
        problems.quadratic(kappa)


@pytest.mark.parametrize("shape", [(3,), (1, 2), ()])
def test_wrong_shaped_point_names_the_argument(shape):
    with pytest.raises(ValueError, match="x must be a point of shape"):
        problems.rosenbrock().value(jnp.zeros(shape))


def test_make_by_name():
    assert problems.make("saddle").name == "saddle"
    assert problems.make("quadratic", kappa=3.0).curvature[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="name"):
        problems.make("booth")
