"""LQR: the Riccati recursion against scipy's discrete algebraic Riccati equation and against the whole
finite-horizon problem solved as one dense quadratic program; a network's step as an LQR against the dense
damped GGN and Hessian solves. Float64 throughout (tests/conftest.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

from lessons import lqr, nets
from lessons.natural_gradient import ggn_factor, output_hessian_factor

# --- references ------------------------------------------------------------------------------------


def dense_qp(A, B, Q, R, M, Q_final, c_final, x0):
    """The LQR as one quadratic program in all the controls U: x_i = Phi_i x0 + G_i U, minimise the cost.

    Returns (the optimal controls per stage, the optimal cost, the Hessian in U). Sizes may change per stage.
    """
    N, sizes = len(A), [a.shape[1] for a in A] + [Q_final.shape[0]]
    controls = [b.shape[1] for b in B]
    starts = np.concatenate([[0], np.cumsum(controls)]).astype(int)
    select = [np.eye(starts[-1])[starts[i] : starts[i + 1]] for i in range(N)]  # E_i U = u_i
    Phi, G = [np.eye(sizes[0])], [np.zeros((sizes[0], starts[-1]))]
    for i in range(N):
        Phi.append(A[i] @ Phi[i])
        G.append(A[i] @ G[i] + B[i] @ select[i])
    H = G[N].T @ Q_final @ G[N]
    b = G[N].T @ (Q_final @ Phi[N] @ x0 + c_final)
    const = 0.5 * x0 @ Phi[N].T @ Q_final @ Phi[N] @ x0 + c_final @ Phi[N] @ x0
    for i in range(N):
        E, MG = select[i], M[i] @ G[i]
        H = H + G[i].T @ Q[i] @ G[i] + E.T @ MG + MG.T @ E + E.T @ R[i] @ E
        b = b + (G[i].T @ Q[i] + E.T @ M[i]) @ Phi[i] @ x0
        const = const + 0.5 * x0 @ Phi[i].T @ Q[i] @ Phi[i] @ x0
    U = -np.linalg.solve(H, b)
    return [E @ U for E in select], const + 0.5 * U @ H @ U + b @ U, H


def random_problem(sizes, controls, *, cross=True, seed=0):
    """A random time-varying LQR as lists (stage i: n_i = sizes[i], m_i = controls[i])."""
    rng = np.random.default_rng(seed)
    A, B, Q, R, M = [], [], [], [], []
    for n, n_next, m in zip(sizes[:-1], sizes[1:], controls, strict=True):
        A.append(rng.normal(size=(n_next, n)) / np.sqrt(n))
        B.append(rng.normal(size=(n_next, m)))
        C, D = rng.normal(size=(n, n)), rng.normal(size=(m, m))
        Q.append(C @ C.T / n)
        R.append(D @ D.T / m + 0.5 * np.eye(m))
        M.append(0.3 * rng.normal(size=(m, n)) if cross else np.zeros((m, n)))
    C = rng.normal(size=(sizes[-1], sizes[-1]))
    return A, B, Q, R, M, C @ C.T / sizes[-1], rng.normal(size=sizes[-1])


def stacked(problem):
    A, B, Q, R, M, Q_final, c_final = problem
    return [np.stack(a) for a in (A, B, Q, R, M)] + [Q_final, c_final]


# --- the Riccati recursion ------------------------------------------------------------------------


@pytest.mark.parametrize("cross", [False, True])
def test_a_long_horizon_converges_to_the_discrete_algebraic_riccati_equation(cross):
    rng = np.random.default_rng(1)
    n, m, N = 4, 2, 300
    A = rng.normal(size=(n, n))
    A = 1.2 * A / np.abs(np.linalg.eigvals(A)).max()  # unstable open loop: the feedback matters
    B, C, D = rng.normal(size=(n, m)), rng.normal(size=(n, n)), rng.normal(size=(m, m))
    Q, R = C @ C.T + 0.1 * np.eye(n), D @ D.T + 0.5 * np.eye(m)
    M = 0.2 * rng.normal(size=(m, n)) if cross else np.zeros((m, n))
    assert np.linalg.eigvalsh(np.block([[Q, M.T], [M, R]])).min() > 0
    # scipy's cost is x^T Q x + 2 x^T S u + u^T R u: twice ours with S = M^T.
    X = scipy.linalg.solve_discrete_are(A, B, Q, R, s=M.T)
    gain = np.linalg.solve(R + B.T @ X @ B, B.T @ X @ A + M)
    tile = lambda a: np.broadcast_to(a, (N, *a.shape))
    P, K = lqr.riccati(tile(A), tile(B), tile(Q), tile(R), np.zeros((n, n)), M=tile(M) if cross else None)
    assert P.shape == (N + 1, n, n) and K.shape == (N, m, n)
    np.testing.assert_array_equal(np.asarray(P[-1]), np.zeros((n, n)))
    assert np.linalg.norm(np.asarray(P[0]) - X) <= 1e-10 * np.linalg.norm(X)
    assert np.linalg.norm(np.asarray(K[0]) - gain) <= 1e-10 * np.linalg.norm(gain)
    # The stationary closed loop is stable although A is not.
    assert np.abs(np.linalg.eigvals(A - B @ gain)).max() < 1


@pytest.mark.parametrize("cross", [False, True])
def test_riccati_solves_the_finite_horizon_problem_as_one_quadratic_program(cross):
    problem = random_problem([3] * 7, [2] * 6, cross=cross)
    A, B, Q, R, M, Q_final, _ = stacked(problem)
    x0 = np.array([1.0, -2.0, 0.5])
    expected_us, expected_cost, H = dense_qp(*problem[:6], np.zeros(3), x0)
    assert np.linalg.eigvalsh(H).min() > 0
    P, K = lqr.riccati(A, B, Q, R, Q_final, M=M if cross else None)
    xs, us = lqr.rollout(A, B, K, x0)
    assert xs.shape == (7, 3) and us.shape == (6, 2)
    np.testing.assert_allclose(np.asarray(us), np.array(expected_us), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(0.5 * x0 @ np.asarray(P[0]) @ x0, expected_cost, rtol=1e-12)
    np.testing.assert_allclose(float(lqr.cost(Q, R, Q_final, xs, us, M=M if cross else None)), expected_cost, rtol=1e-12)
    # Every state of the optimal trajectory: the recursion's P_i is the cost-to-go from there.
    for i in range(6):
        tail = [a[i:] for a in problem[:5]]
        np.testing.assert_allclose(
            0.5 * xs[i] @ P[i] @ xs[i], dense_qp(*tail, Q_final, np.zeros(3), np.asarray(xs[i]))[1], rtol=1e-10
        )


def test_riccati_affine_solves_the_problem_with_a_linear_terminal_term():
    problem = random_problem([3] * 6, [2] * 5, seed=2)
    A, B, Q, R, M, Q_final, c_final = stacked(problem)
    for x0 in (np.zeros(3), np.array([0.3, 1.0, -1.0])):
        expected_us, expected_cost, _ = dense_qp(*problem, x0)
        solution = lqr.riccati_affine(A, B, Q, R, Q_final, c_final, M=M)
        P, K, s, k, v = solution
        assert (P.shape, K.shape, s.shape, k.shape, v.shape) == ((6, 3, 3), (5, 2, 3), (6, 3), (5, 2), (6,))
        np.testing.assert_allclose(np.asarray(s[-1]), c_final)
        xs, us = lqr.rollout(A, B, K, x0, k=k)
        np.testing.assert_allclose(np.asarray(us), np.array(expected_us), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(0.5 * x0 @ P[0] @ x0 + s[0] @ x0 + v[0], expected_cost, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(float(lqr.cost(Q, R, Q_final, xs, us, M=M, c_final=c_final)), expected_cost, rtol=1e-12)
    # The affine solution's P and K are those of riccati.
    P_plain, K_plain = lqr.riccati(A, B, Q, R, Q_final, M=M)
    np.testing.assert_allclose(np.asarray(solution.P), np.asarray(P_plain), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(solution.K), np.asarray(K_plain), rtol=1e-14)


def test_r_need_not_be_definite_only_s():
    # A negative control cost, outweighed by the terminal cost through B: the problem is still convex.
    problem = list(random_problem([2] * 4, [1] * 3, cross=False, seed=3))
    problem[3] = [-0.05 * np.eye(1)] * 3
    problem[5] = problem[5] + 5 * np.eye(2)
    expected_us, expected_cost, H = dense_qp(*problem, np.array([1.0, 1.0]))
    assert np.linalg.eigvalsh(H).min() > 0
    A, B, Q, R, M, Q_final, c_final = stacked(problem)
    solution = lqr.riccati_affine(A, B, Q, R, Q_final, c_final)
    _, us = lqr.rollout(A, B, solution.K, np.array([1.0, 1.0]), k=solution.k)
    np.testing.assert_allclose(np.asarray(us), np.array(expected_us), rtol=1e-10)
    with pytest.raises(ValueError, match=r"^R .*S_2 is not"):
        lqr.riccati(A, B, Q, R, np.zeros((2, 2)))  # without the terminal cost, S_2 = R_2 < 0


def test_riccati_under_jit_is_the_same():
    A, B, Q, R, M, Q_final, c_final = stacked(random_problem([3] * 5, [2] * 4, seed=4))
    eager = lqr.riccati_affine(A, B, Q, R, Q_final, c_final, M=M)
    traced = jax.jit(lqr.riccati_affine)(A, B, Q, R, Q_final, c_final, M=M)
    for a, b in zip(eager, traced, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-15)


def test_lqr_step_with_stages_of_different_sizes_is_the_dense_quadratic_program():
    problem = random_problem([2, 5, 3, 4], [3, 1, 2], seed=5)
    x0 = np.array([0.5, -1.0])
    expected_us, _, H = dense_qp(*problem, x0)
    assert np.linalg.eigvalsh(H).min() > 0
    A, B, Q, R, M, Q_final, c_final = problem
    xs, us = lqr.lqr_step(A, B, Q, R, Q_final, c_final, M=M, x0=x0)
    assert [x.shape for x in xs] == [(2,), (5,), (3,), (4,)] and [u.shape for u in us] == [(3,), (1,), (2,)]
    for u, e in zip(us, expected_us, strict=True):
        np.testing.assert_allclose(np.asarray(u), e, rtol=1e-10, atol=1e-12)
    # From x0 = 0 only the linear term drives the step; the loop and the scan agree on equal sizes.
    A, B, Q, R, M, Q_final, c_final = random_problem([3] * 5, [2] * 4, seed=6)
    _, us = lqr.lqr_step(A, B, Q, R, Q_final, c_final, M=M)
    solution = lqr.riccati_affine(*stacked((A, B, Q, R, M, Q_final, c_final))[:4], Q_final, c_final, M=np.stack(M))
    _, expected = lqr.rollout(np.stack(A), np.stack(B), solution.K, np.zeros(3), k=solution.k)
    np.testing.assert_allclose(np.stack(us), np.asarray(expected), rtol=1e-12, atol=1e-14)


def test_the_double_integrator_is_the_exact_discretisation_and_lqr_brings_it_to_rest():
    dt = 0.1
    A, B = lqr.double_integrator(dt)
    # Zero-order hold: expm of [[F, G], [0, 0]] dt holds (A, B) in its first rows, for p'' = u.
    F = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    exact = scipy.linalg.expm(F * dt)
    np.testing.assert_allclose(np.asarray(A), exact[:2, :2], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(B), exact[:2, 2:], rtol=1e-14)
    N = 100
    tile = lambda a: jnp.broadcast_to(a, (N, *a.shape))
    P, K = lqr.riccati(tile(A), tile(B), tile(jnp.eye(2)), tile(0.1 * jnp.eye(1)), 100 * jnp.eye(2))
    xs, us = lqr.rollout(tile(A), tile(B), K, jnp.array([1.0, 0.0]))
    assert np.abs(np.asarray(xs[-1])).max() < 1e-2
    assert float(us[0, 0]) < 0  # push back towards the origin


# --- a network's step ---------------------------------------------------------------------------------


CASES = [("squared", (2, 4, 3, 2)), ("logistic", (2, 4, 3, 1)), ("softmax", (2, 4, 3, 3)), ("logistic", (3, 5, 4, 3, 1))]


def network(kind, sizes, n=8, seed=0):
    params = nets.init_mlp(list(sizes), key=jax.random.key(seed), dtype=jnp.float64)
    params = [(W, 0.3 * jax.random.normal(jax.random.key(seed + 10 + i), b.shape, b.dtype)) for i, (W, b) in enumerate(params)]
    x = jax.random.normal(jax.random.key(seed + 1), (n, sizes[0]), jnp.float64)
    if kind == "squared":
        y = 0.5 * jax.random.normal(jax.random.key(seed + 2), (n, sizes[-1]), jnp.float64)
    elif kind == "logistic":
        y = (jnp.arange(n) % 2).astype(jnp.float64)
    else:
        y = jnp.arange(n) % sizes[-1]
    return params, x, y


def mean_loss(params, x, y, kind):
    """The mean loss with optax's losses: independent of lessons.fisher, which network_lqr uses."""
    z = nets.mlp(params, x)
    if kind == "squared":
        return jnp.mean(0.5 * jnp.sum((z - y) ** 2, axis=1))
    if kind == "logistic":
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z[:, 0], y))
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, y))


