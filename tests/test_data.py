"""Generated data sets: shapes, balance, determinism, and the spiral geometry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import data


def test_two_spirals_shapes_balance_and_determinism():
    x, y = data.two_spirals(257, key=jax.random.key(0))
    assert x.shape == (257, 2) and y.shape == (257,)
    assert int(y.sum()) == 257 - 257 // 2
    x2, y2 = data.two_spirals(257, key=jax.random.key(0))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = data.two_spirals(257, key=jax.random.key(1))
    assert not np.allclose(x, x3)


def test_two_spirals_without_noise_lie_on_their_arms():
    x, y = data.two_spirals(200, key=jax.random.key(3), noise=0.0, turns=1.0)
    x, y = np.asarray(x, float), np.asarray(y)
    r = np.linalg.norm(x, axis=1)
    phi = np.arctan2(x[:, 1], x[:, 0])
    # angle = 2 pi turns r + pi c (mod 2 pi)
    residual = np.angle(np.exp(1j * (phi - 2 * np.pi * r - np.pi * y)))
    np.testing.assert_allclose(residual, 0.0, atol=1e-5)
    assert r.min() >= 0.05 - 1e-6 and r.max() <= 1.0 + 1e-6


def test_legacy_uint32_keys_are_accepted():
    x, _ = data.two_spirals(10, key=jax.random.PRNGKey(0))
    assert x.shape == (10, 2)


@pytest.mark.parametrize("n", [1, 0, 2.5, "10"])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be"):
        data.two_spirals(n, key=jax.random.key(0))


@pytest.mark.parametrize("key", [0, np.zeros(2), None, jax.numpy.zeros(3, jax.numpy.uint32)])
def test_bad_key_names_the_argument(key):
    with pytest.raises(ValueError, match="key must be a JAX PRNG key"):
        data.two_spirals(10, key=key)


def test_bad_noise():
    with pytest.raises(ValueError, match="noise"):
        data.two_spirals(10, key=jax.random.key(0), noise=-1.0)


def test_two_spirals_are_the_same_points_in_every_precision():
    x32, y32 = data.two_spirals(64, key=jax.random.key(0))
    x64, y64 = data.two_spirals(64, key=jax.random.key(0), dtype=jnp.float64)
    assert x32.dtype == jnp.float32 and x64.dtype == jnp.float64 and y64.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(x32, np.float64), np.asarray(x64))
    np.testing.assert_array_equal(np.asarray(y32, np.float64), np.asarray(y64))
    with pytest.raises(TypeError, match="dtype"):
        data.two_spirals(8, key=jax.random.key(0), dtype=jnp.int32)


@pytest.mark.parametrize("make", [data.moons, data.xor], ids=["moons", "xor"])
def test_moons_and_xor_shapes_balance_and_determinism(make):
    x, y = make(101, key=jax.random.key(0))
    assert x.shape == (101, 2) and y.shape == (101,) and x.dtype == y.dtype == jnp.float32
    assert set(np.unique(np.asarray(y)).tolist()) == {0.0, 1.0} and int(y.sum()) == 101 - 101 // 2
    x2, y2 = make(101, key=jax.random.key(0))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.allclose(x, make(101, key=jax.random.key(1))[0])
    assert np.abs(np.asarray(x)).max() < 2.0  # about the unit box, like the spirals


@pytest.mark.parametrize("make", [data.moons, data.xor], ids=["moons", "xor"])
def test_moons_and_xor_are_the_same_points_in_every_precision(make):
    x32, y32 = make(64, key=jax.random.key(2), noise=0.2)
    x64, y64 = make(64, key=jax.random.key(2), noise=0.2, dtype=jnp.float64)
    assert x64.dtype == y64.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(x32, np.float64), np.asarray(x64))
    np.testing.assert_array_equal(np.asarray(y32, np.float64), np.asarray(y64))


def test_moons_without_noise_lie_on_their_arcs():
    x, y = data.moons(200, key=jax.random.key(3), noise=0.0)
    raw = np.asarray(x, float) * 1.5 + [0.5, 0.25]  # undo the shift and scale
    upper, lower = raw[np.asarray(y) == 0], raw[np.asarray(y) == 1]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-5)
    assert upper[:, 1].min() >= -1e-6 and lower[:, 1].max() <= 0.5 + 1e-6


def test_xor_without_noise_labels_the_sign_of_the_product():
    x, y = data.xor(200, key=jax.random.key(4), noise=0.0)
    x = np.asarray(x, float)
    np.testing.assert_array_equal(x[:, 0] * x[:, 1] > 0, np.asarray(y) == 1)
    assert np.abs(x).min() >= 0.1 - 1e-6 and np.abs(x).max() <= 1.0 + 1e-6
    quadrants = {(bool(a > 0), bool(b > 0)) for a, b in x}
    assert len(quadrants) == 4


def test_modular_addition_is_the_whole_table_split_once():
    p = 7
    x_train, y_train, x_test, y_test = data.modular_addition(p, key=jax.random.key(0), train_fraction=0.4)
    assert x_train.shape == (20, 2 * p) and x_test.shape == (29, 2 * p) and y_train.dtype == jnp.int32
    pairs = [(int(jnp.argmax(row[:p])), int(jnp.argmax(row[p:]))) for row in jnp.concatenate([x_train, x_test])]
    assert sorted(pairs) == [(a, b) for a in range(p) for b in range(p)]  # every pair once, no overlap
    labels = jnp.concatenate([y_train, y_test])
    assert all(int(c) == (a + b) % p for (a, b), c in zip(pairs, labels, strict=True))
    again = data.modular_addition(p, key=jax.random.key(0), train_fraction=0.4, dtype=jnp.float64)
    assert bool(jnp.all(again[0] == x_train)) and again[0].dtype == jnp.float64
    other = data.modular_addition(p, key=jax.random.key(1), train_fraction=0.4)
    assert not bool(jnp.all(other[1] == y_train))


# --- Lorenz-63 ------------------------------------------------------------------------------------------


def _lorenz_reference(x0, t_final, t_eval=None):
    """The same flow by scipy's DOP853 at tight tolerances: an independent reference for the RK4 steps."""
    from scipy.integrate import solve_ivp

    def field(_, y, s=10.0, r=28.0, b=8.0 / 3.0):
        return [s * (y[1] - y[0]), y[0] * (r - y[2]) - y[1], y[0] * y[1] - b * y[2]]

    return solve_ivp(field, (0.0, t_final), np.asarray(x0, float), method="DOP853", rtol=1e-10, atol=1e-12, t_eval=t_eval).y.T


