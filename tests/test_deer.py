"""DEER and quasi-DEER against the sequential loop (float64, tanh RNN cells from lessons.nets): the
trajectory, exactness after T iterations even for a chaotic cell, quadratic convergence, the iteration
count at long T, implicit gradients against backpropagation through the loop (float64 and float32), a
jit that compiles once, the non-convergence warnings, and bad input."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import deer, nets


def rnn(d, gain, T, *, seed=0, dtype=jnp.float64, d_in=3):
    """(params, cell f(h, x), h0, xs) of a random tanh RNN; gain < 1 contracts, gain 3 is chaotic."""
    params = nets.init_tanh_rnn(d, d_in, key=jax.random.key(seed), dtype=dtype)
    xs = jax.random.normal(jax.random.key(seed + 1), (T, d_in), dtype)
    h0 = jax.random.normal(jax.random.key(seed + 2), (d,), dtype)
    return params, functools.partial(nets.tanh_rnn, params, gain=gain), h0, xs


def errors(iterates, reference):
    return np.asarray(jnp.max(jnp.abs(iterates - reference), axis=(1, 2)))


@pytest.mark.parametrize("T", [1, 7, 100, 1000])
def test_deer_and_quasi_deer_match_the_loop(T):
    _, f, h0, xs = rnn(6, 0.8, T)
    expected = deer.sequential(f, h0, xs)
    hs, num_iters = deer.deer(f, h0, xs)
    np.testing.assert_allclose(hs, expected, rtol=0, atol=1e-12)
    assert hs.dtype == jnp.float64 and 1 <= int(num_iters) <= min(T, 8)
    hs, num_iters = deer.quasi_deer(f, h0, xs, tol=1e-12)
    np.testing.assert_allclose(hs, expected, rtol=0, atol=1e-10)
    assert 1 <= int(num_iters) <= min(T, 100)


def test_a_pytree_of_inputs_and_a_starting_guess():
    params, _, h0, xs = rnn(4, 0.7, 50)
    f = lambda h, x: nets.tanh_rnn(params, h, x["u"], gain=x["gain"])
    inputs = {"u": xs, "gain": jnp.linspace(0.5, 0.9, 50)}
    expected = deer.sequential(f, h0, inputs)
    np.testing.assert_allclose(deer.deer(f, h0, inputs)[0], expected, atol=1e-12)
    result = deer.solve(f, h0, inputs, init=expected)  # started at the solution: one iteration confirms it
    assert int(result.num_iters) == 1 and bool(result.converged)


def test_a_batch_of_sequences_under_vmap():
    _, f, h0, xs = rnn(4, 0.8, 20)
    batch = jnp.stack([xs, -xs, 2 * xs])
    hs, num_iters = jax.vmap(lambda xs: deer.deer(f, h0, xs))(batch)
    assert hs.shape == (3, 20, 4) and num_iters.shape == (3,)
    np.testing.assert_allclose(hs, jax.vmap(lambda xs: deer.sequential(f, h0, xs))(batch), atol=1e-12)


@pytest.mark.parametrize("quasi", [False, True])
def test_the_kth_iterate_is_exact_up_to_step_k_even_when_chaotic(quasi):
    T = 6
    _, f, h0, xs = rnn(4, 3.0, T)
    expected = deer.sequential(f, h0, xs)
    iterates = deer.newton_iterates(f, h0, xs, T, quasi=quasi)
    assert iterates.shape == (T + 1, T, 4)
    for k in range(T + 1):
        np.testing.assert_allclose(iterates[k, :k], expected[:k], rtol=1e-12, atol=1e-13, err_msg=f"iterate {k}")
    assert np.abs(iterates[T - 1, T - 1] - expected[T - 1]).max() > 1e-3  # the last step is not exact one iteration early
    result = deer.solve(f, h0, xs, quasi=quasi)  # max_iter = T: exact, so converged
    assert bool(result.converged) and int(result.num_iters) <= T


def test_deer_converges_quadratically_and_quasi_deer_linearly():
    _, f, h0, xs = rnn(8, 0.9, 100)
    expected = deer.sequential(f, h0, xs)
    e = errors(deer.newton_iterates(f, h0, xs, 10), expected)
    near = [k for k in range(10) if e[k] < 0.1 and e[k + 1] > 1e-13]  # the quadratic phase, above round-off
    assert len(near) >= 2, e
    for k in near:
        assert e[k + 1] <= 2.0 * e[k] ** 2, (k, e)  # measured: e_(k+1) <= 0.3 e_k^2
    assert e[-1] < 1e-13
    q = errors(deer.newton_iterates(f, h0, xs, 10, quasi=True), expected)
    assert q[-1] > 1e-6 and q[-1] < q[5]  # still converging, linearly: slower than DEER


@pytest.mark.parametrize("gain, d, T", [(0.5, 4, 1000), (0.9, 16, 10_000)])
def test_deer_needs_at_most_8_iterations_on_a_contracting_rnn(gain, d, T):
    _, f, h0, xs = rnn(d, gain, T)
    result = deer.solve(f, h0, xs)
    assert bool(result.converged) and int(result.num_iters) <= 8, int(result.num_iters)
    np.testing.assert_allclose(result.hs, deer.sequential(f, h0, xs), atol=1e-11)
    quasi = deer.solve(f, h0, xs, quasi=True)
    assert bool(quasi.converged) and int(quasi.num_iters) <= 100, int(quasi.num_iters)


# --- gradients ----------------------------------------------------------------------------------------


def loss(method, params, h0, xs, weights, **kwargs):
    out = method(functools.partial(nets.tanh_rnn, params, gain=0.8), h0, xs, **kwargs)
    hs = out if method is deer.sequential else out[0]
    return jnp.sum(weights * jnp.sin(hs))


def relative_errors(tree, reference):
    pairs = zip(jax.tree.leaves(tree), jax.tree.leaves(reference), strict=True)
    return [float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) for a, b in pairs]


@pytest.mark.parametrize("method, kwargs", [(deer.deer, {}), (deer.quasi_deer, {"tol": 1e-13})])
def test_implicit_gradients_equal_backpropagation_through_the_loop(method, kwargs):
    params, _, h0, xs = rnn(6, 0.8, 300)
    weights = jax.random.normal(jax.random.key(9), (300, 6))
    grad = functools.partial(jax.grad, argnums=(0, 1, 2))
    expected = grad(lambda *a: loss(deer.sequential, *a, weights))(params, h0, xs)
    got = grad(lambda *a: loss(method, *a, weights, **kwargs))(params, h0, xs)
    assert max(relative_errors(got, expected)) < 1e-10, relative_errors(got, expected)


def test_implicit_gradients_in_float32():
    params, _, h0, xs = rnn(8, 0.8, 200, dtype=jnp.float32)
    weights = jax.random.normal(jax.random.key(9), (200, 8), jnp.float32)
    grad = functools.partial(jax.grad, argnums=(0, 1, 2))
    expected = grad(lambda *a: loss(deer.sequential, *a, weights))(params, h0, xs)
    got = grad(lambda *a: loss(deer.deer, *a, weights))(params, h0, xs)  # quasi-DEER's backward pass is the same
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(got))
    assert max(relative_errors(got, expected)) < 1e-4, relative_errors(got, expected)


def test_a_jit_over_the_parameters_compiles_once_and_agrees():
    params, _, h0, xs = rnn(4, 0.8, 64)
    value = jax.jit(lambda p: deer.deer(functools.partial(nets.tanh_rnn, p, gain=0.8), h0, xs)[0].sum())
    gradient = jax.jit(jax.grad(lambda p: deer.deer(functools.partial(nets.tanh_rnn, p, gain=0.8), h0, xs)[0].sum()))
    loop = jax.jit(jax.value_and_grad(lambda p: deer.sequential(functools.partial(nets.tanh_rnn, p, gain=0.8), h0, xs).sum()))
    for scale in (1.0, 0.9):
        p = jax.tree.map(lambda a, s=scale: s * a, params)
        expected, expected_grad = loop(p)
        np.testing.assert_allclose(value(p), expected, rtol=1e-12)
        assert max(relative_errors(gradient(p), expected_grad)) < 1e-10
    assert value._cache_size() == 1 and gradient._cache_size() == 1


# --- not converging ----------------------------------------------------------------------------------


def test_a_chaotic_cell_with_few_iterations_warns():
    _, f, h0, xs = rnn(16, 3.0, 50)
    result = deer.solve(f, h0, xs, max_iter=3)  # solve never warns (warnings are errors in this test run)
    assert not bool(result.converged) and int(result.num_iters) == 3
    with pytest.warns(deer.DeerWarning, match=r"did not converge in 3 iterations"):
        deer.deer(f, h0, xs, max_iter=3)
    with pytest.warns(deer.DeerWarning, match=r"quasi_deer did not converge in 2 iterations"):
        deer.quasi_deer(f, h0, xs, max_iter=2)
    with pytest.warns(deer.DeerWarning, match=r"did not converge in 3 iterations"):
        jax.block_until_ready(jax.jit(lambda xs: deer.deer(f, h0, xs, max_iter=3)[0])(xs))
        jax.effects_barrier()


def test_an_overflowing_cell_warns_non_finite():
    f = lambda h, x: 1e200 * h**3 + x
    with pytest.warns(deer.DeerWarning, match=r"non-finite state at iteration 2"):
        hs, num_iters = deer.deer(f, jnp.ones(2), jnp.zeros((5, 2)))
    assert int(num_iters) == 2 and not np.all(np.isfinite(hs))
    result = deer.solve(f, jnp.ones(2), jnp.zeros((5, 2)))
    assert not bool(result.converged) and not np.isfinite(float(result.change))


# --- bad input ---------------------------------------------------------------------------------------

CELL = lambda h, x: jnp.tanh(h + x)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: deer.deer(CELL, jnp.zeros(2), {"a": jnp.ones((4, 2)), "b": jnp.ones((5, 2))}), ValueError, r"\bxs\b"),
        (lambda: deer.deer(CELL, jnp.zeros(2), jnp.ones(())), ValueError, r"\bxs\b"),
        (lambda: deer.deer(CELL, jnp.zeros(2), None), ValueError, r"\bxs\b"),
        (lambda: deer.deer(CELL, jnp.array([0.0, jnp.inf]), jnp.ones((4, 2))), ValueError, r"\bh0\b"),
        (lambda: deer.deer(CELL, jnp.zeros((2, 2)), jnp.ones((4, 2))), ValueError, r"\bh0\b"),
        (lambda: deer.deer(lambda h, x: jnp.tanh(h[:1] + x), jnp.zeros(2), jnp.ones((4, 1))), ValueError, r"\bf\b must return"),
        (lambda: deer.deer(lambda h, x: h @ x, jnp.zeros(2), jnp.ones((4, 3))), ValueError, r"\bf\b fails"),
        (lambda: deer.deer("tanh", jnp.zeros(2), jnp.ones((4, 2))), TypeError, r"\bf\b"),
        (lambda: deer.deer(CELL, jnp.zeros(2), jnp.ones((4, 2)), tol=0.0), ValueError, r"\btol\b"),
        (lambda: deer.deer(CELL, jnp.zeros(2), jnp.ones((4, 2)), tol=1.5), ValueError, r"\btol\b"),
        (lambda: deer.quasi_deer(CELL, jnp.zeros(2), jnp.ones((4, 2)), tol="1e-6"), TypeError, r"\btol\b"),
        (lambda: deer.deer(CELL, jnp.zeros(2), jnp.ones((4, 2)), max_iter=0), ValueError, r"max_iter"),
        (lambda: deer.quasi_deer(CELL, jnp.zeros(2), jnp.ones((4, 2)), max_iter=2.0), ValueError, r"max_iter"),
        (lambda: deer.solve(CELL, jnp.zeros(2), jnp.ones((4, 2)), init=jnp.zeros((3, 2))), ValueError, r"\binit\b"),
        (lambda: deer.newton_iterates(CELL, jnp.zeros(2), jnp.ones((4, 2)), -1), ValueError, r"num_iters"),
        (lambda: deer.sequential(CELL, jnp.zeros(2), jnp.full((4, 2), jnp.nan)), ValueError, r"\bxs\b"),
    ],
)
def test_bad_input_names_the_argument(call, error, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=pattern) as raised:
            call()
    assert type(raised.value) is error
