r"""First-order methods as optax transformations, and the theory of their speed on quadratics.

Each optimizer is a pair of pure functions ``init(params) -> state`` and
``update(grads, state, params=None, **extra) -> (updates, state)``; apply the updates with
``optax.apply_updates``. They chain with optax's own transformations::

    >>> import optax, jax.numpy as jnp
    >>> from lessons.first_order import heavy_ball
    >>> opt = optax.chain(optax.clip_by_global_norm(1.0), heavy_ball(0.1, momentum=0.9))
    >>> params = jnp.ones(2); state = opt.init(params)
    >>> updates, state = opt.update(jnp.array([1.0, -1.0]), state, params)

Theory (quadratic with Hessian eigenvalues in ``[mu, L]``, condition number ``kappa = L / mu``):

* gradient descent with step ``eta`` contracts the error by ``max(|1 - eta mu|, |1 - eta L|)`` per
  step: it is stable iff ``0 < eta < 2 / L``; the best step ``2 / (L + mu)`` gives the rate
  ``(kappa - 1) / (kappa + 1)``, so reaching a relative error ``eps`` takes about
  ``(kappa / 2) log(1 / eps)`` steps;
* Polyak's heavy ball with ``eta = 4 / (sqrt L + sqrt mu)^2`` and
  ``beta = ((sqrt kappa - 1) / (sqrt kappa + 1))^2`` has the rate ``(sqrt kappa - 1) / (sqrt kappa + 1)``:
  about ``(sqrt kappa / 2) log(1 / eps)`` steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from lessons.train import scan_iterates, steps_to_tolerance


def _concrete(value):
    """``float(value)``, or ``None`` when ``value`` is traced (checked where it is concrete)."""
    try:
        return float(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def check_learning_rate(learning_rate, name: str = "learning_rate") -> None:
    """Raise ``ValueError`` unless ``learning_rate`` is a positive finite number (tracers pass)."""
    value = _concrete(learning_rate)
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {learning_rate}")


def check_momentum(momentum, name: str = "momentum") -> None:
    """Raise ``ValueError`` unless ``0 <= momentum < 1`` (tracers pass)."""
    value = _concrete(momentum)
    if value is not None and not (0.0 <= value < 1.0):
        raise ValueError(f"{name} must lie in [0, 1), got {momentum}")


class MomentumState(NamedTuple):
    """State of the momentum methods: the velocity ``v`` (a pytree like the parameters)."""

    velocity: optax.Updates


def gradient_descent(learning_rate: float) -> optax.GradientTransformation:
    r"""Plain gradient descent: :math:`\Delta\theta_t = -\eta\, g_t`.

    Cost: one gradient per step, no state.
    """
    check_learning_rate(learning_rate)

    def init(params):
        del params
        return optax.EmptyState()

    def update(grads, state, params=None):
        del params
        return jax.tree.map(lambda g: -learning_rate * g, grads), state

    return optax.GradientTransformation(init, update)


def heavy_ball(learning_rate: float, momentum: float = 0.9) -> optax.GradientTransformation:
    r"""Polyak's heavy ball.

    .. math:: v_t = \beta v_{t-1} - \eta g_t, \qquad \Delta\theta_t = v_t,

    i.e. :math:`\theta_{t+1} = \theta_t - \eta g_t + \beta(\theta_t - \theta_{t-1})`, with
    :math:`v_{-1} = 0`. Cost: one gradient per step, one velocity in memory.
    """
    check_learning_rate(learning_rate)
    check_momentum(momentum)

    def init(params):
        return MomentumState(jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        velocity = jax.tree.map(lambda v, g: momentum * v - learning_rate * g, state.velocity, grads)
        return velocity, MomentumState(velocity)

    return optax.GradientTransformation(init, update)


def nesterov(learning_rate: float, momentum: float = 0.9) -> optax.GradientTransformation:
    r"""Nesterov's accelerated gradient, in the form that needs the gradient at the iterate only.

    With :math:`\phi_t = \theta_t + \beta v_t` the look-ahead point (the parameters we store),
    Sutskever's form :math:`v_{t+1} = \beta v_t - \eta \nabla f(\theta_t + \beta v_t)` becomes

    .. math:: v_{t+1} = \beta v_t - \eta g_t, \qquad \Delta\phi_t = \beta v_{t+1} - \eta g_t,
       \qquad g_t = \nabla f(\phi_t).

    Cost: one gradient per step, one velocity in memory.
    """
    check_learning_rate(learning_rate)
    check_momentum(momentum)

    def init(params):
        return MomentumState(jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        velocity = jax.tree.map(lambda v, g: momentum * v - learning_rate * g, state.velocity, grads)
        updates = jax.tree.map(lambda v, g: momentum * v - learning_rate * g, velocity, grads)
        return updates, MomentumState(velocity)

    return optax.GradientTransformation(init, update)


# --- Theory on quadratics -------------------------------------------------------------------------


class Tuning(NamedTuple):
    """Hyperparameters and the contraction factor per step they give on a quadratic."""

    learning_rate: float
    momentum: float
    rate: float


def _check_curvature(mu: float, L: float) -> None:
    if not (mu > 0 and L >= mu and math.isfinite(L)):
        raise ValueError(f"need 0 < mu <= L < inf, got mu={mu}, L={L}")


def gd_rate(learning_rate: float, mu: float, L: float) -> float:
    """Worst-case contraction of gradient descent per step on a quadratic with curvatures in ``[mu, L]``."""
    _check_curvature(mu, L)
    return max(abs(1 - learning_rate * mu), abs(1 - learning_rate * L))


def stability_limit(L: float) -> float:
    """The largest stable gradient-descent step on a quadratic of top curvature ``L``: ``2 / L``."""
    if not L > 0:
        raise ValueError(f"L must be positive, got {L}")
    return 2.0 / L


def gd_optimal(mu: float, L: float) -> Tuning:
    """Gradient descent with the best constant step ``2 / (L + mu)``; rate ``(kappa - 1) / (kappa + 1)``."""
    _check_curvature(mu, L)
    kappa = L / mu
    return Tuning(2.0 / (L + mu), 0.0, (kappa - 1) / (kappa + 1))


def heavy_ball_optimal(mu: float, L: float) -> Tuning:
    """Polyak's optimal heavy-ball parameters; rate ``(sqrt(kappa) - 1) / (sqrt(kappa) + 1)``."""
    _check_curvature(mu, L)
    sk = math.sqrt(L / mu)
    lr = 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2
    beta = ((sk - 1) / (sk + 1)) ** 2
    return Tuning(lr, beta, (sk - 1) / (sk + 1))


