r"""Training as optimal control: Pontryagin's maximum principle (PMP) and E-MSA (Li, Chen, Tai & E, 2018).

The layers are time. A batch of ``S`` examples enters as states :math:`x_0^s`, layer ``i`` moves them,
:math:`x_{i+1}^s = f_i(x_i^s, \theta_i)` for :math:`i = 0..N-1`, and training minimises the terminal loss
plus a running regulariser,

.. math:: J(\theta) = \Phi(x_N) + \sum_i R(\theta_i), \qquad \Phi(x_N) = \frac1S \sum_s \ell(x_N^s, y^s),
   \qquad R(\theta) = \tfrac\lambda2 \|\theta\|^2 .

With the Hamiltonian :math:`H_i(x, p, \theta) = p \cdot f_i(x, \theta)` (summed over the examples, minus
:math:`R(\theta)`), the costates run backwards,

.. math:: p_N^s = -\frac{\partial \Phi}{\partial x_N^s}, \qquad
   p_i^s = \nabla_x H_i(x_i^s, p_{i+1}^s, \theta_i) = \Big(\frac{\partial f_i}{\partial x}\Big)^{\!\top} p_{i+1}^s :

back-propagation with the sign flipped, :math:`p_i = -\partial J / \partial x_i` (:func:`costates`). PMP says
that at an optimum each :math:`\theta_i` maximises :math:`\sum_s H_i(x_i^s, p_{i+1}^s, \theta) - R(\theta)`
(:func:`hamiltonian`); its first-order condition :math:`\nabla_\theta H_i = -\nabla_{\theta_i} J` is the
gradient. The method of successive approximations (MSA, :func:`msa_step`) alternates forward states,
costates, and a maximisation of every :math:`H_i` on its own; it can diverge, because it ignores how
moving :math:`\theta_i` moves the states after it. E-MSA (:func:`emsa_step`) penalises that: each layer
minimises, from its current :math:`\theta_i`, with a few L-BFGS iterations (all layers independent),

.. math:: \frac1S \sum_s \Big[ -P_{i+1}^s \cdot f_i(x_i^s, \theta)
   + \frac\rho2 \big\|x_{i+1}^s - f_i(x_i^s, \theta)\big\|^2
   + \frac\rho2 \big\|P_i^s - \nabla_x f_i(x_i^s, \theta)^\top P_{i+1}^s\big\|^2 \Big] + R(\theta) .

**Scaling, as in the paper.** :math:`P^s = S p^s` are the costates of the *per-example* loss
:math:`\ell(x_N^s, y^s)` (not of the mean), and the bracket is averaged over the examples, so :math:`\rho`
means the same at every batch size; written with :math:`p`, the penalties weigh :math:`\rho/(2S)` and
:math:`\rho S/2` per example. At :math:`\theta = \theta_i` the penalties and their slopes vanish, so the
objective's gradient there is :math:`\nabla_{\theta_i} J`, and near it the step is a damped Gauss-Newton step
for layer ``i`` alone.

**Choosing** :math:`\rho`. The N layers step together, each blind to the others' moves: a small :math:`\rho`
overshoots, worst from zero, where all the layers are equal and take the same step. On the toy (20 layers,
100 points) :math:`\rho \ge 8` lowers the loss at every iteration but, like gradient descent, stays on the
plateau of the best linear fit (:math:`J \approx 0.106`); :math:`\rho = 6` leaves it within ten iterations
(:math:`J \approx 0.02` after 20) and then oscillates; :math:`\rho = 1` jumps between 0.2 and 5. (Read as Euler
steps :math:`x_{i+1} = x_i + h F` of an ODE, a continuous-time :math:`\rho_c` is :math:`\rho = \rho_c / h` here.)
On the spirals MLP (3 layers) :math:`\rho = 5` lowers the loss at every step: the registry's default.

The networks come from :mod:`lessons.pmp_nets` (re-exported here): the reference toy (:func:`residual_net`,
:math:`x_{i+1} = x_i + h \tanh(x_i W_i + b_i)`, parameters stacked, the layers ``jax.vmap``-ed, fitting
:func:`sine_data` from :func:`init_residual`'s zeros) and :func:`lessons.nets.mlp` (:func:`mlp_net`: layers
of different shapes, looped). :func:`emsa` is the optax transformation that the registry races.

Example::

    >>> import jax.numpy as jnp
    >>> net = residual_net(num_layers=4, width=3)
    >>> x, y = sine_data(8)
    >>> forward_states(net, init_residual(net), x).shape  # x_0 .. x_N, each (S, width)
    (5, 8, 3)
    >>> bool(loss(net, emsa_step(net, init_residual(net), x, y, rho=10.0), x, y) < loss(net, init_residual(net), x, y))
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax

from lessons.checks import check_callable, check_learning_rate, check_nonnegative, check_positive, check_positive_int
from lessons.pmp_nets import MLPNet, ResidualNet, init_residual, mlp_net, residual_net, sine_data

# The networks live in lessons.pmp_nets; they are re-exported here, with the algorithms that use them.

__all__ = [
    "MLPNet",
    "ResidualNet",
    "costates",
    "emsa",
    "emsa_step",
    "forward_states",
    "hamiltonian",
    "init_residual",
    "loss",
    "mlp_net",
    "msa_step",
    "residual_net",
    "sine_data",
]


def _check_net(net):
    if not isinstance(net, (ResidualNet, MLPNet)):
        raise TypeError(f"net must be a ResidualNet or an MLPNet (residual_net, mlp_net), got {type(net).__name__}")


def _checked(net, params, x, y=None, weight_decay=0.0):
    _check_net(net)
    check_nonnegative(weight_decay, "weight_decay")
    return net.check(params, x, y)


# --- states, costates, Hamiltonian ----------------------------------------------------------------


def _forward(net, params, x):
    return net.forward(params, net.embed(x))


_forward_jit = jax.jit(_forward, static_argnums=0)


def _terminal(net, state, y):
    return jnp.mean(net.losses(net.readout(state), y))


def _costates(net, params, states, y):
    p_last = -jax.grad(_terminal, argnums=1)(net, states[-1], y)
    if net.stacked:
        f = net.layer_map(0, 1)

        def back(p_next, inputs):
            theta, x = inputs
            p = jax.vjp(lambda x: f(theta, x), x)[1](p_next)[0]
            return p, p

        _, ps = lax.scan(back, p_last, (params, states[:-1]), reverse=True)
        return jnp.concatenate([ps, p_last[None]])
    ps = [p_last]
    for i in reversed(range(len(params))):
        f = net.layer_map(i, len(params))
        ps.insert(0, jax.vjp(lambda x, f=f, theta=params[i]: f(theta, x), states[i])[1](ps[0])[0])
    return ps


@functools.partial(jax.jit, static_argnums=0)
def _costates_jit(net, params, x, y):
    return _costates(net, params, _forward(net, params, x), y)


def _regulariser(theta, weight_decay):
    return 0.5 * weight_decay * sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(theta))


def forward_states(net, params, x):
    r"""The states :math:`x_0, \dots, x_N` of the batch ``x``: an array ``(N + 1, S, d)`` for a stacked net
    (:class:`ResidualNet`), a list of ``(S, d_i)`` arrays for :class:`MLPNet`."""
    params, x, _ = _checked(net, params, x)
    return _forward_jit(net, params, x)


def costates(net, params, x, y):
    r"""The costates :math:`p_0, \dots, p_N` of the batch, shaped like :func:`forward_states`.

    :math:`p_N = -\partial\Phi/\partial x_N` (the mean loss, so each :math:`p^s` carries a :math:`1/S`),
    then :math:`p_i = (\partial f_i/\partial x)^\top p_{i+1}`, one vector-Jacobian product per layer:
    :math:`p_i = -\partial J/\partial x_i`, minus the gradient of the loss with respect to the states.
    """
    params, x, y = _checked(net, params, x, y)
    return _costates_jit(net, params, x, y)


def hamiltonian(layer: Callable, theta, x, p_next, weight_decay: float = 0.0) -> jax.Array:
    r""":math:`H_i(\theta) = \sum_s p_{i+1}^s \cdot f_i(x_i^s, \theta) - \tfrac\lambda2 \|\theta\|^2`, summed over the batch.

    ``layer(theta, x)`` is :math:`f_i` on a batch (``net.layer_map(i, N)``), ``x`` the states :math:`x_i`
    and ``p_next`` the costates :math:`p_{i+1}` of the batch. Its gradient in :math:`\theta` at
    :math:`\theta_i` is :math:`-\nabla_{\theta_i} J`, PMP's first-order condition.
    """
    check_callable(layer, "layer", "a layer map f(theta, x)")
    check_nonnegative(weight_decay, "weight_decay")
    out = layer(theta, jnp.asarray(x))
    if out.shape != jnp.shape(p_next):
        raise ValueError(f"p_next must have the shape of the layer's output {out.shape}, got {jnp.shape(p_next)}")
    return jnp.sum(p_next * out) - _regulariser(theta, weight_decay)


def loss(net, params, x, y, weight_decay: float = 0.0) -> jax.Array:
    r"""The objective :math:`J = \Phi(x_N) + \sum_i \tfrac\lambda2 \|\theta_i\|^2` on the batch."""
    params, x, y = _checked(net, params, x, y, weight_decay)
    return _loss(net, params, x, y, weight_decay)


@functools.partial(jax.jit, static_argnums=0)
def _loss(net, params, x, y, weight_decay):
    return _terminal(net, _forward(net, params, x)[-1], y) + _regulariser(params, weight_decay)


# --- the layer problems, solved by L-BFGS ---------------------------------------------------------


def _lbfgs(objective, theta0, num_steps):
    """``num_steps`` iterations of :func:`optax.lbfgs` (zoom line search) from ``theta0``, in a ``lax.scan``;
    ``theta0`` back if the result is not finite or not better (a failed line search in float32)."""
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def body(carry, _):
        theta, state = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = solver.update(grad, state, theta, value=value, grad=grad, value_fn=objective)
        return (optax.apply_updates(theta, updates), state), None

    (theta, _), _ = lax.scan(body, (theta0, solver.init(theta0)), None, length=num_steps)
    start, end = objective(theta0), objective(theta)
    return jax.tree.map(lambda a, b: jnp.where(jnp.isfinite(end) & (end <= start), a, b), theta, theta0)


def _msa_objective(f, x, p_next, weight_decay):
    return lambda theta: -jnp.sum(p_next * f(theta, x)) + _regulariser(theta, weight_decay)


def _emsa_objective(f, x, x_next, p, p_next, rho, weight_decay):
    S = x.shape[0]
    P, P_next = S * p, S * p_next  # the per-example costates of the paper

    def objective(theta):
        out, pullback = jax.vjp(lambda x: f(theta, x), x)
        drift = jnp.sum((x_next - out) ** 2)
        mismatch = jnp.sum((P - pullback(P_next.astype(out.dtype))[0]) ** 2)  # the line search may step in float64
        return (-jnp.sum(P_next * out) + 0.5 * rho * (drift + mismatch)) / S + _regulariser(theta, weight_decay)

    return objective


def _solve_layers(net, params, x, y, make_objective, num_steps):
    """Every layer's problem ``make_objective(f_i, x_i, x_{i+1}, p_i, p_{i+1})`` from its current parameters."""
    states = _forward(net, params, x)
    ps = _costates(net, params, states, y)
    if net.stacked:
        f = net.layer_map(0, 1)
        solve = lambda theta, *layer: _lbfgs(make_objective(f, *layer), theta, num_steps)  # noqa: E731
        return jax.vmap(solve)(params, states[:-1], states[1:], ps[:-1], ps[1:])
    N = len(params)
    return [
        _lbfgs(make_objective(net.layer_map(i, N), states[i], states[i + 1], ps[i], ps[i + 1]), params[i], num_steps)
        for i in range(N)
    ]


