"""Spectra from matrix-vector products: against LAPACK (numpy eigh), ARPACK (scipy eigsh), and exact identities."""

import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.sparse.linalg import eigsh

from lessons import autodiff, curvature, data, nets
from lessons import lanczos as lanczos_module
from lessons.curvature import hutchinson_trace, rademacher, slq_density, spectral_density
from lessons.lanczos import lanczos, lanczos_top_k, power_iteration, power_iteration_top_k, tridiagonal


def with_spectrum(eigenvalues, seed=0):
    """``Q diag(eigenvalues) Q^T`` for a random orthogonal ``Q``: a dense matrix with a known spectrum."""
    rng = np.random.default_rng(seed)
    n = len(eigenvalues)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (Q * np.asarray(eigenvalues, float)) @ Q.T


def matvec_of(A):
    A = jnp.asarray(A)
    return lambda v: A @ v


@functools.partial(jax.jit, static_argnames=("k", "num_steps"))
def dense_top_k(A, key, *, k, num_steps):
    """``lanczos_top_k`` on a dense matrix passed as an argument: compiled once per shape, whatever ``A`` is."""
    return lanczos_top_k(lambda v: A @ v, A.shape[0], k, key=key, num_steps=num_steps)


def spectrum(name, n=150, seed=1):
    rng = np.random.default_rng(seed)
    if name == "separated":
        return np.concatenate([np.geomspace(100.0, 10.0, 10), rng.uniform(0.0, 5.0, n - 10)])
    if name == "clustered":  # ten eigenvalues 0.1 apart at the top, far above the bulk
        return np.concatenate([10.0 + 0.1 * np.arange(10), rng.uniform(0.0, 5.0, n - 10)])
    assert name == "indefinite"  # the most negative eigenvalues are the largest in magnitude
    return np.concatenate([[-50.0, -30.0], np.geomspace(40.0, 8.0, 10), rng.uniform(-5.0, 5.0, n - 12)])


def assert_top_eigenpairs(A, values, vectors, k, rtol=1e-8):
    values, vectors = np.asarray(values), np.asarray(vectors)
    assert values.shape == (k,) and vectors.shape == (A.shape[0], k)
    ref_values, ref_vectors = np.linalg.eigh(A)
    ref_values, ref_vectors = ref_values[::-1][:k], ref_vectors[:, ::-1][:, :k]
    np.testing.assert_allclose(values, ref_values, rtol=rtol, atol=rtol * np.abs(ref_values).max())
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(k), atol=1e-10)
    scale = np.abs(ref_values).max()
    assert np.linalg.norm(A @ vectors - vectors * values, axis=0).max() < 1e-6 * scale
    # eigenvectors are defined up to sign: compare |<u, u_ref>| with 1 (the eigenvalues here are distinct)
    np.testing.assert_allclose(np.abs(np.sum(vectors * ref_vectors, axis=0)), 1.0, atol=1e-8)


# --- Lanczos --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 5, 10])
@pytest.mark.parametrize("name", ["separated", "clustered", "indefinite"])
def test_lanczos_top_k_matches_eigh_and_eigsh(name, k):
    lam = spectrum(name)
    A = with_spectrum(lam)
    # The default number of steps, except that a Krylov space resolves a cluster only once it holds all of it.
    num_steps = 40 if name == "clustered" else 2 * k + 20
    values, vectors = dense_top_k(jnp.asarray(A), jax.random.key(k), k=k, num_steps=num_steps)
    assert values.dtype == jnp.float64
    assert_top_eigenpairs(A, values, vectors, k)
    arpack = eigsh(A, k=k, which="LA", tol=1e-12)[0][::-1]
    np.testing.assert_allclose(values, arpack, rtol=1e-8)
    np.testing.assert_allclose(values, np.sort(lam)[::-1][:k], rtol=1e-8)