def flat_derivative(derivative, params, x, y, kind):
    """``derivative`` (jax.grad or jax.hessian) of the mean loss w.r.t. the flattened parameters, compiled."""
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.jit(derivative(lambda w: mean_loss(unravel(w), x, y, kind)))(flat))


def assert_step(step, params, expected):
    assert jax.tree.structure(step) == jax.tree.structure(params)
    got = np.asarray(ravel_pytree(step)[0])
    assert np.linalg.norm(got - expected) <= 1e-10 * np.linalg.norm(expected), np.linalg.norm(got - expected)


@pytest.mark.parametrize(("kind", "sizes"), CASES)
@pytest.mark.parametrize("damping", [1e-3, 1e-1])
def test_the_ggn_lqr_step_is_the_dense_damped_ggn_step(kind, sizes, damping):
    params, x, y = network(kind, sizes)
    g = flat_derivative(jax.grad, params, x, y, kind)
    K = np.asarray(jax.jit(ggn_factor, static_argnums=(0, 3))(nets.mlp, params, x, kind))
    expected = -np.linalg.solve(damping * np.eye(g.size) + K.T @ K, g)
    assert_step(lqr.network_lqr_step(params, x, y, kind, damping, mode="ggn"), params, expected)


@pytest.mark.parametrize(("kind", "sizes"), CASES)
def test_the_newton_lqr_step_is_the_dense_damped_newton_step(kind, sizes):
    params, x, y = network(kind, sizes)
    g, H = (flat_derivative(derivative, params, x, y, kind) for derivative in (jax.grad, jax.hessian))
    damping = 1.0
    # H is indefinite on every case (smallest eigenvalue measured -0.67 to -0.37: the stage terms matter, this is
    # not the GGN); H + I is definite (0.33 to 0.63), which the step needs.
    assert np.linalg.eigvalsh(H).min() < 0
    assert np.linalg.eigvalsh(H + damping * np.eye(g.size)).min() > 0.1
    expected = -np.linalg.solve(H + damping * np.eye(g.size), g)
    assert_step(lqr.network_lqr_step(params, x, y, kind, damping, mode="newton"), params, expected)