@functools.partial(jax.jit, static_argnames=("net", "num_steps"))
def _emsa_step(net, params, x, y, rho, weight_decay, num_steps):
    def make(f, x, x_next, p, p_next):
        return _emsa_objective(f, x, x_next, p, p_next, rho, weight_decay)

    return _solve_layers(net, params, x, y, make, num_steps)


@functools.partial(jax.jit, static_argnames=("net", "num_steps"))
def _msa_step(net, params, x, y, weight_decay, num_steps):
    def make(f, x, x_next, p, p_next):
        del x_next, p
        return _msa_objective(f, x, p_next, weight_decay)

    return _solve_layers(net, params, x, y, make, num_steps)


def _dtype(params):
    return jnp.result_type(*jax.tree.leaves(params))


def msa_step(net, params, x, y, *, num_lbfgs_steps: int = 10, weight_decay: float = 0.0):
    r"""One iteration of the basic MSA: forward states, costates, then every layer maximises its own
    :math:`\sum_s H_i(x_i^s, p_{i+1}^s, \theta) - R(\theta)` by ``num_lbfgs_steps`` L-BFGS iterations from
    :math:`\theta_i` (all layers at once). Nothing keeps the states from moving: it may raise the loss.
    """
    params, x, y = _checked(net, params, x, y, weight_decay)
    check_positive_int(num_lbfgs_steps, "num_lbfgs_steps")
    return _msa_step(net, params, x, y, jnp.asarray(weight_decay, _dtype(params)), int(num_lbfgs_steps))