def test_lanczos_top_k_on_an_mlp_hessian():
    x, y = data.two_spirals(128, key=jax.random.key(0))
    params = nets.init_mlp([2, 8, 8, 1], key=jax.random.key(1), dtype=jnp.float64)
    loss = nets.classifier_loss(x.astype(jnp.float64), y.astype(jnp.float64))
    dim = nets.num_params(params)

    @jax.jit  # one compiled program: linearising the gradient op by op would cost seconds of small compiles
    def top_5(params, key):
        matvec, flat_dim = autodiff.flat_hvp(loss, params)
        assert flat_dim == dim
        return lanczos_top_k(matvec, dim, 5, key=key)

    values, vectors = top_5(params, jax.random.key(2))
    H = np.asarray(jax.jit(lambda p: autodiff.hessian_matrix(loss, p))(params))
    assert H.shape == (dim, dim)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    assert_top_eigenpairs(H, values, vectors, 5, rtol=1e-7)


@pytest.mark.parametrize("case", ["dense", "rank 3"])
def test_lanczos_basis_is_orthonormal_and_tridiagonalises(case):
    dim = 30
    if case == "dense":
        A, num_steps = with_spectrum(np.random.default_rng(2).normal(size=dim), seed=3), 20
    else:  # three distinct eigenvalues: the Krylov space is invariant after 3 steps, then again and again
        A, num_steps = with_spectrum([5.0, 2.0, -1.0] + [0.0] * (dim - 3), seed=4), dim
    result = lanczos(matvec_of(A), dim, num_steps, key=jax.random.key(5))
    alphas, betas, Q = (np.asarray(a) for a in result)
    assert alphas.shape == (num_steps,) and betas.shape == (num_steps - 1,) and Q.shape == (num_steps, dim)
    assert np.all(np.isfinite(Q)) and np.all(np.isfinite(alphas)) and np.all(np.isfinite(betas))
    np.testing.assert_allclose(Q @ Q.T, np.eye(num_steps), atol=1e-12)
    T = np.asarray(tridiagonal(result.alphas, result.betas))
    np.testing.assert_allclose(Q @ A @ Q.T, T, atol=1e-12 * np.abs(A).max() * dim)
    if case == "rank 3":
        assert np.sum(betas == 0) >= 1  # a breakdown was recorded as a decoupling
        assert np.all(np.abs(betas[:2]) > 1e-3)  # ... and not before the space was exhausted


def test_lanczos_breakdown_gives_the_top_eigenvalues():
    dim = 30
    A = with_spectrum([5.0, 2.0, -1.0] + [0.0] * (dim - 3), seed=6)
    values, vectors = lanczos_top_k(matvec_of(A), dim, 4, key=jax.random.key(7), num_steps=dim)
    assert np.all(np.isfinite(np.asarray(vectors)))
    np.testing.assert_allclose(values, [5.0, 2.0, 0.0, 0.0], atol=1e-12)
    # a zero operator breaks down at every step
    values, _ = lanczos_top_k(lambda v: 0.0 * v, dim, 2, key=jax.random.key(8), num_steps=5)
    np.testing.assert_array_equal(values, [0.0, 0.0])


def test_tridiagonal_layout():
    T = tridiagonal(jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, 5.0]))
    np.testing.assert_array_equal(T, [[1.0, 4.0, 0.0], [4.0, 2.0, 5.0], [0.0, 5.0, 3.0]])
    np.testing.assert_array_equal(tridiagonal(jnp.array([7.0]), jnp.zeros(0)), [[7.0]])


# --- Power iteration ------------------------------------------------------------------------------


def test_power_iteration_finds_a_well_separated_top_eigenvalue():
    lam = np.concatenate([[10.0, 5.0], np.random.default_rng(10).uniform(0.0, 4.0, 48)])
    A = with_spectrum(lam, seed=11)
    tol = 1e-6
    r = power_iteration(matvec_of(A), 50, 1, key=jax.random.key(0), max_iters=200, tol=tol)
    assert abs(float(r.eigenvalues[0]) - 10.0) <= tol * 10.0
    assert bool(r.converged[0]) and 2 <= int(r.num_matvecs) < 200
    u = np.asarray(r.eigenvectors[:, 0])
    assert abs(np.linalg.norm(u) - 1) < 1e-12 and np.linalg.norm(A @ u - 10.0 * u) < 1e-2


