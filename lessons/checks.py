"""Input validation shared by every module: each check names the argument it rejects.

The bottom layer of the library (it imports nothing from ``lessons``). Every check raises
``ValueError`` for a value of the right kind but out of range (a negative learning rate, ``0``
steps) and ``TypeError`` for a value of the wrong kind (the string ``"0.1"``, ``None``); the message
starts with the argument's name, so a notebook reader sees at once which argument to fix.

Numbers may be JAX tracers (a learning rate swept by ``jax.vmap``, a tolerance passed to ``jit``):
a traced value has no concrete value to check, so the checks let it pass; it is checked where it
is concrete, in the eager call that builds the optimizer or starts the solver.

Example::

    >>> from lessons.checks import check_learning_rate
    >>> check_learning_rate(0.1)
    >>> check_learning_rate(-0.1)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate must be a positive finite number, got -0.1
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def concrete(value, name: str = "value") -> float | None:
    """``float(value)``, or ``None`` when ``value`` is traced (it is checked where it is concrete).

    Raises ``TypeError`` (naming ``name``) when ``value`` is not a real scalar at all: a string, ``None``,
    an array of more than one element. Strings are refused even when they spell a number: ``"0.1"``
    would pass ``float`` and then fail far away, inside ``optax``, with a message about ``str * Array``.

    Example::

        >>> concrete(3), concrete(jnp.float32(0.5))
        (3.0, 0.5)
    """
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    try:
        return float(value)
    except jax.errors.ConcretizationTypeError:  # a tracer hidden inside another object
        return None
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a real scalar, got {type(value).__name__} {value!r}") from error


def check_positive(value, name: str, *, finite: bool = True) -> None:
    """Raise unless ``value`` is a finite number ``> 0`` (tracers pass): a step size, a width, a tolerance.

    With ``finite=False``, ``inf`` passes too (a threshold that is off by default, like ``blowup``).
    """
    number = concrete(value, name)
    if number is not None and not (number > 0 and (math.isfinite(number) or not finite)):
        raise ValueError(f"{name} must be a positive{' finite' if finite else ''} number, got {value!r}")


def check_learning_rate(value, name: str = "learning_rate") -> None:
    r"""Raise unless the learning rate :math:`\eta` is a positive finite number (tracers pass)."""
    check_positive(value, name)


def check_momentum(value, name: str = "momentum") -> None:
    r"""Raise unless the momentum :math:`\beta` lies in ``[0, 1)`` (tracers pass): at ``1`` the velocity never decays."""
    number = concrete(value, name)
    if number is not None and not (0.0 <= number < 1.0):
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


def check_nonnegative(value, name: str) -> None:
    """Raise unless ``value`` is a finite number ``>= 0`` (tracers pass): a noise level, a margin."""
    number = concrete(value, name)
    if number is not None and not (0.0 <= number < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_finite(value, name: str) -> None:
    """Raise unless ``value`` is a finite real number (tracers pass): an angle, a coefficient."""
    number = concrete(value, name)
    if number is not None and not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_fraction(value, name: str = "tol") -> None:
    """Raise unless ``value`` lies strictly between 0 and 1 (tracers pass): a relative tolerance."""
    number = concrete(value, name)
    if number is not None and not (0.0 < number < 1.0):
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")


def check_damping(value, name: str = "damping") -> None:
    r"""Raise unless the damping :math:`\lambda` is a finite number ``>= 0`` (tracers pass); ``0`` is plain Newton."""
    check_nonnegative(value, name)


def check_callable(value, name: str, what: str = "a function", *, optional: bool = False) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is callable (a loss, a model; ``None`` if ``optional``)."""
    if not callable(value) and not (value is None and optional):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.60}")


def check_transformation(optimizer, name: str = "optimizer") -> None:
    """Raise ``TypeError`` unless ``optimizer`` looks like an optax transformation (has ``init`` and ``update``)."""
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(
            f"{name} must be an optax transformation (with init and update), got {type(optimizer).__name__} {optimizer!r:.60}"
        )


def check_positive_int(
    value, name: str, *, low: int = 1, high: int | None = None, low_name: str | None = None, high_name: str | None = None
) -> None:
    """Raise unless ``value`` is a Python or NumPy integer with ``low <= value <= high`` (a count: steps, samples, a size).

    ``low_name`` and ``high_name`` say where a bound comes from (``"k"``, ``"dim"``) in the message. A
    ``bool`` or a float such as ``2.0`` is refused with ``ValueError`` (it is a number but not a count);
    a string or ``None`` with ``TypeError``.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        if low == 1 and low_name is None:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        bound = f"{low_name} ({low})" if low_name else low
        raise ValueError(f"{name} must be an integer >= {bound}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high_name or high} ({high}), got {value!r}")


def check_key(key, name: str = "key", *, optional: bool = False) -> None:
    """Raise ``ValueError`` unless ``key`` is a JAX PRNG key (new-style or a raw ``uint32[2]``; ``None`` if ``optional``)."""
    if key is None and optional:
        return
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return
    raise ValueError(
        f"{name} must be a JAX PRNG key, e.g. jax.random.key(0); got {type(key).__name__} {getattr(key, 'shape', '')}"
    )


def check_shaped_like(params, tree, name: str) -> None:
    """Raise ``ValueError`` unless the pytree ``tree`` has the structure and leaf shapes of ``params``."""
    p_struct, t_struct = jax.tree.structure(params), jax.tree.structure(tree)
    if p_struct != t_struct:
        raise ValueError(f"{name} must be a pytree shaped like params: got structure {t_struct}, expected {p_struct}")
    for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(tree), strict=True):
        if jnp.shape(p) != jnp.shape(t):
            raise ValueError(
                f"{name} must be a pytree shaped like params: leaf of shape {jnp.shape(t)} where params has {jnp.shape(p)}"
            )


def check_matvec(matvec, dim: int, dtype) -> None:
    """Raise unless ``matvec`` is a function mapping a vector of shape ``(dim,)`` and ``dtype`` to one of shape ``(dim,)``.

    Checked by tracing (``jax.eval_shape``): no product is computed. ``TypeError`` if it is not callable.
    """
    if not callable(matvec):
        raise TypeError(f"matvec must be a function of a vector of shape ({dim},), got {type(matvec).__name__}")
    try:
        out = jax.eval_shape(matvec, jax.ShapeDtypeStruct((dim,), dtype))
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"matvec fails on a vector of shape ({dim},): {error}") from error
    if getattr(out, "shape", None) != (dim,):
        raise ValueError(f"matvec must map shape ({dim},) to ({dim},), got {getattr(out, 'shape', type(out).__name__)}")


def check_finite_data(data, name: str = "data") -> None:
    """Raise ``ValueError`` naming the array if ``data`` holds a NaN or an infinity (checked before training)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(data):
        if isinstance(leaf, jax.core.Tracer):
            continue  # no values to check: they are checked where they are concrete
        array = np.asarray(leaf)
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            where = jax.tree_util.keystr(path) or ""
            raise ValueError(f"{name}{where} holds {np.count_nonzero(~np.isfinite(array))} non-finite values (NaN or inf)")