def test_lorenz63_vector_field_by_hand_and_in_batches():
    x = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 20.0]])
    expected = [[10.0 * (2 - 1), 1 * (28 - 3) - 2, 1 * 2 - 8 / 3 * 3], [10.0 * 1.5, -1 * (28 - 20) - 0.5, -0.5 - 8 / 3 * 20]]
    np.testing.assert_allclose(data.lorenz63_vector_field(x), expected, rtol=1e-14)
    np.testing.assert_allclose(
        data.lorenz63_vector_field(x[1], sigma=1.0, rho=2.0, beta=3.0), [1.5, -1 * (2 - 20) - 0.5, -0.5 - 60]
    )


def test_lorenz63_follows_solve_ivp_for_one_time_unit():
    x = data.lorenz63(101, key=jax.random.key(0), dtype=jnp.float64)  # on the attractor, sampled every 0.01
    reference = _lorenz_reference(x[0], 1.0, t_eval=np.linspace(0.0, 1.0, 101))
    # Measured: 4.6e-4 at dt = 0.01 (the state is ~40 in size): RK4's global error, O(dt^4).
    np.testing.assert_allclose(np.asarray(x), reference, rtol=0, atol=1e-3)
    fine = data.lorenz63(1001, key=jax.random.key(0), dt=0.001, burn_in=0, dtype=jnp.float64)
    np.testing.assert_allclose(np.asarray(fine[-1]), _lorenz_reference(fine[0], 1.0)[-1], rtol=0, atol=1e-6)


