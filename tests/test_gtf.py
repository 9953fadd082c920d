"""GTF and GTF-DEER: the forced recurrence against a NumPy loop, DEER against the sequential scan, DEER's implicit
gradient against backpropagation through time, the adaptive alpha against NumPy's spectral norms, the Newton
iteration count of a chaotic model against the sequence length; the linear state-space model against a loop;
the training loops' records. Float64 throughout (tests/conftest.py) unless a test says otherwise."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import attractors, deer, gtf, nets
from lessons.data import lorenz63

SHPLRNN = nets.shplrnn


def lorenz(T, dtype=jnp.float64):
    x = np.asarray(lorenz63(T, key=jax.random.key(0), dtype=jnp.float64))
    return jnp.asarray((x - x.mean(0)) / x.std(0), dtype)


def plrnn(M=3, L=16, seed=1, scale=1.0, dtype=jnp.float64):
    """A shPLRNN; ``scale`` > 1 enlarges its nonlinear part (Jacobian norms above 1 somewhere)."""
    p = nets.init_shplrnn(M, L, key=jax.random.key(seed), dtype=dtype)
    return {**p, "W1": scale * p["W1"], "W2": scale * p["W2"]}


def numpy_shplrnn(p, z):
    p = {k: np.asarray(v) for k, v in p.items()}
    return p["A"] * z + p["W1"] @ np.maximum(p["W2"] @ z + p["h2"], 0.0) + p["h1"]


def numpy_jacobian(p, z):
    p = {k: np.asarray(v) for k, v in p.items()}
    active = (p["W2"] @ z + p["h2"] > 0).astype(float)
    return np.diag(p["A"]) + p["W1"] @ np.diag(active) @ p["W2"]


def max_abs_diff(a, b):
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# --- the forced recurrence ------------------------------------------------------------------------------


def test_forced_recurrence_matches_a_python_loop_with_partial_forcing():
    x, p, alpha = lorenz(40), plrnn(M=5, scale=12.0), 0.35
    z, iters = gtf.gtf_trajectory(SHPLRNN, p, x, alpha, method="sequential", latent_dim=5)
    xn = np.asarray(x)
    state, expected = np.concatenate([xn[0], np.zeros(2)]), []
    for t in range(len(xn) - 1):
        forced = state.copy()
        forced[:3] = (1 - alpha) * state[:3] + alpha * xn[t]  # only the observed dims are pulled to the data
        state = numpy_shplrnn(p, forced)
        expected.append(state)
    assert z.shape == (39, 5) and int(iters) == 0
    np.testing.assert_allclose(z, np.array(expected), rtol=0, atol=1e-12)
    cell = gtf.gtf_cell(SHPLRNN, p, alpha)  # the same recurrence, by lessons.deer's loop
    np.testing.assert_allclose(deer.sequential(cell, jnp.zeros(5).at[:3].set(x[0]), x[:-1]), z, rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", ["deer", "quasi"])
def test_deer_and_quasi_deer_equal_the_sequential_trajectory(method):
    x, p = lorenz(150), plrnn(scale=12.0)
    alpha = gtf.adaptive_alpha(SHPLRNN, p, x)
    assert 0.1 < alpha < 0.9
    z_seq, _ = gtf.gtf_trajectory(SHPLRNN, p, x, alpha, method="sequential")
    z, iters = gtf.gtf_trajectory(SHPLRNN, p, x, alpha, method=method, tol=1e-11)
    assert int(iters) < 60
    np.testing.assert_allclose(z, z_seq, rtol=0, atol=1e-10)


def test_alpha_zero_is_the_free_run_and_alpha_one_the_one_step_predictions():
    x, p = lorenz(150), plrnn(scale=12.0)
    contracting = plrnn()
    free, _ = gtf.gtf_trajectory(SHPLRNN, contracting, x, 0.0)
    np.testing.assert_allclose(free, attractors.free_run(lambda z: SHPLRNN(contracting, z), x[0], 149), rtol=0, atol=1e-10)
    one_step, iters = gtf.gtf_trajectory(SHPLRNN, p, x, 1.0)
    np.testing.assert_allclose(one_step, jax.vmap(lambda z: SHPLRNN(p, z))(x[:-1]), rtol=0, atol=1e-12)
    assert int(iters) <= 2  # the forced Jacobian is 0: one Newton step is exact, the second sees no change
    loss = gtf.gtf_loss(SHPLRNN, p, x, 1.0)
    np.testing.assert_allclose(loss, np.mean((np.asarray(one_step) - np.asarray(x[1:])) ** 2), rtol=1e-12)


# --- gradients: DEER's implicit gradient is BPTT's -----------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(jnp.float64, 1e-8), (jnp.float32, 1e-4)])
def test_gtf_loss_gradient_via_deer_equals_bptt(dtype, tol):
    x, p = lorenz(150, dtype), plrnn(scale=12.0, dtype=dtype)
    alpha = gtf.adaptive_alpha(SHPLRNN, p, x)
    grads = {m: jax.jit(jax.grad(lambda q, m=m: gtf.gtf_loss(SHPLRNN, q, x, alpha, method=m)))(p) for m in ("deer", "sequential")}
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads["sequential"]))
    assert scale > 1e-3
    assert max_abs_diff(grads["deer"], grads["sequential"]) <= tol * scale


# --- the adaptive alpha ------------------------------------------------------------------------------------


def test_adaptive_alpha_matches_numpy_spectral_norms_and_makes_the_forced_map_contract():
    x, p = lorenz(500), plrnn(scale=12.0)
    norms = np.array([np.linalg.norm(numpy_jacobian(p, xt), 2) for xt in np.asarray(x)])
    expected = max(0.0, 1.0 - 1.0 / norms.max())
    np.testing.assert_allclose(gtf.jacobian_norm(SHPLRNN, p, x), norms.max(), rtol=1e-12)
    alpha = float(gtf.adaptive_alpha(SHPLRNN, p, x))
    np.testing.assert_allclose(alpha, expected, rtol=1e-12)
    # the forced map's Jacobian at the data states, (1 - alpha) J_F(x_t): norm <= 1, = 1 at the worst state
    forced = jax.vmap(jax.jacfwd(gtf.gtf_cell(SHPLRNN, p, alpha)))(x, x)  # d z_t / d z_(t-1) at z_(t-1) = x_(t-1)
    forced_norms = np.linalg.norm(np.asarray(forced), 2, axis=(1, 2))
    assert forced_norms.max() <= 1 + 1e-12 and forced_norms.max() > 1 - 1e-12
    np.testing.assert_allclose(forced_norms, (1 - alpha) * norms, rtol=1e-10)
    assert float(gtf.adaptive_alpha(SHPLRNN, plrnn(), x)) == 0.0  # a contracting model needs no forcing
    # window w: the largest geometric mean of w consecutive norms (a bound on products of w Jacobians)
    geometric = max(np.exp(np.log(norms[t : t + 50]).mean()) for t in range(len(norms) - 49))
    np.testing.assert_allclose(gtf.jacobian_norm(SHPLRNN, p, x, window=50), geometric, rtol=1e-10)
    assert float(gtf.adaptive_alpha(SHPLRNN, p, x, window=50)) < alpha


def test_iteration_count_stops_growing_with_T_at_the_adaptive_alpha_on_a_chaotic_model():
    p = nets.init_tanh_rnn(4, 1, key=jax.random.key(0), dtype=jnp.float64)
    F = lambda params, z: nets.tanh_rnn(params, z, jnp.zeros(1), gain=3.0)
    step = lambda z: F(p, z)
    z0 = jax.random.normal(jax.random.key(1), (4,), jnp.float64)
    assert attractors.lyapunov_exponent(step, z0, 2000) > 0.1  # chaotic (measured: 0.20 per step)
    x = attractors.free_run(step, z0, 11_000)[1000:]  # data on the model's own attractor
    alpha = float(gtf.adaptive_alpha(F, p, x))
    assert 0.5 < alpha < 0.95  # measured: 0.80
    iters = {T: int(gtf.gtf_trajectory(F, p, x[:T], alpha)[1]) for T in (1000, 10_000)}
    assert iters[1000] <= 8 and iters[10_000] <= iters[1000] + 2  # measured: 4 and 4
    with pytest.warns(deer.DeerWarning):  # plain DEER (alpha = 0) on the same model and data: no convergence
        _, plain = gtf.gtf_trajectory(F, p, x[:1000], 0.0, max_iter=30)
    assert int(plain) == 30


# --- the linear state-space model -------------------------------------------------------------------------------


def test_lssm_scan_matches_a_python_loop_and_the_sequential_scan():
    x = lorenz(40)
    p = gtf.init_lssm(3, 6, 8, key=jax.random.key(2), dtype=jnp.float64)
    lam, B = np.tanh(np.asarray(p["nu"])), np.asarray(p["B"])
    h, states = np.zeros(6), []
    for xt in np.asarray(x):
        h = lam * h + xt @ B
        states.append(h)
    np.testing.assert_allclose(gtf.lssm_states(p, x), np.array(states), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gtf.lssm_states(p, x, method="sequential"), np.array(states), rtol=0, atol=1e-12)
    preds = np.asarray(nets.mlp(p["readout"], jnp.asarray(states[:-1])))
    np.testing.assert_allclose(gtf.lssm_predictions(p, x), preds, rtol=0, atol=1e-12)
    loss = {m: gtf.lssm_loss(p, x, method=m) for m in gtf.SCANS}
    np.testing.assert_allclose(loss["parallel"], np.mean((preds - np.asarray(x[1:])) ** 2), rtol=1e-12)
    np.testing.assert_allclose(loss["parallel"], loss["sequential"], rtol=1e-12)
    grads = {m: jax.jit(jax.grad(lambda q, m=m: gtf.lssm_loss(q, x, method=m)))(p) for m in gtf.SCANS}
    assert max_abs_diff(grads["parallel"], grads["sequential"]) < 1e-12


def test_lssm_free_run_feeds_its_predictions_back():
    p = gtf.init_lssm(3, 6, 8, key=jax.random.key(2), dtype=jnp.float64)
    h0 = gtf.lssm_states(p, lorenz(50))[-1]
    hs = attractors.free_run(lambda h: gtf.lssm_step(p, h), h0, 30)
    generated = gtf.lssm_readout(p, jnp.concatenate([h0[None], hs]))  # x_hat_0 .. x_hat_30
    # reading the generated observations as data from state h0 reproduces the free run's states
    lam, B = np.tanh(np.asarray(p["nu"])), np.asarray(p["B"])
    h = np.asarray(h0)
    for t in range(30):
        h = lam * h + np.asarray(generated[t]) @ B
        np.testing.assert_allclose(hs[t], h, rtol=0, atol=1e-12)


# --- training ----------------------------------------------------------------------------------------


def test_train_shplrnn_records_alpha_iterations_and_learns():
    x, p = lorenz(2000), plrnn()
    kwargs = dict(key=jax.random.key(3), num_steps=60, seq_len=40, batch_size=2, learning_rate=5e-3, alpha_every=25)
    run = gtf.train_shplrnn(p, x, alpha_decay=0.5, **kwargs)
    assert run.diverged_at is None and run.steps == 60 and "finished 60 steps" in run.message
    assert run.loss.shape == run.iterations.shape == (60,) and run.alpha.shape == (3,)  # 25 + 25 + 10 steps
    assert run.alpha[0] >= 0.5 and np.all(np.diff(run.alpha) <= 0)  # from alpha = 1, halfway to the estimate each time
    assert np.all(run.iterations >= 1) and run.iterations.max() <= 39
    one_step = lambda q: gtf.gtf_loss(SHPLRNN, q, x[:150], 1.0)
    assert one_step(run.params) < 0.5 * one_step(p)
    again = gtf.train_shplrnn(p, x, alpha_decay=0.5, **kwargs)  # same key, same run (and no recompilation)
    np.testing.assert_array_equal(again.loss, run.loss)
    # a model that overflows at once: the first loss is not finite, nothing is taken
    huge = {**p, "W1": 1e200 * p["W1"]}
    bad = gtf.train_shplrnn(huge, x, alpha_decay=0.5, **kwargs)
    assert bad.diverged_at == 0 and bad.steps == 0 and "diverged at step 0" in bad.message and "initial" in bad.message
    assert max_abs_diff(bad.params, huge) == 0.0


def test_train_ssm_learns_one_step_ahead():
    x = lorenz(2000)
    p = gtf.init_lssm(3, 8, 16, key=jax.random.key(4), dtype=jnp.float64)
    run = gtf.train_ssm(p, x, key=jax.random.key(5), num_steps=80, seq_len=40, batch_size=2, learning_rate=1e-2)
    assert run.diverged_at is None and run.loss.shape == (80,) and run.alpha.shape == (0,)
    assert np.all(run.iterations == 0)
    assert run.loss[-10:].mean() < 0.3 * run.loss[:10].mean()


# --- bad input ------------------------------------------------------------------------------------------


X, P = lorenz(30), plrnn()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: gtf.gtf_trajectory(SHPLRNN, P, X, -0.1), "alpha"),
        (lambda: gtf.gtf_loss(SHPLRNN, P, X, 1.5), "alpha"),
        (lambda: gtf.gtf_loss(SHPLRNN, P, X, "0.5"), "alpha"),
        (lambda: gtf.gtf_trajectory(SHPLRNN, P, X[:, 0], 0.5), "data"),
        (lambda: gtf.gtf_trajectory(SHPLRNN, P, X[:1], 0.5), "data"),
        (lambda: gtf.adaptive_alpha(SHPLRNN, P, X.at[3, 1].set(jnp.nan)), "data"),
        (lambda: gtf.adaptive_alpha(SHPLRNN, P, X, latent_dim=2), "latent_dim"),
        (lambda: gtf.jacobian_norm(SHPLRNN, P, X, latent_dim=4), "F"),
        (lambda: gtf.jacobian_norm(SHPLRNN, P, X, window=31), "window"),
        (lambda: gtf.gtf_trajectory(SHPLRNN, P, X, 0.5, method="newton"), "method"),
        (lambda: gtf.gtf_trajectory(SHPLRNN, P, X, 0.5, max_iter=0), "max_iter"),
        (lambda: gtf.train_shplrnn(P, X, key=jax.random.key(0), num_steps=5, seq_len=31), "seq_len"),
        (lambda: gtf.train_shplrnn(P, X, key=jax.random.key(0), num_steps=5, alpha="auto"), "alpha"),
        (lambda: gtf.train_shplrnn(P, X, key=jax.random.key(0), num_steps=5, alpha_decay=1.0), "alpha_decay"),
        (lambda: gtf.train_shplrnn(P, X, key=0, num_steps=5), "key"),
        (lambda: gtf.train_ssm(gtf.init_lssm(2, 4, 4, key=jax.random.key(0)), X, key=jax.random.key(0), num_steps=5), "params"),
        (lambda: gtf.lssm_loss(gtf.init_lssm(3, 4, 4, key=jax.random.key(0)), X, method="fft"), "method"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_no_warning_when_deer_converges():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gtf.gtf_trajectory(SHPLRNN, P, X, 0.5)