def test_power_iteration_finds_the_largest_magnitude_first_and_runs_under_jit():
    lam = np.concatenate([[-20.0, 10.0, 4.0], np.random.default_rng(12).uniform(0.0, 2.0, 37)])
    A = jnp.asarray(with_spectrum(lam, seed=13))

    @jax.jit  # the operator and the tolerance may be traced
    def power(A, tol):
        return power_iteration_top_k(lambda v: A @ v, 40, 2, key=jax.random.key(1), max_iters=500, tol=tol)

    values, vectors = power(A, 1e-10)
    # in the order found: -20 before 10, unlike the top 2 by value
    np.testing.assert_allclose(values, [-20.0, 10.0], rtol=1e-6)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(2), atol=1e-6)
    np.testing.assert_allclose(dense_top_k(A, jax.random.key(1), k=2, num_steps=24)[0], [10.0, 4.0], rtol=1e-8)


def test_power_iteration_needs_many_more_products_than_lanczos_on_a_cluster():
    dim = 200
    top = 1.0 - 0.01 * np.arange(5)  # 1.00, 0.99, ..., 0.96
    A = with_spectrum(np.concatenate([top, np.random.default_rng(14).uniform(0.0, 0.5, dim - 5)]), seed=15)
    r = power_iteration(matvec_of(A), dim, 1, key=jax.random.key(2), max_iters=3000, tol=1e-12)
    error = abs(float(r.eigenvalues[0]) - 1.0)
    assert error < 1e-6  # it does get there, slowly: the ratio 0.99 per product
    # m Lanczos steps give the leading m x m block of a longer run's T, so one run prices every m.
    longest = lanczos(matvec_of(A), dim, 60, key=jax.random.key(3))
    T = np.asarray(tridiagonal(longest.alphas, longest.betas))
    needed = next(m for m in range(1, 61) if abs(np.linalg.eigvalsh(T[:m, :m])[-1] - 1.0) <= error)
    assert int(r.num_matvecs) >= 5 * needed, (int(r.num_matvecs), needed)


# --- Hutchinson and stochastic Lanczos quadrature -------------------------------------------------


def test_rademacher_signs():
    v = np.asarray(rademacher(jax.random.key(0), 64, 50))
    assert v.shape == (64, 50) and v.dtype == np.float64
    assert set(np.unique(v)) == {-1.0, 1.0}
    assert abs(v.mean()) < 0.1


def test_hutchinson_is_exact_on_a_diagonal_matrix():
    d = np.random.default_rng(16).normal(size=25)
    estimate = hutchinson_trace(lambda v: jnp.asarray(d) * v, 25, key=jax.random.key(0), num_samples=3)
    assert float(estimate) == pytest.approx(d.sum(), rel=1e-13)


def test_hutchinson_is_unbiased():
    dim, n = 40, 2000
    A = with_spectrum(np.geomspace(0.1, 10.0, dim), seed=17)
    key = jax.random.key(1)
    estimate = float(hutchinson_trace(matvec_of(A), dim, key=key, num_samples=n))
    probes = np.asarray(rademacher(key, n, dim))
    samples = np.einsum("si,ij,sj->s", probes, A, probes)
    assert estimate == pytest.approx(samples.mean(), rel=1e-12)
    standard_error = samples.std(ddof=1) / np.sqrt(n)
    assert abs(estimate - np.trace(A)) < 4 * standard_error
    assert standard_error < 0.05 * np.trace(A)  # the test has power


def test_slq_is_a_gauss_quadrature():
    dim, m = 50, 8
    A = with_spectrum(np.linspace(0.5, 2.0, dim), seed=18)
    key = jax.random.key(2)
    nodes, weights = (np.asarray(a) for a in slq_density(matvec_of(A), dim, key=key, num_steps=m, num_starts=1))
    assert nodes.shape == weights.shape == (m,)
    v = np.asarray(rademacher(key, 1, dim)[0])
    Ajv = v.copy()
    for j in range(2 * m):
        assert np.sum(weights * nodes**j) == pytest.approx(v @ Ajv / (v @ v), rel=1e-10), j
        Ajv = A @ Ajv
    assert weights.sum() == pytest.approx(1.0, abs=1e-12) and np.all(weights >= 0)
    assert nodes.min() >= 0.5 - 1e-10 and nodes.max() <= 2.0 + 1e-10


