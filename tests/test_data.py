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