def test_the_network_problem_is_built_from_the_output_curvature_and_block_diagonal_dynamics():
    kind, sizes = "softmax", (2, 4, 3, 3)
    params, x, y = network(kind, sizes, n=5)
    n = x.shape[0]
    problem = lqr.network_lqr(params, x, y, kind, damping=0.5)
    S = np.asarray(output_hessian_factor(nets.mlp(params, x), kind))
    expected = scipy.linalg.block_diag(*[s.T @ s / n for s in S])
    np.testing.assert_allclose(np.asarray(problem.Q_final), expected, rtol=1e-12, atol=1e-15)
    z = nets.mlp(params, x)
    c_final = jax.grad(lambda z: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, y)))(z)
    np.testing.assert_allclose(np.asarray(problem.c_final), np.asarray(c_final).reshape(-1), rtol=1e-12, atol=1e-15)
    for i, (A, B, Q, R, M) in enumerate(zip(problem.A, problem.B, problem.Q, problem.R, problem.M, strict=True)):
        d_in, d_out, p = sizes[i], sizes[i + 1], ravel_pytree(params[i])[0].size
        assert A.shape == (n * d_out, n * d_in) and B.shape == (n * d_out, p)
        blocks = np.asarray(A).reshape(n, d_out, n, d_in)
        off = blocks * (1 - np.eye(n))[:, None, :, None]
        assert np.abs(off).max() == 0  # examples do not interact
        assert not np.any(np.asarray(Q)) and not np.any(np.asarray(M))
        np.testing.assert_array_equal(np.asarray(R), 0.5 * np.eye(p))
    assert len(problem.A) == len(params)