def test_slq_moments_estimate_normalised_traces_and_density_integrates():
    dim, m, starts = 60, 10, 300
    lam = np.concatenate([np.linspace(-1.0, 1.0, dim - 3), [3.0, 4.0, 6.0]])
    A = with_spectrum(lam, seed=19)
    key = jax.random.key(3)
    nodes, weights = (np.asarray(a) for a in slq_density(matvec_of(A), dim, key=key, num_steps=m, num_starts=starts))
    assert nodes.shape == weights.shape == (m * starts,)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert nodes.min() >= lam.min() - 1e-10 and nodes.max() <= lam.max() + 1e-10
    probes = np.asarray(rademacher(key, starts, dim))
    for j in (1, 2, 3):
        exact = np.trace(np.linalg.matrix_power(A, j)) / dim
        per_start = np.einsum("si,ij,sj->s", probes, np.linalg.matrix_power(A, j), probes) / dim
        standard_error = per_start.std(ddof=1) / np.sqrt(starts)
        assert abs(np.sum(weights * nodes**j) - exact) < 4 * standard_error + 1e-12, j
    grid = np.linspace(-4.0, 9.0, 4001)
    density = np.asarray(spectral_density(nodes, weights, grid, sigma=0.1))
    assert np.all(density >= 0)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
    # the smoothed density has its mass where the eigenvalues are: 57 of 60 in [-1, 1]
    inside = (grid > -1.3) & (grid < 1.3)
    assert np.trapezoid(density[inside], grid[inside]) == pytest.approx(57 / 60, abs=0.03)


def test_spectral_density_is_a_gaussian_mixture():
    grid = np.linspace(-3.0, 3.0, 7)
    density = np.asarray(spectral_density(jnp.array([0.0, 1.0]), jnp.array([0.25, 0.75]), grid, sigma=0.5))
    gauss = lambda t, mu: np.exp(-((t - mu) ** 2) / (2 * 0.25)) / np.sqrt(2 * np.pi * 0.25)
    np.testing.assert_allclose(density, 0.25 * gauss(grid, 0.0) + 0.75 * gauss(grid, 1.0), rtol=1e-12)


# --- Validation -----------------------------------------------------------------------------------

