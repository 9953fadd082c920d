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

The theory is checked against runs in :mod:`lessons.rates` (:func:`lessons.rates.contraction_rates`,
:func:`lessons.rates.kappa_sweep`): those need the training loops of :mod:`lessons.train`, which sit
above this module.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lessons.checks import check_fraction, concrete

# Re-exported: the validation lives in the bottom layer (lessons.checks); widgets call it from here.
from lessons.checks import check_learning_rate as check_learning_rate
from lessons.checks import check_momentum as check_momentum


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
    the momentum form of Sutskever et al. (2013), :math:`v_{t+1} = \beta v_t - \eta \nabla f(\theta_t + \beta v_t)`,
    becomes (the re-parametrisation of Bengio, Boulanger-Lewandowski and Pascanu 2013)

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
    mu, L = concrete(mu, "mu"), concrete(L, "L")
    if not (mu > 0 and L >= mu and math.isfinite(L)):
        raise ValueError(f"need 0 < mu <= L < inf, got mu={mu}, L={L}")


def gd_rate(learning_rate: float, mu: float, L: float) -> float:
    """Worst-case contraction of gradient descent per step on a quadratic with curvatures in ``[mu, L]``."""
    check_learning_rate(learning_rate)
    _check_curvature(mu, L)
    return max(abs(1 - learning_rate * mu), abs(1 - learning_rate * L))


def stability_limit(L: float) -> float:
    """The largest stable gradient-descent step on a quadratic of top curvature ``L``: ``2 / L``."""
    if not concrete(L, "L") > 0:
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
    """Steps for an error contracting by ``rate < 1`` per step to shrink by ``tol``: ``log(tol) / log(rate)``."""
    check_fraction(tol, "tol")
    if not concrete(rate, "rate") < 1:
        raise ValueError(f"rate must be < 1 (a contraction: a rate >= 1 never reaches tol), got {rate}")
    if rate <= 0:
        return 1.0
    return math.log(tol) / math.log(rate)


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent ``p`` in ``y ~ x^p``."""
    for name, values in (("x", x), ("y", y)):
        if np.ndim(values) != 1 or np.size(values) < 2 or not np.all(np.asarray(values, float) > 0):
            raise ValueError(f"{name} must be a vector of at least two positive numbers, got {np.asarray(values)!r:.80}")
    if np.shape(x) != np.shape(y):
        raise ValueError(f"y must have the shape of x, {np.shape(x)}, got {np.shape(y)}")
    lx, ly = jnp.log(jnp.asarray(x, float)), jnp.log(jnp.asarray(y, float))
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())
