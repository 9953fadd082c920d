"""Newton's method and its building blocks: HVPs (lessons.autodiff) against finite differences and
jax.hessian, Newton steps against NumPy solves, CG (lessons.linalg) against a textbook NumPy loop,
Newton-CG's damping and step rejection, and the cost measurements (lessons.costs)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lessons import autodiff, checks, costs, data, first_order, linalg, nets, newton, problems, train


@pytest.fixture(scope="module")
def mlp_problem():
    x, y = data.two_spirals(40, key=jax.random.key(0))
    x, y = x.astype(jnp.float64), y.astype(jnp.float64)
    params = nets.init_mlp([2, 5, 4, 1], key=jax.random.key(1), dtype=jnp.float64)
    return nets.classifier_loss(x, y), params


def random_like(params, seed):
    flat, unravel = ravel_pytree(params)
    return unravel(jnp.asarray(np.random.default_rng(seed).normal(size=flat.size)))


@pytest.mark.parametrize("method", [autodiff.hvp, autodiff.hvp_reverse_over_reverse, autodiff.hvp_reverse_over_forward])
def test_hvps_match_finite_differences_and_jax_hessian(mlp_problem, method):
    f, params = mlp_problem
    v = random_like(params, 0)
    flat, unravel = ravel_pytree(params)
    vf, _ = ravel_pytree(v)
    got, _ = ravel_pytree(method(f, params, v))
    dense = jax.hessian(lambda w: f(unravel(w)))(flat)
    np.testing.assert_allclose(got, dense @ vf, rtol=1e-9, atol=1e-12)
    g = jax.grad(lambda w: f(unravel(w)))
    eps = 1e-5
    fd = (g(flat + eps * vf) - g(flat - eps * vf)) / (2 * eps)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-8)


def test_hessian_matrix_and_flat_hvp(mlp_problem):
    f, params = mlp_problem
    H = np.asarray(autodiff.hessian_matrix(f, params))
    flat, unravel = ravel_pytree(params)
    np.testing.assert_allclose(H, jax.hessian(lambda w: f(unravel(w)))(flat), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    matvec, dim = autodiff.flat_hvp(f, params)
    v = np.random.default_rng(1).normal(size=dim)
    assert dim == flat.size
    np.testing.assert_allclose(matvec(jnp.asarray(v)), H @ v, rtol=1e-10, atol=1e-12)
    # against the hand-written Hessian of Rosenbrock
    r = problems.rosenbrock()
    x = jnp.array([0.3, -0.7])
    np.testing.assert_allclose(autodiff.hessian_matrix(r.value, x), r.hessian(x), rtol=1e-12)


def test_hvp_rejects_a_vector_of_the_wrong_shape(mlp_problem):
    f, params = mlp_problem
    with pytest.raises(ValueError, match="v must be a pytree shaped like params"):
        autodiff.hvp(f, params, jnp.ones(3))
    bad = [(W, b[:-1]) for W, b in params]
    with pytest.raises(ValueError, match="shaped like params"):
        autodiff.hvp(f, params, bad)


def spd(n, seed=0, low=0.1, high=10.0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return Q @ np.diag(rng.uniform(low, high, n)) @ Q.T


def step(opt, f, x):
    updates, _ = opt.update(jax.grad(f)(x), opt.init(x), x, value_fn=f)
    return x + updates


def test_newton_solves_a_quadratic_in_one_step():
    A, b = spd(5, kappa_seed := 3, 1e-3, 1e3), np.arange(5.0)
    del kappa_seed
    f = lambda x: 0.5 * x @ jnp.asarray(A) @ x - jnp.asarray(b) @ x
    x1 = step(newton.newton(), f, jnp.ones(5))
    np.testing.assert_allclose(x1, np.linalg.solve(A, b), rtol=1e-8)


def test_damped_newton_step_matches_numpy():
    A, b = spd(4, 1), np.ones(4)
    f = lambda x: 0.5 * x @ jnp.asarray(A) @ x - jnp.asarray(b) @ x + 0.1 * jnp.sum(x**4)
    x0 = np.array([0.5, -0.2, 0.1, 0.3])
    H = A + np.diag(1.2 * x0**2)
    g = A @ x0 - b + 0.4 * x0**3
    np.testing.assert_allclose(
        step(newton.newton(0.5, damping=2.0), f, jnp.asarray(x0)), x0 - 0.5 * np.linalg.solve(H + 2 * np.eye(4), g), rtol=1e-10
    )


def test_newton_goes_to_the_saddle_and_saddle_free_newton_away():
    p = problems.saddle()
    x0 = jnp.array([0.5, 0.1])
    x_newton = step(newton.newton(), p.value, x0)
    x_free = step(newton.saddle_free_newton(), p.value, x0)
    assert abs(x_newton[1]) < abs(x0[1]) and abs(x_newton[0]) < 1e-12  # towards the saddle at the origin
    assert abs(x_free[1]) > abs(x0[1])  # away along the negative-curvature direction
    H, g = np.asarray(p.hessian(x0)), np.asarray(p.grad(x0))
    lam, V = np.linalg.eigh(H)
    np.testing.assert_allclose(x_free, x0 - V @ ((V.T @ g) / np.abs(lam)), rtol=1e-12)
    # run to the end: Newton converges to the saddle, saddle-free Newton to a minimum
    end_newton = train.trajectory(p.value, x0, newton.newton(), 20).points[-1]
    end_free = train.trajectory(p.value, x0, newton.saddle_free_newton(), 40).points[-1]
    np.testing.assert_allclose(end_newton, [0.0, 0.0], atol=1e-10)
    np.testing.assert_allclose(end_free, [0.0, 1.0], atol=1e-8)


def test_newton_converges_quadratically_on_rosenbrock():
    p = problems.rosenbrock()
    errors = np.linalg.norm(train.trajectory(p.value, jnp.asarray(p.start), newton.newton(), 8).points - 1.0, axis=1)
    tail = [(e0, e1) for e0, e1 in zip(errors[:-1], errors[1:], strict=True) if 1e-12 < e0 < 0.5 and e1 > 1e-14]
    assert len(tail) >= 2
    for e0, e1 in tail:
        assert e1 <= 5.0 * e0**2  # the error squares from one step to the next
    assert errors[-1] < 1e-12


def test_levenberg_marquardt_only_accepts_decreases_and_adapts_damping():
    p = problems.rosenbrock()
    opt = newton.levenberg_marquardt(10.0)
    x, state = jnp.asarray(p.start), opt.init(jnp.asarray(p.start))
    values, dampings = [float(p.value(x))], []
    for _ in range(60):
        updates, state = opt.update(p.grad(x), state, x, value_fn=p.value)
        x = x + updates
        values.append(float(p.value(x)))
        dampings.append(float(state.damping))
    assert np.all(np.diff(values) <= 0)
    assert values[-1] < 1e-20
    # trusted on the way in (the damping shrank); at the exact minimum no step reduces f, so it grows again
    assert min(dampings) < 10.0 * (2 / 3) ** 8


def cg_reference(A, b, iters):
    x, r = np.zeros_like(b), b.copy()
    p = r.copy()
    for _ in range(iters):
        Ap = A @ p
        alpha = (r @ r) / (p @ Ap)
        x, r_new = x + alpha * p, r - alpha * Ap
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
    return x


@pytest.mark.parametrize("iters", [1, 3, 7])
def test_cg_iterates_match_a_textbook_loop(iters):
    A, b = spd(12, 4), np.random.default_rng(5).normal(size=12)
    res = linalg.conjugate_gradient(lambda v: jnp.asarray(A) @ v, jnp.asarray(b), max_iters=iters, tol=1e-30)
    assert int(res.iterations) == iters and not bool(res.negative_curvature)
    np.testing.assert_allclose(res.x, cg_reference(A, b, iters), rtol=1e-9)


def test_cg_solves_in_as_many_steps_as_distinct_eigenvalues():
    rng = np.random.default_rng(6)
    Q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    A = Q @ np.diag(np.repeat([1.0, 4.0, 9.0], [7, 7, 6])) @ Q.T
    b = rng.normal(size=20)
    res = linalg.conjugate_gradient(lambda v: jnp.asarray(A) @ v, jnp.asarray(b), max_iters=20, tol=1e-10)
    assert int(res.iterations) == 3
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-8)


def test_cg_stops_at_negative_curvature():
    A = np.diag([2.0, -1.0, 3.0])
    b = np.array([1.0, 0.0, 0.0])  # first direction has positive curvature
    res = linalg.conjugate_gradient(lambda v: jnp.asarray(A) @ v, jnp.asarray(np.array([0.0, 1.0, 0.0])), max_iters=5)
    assert bool(res.negative_curvature) and int(res.iterations) == 1
    np.testing.assert_allclose(res.x, [0.0, 1.0, 0.0])  # first step: fall back to b (steepest descent)
    res = linalg.conjugate_gradient(lambda v: jnp.asarray(A) @ v, jnp.asarray(b + np.array([0, 1.0, 0])), max_iters=5)
    assert bool(res.negative_curvature)
    assert np.all(np.isfinite(res.x))


def test_newton_cg_with_fixed_small_damping_is_newton_on_a_quadratic():
    A, b = spd(6, 7), np.ones(6)
    f = lambda x: 0.5 * x @ jnp.asarray(A) @ x - jnp.asarray(b) @ x
    opt = newton.newton_cg(damping=1e-12, max_cg_iters=6, cg_tol=1e-14, damping_decrease=1.0, damping_increase=1.0)
    x1 = step(opt, f, jnp.zeros(6))
    np.testing.assert_allclose(x1, np.linalg.solve(A, b), rtol=1e-6)


def test_newton_cg_trains_the_mlp_and_never_increases_the_loss(mlp_problem):
    f, params = mlp_problem
    h = train.train(
        f,
        params,
        newton.newton_cg(damping=1.0, max_cg_iters=20),
        num_steps=60,
        progress=False,
        record=lambda p, s: (s.cg_iterations, s.accepted),
    )
    assert not h.diverged and h.loss[-1] < 0.3 * h.loss[0]
    assert np.all(np.diff(h.loss) <= 1e-12)  # rejected steps are zero updates
    iterations, accepted = h.records
    assert iterations.shape == (60,) and 1 <= iterations.max() <= 20
    assert accepted.any()
    gd = train.train(f, params, first_order.gradient_descent(0.5), num_steps=60, progress=False)
    assert h.loss[-1] < gd.loss[-1]


def test_newton_cg_chains_with_optax_and_needs_the_loss(mlp_problem):
    f, params = mlp_problem
    chained = optax.chain(newton.newton_cg(damping=1.0), optax.scale(0.5))
    h = train.train(f, params, chained, num_steps=5, progress=False)
    assert h.loss[-1] < h.loss[0]
    opt = newton.newton_cg()
    with pytest.raises(ValueError, match="value_fn"):
        opt.update(jax.grad(f)(params), opt.init(params), params)


def test_measured_costs_scale_as_theory_says():
    x, y = data.two_spirals(64, key=jax.random.key(2))
    c = costs.measure_costs([4, 8, 16], x, y, key=jax.random.key(3), repeats=1)
    assert list(c.num_params) == [37, 105, 337]
    assert 0.8 < first_order.loglog_slope(c.num_params, c.hvp_flops) < 1.2
    assert 1.8 < first_order.loglog_slope(c.num_params, c.hessian_flops) < 2.3
    assert np.all((2.0 < c.hvp_flops / c.grad_flops) & (c.hvp_flops / c.grad_flops < 4.0))
    assert np.all(c.solve_seconds > 0) and np.all(np.isfinite(c.hessian_seconds))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: newton.newton(0.0), "learning_rate"),
        (lambda: newton.newton(damping=-1.0), "damping"),
        (lambda: newton.saddle_free_newton(damping=float("nan")), "damping"),
        (lambda: newton.newton_cg(max_cg_iters=0), "max_cg_iters"),
        (lambda: newton.newton_cg(cg_tol=0.0), "cg_tol"),
        (lambda: newton.newton_cg(damping_decrease=1.5), "damping_decrease"),
        (lambda: newton.levenberg_marquardt(1.0, decrease=1.2), "decrease"),
        (lambda: linalg.conjugate_gradient(lambda v: v, jnp.ones(3), max_iters=0), "max_iters"),
        (lambda: linalg.conjugate_gradient(lambda v: v[:2], jnp.ones(3), max_iters=2), "matvec"),
        (lambda: costs.measure_costs([], jnp.ones((2, 2)), jnp.ones(2), key=jax.random.key(0)), "widths"),
    ],
)
def test_bad_input_names_the_argument(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("make", [lambda: newton.newton_cg(1.0), lambda: newton.levenberg_marquardt()])
def test_float32_parameters_with_a_float64_loss_keep_their_dtypes(make):
    # A float32 model on float64 data (x64 on) gives a float64 loss: the state and step stay float32, so
    # the optimizer runs inside lax.scan (whose carry must keep its type).
    data = jnp.asarray(np.linspace(-1.0, 1.0, 5))  # float64
    value_fn = lambda p: jnp.sum((p["w"] * data - 0.3) ** 2) + jnp.sum(p["w"] ** 4)
    params = {"w": jnp.ones(5, jnp.float32)}
    opt = make()
    state = opt.init(params)
    updates, new_state = opt.update(jax.grad(value_fn)(params), state, params, value_fn=value_fn)
    assert updates["w"].dtype == jnp.float32
    assert [leaf.dtype for leaf in jax.tree.leaves(new_state)] == [leaf.dtype for leaf in jax.tree.leaves(state)]


@pytest.mark.parametrize(
    "name, home",
    [
        ("hvp", autodiff),
        ("hvp_reverse_over_reverse", autodiff),
        ("hvp_reverse_over_forward", autodiff),
        ("hessian_matrix", autodiff),
        ("flat_hvp", autodiff),
        ("conjugate_gradient", linalg),
        ("CGResult", linalg),
        ("compiled_flops", costs),
        ("measure_costs", costs),
        ("Costs", costs),
        ("check_damping", checks),
    ],
)
def test_newton_re_exports_its_building_blocks(name, home):
    # The chapters and widgets call ``newton.hvp``, ``newton.measure_costs``, ...: the same objects.
    assert getattr(newton, name) is getattr(home, name)
    assert name in newton.__all__