def test_the_step_under_jit_with_traced_damping():
    params, x, y = network("logistic", (2, 4, 3, 1))
    step = jax.jit(lqr.network_lqr_step, static_argnames=("loss_kind", "mode"))
    for mode in lqr.MODES:
        expected = lqr.network_lqr_step(params, x, y, "logistic", 1.0, mode=mode)
        got = step(params, x, y, loss_kind="logistic", damping=1.0, mode=mode)
        np.testing.assert_allclose(np.asarray(ravel_pytree(got)[0]), np.asarray(ravel_pytree(expected)[0]), rtol=1e-12)


def test_bad_arguments_are_named():
    A, B, Q, R, M, Q_final, c_final = stacked(random_problem([2] * 4, [1] * 3))
    with pytest.raises(ValueError, match="^A "):
        lqr.riccati(A[0], B, Q, R, Q_final)
    with pytest.raises(ValueError, match="^B "):
        lqr.riccati(A, B[:2], Q, R, Q_final)
    with pytest.raises(ValueError, match="^M "):
        lqr.riccati(A, B, Q, R, Q_final, M=M[:, :, :1])
    with pytest.raises(ValueError, match="^c_final "):
        lqr.riccati_affine(A, B, Q, R, Q_final, c_final[:1])
    Q_nan = Q.copy()
    Q_nan[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="^Q "):
        lqr.riccati(A, B, Q_nan, R, Q_final)
    with pytest.raises(ValueError, match="^R "):
        lqr.riccati(A, B, Q, -R, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"^B\[1\] "):
        lqr.lqr_step(list(A), [B[0], B[1].T, B[2]], list(Q), list(R), Q_final, c_final)
    params, x, y = network("logistic", (2, 4, 1))
    with pytest.raises(ValueError, match="^damping is too small"):
        lqr.network_lqr_step(params, x, y, "logistic", 1e-6, mode="newton")
    with pytest.raises(ValueError, match="^mode "):
        lqr.network_lqr_step(params, x, y, mode="fisher")
    with pytest.raises(ValueError, match="^y "):
        lqr.network_lqr_step(params, x, y[:3])
    with pytest.raises(ValueError, match="^y "):
        lqr.network_lqr(params, x, y.astype(jnp.float64), "softmax")  # one logit: y must be integer classes
