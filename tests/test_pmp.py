"""Training as optimal control: the costates against autodiff through a plain loop, PMP's first-order condition,
E-MSA's descent for large rho and its speed per iteration against gradient descent on the reference toy, MSA's
failure, and the optax transformation and registry entry on the spirals MLP. Float64 throughout (tests/conftest.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import data, nets, optimizers, pmp, train

WEIGHT_DECAY = 1e-3  # R = 1e-3 |theta|^2 / 2, as in the reference toy


# --- an independent reference: the networks written out as plain loops, with a shift added to every state


def toy_loss_with_shifts(params, x, y, shifts, h=0.25):
    """The toy by hand: x_0 = (x, ..., x), x_{i+1} = x_i + h tanh(x_i W_i + b_i), output x_N[:, 0], squared loss."""
    W, b = params
    state = jnp.repeat(x[:, None], W.shape[-1], axis=1) + shifts[0]
    for i in range(W.shape[0]):
        state = state + h * jnp.tanh(state @ W[i] + b[i]) + shifts[i + 1]
    return jnp.mean(0.5 * (state[:, 0] - y) ** 2)


def mlp_loss_with_shifts(params, x, y, shifts):
    state = x + shifts[0]
    for i, (W, b) in enumerate(params):
        z = state @ W + b
        state = (z if i == len(params) - 1 else jnp.tanh(z)) + shifts[i + 1]
    return jnp.mean(nets.logistic_losses(state, y))


def random_toy(net, seed=0, scale=0.5):
    kW, kb = jax.random.split(jax.random.key(seed))
    N, d = net.num_layers, net.width
    return (
        scale * jax.random.normal(kW, (N, d, d), jnp.float64) / np.sqrt(d),
        scale * jax.random.normal(kb, (N, d), jnp.float64),
    )


def spirals(n=64):
    x, y = data.two_spirals(n, key=jax.random.key(0), dtype=jnp.float64)
    return nets.init_mlp([2, 16, 16, 1], key=jax.random.key(1), dtype=jnp.float64), x, y


CASES = {
    "residual": lambda: (
        pmp.residual_net(num_layers=6, width=5),
        random_toy(pmp.residual_net(6, 5)),
        *pmp.sine_data(9, dtype=jnp.float64),
    ),
    "mlp": lambda: (pmp.mlp_net(), *spirals(9)),
}
REFERENCE = {"residual": toy_loss_with_shifts, "mlp": mlp_loss_with_shifts}


# --- states, costates, Hamiltonian ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CASES))
def test_costates_are_minus_the_gradient_of_the_loss_with_respect_to_the_states(kind):
    net, params, x, y = CASES[kind]()
    states = pmp.forward_states(net, params, x)
    zeros = [jnp.zeros_like(s) for s in states]
    np.testing.assert_allclose(REFERENCE[kind](params, x, y, zeros), pmp.loss(net, params, x, y), rtol=1e-14)
    expected = jax.jit(jax.grad(lambda shifts: REFERENCE[kind](params, x, y, shifts)))(zeros)  # dPhi/dx_i for every i
    ps = pmp.costates(net, params, x, y)
    assert len(ps) == len(states) == len(params[0] if kind == "residual" else params) + 1
    for i, (p, g) in enumerate(zip(ps, expected, strict=True)):
        assert p.shape == states[i].shape
        np.testing.assert_allclose(np.asarray(p), -np.asarray(g), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_hamiltonian_gradient_is_minus_the_loss_gradient_pmp_first_order_condition(kind):
    net, params, x, y = CASES[kind]()
    states, ps = pmp.forward_states(net, params, x), pmp.costates(net, params, x, y)
    grads = jax.grad(lambda p: pmp.loss(net, p, x, y, WEIGHT_DECAY))(params)
    N = len(states) - 1
    for i in range(N):
        theta = jax.tree.map(lambda leaf, i=i: leaf[i], params) if kind == "residual" else params[i]
        g_i = jax.tree.map(lambda leaf, i=i: leaf[i], grads) if kind == "residual" else grads[i]
        H = lambda t, i=i: pmp.hamiltonian(net.layer_map(i, N), t, states[i], ps[i + 1], WEIGHT_DECAY)  # noqa: E731
        for got, want in zip(jax.tree.leaves(jax.grad(H)(theta)), jax.tree.leaves(g_i), strict=True):
            np.testing.assert_allclose(np.asarray(got), -np.asarray(want), rtol=1e-10, atol=1e-15)


def test_zero_layers_are_identities_and_the_toy_starts_at_y_hat_equals_x():
    net = pmp.residual_net()
    x, y = pmp.sine_data(100, dtype=jnp.float64)
    assert x.shape == y.shape == (100,) and x.dtype == jnp.float64
    np.testing.assert_allclose([x[0], x[-1]], [-np.pi, np.pi], rtol=1e-6)
    np.testing.assert_allclose(y, np.sin(x), atol=1e-7)  # made in float32, like lessons.data
    params = pmp.init_residual(net, dtype=jnp.float64)
    assert params[0].shape == (20, 5, 5) and params[1].shape == (20, 5)
    states = pmp.forward_states(net, params, x)
    assert states.shape == (21, 100, 5)
    np.testing.assert_array_equal(states, jnp.broadcast_to(x[:, None], (21, 100, 5)))
    np.testing.assert_array_equal(net.apply(params, x), x)


# --- MSA and E-MSA on the reference toy (20 layers of width 5, a small batch) ---------------------------

TOY = pmp.residual_net()
X, Y = pmp.sine_data(25, dtype=jnp.float64)
TOY_LOSS = jax.jit(lambda params: pmp.loss(TOY, params, X, Y, WEIGHT_DECAY))
TOY_GRAD = jax.jit(jax.grad(lambda params: pmp.loss(TOY, params, X, Y, WEIGHT_DECAY)))


def gradient_descent(params, lr, num_steps):
    losses = []
    for _ in range(num_steps):
        params = jax.tree.map(lambda p, g: p - lr * g, params, TOY_GRAD(params))
        losses.append(float(TOY_LOSS(params)))
    return params, losses


def starting_points():
    zero = pmp.init_residual(TOY, dtype=jnp.float64)
    return {"zero": zero, "after GD": gradient_descent(zero, 0.1, 5)[0], "random": random_toy(TOY, seed=3, scale=0.3)}


@pytest.mark.parametrize("rho", [10.0, 100.0])
def test_one_emsa_iteration_does_not_increase_the_loss_for_large_rho(rho):
    for name, params in starting_points().items():
        new = pmp.emsa_step(TOY, params, X, Y, rho=rho, weight_decay=WEIGHT_DECAY)
        assert TOY_LOSS(new) < TOY_LOSS(params), (name, float(TOY_LOSS(params)), float(TOY_LOSS(new)))


def test_msa_raises_the_loss_where_emsa_lowers_it():
    # From zero every layer is the identity and sees the same states and costates: maximising each
    # Hamiltonian alone moves all 20 layers the same way, far past the minimum.
    params = pmp.init_residual(TOY, dtype=jnp.float64)
    start = float(TOY_LOSS(params))
    msa = float(TOY_LOSS(pmp.msa_step(TOY, params, X, Y, weight_decay=WEIGHT_DECAY)))
    emsa = float(TOY_LOSS(pmp.emsa_step(TOY, params, X, Y, rho=10.0, weight_decay=WEIGHT_DECAY)))
    assert msa > 2 * start and emsa < 0.75 * start, (start, msa, emsa)


def test_emsa_lowers_the_toy_loss_faster_per_iteration_than_gd_at_its_best_step():
    # Below rho ~ 8 E-MSA is not monotone on the toy, so both are judged by the best loss of their 20 iterations.
    zero = pmp.init_residual(TOY, dtype=jnp.float64)
    runs = {lr: gradient_descent(zero, lr, 20)[1] for lr in (0.03, 0.1, 0.2, 0.3, 0.5, 1.0)}
    best_gd = min(min(losses) for losses in runs.values() if np.all(np.isfinite(losses)))
    params, losses = zero, []
    for _ in range(20):
        params = pmp.emsa_step(TOY, params, X, Y, rho=6.0, weight_decay=WEIGHT_DECAY)
        losses.append(float(TOY_LOSS(params)))
    # Measured: E-MSA 0.018, GD's best 0.12 (lr = 0.2): GD sits on the plateau of the best linear fit, which
    # E-MSA leaves within ten iterations.
    assert min(losses) < 0.5 * best_gd, (losses, best_gd)


def test_the_layers_solved_together_by_vmap_are_the_layers_solved_one_by_one():
    # A stacked toy is also a list of layers: solve the same problems through the looped path of an MLP-like net.
    net = pmp.residual_net(num_layers=3, width=2)
    params = random_toy(net, seed=5)
    x, y = pmp.sine_data(7, dtype=jnp.float64)
    stacked = pmp.emsa_step(net, params, x, y, rho=3.0, num_lbfgs_steps=4)

    class LoopedToy(pmp.MLPNet):  # the toy's layers, embedding and loss, but as a list of layers, looped
        def layer_map(self, index, num_layers):
            return net.layer_map(index, num_layers)

        embed, readout, losses = net.embed, net.readout, net.losses

    layers = [(params[0][i], params[1][i]) for i in range(3)]
    looped = pmp._emsa_step(LoopedToy(), layers, x, y, jnp.float64(3.0), jnp.float64(0.0), 4)
    for i in range(3):
        np.testing.assert_allclose(stacked[0][i], looped[i][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(stacked[1][i], looped[i][1], rtol=1e-9, atol=1e-12)


# --- the optax transformation and the registry ---------------------------------------------------------

SUPERVISED = train.Objective.supervised(nets.mlp, nets.logistic_losses)


def test_the_emsa_update_is_the_new_parameters_minus_the_old_scaled_by_the_learning_rate():
    params, x, y = spirals()
    new = pmp.emsa_step(pmp.mlp_net(), params, x, y, rho=5.0)
    opt = pmp.emsa(5.0, learning_rate=0.5)
    updates, _ = opt.update(None, opt.init(params), params, batch=(x, y), value=1.0)
    for u, a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(new), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(u, 0.5 * (a - b), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="batch"):
        opt.update(None, opt.init(params), params)


def test_the_registry_entry_is_pmp_emsa_with_its_defaults_injected():
    params, x, y = spirals()
    method = optimizers.get("E-MSA")
    assert method.model == "mlp" and method.extras == train.ALL_EXTRAS and method.stability_edge() is None
    state = method.init(params)
    assert {k: float(v) for k, v in optimizers.hyperparameters(state).items()} == {"learning_rate": 1.0, "rho": 5.0}
    got, _ = method.transformation().update(None, state, params, batch=(x, y))
    direct = pmp.emsa(5.0)
    want, _ = direct.update(None, direct.init(params), params, batch=(x, y))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="rho"):
        optimizers.set_hyperparameters(state, rho=0.0)


def test_emsa_trains_the_spirals_mlp_through_train():
    params, x, y = spirals()
    method = optimizers.get("E-MSA")
    h = train.train(SUPERVISED, params, method.transformation(), data=(x, y), num_steps=15, extras=method.extras, progress=False)
    assert not h.diverged and np.all(np.diff(h.loss) < 0), h.loss


def test_emsa_trains_the_toy_through_train_too():
    objective = train.Objective.supervised(TOY.apply, TOY.losses)
    params = pmp.init_residual(TOY, dtype=jnp.float64)
    h = train.train(
        objective, params, pmp.emsa(rho=10.0, net=TOY), data=(X, Y), num_steps=5, extras=train.ALL_EXTRAS, progress=False
    )
    direct = params
    for _ in range(5):
        direct = pmp.emsa_step(TOY, direct, X, Y, rho=10.0)
    np.testing.assert_allclose(h.params[0], direct[0], rtol=1e-6, atol=1e-9)  # L-BFGS's line search amplifies round-off
    assert h.loss[-1] < 0.5 * h.loss[0]


def test_the_extended_objective_starts_with_the_loss_gradient_the_scaling_of_the_penalties():
    # At theta_i the penalties vanish with their slopes (whatever rho): the gradient is dJ/dtheta_i, for any batch size.
    net, params, x, y = CASES["residual"]()
    states, ps = pmp.forward_states(net, params, x), pmp.costates(net, params, x, y)
    grads = jax.grad(lambda p: pmp.loss(net, p, x, y, WEIGHT_DECAY))(params)
    for i in (0, 3):
        objective = pmp._emsa_objective(net.layer_map(i, 6), states[i], states[i + 1], ps[i], ps[i + 1], 7.0, WEIGHT_DECAY)
        got = jax.grad(objective)((params[0][i], params[1][i]))
        np.testing.assert_allclose(got[0], grads[0][i], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(got[1], grads[1][i], rtol=1e-10, atol=1e-15)