def emsa_step(net, params, x, y, *, rho: float = 1.0, num_lbfgs_steps: int = 10, weight_decay: float = 0.0):
    r"""One E-MSA iteration on the batch ``(x, y)``: the new parameters, shaped like ``params``.

    Forward states, costates (:func:`costates`), then every layer minimises the extended objective of the
    module docstring by ``num_lbfgs_steps`` iterations of :func:`optax.lbfgs` from its current parameters:
    ``jax.vmap`` over the layers of a :class:`ResidualNet`, a loop over those of an :class:`MLPNet`. Cost
    per iteration: one forward and one backward pass, then per layer ``num_lbfgs_steps`` times a few
    (line search) evaluations of the objective and its gradient, each about three passes through the layer.
    ``rho`` and ``weight_decay`` may be traced.
    """
    params, x, y = _checked(net, params, x, y, weight_decay)
    check_positive(rho, "rho")
    check_positive_int(num_lbfgs_steps, "num_lbfgs_steps")
    dtype = _dtype(params)
    return _emsa_step(net, params, x, y, jnp.asarray(rho, dtype), jnp.asarray(weight_decay, dtype), int(num_lbfgs_steps))


# --- the optax transformation ----------------------------------------------------------------------


def emsa(
    rho: float = 1.0,
    *,
    learning_rate: float = 1.0,
    num_lbfgs_steps: int = 10,
    weight_decay: float = 0.0,
    net: ResidualNet | MLPNet | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""E-MSA as an optax transformation: ``update`` returns :math:`\eta\,(\theta^{\text{E-MSA}} - \theta)`,
    one :func:`emsa_step` on the batch scaled by ``learning_rate`` (1: take the step as it is); the gradient
    it receives is ignored.

    ``update(grads, state, params, batch=(x, y))`` needs the data, as :func:`lessons.train.train` passes it
    with ``extras=train.ALL_EXTRAS``. ``net`` defaults to :func:`mlp_net` (a tanh MLP of
    :func:`lessons.nets.init_mlp` with the logistic loss, as in :func:`lessons.nets.classifier_loss`); train
    it on that same loss. ``learning_rate``, ``rho`` and ``weight_decay`` are used only in arithmetic, so
    they may be traced and injected (``optax.inject_hyperparams``), as the registry does.
    """
    check_learning_rate(learning_rate)
    check_positive(rho, "rho")
    check_positive_int(num_lbfgs_steps, "num_lbfgs_steps")
    check_nonnegative(weight_decay, "weight_decay")
    net = mlp_net() if net is None else net
    _check_net(net)

    def init(params):
        del params
        return optax.EmptyState()

    def update(grads, state, params=None, *, batch=None, **extra):
        del grads, extra
        if batch is None or params is None:
            raise ValueError(
                "emsa needs params and the data: call update(grads, state, params, batch=(x, y)) "
                "(lessons.train.train passes it with extras=train.ALL_EXTRAS)"
            )
        checked, x, y = net.check(params, *batch)
        dtype = _dtype(params)
        new = _emsa_step(net, checked, x, y, jnp.asarray(rho, dtype), jnp.asarray(weight_decay, dtype), int(num_lbfgs_steps))
        new = jax.tree.unflatten(jax.tree.structure(params), jax.tree.leaves(new))
        eta = jnp.asarray(learning_rate, dtype)
        return jax.tree.map(lambda a, b: (eta * (a - b)).astype(b.dtype), new, params), state

    return optax.GradientTransformationExtraArgs(init, update)
