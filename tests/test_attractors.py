"""Reconstruction measures against independent references: Python loops, eigenvalues, log-determinants,
NumPy's histogramdd and scipy's Gaussian filter, and the Lorenz-63 exponent from the literature."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from lessons import attractors, data

LORENZ_STEP = lambda x: data.lorenz63_step(x, 0.01)  # one function object: compiled once for the whole file


def linear(A):
    return lambda z: A @ z


def rotation_scaling(r, theta):
    return r * jnp.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


# --- free_run -------------------------------------------------------------------------------------------


def test_free_run_matches_a_python_loop():
    W = jax.random.normal(jax.random.key(0), (4, 4), jnp.float64) / 2.0
    step = lambda z: jnp.tanh(W @ z) + 0.1
    z0 = jnp.arange(1.0, 5.0)
    expected, z = [], z0
    for _ in range(25):
        z = step(z)
        expected.append(z)
    out = attractors.free_run(step, z0, 25)
    assert out.shape == (25, 4) and out.dtype == jnp.float64
    np.testing.assert_allclose(out, np.stack(expected), rtol=1e-14, atol=1e-15)  # row t is F^{t+1}(z0)


# --- Lyapunov exponents ---------------------------------------------------------------------------------

LINEAR_MAPS = {
    "diagonal": (jnp.diag(jnp.array([1.5, 0.7, -0.2])), np.log(1.5)),
    "non-normal": (jnp.array([[0.9, 5.0], [0.0, 0.5]]), np.log(0.9)),  # transient growth, then decay
    "rotation-scaling": (jax.scipy.linalg.block_diag(rotation_scaling(1.1, 0.3), jnp.array([[0.5]])), np.log(1.1)),
    "negative": (jnp.array([[-2.0, 1.0], [0.0, 0.3]]), np.log(2.0)),
}


@pytest.mark.parametrize("name", list(LINEAR_MAPS))
def test_lyapunov_exponent_of_a_linear_map_is_the_log_of_its_spectral_radius(name):
    A, expected = LINEAR_MAPS[name]
    eigenvalues = np.linalg.eigvals(np.asarray(A))
    assert np.isclose(np.log(np.abs(eigenvalues).max()), expected)  # complex pair: log |lambda|
    step, z0 = linear(A), jnp.zeros(A.shape[0])  # a fixed point: the orbit stays finite even when the map expands
    # The burn-in turns the tangent vector onto the top direction, so the estimate is exact to round-off.
    assert abs(attractors.lyapunov_exponent(step, z0, 500) - expected) < 1e-12
    assert abs(attractors.lyapunov_exponent(step, z0, 500, renorm_every=7) - expected) < 1e-12
    assert abs(attractors.lyapunov_exponent(step, z0, 500, dt=0.1) - expected / 0.1) < 1e-11
    # Without burn-in the non-normal map's transient shows as an O(1/n) bias.
    assert abs(attractors.lyapunov_exponent(step, z0, 5000, burn_in=0) - expected) < 5e-3


def test_a_nilpotent_map_has_exponent_minus_infinity():
    assert attractors.lyapunov_exponent(linear(jnp.array([[0.0, 1.0], [0.0, 0.0]])), jnp.ones(2), 10) == -np.inf


def test_a_contracting_map_has_the_log_slope_at_its_fixed_point():
    step = lambda z: 0.5 * jnp.tanh(z) + 0.3  # contraction: |F'| <= 0.5
    z = jnp.zeros(1)
    for _ in range(200):
        z = step(z)
    slope = 0.5 / np.cosh(float(z[0])) ** 2
    value = attractors.lyapunov_exponent(step, jnp.array([2.0]), 1000)
    assert value < np.log(0.5) and abs(value - np.log(slope)) < 1e-10


def test_lorenz63_largest_exponent_matches_the_literature():
    # 10^5 steps (1000 time units): measured 0.904..0.911 over five keys, mean 0.9066 (literature: 0.9056).
    for seed in range(3):
        x0 = data.lorenz63(1, key=jax.random.key(seed), dtype=jnp.float64)[0]
        assert abs(attractors.lyapunov_exponent(LORENZ_STEP, x0, 100_000, dt=0.01) - 0.906) < 0.015


def test_lyapunov_spectrum_of_linear_maps():
    A, _ = LINEAR_MAPS["non-normal"]
    np.testing.assert_allclose(attractors.lyapunov_spectrum(linear(A), jnp.zeros(2), 300), np.log([0.9, 0.5]), atol=1e-12)
    A, _ = LINEAR_MAPS["rotation-scaling"]  # the complex pair shares its modulus: two equal exponents
    spectrum = attractors.lyapunov_spectrum(linear(A), jnp.zeros(3), 300)
    np.testing.assert_allclose(spectrum, np.log([1.1, 1.1, 0.5]), atol=1e-12)
    A = jax.random.normal(jax.random.key(1), (4, 4), jnp.float64)
    step = linear(A)
    spectrum = attractors.lyapunov_spectrum(step, jnp.zeros(4), 2000)
    np.testing.assert_allclose(spectrum.sum(), np.log(abs(np.linalg.det(np.asarray(A)))), rtol=1e-10)  # volume
    np.testing.assert_allclose(spectrum, np.sort(np.log(np.abs(np.linalg.eigvals(np.asarray(A)))))[::-1], atol=2e-3)
    top2 = attractors.lyapunov_spectrum(step, jnp.zeros(4), 2000, num=2)
    np.testing.assert_allclose(top2, spectrum[:2], atol=1e-4)  # other start vectors: |lambda_2 - lambda_3| is small
    assert abs(attractors.lyapunov_exponent(step, jnp.zeros(4), 2000) - spectrum[0]) < 1e-3


def test_lorenz63_spectrum_contracts_volume_at_the_divergence_rate():
    x0 = data.lorenz63(1, key=jax.random.key(0), dtype=jnp.float64)[0]
    spectrum = np.asarray(attractors.lyapunov_spectrum(LORENZ_STEP, x0, 20_000, dt=0.01))
    # Measured (0.908, 0.007, -14.58) over 200 time units; literature (0.906, 0, -14.57).
    assert abs(spectrum[0] - 0.906) < 0.03 and abs(spectrum[1]) < 0.02 and abs(spectrum[2] + 14.57) < 0.05
    # The sum is the mean log|det J| along the orbit (QR keeps volumes exactly) ...
    orbit = attractors.free_run(LORENZ_STEP, attractors.free_run(LORENZ_STEP, x0, 1000)[-1], 20_000)
    orbit = jnp.concatenate([attractors.free_run(LORENZ_STEP, x0, 1000)[-1:], orbit[:-1]])
    log_det = jax.vmap(lambda z: jnp.linalg.slogdet(jax.jacfwd(LORENZ_STEP)(z))[1])(orbit)
    np.testing.assert_allclose(spectrum.sum(), float(log_det.mean()) / 0.01, rtol=1e-9)
    # ... which RK4 keeps close to the flow's divergence -(sigma + 1 + beta).
    np.testing.assert_allclose(spectrum.sum(), -(10.0 + 1.0 + 8.0 / 3.0), rtol=1e-4)


# --- state-space divergence -----------------------------------------------------------------------------


def gaussian_cloud(n, dim=3, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, dim), jnp.float64)


def histogram_reference(x, y, bins, alpha=1e-5):
    """D_stsp by np.histogramdd over the same grid (points outside are dropped by histogramdd too)."""
    std = x.std(0)
    edges = [np.linspace(lo, hi, bins + 1) for lo, hi in zip(x.min(0) - 0.1 * std, x.max(0) + 0.1 * std, strict=True)]
    c, g = np.histogramdd(x, bins=edges)[0].ravel(), np.histogramdd(y, bins=edges)[0].ravel()
    p, q = (c + alpha) / (c.sum() + alpha * c.size), (g + alpha) / (g.sum() + alpha * g.size)
    return float(np.sum(p * np.log(p / q)))


@pytest.mark.parametrize("dim, bins", [(1, 50), (2, 30), (3, 30), (4, 8)])
def test_state_space_divergence_matches_a_dense_histogram(dim, bins):
    x, y = gaussian_cloud(3000, dim, 0), 1.2 * gaussian_cloud(2000, dim, 1) + 0.3
    expected = histogram_reference(np.asarray(x), np.asarray(y), bins)
    assert expected > 0
    np.testing.assert_allclose(attractors.state_space_divergence(x, y, bins=bins), expected, rtol=1e-9)


def test_state_space_divergence_is_zero_for_the_same_points_in_any_order():
    x = data.lorenz63(5000, key=jax.random.key(0), dtype=jnp.float64)
    assert attractors.state_space_divergence(x, x) == 0.0
    assert abs(attractors.state_space_divergence(x, jax.random.permutation(jax.random.key(1), x))) < 1e-12
    other = data.lorenz63(5000, key=jax.random.key(1), dtype=jnp.float64)
    d = attractors.state_space_divergence(x, other)
    assert d > 0
    np.testing.assert_allclose(attractors.state_space_divergence(x, other[::-1]), d, rtol=1e-12)


def test_state_space_divergence_grows_as_the_distribution_moves_away():
    x = gaussian_cloud(20_000)
    shifts = [0.0, 0.25, 0.5, 1.0, 2.0]
    values = [attractors.state_space_divergence(x, gaussian_cloud(20_000, seed=1) + s) for s in shifts]
    assert values[0] > 0 and np.all(np.diff(values) > 0), values


def test_state_space_divergence_drops_generated_points_outside_the_grid():
    x, y = gaussian_cloud(2000), gaussian_cloud(2000, seed=1)
    escaped = jnp.concatenate([y, jnp.full((50, 3), 1e3), jnp.full((5, 3), -1e30)])
    np.testing.assert_allclose(attractors.state_space_divergence(x, escaped), attractors.state_space_divergence(x, y), rtol=1e-12)
    # Nothing inside: q is uniform over the B = bins^N cells.
    bins, alpha = 10, 1e-5
    std = np.asarray(x).std(0)
    edges = [np.linspace(lo, hi, bins + 1) for lo, hi in zip(x.min(0) - 0.1 * std, x.max(0) + 0.1 * std, strict=True)]
    c = np.histogramdd(np.asarray(x), bins=edges)[0].ravel()
    p = (c + alpha) / (c.sum() + alpha * c.size)
    np.testing.assert_allclose(
        attractors.state_space_divergence(x, jnp.full((10, 3), 1e3), bins=bins), np.sum(p * np.log(p * c.size)), rtol=1e-10
    )


# --- Hellinger distance of power spectra ----------------------------------------------------------------


def hellinger_reference(x, y, sigma):
    """scipy's gaussian_filter1d (reflect mode, radius 4 sigma) on NumPy periodograms."""
    x, y = np.asarray(x)[: min(len(x), len(y))], np.asarray(y)[: min(len(x), len(y))]
    distances = []
    for a, b in zip(x.T, y.T, strict=True):
        spectra = []
        for s in (a, b):
            power = np.abs(np.fft.rfft((s - s.mean()) / s.std())) ** 2
            power = gaussian_filter1d(power, sigma) if sigma > 0 else power
            spectra.append(power / power.sum())
        distances.append(np.sqrt(0.5 * np.sum((np.sqrt(spectra[0]) - np.sqrt(spectra[1])) ** 2)))
    return float(np.mean(distances))


