"""Landscape slices: grids against direct evaluation, filter normalisation, projections, eigen-directions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lessons import autodiff, data, landscape, nets


@pytest.fixture(scope="module")
def net():
    x, y = data.two_spirals(32, key=jax.random.key(0))
    params = nets.init_mlp([2, 6, 5, 1], key=jax.random.key(1), dtype=jnp.float64)
    return nets.classifier_loss(x.astype(jnp.float64), y.astype(jnp.float64)), params


def test_filter_normalised_directions(net):
    _, params = net
    d = landscape.filter_normalized_direction(params, key=jax.random.key(2))
    for (W, _b), (dW, db) in zip(params, d, strict=True):
        np.testing.assert_allclose(np.linalg.norm(dW, axis=0), np.linalg.norm(W, axis=0), rtol=1e-10)
        assert np.all(np.asarray(db) == 0)
    other = landscape.filter_normalized_direction(params, key=jax.random.key(3))
    assert not np.allclose(d[0][0], other[0][0])


def test_slices_equal_direct_evaluation(net):
    loss, params = net
    d1 = landscape.filter_normalized_direction(params, key=jax.random.key(4))
    d2 = landscape.filter_normalized_direction(params, key=jax.random.key(5))
    alphas, betas = jnp.linspace(-1, 1, 5), jnp.linspace(-0.5, 2, 4)
    grid = np.asarray(landscape.slice_2d(loss, params, d1, d2, alphas, betas, batch_size=3))
    assert grid.shape == (4, 5)
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            point = jax.tree.map(lambda p, u, v, a=a, b=b: p + a * u + b * v, params, d1, d2)
            assert grid[i, j] == pytest.approx(float(loss(point)), rel=1e-12)
    line = landscape.slice_1d(loss, params, d1, alphas)
    direct = [float(loss(jax.tree.map(lambda p, u, a=a: p + a * u, params, d1))) for a in alphas]
    np.testing.assert_allclose(line, direct, rtol=1e-12)


def test_projection_recovers_coordinates_in_the_plane(net):
    _, params = net
    d1 = landscape.filter_normalized_direction(params, key=jax.random.key(6))
    d2 = landscape.filter_normalized_direction(params, key=jax.random.key(7))
    coords = np.array([[0.0, 0.0], [1.0, -2.0], [-0.3, 0.7]])
    points = [jax.tree.map(lambda p, u, v, a=a, b=b: p + a * u + b * v, params, d1, d2) for a, b in coords]
    np.testing.assert_allclose(landscape.project(points, params, d1, d2), coords, atol=1e-10)


def test_eigen_directions_are_hessian_eigenvectors(net):
    loss, params = net
    values, directions = landscape.eigen_directions(loss, params, 2, key=jax.random.key(8), num_steps=40)
    H = np.asarray(autodiff.hessian_matrix(loss, params))
    exact = np.linalg.eigvalsh(H)[::-1][:2]
    np.testing.assert_allclose(values, exact, rtol=1e-8)
    for lam, d in zip(values, directions, strict=True):
        v = np.asarray(ravel_pytree(d)[0])
        assert np.linalg.norm(v) == pytest.approx(1.0)
        np.testing.assert_allclose(H @ v, lam * v, atol=1e-7 * abs(lam))


def test_landscape_with_path_covers_the_path(net):
    loss, params = net
    d1 = landscape.filter_normalized_direction(params, key=jax.random.key(9))
    d2 = landscape.filter_normalized_direction(params, key=jax.random.key(10))
    # a straight path ending at the centre (the last snapshot): coordinates (3 - t, -(3 - t))
    snapshots = [jax.tree.map(lambda p, u, v, t=t: p + (3 - t) * (u - v), params, d1, d2) for t in range(4)]
    result = landscape.landscape_with_path(loss, snapshots, d1, d2, num=9)
    np.testing.assert_allclose(result.path, [[3, -3], [2, -2], [1, -1], [0, 0]], atol=1e-10)
    assert result.alphas.min() < -1 and result.alphas.max() > 3 and result.betas.min() < -3 and result.betas.max() > 1
    assert result.losses.shape == (9, 9)


def test_bad_input(net):
    loss, params = net
    d = landscape.filter_normalized_direction(params, key=jax.random.key(11))
    with pytest.raises(ValueError, match="direction"):
        landscape.slice_1d(loss, params, d[:1], jnp.zeros(3))
    with pytest.raises(ValueError, match="alphas"):
        landscape.slice_1d(loss, params, d, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="betas"):
        landscape.slice_2d(loss, params, d, d, jnp.zeros(3), jnp.zeros(0))
    with pytest.raises(ValueError, match="key"):
        landscape.filter_normalized_direction(params, key=3)
    with pytest.raises(ValueError, match="snapshots"):
        landscape.landscape_with_path(loss, [], d, d)