def steps_predicted(rate: float, tol: float) -> float:
    """Steps for an error contracting by ``rate`` per step to shrink by ``tol``: ``log(tol) / log(rate)``."""
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    if rate <= 0:
        return 1.0
    return math.log(tol) / math.log(rate)


def contraction_rates(problem, learning_rates, *, num_steps: int = 200, momentum: float | None = None):
    r"""Measured contraction per step, :math:`(\|x_T - x^\star\| / \|x_0 - x^\star\|)^{1/T}`, for each learning rate.

    Gradient descent (or heavy ball with the given ``momentum``) runs ``num_steps`` steps on
    ``problem`` from its default start, for all learning rates at once (one vmapped, compiled scan).
    A value above 1 means the run diverges.
    """
    lrs = jnp.asarray(learning_rates, dtype=jnp.float32)
    if lrs.ndim != 1 or lrs.size == 0:
        raise ValueError(f"learning_rates must be a non-empty 1-D sequence, got shape {lrs.shape}")
    for lr in learning_rates:
        check_learning_rate(lr, name="learning_rates")
    if momentum is not None:
        check_momentum(momentum)
    x0 = jnp.asarray(problem.start, dtype=jnp.float32)
    x_star = jnp.asarray(problem.minimisers[0], dtype=jnp.float32)

    def ratio(lr):
        opt = gradient_descent(lr) if momentum is None else heavy_ball(lr, momentum)
        _, _, points, _ = scan_iterates(problem.value, problem.grad, opt, x0, opt.init(x0), num_steps)
        return jnp.linalg.norm(points[-1] - x_star) / jnp.linalg.norm(x0 - x_star)

    ratios = jax.jit(jax.vmap(ratio))(lrs)
    return jnp.asarray(ratios) ** (1.0 / num_steps)


class KappaSweep(NamedTuple):
    """Measured and predicted steps to a relative tolerance, for each condition number."""

    kappas: jnp.ndarray
    gd_steps: jnp.ndarray
    heavy_ball_steps: jnp.ndarray
    gd_predicted: jnp.ndarray
    heavy_ball_predicted: jnp.ndarray


def kappa_sweep(kappas, *, tol: float = 1e-4, max_steps: int = 200_000, angle: float = math.pi / 6) -> KappaSweep:
    """Count the steps GD and heavy ball (both optimally tuned) need to shrink the error by ``tol``.

    The problem is :func:`lessons.problems.quadratic` (curvatures ``1/kappa`` and ``1``) from its
    default start. All condition numbers run in one compiled, vmapped ``while_loop``.
    """
    from lessons.problems import quadratic

    kappas = [float(k) for k in kappas]
    if not kappas or min(kappas) < 1:
        raise ValueError(f"kappas must be a non-empty list of numbers >= 1, got {kappas}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    x0 = jnp.asarray(quadratic(1.0, angle=angle).start)
    c, s = math.cos(angle), math.sin(angle)
    R = jnp.array([[c, -s], [s, c]], dtype=x0.dtype)

    def count(kappa, lr, beta):
        H = R @ jnp.diag(jnp.stack([1.0 / kappa, jnp.ones_like(kappa)])) @ R.T
        return steps_to_tolerance(lambda x: H @ x, x0, jnp.zeros(2, x0.dtype), heavy_ball(lr, beta), tol=tol, max_steps=max_steps)

    gd = [gd_optimal(1 / k, 1.0) for k in kappas]
    hb = [heavy_ball_optimal(1 / k, 1.0) for k in kappas]
    k_arr = jnp.asarray(kappas, dtype=x0.dtype)
    counter = jax.jit(jax.vmap(count))
    gd_steps = counter(k_arr, jnp.asarray([t.learning_rate for t in gd], x0.dtype), jnp.zeros_like(k_arr))
    hb_steps = counter(
        k_arr,
        jnp.asarray([t.learning_rate for t in hb], x0.dtype),
        jnp.asarray([t.momentum for t in hb], x0.dtype),
    )
    return KappaSweep(
        kappas=k_arr,
        gd_steps=gd_steps,
        heavy_ball_steps=hb_steps,
        gd_predicted=jnp.asarray([steps_predicted(t.rate, tol) for t in gd]),
        heavy_ball_predicted=jnp.asarray([steps_predicted(t.rate, tol) for t in hb]),
    )


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent ``p`` in ``y ~ x^p``."""
    lx, ly = jnp.log(jnp.asarray(x, float)), jnp.log(jnp.asarray(y, float))
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())
