"""Data sets generated in code (nothing is downloaded): small, seeded, and quick to make.

Example::

    >>> import jax
    >>> from lessons.data import two_spirals
    >>> x, y = two_spirals(256, key=jax.random.key(0))
    >>> x.shape, y.shape
    ((256, 2), (256,))
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Re-exported: the check lives in the bottom layer (lessons.checks); notebooks and widgets may call it from here.
from lessons.checks import check_finite, check_nonnegative
from lessons.checks import check_key as check_key


def two_spirals(n: int, *, key, noise: float = 0.08, turns: float = 1.75, dtype=jnp.float32):
    r"""Two interleaved spirals in the plane, a classic that a linear model cannot separate.

    Point :math:`i` of class :math:`c \in \{0, 1\}` sits at angle :math:`\phi = 2\pi \cdot
    \mathrm{turns} \cdot r` and radius :math:`r \sim U(0.05, 1)` on the arm
    :math:`r (\cos(\phi + c\pi), \sin(\phi + c\pi))`, plus Gaussian noise of std ``noise``.

    The points are drawn in float32 and then cast to ``dtype``, so one key gives the same points
    in every precision (a float64 experiment reproduces the float32 one, minus its round-off).

    Returns:
        ``(x, y)``: inputs of shape ``(n, 2)`` in about ``[-1, 1]^2`` and labels ``0.0``/``1.0`` of
        shape ``(n,)``, balanced (``n // 2`` of class 0), both of dtype ``dtype``.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    check_nonnegative(noise, "noise")
    check_finite(turns, "turns")
    check_key(key)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}")
    x, y = _two_spirals(key, n, float(noise), float(turns))
    return x.astype(dtype), y.astype(dtype)


@functools.partial(jax.jit, static_argnums=(1,))
def _two_spirals(key, n, noise, turns):
    # One compiled call: op-by-op dispatch would compile a dozen tiny kernels on first use (~1 s).
    k_r, k_noise = jax.random.split(key)
    labels = (jnp.arange(n) >= n // 2).astype(jnp.float32)
    r = jax.random.uniform(k_r, (n,), jnp.float32, minval=0.05, maxval=1.0)
    phi = 2 * jnp.pi * turns * r + jnp.pi * labels
    x = jnp.stack([r * jnp.cos(phi), r * jnp.sin(phi)], axis=-1)
    x = x + noise * jax.random.normal(k_noise, x.shape, jnp.float32)
    return x, labels
