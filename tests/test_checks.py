"""Input validation (lessons.checks): every check accepts good values and tracers, and rejects bad ones
with ValueError (TypeError for a value of the wrong kind) whose message names the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import checks, data

GOOD = [
    (checks.check_positive, (0.5, "sigma")),
    (checks.check_positive, (np.float32(2.0), "tol")),
    (checks.check_learning_rate, (1e-3,)),
    (checks.check_learning_rate, (jnp.asarray(0.1),)),
    (checks.check_momentum, (0.0,)),
    (checks.check_momentum, (0.99,)),
    (checks.check_damping, (0.0,)),
    (checks.check_damping, (1e6,)),
    (checks.check_positive_int, (1, "num_steps")),
    (checks.check_positive_int, (np.int64(5), "k")),
    (checks.check_key, (jax.random.key(0),)),
    (checks.check_key, (jax.random.PRNGKey(0),)),
    (checks.check_shaped_like, ({"w": jnp.ones(3)}, {"w": jnp.zeros(3)}, "direction")),
    (checks.check_matvec, (lambda v: 2 * v, 4, jnp.float32)),
]

BAD = [
    # (check, args, kwargs, error, the name the message must contain)
    (checks.check_positive, (0.0, "sigma"), {}, ValueError, "sigma"),
    (checks.check_positive, (float("inf"), "tol"), {}, ValueError, "tol"),
    (checks.check_positive, ("1e-3", "tol"), {}, TypeError, "tol"),
    (checks.check_learning_rate, (-0.1,), {}, ValueError, "learning_rate"),
    (checks.check_learning_rate, (float("nan"),), {}, ValueError, "learning_rate"),
    (checks.check_learning_rate, ("0.1",), {}, TypeError, "learning_rate"),
    (checks.check_learning_rate, (None,), {}, TypeError, "learning_rate"),
    (checks.check_learning_rate, (jnp.ones(2),), {}, TypeError, "learning_rate"),
    (checks.check_learning_rate, (0.0, "learning_rates"), {}, ValueError, "learning_rates"),
    (checks.check_momentum, (1.0,), {}, ValueError, "momentum"),
    (checks.check_momentum, (-0.1,), {}, ValueError, "momentum"),
    (checks.check_momentum, ("0.9",), {}, TypeError, "momentum"),
    (checks.check_damping, (-1.0,), {}, ValueError, "damping"),
    (checks.check_damping, (float("nan"), "initial_damping"), {}, ValueError, "initial_damping"),
    (checks.check_damping, (float("inf"),), {}, ValueError, "damping"),
    (checks.check_damping, ("1",), {}, TypeError, "damping"),
    (checks.check_positive_int, (0, "num_steps"), {}, ValueError, "num_steps"),
    (checks.check_positive_int, (2.5, "num_samples"), {}, ValueError, "num_samples"),
    (checks.check_positive_int, (True, "batch_size"), {}, ValueError, "batch_size"),
    (checks.check_positive_int, ("3", "max_iters"), {}, TypeError, "max_iters"),
    (checks.check_positive_int, (None, "k"), {}, TypeError, "k"),
    (checks.check_positive_int, (6, "num_steps"), {"high": 5, "high_name": "dim"}, ValueError, "num_steps must be <= dim"),
    (checks.check_positive_int, (2, "num_steps"), {"low": 3, "low_name": "k"}, ValueError, r"num_steps must be an integer >= k"),
    (checks.check_key, (0,), {}, ValueError, "key"),
    (checks.check_key, (jax.random.split(jax.random.key(0), 2), "restart_key"), {}, ValueError, "restart_key"),
    (checks.check_shaped_like, ({"w": jnp.ones(3)}, {"w": jnp.ones(2)}, "d1"), {}, ValueError, "d1 must be a pytree shaped like"),
    (checks.check_shaped_like, ({"w": jnp.ones(3)}, jnp.ones(3), "v"), {}, ValueError, "v must be a pytree shaped like"),
    (checks.check_matvec, ("A", 4, jnp.float32), {}, TypeError, "matvec"),
    (checks.check_matvec, (lambda v: v[:2], 4, jnp.float32), {}, ValueError, "matvec"),
]


@pytest.mark.parametrize("check, args", GOOD)
def test_good_values_pass(check, args):
    assert check(*args) is None


@pytest.mark.parametrize("check, args, kwargs, error, name", BAD)
def test_bad_values_raise_and_name_the_argument(check, args, kwargs, error, name):
    with pytest.raises(error, match=name):
        check(*args, **kwargs)


def test_traced_values_pass_and_are_checked_where_concrete():
    # A learning rate swept by vmap inside jit has no value to check: the check lets it through.
    def step(lr, momentum, damping):
        checks.check_learning_rate(lr)
        checks.check_momentum(momentum)
        checks.check_damping(damping)
        checks.check_positive(lr, "sigma")
        return lr * momentum + damping

    out = jax.jit(jax.vmap(step))(jnp.array([-1.0, 0.1]), jnp.array([2.0, 0.5]), jnp.array([-1.0, 0.0]))
    np.testing.assert_allclose(out, [-3.0, 0.05], rtol=1e-6)
    seen = []
    jax.jit(lambda x: seen.append(checks.concrete(x)) or x)(1.0)
    assert seen == [None]
    assert checks.concrete(np.float64(0.25)) == 0.25 and checks.concrete(3) == 3.0


def test_data_re_exports_check_key():
    # Notebooks and widgets may call ``data.check_key``.
    assert data.check_key is checks.check_key