def sines(frequencies, n=4000, phase=0.0, noise=0.0, seed=0):
    t = np.arange(n)[:, None]
    rng = np.random.default_rng(seed)
    return jnp.asarray(
        np.sin(2 * np.pi * np.asarray(frequencies) * t + phase) + noise * rng.standard_normal((n, len(frequencies)))
    )


@pytest.mark.parametrize("sigma", [0.0, 3.0, 20.0])
def test_hellinger_distance_matches_scipy(sigma):
    x, y = sines([0.01, 0.05], noise=0.5), sines([0.012, 0.05], n=3500, noise=0.8, seed=1)
    np.testing.assert_allclose(attractors.hellinger_distance(x, y, smoothing=sigma), hellinger_reference(x, y, sigma), rtol=1e-9)


def test_hellinger_distance_is_a_distance_in_zero_one():
    x = data.lorenz63(8192, key=jax.random.key(0), dtype=jnp.float64)
    y = data.lorenz63(8192, key=jax.random.key(1), dtype=jnp.float64)
    assert attractors.hellinger_distance(x, x) == 0.0
    d = attractors.hellinger_distance(x, y)
    assert 0 < d < 0.2  # two runs of the same system: close (measured 0.03)
    assert attractors.hellinger_distance(y, x) == pytest.approx(d, rel=1e-12)
    shuffled = jax.random.permutation(jax.random.key(2), x)  # the same states, the time structure destroyed
    assert 0.5 < attractors.hellinger_distance(x, shuffled) <= 1.0
    far = attractors.hellinger_distance(sines([0.01]), sines([0.4]), smoothing=2.0)  # disjoint spectra
    assert 0.99 < far <= 1.0
    # Only the spectrum's shape counts: an offset and a scale change nothing; a time shift (phase) almost nothing.
    np.testing.assert_allclose(attractors.hellinger_distance(x, 3.0 * y - 5.0), d, rtol=1e-10)
    assert attractors.hellinger_distance(sines([0.02]), sines([0.02], phase=1.0)) < 1e-2


def test_hellinger_distance_cuts_both_series_to_the_common_length():
    x, y = sines([0.01, 0.03], n=3000, noise=1.0), sines([0.011, 0.03], n=5000, noise=1.0, seed=1)
    np.testing.assert_allclose(attractors.hellinger_distance(x, y), attractors.hellinger_distance(x, y[:3000]), rtol=1e-14)
