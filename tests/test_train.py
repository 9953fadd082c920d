"""Training loops: chunked scans against step-by-step NumPy, divergence stops, trajectories."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lessons import first_order, problems, train


def quad(H):
    H = jnp.asarray(H)
    return lambda w: 0.5 * w @ H @ w


H3 = np.diag([1.0, 3.0, 9.0])


def test_losses_equal_a_numpy_loop():
    h = train.train(quad(H3), jnp.ones(3), first_order.gradient_descent(0.1), num_steps=37, chunk_size=10, progress=False)
    w, ref = np.ones(3), []
    for _ in range(37):
        ref.append(0.5 * w @ H3 @ w)
        w = w - 0.1 * H3 @ w
    np.testing.assert_allclose(h.loss, ref, rtol=1e-12)
    np.testing.assert_allclose(h.params, w, rtol=1e-12)
    assert h.steps == 37 and not h.diverged and "finished 37 steps" in h.message


@pytest.mark.parametrize("chunk_size", [1, 7, 500])
def test_chunking_does_not_change_the_result(chunk_size):
    ref = train.train(quad(H3), jnp.ones(3), optax.adam(0.1), num_steps=50, chunk_size=50, progress=False)
    h = train.train(quad(H3), jnp.ones(3), optax.adam(0.1), num_steps=50, chunk_size=chunk_size, progress=False)
    np.testing.assert_allclose(h.loss, ref.loss, rtol=1e-12)
    np.testing.assert_allclose(h.params, ref.params, rtol=1e-12)


def test_divergence_stops_with_a_message_and_the_last_good_params():
    # lr = 0.3 > 2/9: the 9-curvature coordinate grows by |1 - 2.7| = 1.7 per step until float32 overflows.
    d = H3.diagonal().astype(np.float32)
    loss = lambda w: 0.5 * jnp.sum(jnp.asarray(d) * w * w)
    h = train.train(
        loss, jnp.ones(3, jnp.float32), first_order.gradient_descent(0.3), num_steps=5000, chunk_size=64, progress=False
    )
    w, k = np.ones(3, np.float32), 0
    with np.errstate(over="ignore"):
        while np.isfinite(np.float32(0.5) * np.sum(d * w * w)):
            w, k = w - np.float32(0.3) * d * w, k + 1
    assert h.diverged and h.diverged_at == k
    assert h.steps == k and len(h.loss) == k and np.all(np.isfinite(h.loss))
    assert f"diverged at step {k}" in h.message
    assert np.all(np.isfinite(h.params)) and np.isfinite(loss(h.params))
    # the parameters kept are those of step k - 1 (the last finite loss)
    w_prev = np.ones(3, np.float32)
    for _ in range(k - 1):
        w_prev = w_prev - np.float32(0.3) * d * w_prev
    np.testing.assert_allclose(h.params, w_prev, rtol=1e-5)


def test_divergence_at_step_zero():
    h = train.train(lambda w: jnp.sum(w) * jnp.nan, jnp.ones(2), first_order.gradient_descent(0.1), num_steps=10, progress=False)
    assert h.diverged_at == 0 and h.steps == 0 and len(h.loss) == 0
    np.testing.assert_array_equal(h.params, jnp.ones(2))


def test_snapshots_and_resume():
    h = train.train(quad(H3), jnp.ones(3), first_order.heavy_ball(0.05, 0.5), num_steps=30, snapshot_every=10, progress=False)
    assert [s for s, _ in h.snapshots] == [0, 10, 20, 30]
    first = train.train(quad(H3), jnp.ones(3), first_order.heavy_ball(0.05, 0.5), num_steps=10, progress=False)
    np.testing.assert_allclose(h.snapshots[1][1], first.params, rtol=1e-12)
    rest = train.train(
        quad(H3), first.params, first_order.heavy_ball(0.05, 0.5), num_steps=20, opt_state=first.opt_state, progress=False
    )
    np.testing.assert_allclose(rest.params, h.params, rtol=1e-12)


def test_second_order_optax_transformations_get_their_extra_arguments():
    # optax.lbfgs needs value, grad and value_fn: train passes them.
    h = train.train(quad(H3), jnp.ones(3), optax.lbfgs(), num_steps=20, progress=False)
    assert h.loss[-1] < 1e-20


def test_trajectory_records_every_iterate_and_cuts_divergence():
    p = problems.quadratic(10.0)
    t = train.trajectory(p.value, p.start, first_order.gradient_descent(0.5), 25)
    assert t.points.shape == (26, 2) and t.diverged_at is None
    np.testing.assert_allclose(t.values, [float(p.value(jnp.asarray(x))) for x in t.points], rtol=1e-10)
    bad = train.trajectory(p.value, p.start, first_order.gradient_descent(3.0), 200, blowup=100.0)
    assert bad.diverged_at is not None and len(bad.points) == bad.diverged_at
    assert np.abs(bad.points).max() <= 100.0


def test_steps_to_tolerance_matches_a_loop():
    Hd = jnp.asarray(np.diag([0.1, 1.0]))
    k = train.steps_to_tolerance(
        lambda x: Hd @ x, jnp.ones(2), jnp.zeros(2), first_order.gradient_descent(1.0), tol=1e-3, max_steps=10_000
    )
    x, n = np.ones(2), 0
    while np.linalg.norm(x) > 1e-3 * np.sqrt(2):
        x, n = x - np.diag([0.1, 1.0]) @ x, n + 1
    assert int(k) == n
    capped = train.steps_to_tolerance(
        lambda x: Hd @ x, jnp.ones(2), jnp.zeros(2), first_order.gradient_descent(1e-3), tol=1e-3, max_steps=50
    )
    assert int(capped) == 50


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_steps=-1), "num_steps"),
        (dict(num_steps=3, chunk_size=0), "chunk_size"),
        (dict(num_steps=3, snapshot_every=0), "snapshot_every"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        train.train(quad(H3), jnp.ones(3), first_order.gradient_descent(0.1), progress=False, **kwargs)
