"""Loss-landscape stability: the increment identity, the quadratic model and its closed form against NumPy
references, Monte Carlo against the closed form within standard errors, the decay in k, and the small-sigma caveat."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lessons import autodiff, data, nets, stability, train
from lessons.first_order import loglog_slope

P, N = 6, 12


def direct_increments(values):
    """L_{k+1} - L_k from means computed one by one (no cumulative sums, no identity)."""
    values = np.asarray(values, float)
    means = np.array([values[:k].mean(axis=0) for k in range(1, len(values) + 1)])
    return means[1:] - means[:-1]


def orthonormal(rows, cols, seed):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(rows, cols)))[0]


@pytest.fixture(scope="module")
def quadratic():
    """Per-example quadratics l_i(w) = 1/2 (w - m_i)^T A_i (w - m_i) + b_i on a two-leaf pytree, in float64."""
    rng = np.random.default_rng(0)
    A = np.array([orthonormal(P, P, 10 + i) @ np.diag(rng.uniform(0.5, 3.0, P)) @ orthonormal(P, P, 10 + i).T for i in range(N)])
    m, b, w = rng.normal(size=(N, P)), rng.normal(size=N), 0.3 * rng.normal(size=P)
    params = {"u": jnp.asarray(w[:2]), "v": jnp.asarray(w[2:].reshape(2, 2))}  # ravel_pytree order: u, then v

    def per_example_loss(p):
        d = jnp.concatenate([p["u"], p["v"].ravel()]) - jnp.asarray(m)
        return 0.5 * jnp.einsum("nij,ni,nj->n", jnp.asarray(A), d, d) + jnp.asarray(b)

    def numpy_losses(wf):
        d = wf - m
        return 0.5 * np.einsum("nij,ni,nj->n", A, d, d) + b

    return dict(A=A, m=m, b=b, w=w, params=params, loss=per_example_loss, numpy_losses=numpy_losses)


@pytest.fixture(scope="module")
def spirals_net():
    """A 2-8-1 tanh MLP trained briefly on 64 two-spirals points, with its per-example logistic losses (float64)."""
    x, y = data.two_spirals(64, key=jax.random.key(0))
    x, y = x.astype(jnp.float64), y.astype(jnp.float64)
    params = nets.init_mlp([2, 8, 1], key=jax.random.key(1), dtype=jnp.float64)
    params = train.train(nets.classifier_loss(x, y), params, optax.adam(0.02), num_steps=300, progress=False).params
    per_example = lambda p: optax.sigmoid_binary_cross_entropy(nets.mlp(p, x)[:, 0], y)
    return per_example, params, nets.classifier_loss(x, y)


def numpy_model(q, U):
    """a, c, B of the quadratics, by direct means of the per-example values, gradients and Hessians."""
    wf, A, m = q["w"], q["A"], q["m"]
    grads = np.einsum("nij,nj->ni", A, wf - m)
    return (
        direct_increments(q["numpy_losses"](wf)),
        direct_increments(grads) @ U,
        np.einsum("pi,kpq,qj->kij", U, direct_increments(A), U),
    )


# --- Identities ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(9,), (9, 3), (9, 2, 2)])
def test_increment_identity_equals_direct_means(shape):
    values = np.random.default_rng(1).normal(size=shape)
    np.testing.assert_allclose(stability.prefix_means(values), [values[:k].mean(axis=0) for k in range(1, 10)], rtol=1e-13)
    np.testing.assert_allclose(stability.increments(values), direct_increments(values), rtol=1e-11, atol=1e-15)
    assert stability.increments(values).shape == (8, *shape[1:])


def test_quadratic_model_equals_dense_numpy(quadratic):
    U = orthonormal(P, 3, seed=2)
    model = stability.quadratic_model(quadratic["loss"], quadratic["params"], jnp.asarray(U))
    a, c, B = numpy_model(quadratic, U)
    np.testing.assert_allclose(model.a, a, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(model.c, c, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(model.B, B, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(stability.delta1(quadratic["loss"], quadratic["params"]), np.abs(a), rtol=1e-11)


def test_squared_increments_equal_direct_evaluation(quadratic):
    eps = 0.4 * np.random.default_rng(3).normal(size=(5, P))
    ours = stability.squared_increments(quadratic["loss"], quadratic["params"], jnp.asarray(eps), batch_size=2)
    direct = [direct_increments(quadratic["numpy_losses"](quadratic["w"] + e)) ** 2 for e in eps]
    np.testing.assert_allclose(ours, direct, rtol=1e-10, atol=1e-15)


# --- The closed form ---------------------------------------------------------------------------------


def test_closed_form_matches_exact_moments_in_one_dimension():
    # z ~ N(0, s^2): E z^2 = s^2, E z^4 = 3 s^4, odd moments 0, so
    # E (a + c z + b z^2 / 2)^2 = a^2 + c^2 s^2 + 3 b^2 s^4 / 4 + a b s^2.
    for a, c, b, s in [(1.0, 0.0, 1.0, 1.0), (0.3, -2.0, 5.0, 0.1), (-1.5, 0.7, 2.0, 0.8), (0.0, 1.0, -3.0, 2.0)]:
        exact = a**2 + c**2 * s**2 + 3 * b**2 * s**4 / 4 + a * b * s**2
        ours = stability.delta2_closed_form(jnp.float64(a), jnp.array([c]), jnp.array([[b]]), s)
        assert float(ours) == pytest.approx(exact, rel=1e-13)


def test_closed_form_matches_numpy_monte_carlo():
    rng = np.random.default_rng(4)
    K, D, s, S = 4, 3, 0.7, 1_000_000
    a, c = rng.normal(size=K), rng.normal(size=(K, D))
    B = rng.normal(size=(K, D, D))  # not symmetric: only its symmetric part can matter
    ours = np.asarray(stability.delta2_closed_form(a, c, B, s))
    assert ours.shape == (K,)
    z = s * rng.normal(size=(S, D))
    for k in range(K):
        values = (a[k] + z @ c[k] + 0.5 * np.einsum("si,ij,sj->s", z, B[k], z)) ** 2
        se = values.std(ddof=1) / np.sqrt(S)
        assert abs(ours[k] - values.mean()) < 4 * se, (k, ours[k], values.mean(), se)
        # batch axes give the same as one call per entry
        assert float(stability.delta2_closed_form(a[k], c[k], B[k], s)) == pytest.approx(ours[k], rel=1e-14)
    # eigenbasis reference: z^T B z = sum_i lam_i y_i^2 with y ~ N(0, s^2 I), so the mean is a + s^2 tr B / 2
    # and the variance s^2 |c|^2 + s^4 / 2 sum lam^2
    lam = np.linalg.eigvalsh(0.5 * (B + np.swapaxes(B, 1, 2)))
    exact = (a + 0.5 * s**2 * lam.sum(1)) ** 2 + s**2 * (c**2).sum(1) + 0.5 * s**4 * (lam**2).sum(1)
    np.testing.assert_allclose(ours, exact, rtol=1e-12)


# --- Monte Carlo against the closed form -----------------------------------------------------------


def test_curvature_aligned_equals_subspace_monte_carlo_on_quadratics(quadratic):
    loss, params, sigma, S = quadratic["loss"], quadratic["params"], 0.8, 200_000
    U = jnp.asarray(orthonormal(P, 3, seed=5))
    closed = np.asarray(stability.delta2_curvature_aligned(loss, params, U, sigma))
    model = stability.quadratic_model(loss, params, U)
    # the test means something only where the curvature terms are not swamped by a^2
    assert np.median(np.asarray(model.a) ** 2 / closed) < 0.5

    est = stability.delta2_subspace_estimate(loss, params, U, sigma, key=jax.random.key(6), num_samples=S)
    assert np.all(np.abs(closed - np.asarray(est.mean)) < 4 * np.asarray(est.standard_error))
    mean = stability.delta2_subspace(loss, params, U, sigma, key=jax.random.key(6), num_samples=S)
    np.testing.assert_array_equal(mean, est.mean)

    # an independent sample (NumPy's generator), standard error from the per-sample values
    z = sigma * np.random.default_rng(7).normal(size=(S, 3))
    values = np.asarray(stability.squared_increments(loss, params, jnp.asarray(z @ np.asarray(U).T)))
    se = values.std(axis=0, ddof=1) / np.sqrt(S)
    assert np.all(np.abs(closed - values.mean(axis=0)) < 4 * se)
    np.testing.assert_allclose(est.standard_error, se, rtol=0.1)


def test_full_subspace_agrees_with_isotropic_monte_carlo(quadratic):
    loss, params, sigma, S = quadratic["loss"], quadratic["params"], 0.5, 200_000
    iso = stability.delta2_isotropic_estimate(loss, params, sigma, key=jax.random.key(8), num_samples=S)
    sub = stability.delta2_subspace_estimate(loss, params, jnp.eye(P), sigma, key=jax.random.key(9), num_samples=S)
    combined = np.sqrt(np.asarray(iso.standard_error) ** 2 + np.asarray(sub.standard_error) ** 2)
    assert np.all(np.abs(np.asarray(iso.mean) - np.asarray(sub.mean)) < 4 * combined)
    closed = np.asarray(stability.delta2_curvature_aligned(loss, params, jnp.eye(P), sigma))
    assert np.all(np.abs(closed - np.asarray(iso.mean)) < 4 * np.asarray(iso.standard_error))


def test_jit_and_dtype(spirals_net):
    per_example, params, _ = spirals_net
    U = jnp.asarray(orthonormal(nets.num_params(params), 2, seed=10))
    eager = stability.delta2_curvature_aligned(per_example, params, U, 0.05)
    jitted = jax.jit(lambda p, s: stability.delta2_curvature_aligned(per_example, p, U, s))(params, 0.05)
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    # float32 parameters and data: float32 results, even with x64 switched on
    x32 = jnp.asarray(np.random.default_rng(13).normal(size=(16, 2)), jnp.float32)
    y32 = (x32[:, 0] > 0).astype(jnp.float32)
    params32 = jax.tree.map(lambda t: t.astype(jnp.float32), params)
    per_example32 = lambda p: optax.sigmoid_binary_cross_entropy(nets.mlp(p, x32)[:, 0], y32)
    assert stability.delta2_curvature_aligned(per_example32, params32, U, 0.05).dtype == jnp.float32
    assert stability.delta2_isotropic(per_example32, params32, 0.05, key=jax.random.key(0), num_samples=4).dtype == jnp.float32
    assert stability.delta2_subspace(per_example32, params32, U, 0.05, key=jax.random.key(0), num_samples=4).dtype == jnp.float32


# --- Decay in k and the small-sigma caveat ---------------------------------------------------------


def test_decay_in_k_over_random_orderings(spirals_net):
    per_example, params, mean_loss = spirals_net
    _, V = np.linalg.eigh(np.asarray(autodiff.hessian_matrix(mean_loss, params)))
    U = jnp.asarray(V[:, ::-1][:, :4])
    n, rng = 64, np.random.default_rng(11)
    orders = jnp.asarray(np.array([rng.permutation(n) for _ in range(20)]))

    @jax.jit  # one compilation for all orderings: the order is data, not part of the (static) loss function
    def criteria(order):
        ordered = lambda p: per_example(p)[order]
        return stability.delta1(ordered, params), stability.delta2_curvature_aligned(ordered, params, U, 0.3)

    d1, d2 = jax.lax.map(criteria, orders)
    k = np.arange(1, n)
    d1, d2 = np.asarray(d1).mean(axis=0), np.asarray(d2).mean(axis=0)
    # |Delta_k| = |l_{k+1} - L_k| / (k + 1) with a numerator of the order of the spread of the losses: k^-1;
    # the squared criteria: k^-2.
    print("slopes", loglog_slope(k, d1), loglog_slope(k, d2), loglog_slope(k, d1**2))
    assert -1.3 < loglog_slope(k, d1) < -0.7
    assert -2.4 < loglog_slope(k, d2) < -1.6
    assert -2.4 < loglog_slope(k, d1**2) < -1.6


def test_small_sigma_leaves_only_a_squared(quadratic):
    loss, params = quadratic["loss"], quadratic["params"]
    U = jnp.asarray(orthonormal(P, 3, seed=12))
    a2 = np.asarray(stability.quadratic_model(loss, params, U).a) ** 2
    np.testing.assert_allclose(a2, np.asarray(stability.delta1(loss, params)) ** 2, rtol=1e-12)
    sigmas = np.array([1e-1, 1e-2, 1e-3, 1e-4])
    rel = np.array([np.abs(np.asarray(stability.delta2_curvature_aligned(loss, params, U, s)) - a2) / a2 for s in sigmas])
    for k in range(N - 1):
        assert loglog_slope(sigmas, rel[:, k]) == pytest.approx(2.0, abs=0.05)
    assert rel[-1].max() < 1e-5 < rel[0].min()


# --- Validation ------------------------------------------------------------------------------------


def test_bad_arguments_name_themselves(quadratic):
    loss, params = quadratic["loss"], quadratic["params"]
    U, key = jnp.eye(P)[:, :2], jax.random.key(0)
    for sigma in (0.0, -1.0, float("nan"), float("inf"), jnp.ones(2)):
        with pytest.raises(ValueError, match="sigma"):
            stability.delta2_curvature_aligned(loss, params, U, sigma)
        with pytest.raises(ValueError, match="sigma"):
            stability.delta2_isotropic(loss, params, sigma, key=key, num_samples=4)
        with pytest.raises(ValueError, match="sigma"):
            stability.delta2_closed_form(0.0, jnp.zeros(2), jnp.zeros((2, 2)), sigma)
    for bad_U in (jnp.eye(P + 1)[:, :2], jnp.ones(P), jnp.ones((P, 0))):
        with pytest.raises(ValueError, match="U"):
            stability.quadratic_model(loss, params, bad_U)
        with pytest.raises(ValueError, match="U"):
            stability.delta2_subspace(loss, params, bad_U, 0.1, key=key, num_samples=4)
    for num_samples in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_samples"):
            stability.delta2_isotropic(loss, params, 0.1, key=key, num_samples=num_samples)
        with pytest.raises(ValueError, match="num_samples"):
            stability.delta2_subspace(loss, params, U, 0.1, key=key, num_samples=num_samples)
    for bad_key in (0, np.zeros(2, np.uint32), jax.random.split(key, 2)):
        with pytest.raises(ValueError, match="key"):
            stability.delta2_isotropic(loss, params, 0.1, key=bad_key, num_samples=4)
        with pytest.raises(ValueError, match="key"):
            stability.delta2_subspace(loss, params, U, 0.1, key=bad_key, num_samples=4)
    with pytest.raises(ValueError, match="c must"):
        stability.delta2_closed_form(jnp.zeros(3), jnp.zeros((4, 2)), jnp.zeros((4, 2, 2)), 0.1)
    with pytest.raises(ValueError, match="B must"):
        stability.delta2_closed_form(jnp.zeros(3), jnp.zeros((3, 2)), jnp.zeros((3, 2, 3)), 0.1)
    with pytest.raises(ValueError, match="values"):
        stability.increments(jnp.ones(1))
    with pytest.raises(ValueError, match="per_example_loss"):
        stability.delta1(lambda p: jnp.sum(loss(p)), params)
    with pytest.raises(ValueError, match="per_example_loss"):
        stability.quadratic_model(lambda p: loss(p)[:1], params, U)
    with pytest.raises(ValueError, match="perturbations"):
        stability.squared_increments(loss, params, jnp.ones((3, P + 1)))


def test_expected_squared_increment_is_the_average_over_every_ordering():
    import itertools

    values = np.random.default_rng(5).exponential(size=6)  # skewed, like per-example losses
    exhaustive = np.mean([direct_increments(values[list(order)]) ** 2 for order in itertools.permutations(range(6))], axis=0)
    np.testing.assert_allclose(stability.expected_squared_increment(jnp.asarray(values)), exhaustive, rtol=1e-10)
    with pytest.raises(ValueError, match="n >= 2"):
        stability.expected_squared_increment(jnp.ones(1))