def test_lorenz63_rk4_global_error_is_fourth_order():
    errors = []
    for dt in (0.02, 0.01, 0.005):
        n = int(round(0.5 / dt))
        x = data.lorenz63(n + 1, key=jax.random.key(1), dt=dt, burn_in=0, dtype=jnp.float64)  # same start for every dt
        errors.append(np.abs(np.asarray(x[-1]) - _lorenz_reference(x[0], 0.5)[-1]).max())
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((12.0 < ratios) & (ratios < 21.0)), ratios  # measured 17.4, 16.8: halving dt divides by ~2^4


def test_lorenz63_stays_on_the_attractor():
    x = np.asarray(data.lorenz63(100_000, key=jax.random.key(2), dtype=jnp.float64))
    assert x.shape == (100_000, 3) and np.all(np.isfinite(x))
    assert np.abs(x[:, 0]).max() < 25 and np.abs(x[:, 1]).max() < 32 and 0 < x[:, 2].min() and x[:, 2].max() < 52
    assert abs(x[:, 2].mean() - 23.55) < 0.4  # measured 23.58; the attractor's z-centre
    assert np.abs(x[:, :2].mean(0)).max() < 1.5  # symmetric under (x, y) -> (-x, -y)
    assert (x[:, 0] > 0).mean() > 0.3 and (x[:, 0] < 0).mean() > 0.3  # both wings are visited


def test_lorenz63_start_burn_in_and_determinism():
    start = data.lorenz63(1, key=jax.random.key(3), burn_in=0, dtype=jnp.float64)[0]
    assert np.abs(np.asarray(start) - [0.0, 0.0, 27.0]).max() < 40  # drawn around (0, 0, rho - 1)
    x = data.lorenz63(50, key=jax.random.key(3), burn_in=10, dtype=jnp.float64)
    y = data.lorenz63(60, key=jax.random.key(3), burn_in=0, dtype=jnp.float64)
    np.testing.assert_array_equal(x, y[10:])  # row t is x_{burn_in + t}
    np.testing.assert_allclose(y[1], data.lorenz63_step(y[0], 0.01), rtol=1e-15)
    np.testing.assert_array_equal(x, data.lorenz63(50, key=jax.random.key(3), burn_in=10, dtype=jnp.float64))
    assert not np.allclose(x, data.lorenz63(50, key=jax.random.key(4), burn_in=10, dtype=jnp.float64))


def test_lorenz63_is_the_same_trajectory_in_every_dtype():
    x32 = data.lorenz63(500, key=jax.random.key(5))
    x64 = data.lorenz63(500, key=jax.random.key(5), dtype=jnp.float64)
    assert x32.dtype == jnp.float32 and x64.dtype == jnp.float64
    np.testing.assert_array_equal(x32, x64.astype(jnp.float32))  # integrated once, in float64, then cast
    with jax.enable_x64(False):  # without x64 the integration itself is float32: the same start, then chaos
        y32 = data.lorenz63(200, key=jax.random.key(5), burn_in=0)
    y64 = data.lorenz63(200, key=jax.random.key(5), burn_in=0, dtype=jnp.float64)
    assert y32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y32[:20], float), y64[:20], rtol=1e-5, atol=1e-5)


def test_lorenz63_observation_noise_is_relative_to_each_coordinates_spread():
    clean = data.lorenz63(5000, key=jax.random.key(6), dtype=jnp.float64)
    noisy = data.lorenz63(5000, key=jax.random.key(6), noise=0.1, dtype=jnp.float64)
    relative = np.asarray((noisy - clean) / clean.std(0))
    np.testing.assert_allclose(relative.std(0), 0.1, rtol=0.05)
    assert np.abs(relative.mean(0)).max() < 0.01
    with pytest.raises(ValueError, match="noise"):
        data.lorenz63(10, key=jax.random.key(0), noise=-0.1)