MV = lambda v: 2.0 * v
KEY = jax.random.key(0)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: lanczos(MV, 0, 1, key=KEY), "dim"),
        (lambda: lanczos(MV, 2.5, 1, key=KEY), "dim"),
        (lambda: lanczos(MV, 5, 0, key=KEY), "num_steps"),
        (lambda: lanczos(MV, 5, 6, key=KEY), "num_steps"),
        (lambda: lanczos(MV, 5, 2, key=0), "key"),
        (lambda: lanczos(lambda v: v[:3], 5, 2, key=KEY), "matvec"),
        (lambda: lanczos(lambda v: jnp.ones((3, 3)) @ v, 5, 2, key=KEY), "matvec"),
        (lambda: lanczos_top_k(MV, 0, 1, key=KEY), "dim"),
        (lambda: lanczos_top_k(MV, 5, 0, key=KEY), "k"),
        (lambda: lanczos_top_k(MV, 5, 6, key=KEY), "k"),
        (lambda: lanczos_top_k(MV, 10, 4, key=KEY, num_steps=3), "num_steps"),
        (lambda: lanczos_top_k(MV, 10, 4, key=KEY, num_steps=11), "num_steps"),
        (lambda: lanczos_top_k(MV, 10, 4, key=jnp.zeros(2)), "key"),
        (lambda: lanczos_top_k(lambda v: jnp.sum(v), 10, 4, key=KEY), "matvec"),
        (lambda: power_iteration(MV, 0, 1, key=KEY), "dim"),
        (lambda: power_iteration(MV, 5, 0, key=KEY), "k"),
        (lambda: power_iteration(MV, 5, 6, key=KEY), "k"),
        (lambda: power_iteration(MV, 5, 1, key=KEY, max_iters=0), "max_iters"),
        (lambda: power_iteration(MV, 5, 1, key=KEY, tol=0.0), "tol"),
        (lambda: power_iteration(MV, 5, 1, key=KEY, tol=-1e-3), "tol"),
        (lambda: power_iteration(MV, 5, 1, key="seed"), "key"),
        (lambda: power_iteration(lambda v: v[:-1], 5, 1, key=KEY), "matvec"),
        (lambda: power_iteration_top_k(MV, 5, 1, key=KEY, tol=0.0), "tol"),
        (lambda: power_iteration_top_k(MV, 5, 7, key=KEY), "k"),
        (lambda: hutchinson_trace(MV, 0, key=KEY, num_samples=1), "dim"),
        (lambda: hutchinson_trace(MV, 5, key=KEY, num_samples=0), "num_samples"),
        (lambda: hutchinson_trace(MV, 5, key=None, num_samples=1), "key"),
        (lambda: hutchinson_trace(lambda v: v[:2], 5, key=KEY, num_samples=1), "matvec"),
        (lambda: slq_density(MV, 0, key=KEY, num_steps=1, num_starts=1), "dim"),
        (lambda: slq_density(MV, 5, key=KEY, num_steps=0, num_starts=1), "num_steps"),
        (lambda: slq_density(MV, 5, key=KEY, num_steps=6, num_starts=1), "num_steps"),
        (lambda: slq_density(MV, 5, key=KEY, num_steps=2, num_starts=0), "num_starts"),
        (lambda: slq_density(MV, 5, key=1, num_steps=2, num_starts=1), "key"),
        (lambda: slq_density(lambda v: jnp.concatenate([v, v]), 5, key=KEY, num_steps=2, num_starts=1), "matvec"),
        (lambda: spectral_density(jnp.zeros(2), jnp.ones(2), jnp.zeros(3), sigma=0.0), "sigma"),
        (lambda: spectral_density(jnp.zeros(2), jnp.ones(2), jnp.zeros(3), sigma=-1.0), "sigma"),
        (lambda: rademacher(KEY, 0, 3), "num"),
        (lambda: rademacher(KEY, 2, 0), "dim"),
        (lambda: rademacher(42, 2, 3), "key"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_the_default_number_of_steps():
    # min(dim, 2 k + 20): with dim = 12 the whole space, so the answer is exact even for k = 12
    A = with_spectrum(np.arange(12.0), seed=20)
    values, vectors = lanczos_top_k(matvec_of(A), 12, 12, key=jax.random.key(4))
    np.testing.assert_allclose(values, np.arange(12.0)[::-1], atol=1e-10)
    assert curvature.LanczosResult._fields == ("alphas", "betas", "basis")
    assert curvature.PowerIterationResult._fields == ("eigenvalues", "eigenvectors", "num_matvecs", "converged")


def test_hessian_spectrum_gives_top_eigenpairs_and_the_slq_measure_from_one_set_of_runs():
    x, y = data.two_spirals(64, key=jax.random.key(0), dtype=jnp.float64)
    params = nets.init_mlp([2, 6, 6, 1], key=jax.random.key(1), dtype=jnp.float64)
    loss = nets.classifier_loss(x, y)
    dim = nets.num_params(params)  # 67: 40 Lanczos steps resolve the top of the spectrum
    key = jax.random.key(2)
    spectrum = curvature.hessian_spectrum(loss, params, 3, key=key, num_steps=40, num_starts=3)
    H = np.asarray(autodiff.hessian_matrix(loss, params))
    lam, V = np.linalg.eigh(H)
    np.testing.assert_allclose(spectrum.eigenvalues, lam[::-1][:3], rtol=1e-8)
    for i, direction in enumerate(spectrum.directions):
        v = np.asarray(jax.flatten_util.ravel_pytree(direction)[0])
        assert abs(abs(v @ V[:, -1 - i]) - 1) < 1e-6  # the same eigenvector, up to sign
    nodes, weights = curvature.hessian_slq(loss, params, key=key, num_steps=40, num_starts=3)
    np.testing.assert_allclose(spectrum.nodes, nodes, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(spectrum.weights, weights, rtol=1e-10, atol=1e-12)
    assert dim == 67
    with pytest.raises(ValueError, match="num_steps"):
        curvature.hessian_spectrum(loss, params, 3, key=key, num_steps=2, num_starts=1)


@pytest.mark.parametrize(
    "name",
    [
        "LanczosResult",
        "PowerIterationResult",
        "lanczos",
        "lanczos_top_k",
        "power_iteration",
        "power_iteration_top_k",
        "tridiagonal",
    ],
)
def test_curvature_re_exports_the_lanczos_machinery(name):
    # The chapters call ``curvature.lanczos`` and friends: the same objects as in lessons.lanczos.
    assert getattr(curvature, name) is getattr(lanczos_module, name)
    assert name in curvature.__all__
