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
from lessons.checks import check_finite, check_nonnegative, check_positive, check_positive_int
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
    _check_sample(n, key, noise, dtype)
    check_finite(turns, "turns")
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


def moons(n: int, *, key, noise: float = 0.1, dtype=jnp.float32):
    r"""Two interleaving half circles ("moons"): separable, but not by a line.

    Class 0 lies on the upper arc :math:`(\cos t, \sin t)`, class 1 on the lower arc
    :math:`(1 - \cos t, \tfrac12 - \sin t)`, with :math:`t \sim U(0, \pi)`; both are shifted by
    :math:`(-\tfrac12, -\tfrac14)` and scaled by :math:`\tfrac23` into about :math:`[-1, 1] \times [-\tfrac12, \tfrac12]`,
    then Gaussian noise of std ``noise`` is added (in those units).

    Drawn in float32 and cast to ``dtype``, like :func:`two_spirals`: one key, the same points in every precision.

    Returns:
        ``(x, y)``: inputs of shape ``(n, 2)``, labels ``0.0``/``1.0`` of shape ``(n,)``, balanced
        (``n // 2`` of class 0), both of dtype ``dtype``.
    """
    _check_sample(n, key, noise, dtype)
    x, y = _moons(key, n, float(noise))
    return x.astype(dtype), y.astype(dtype)


def xor(n: int, *, key, noise: float = 0.1, dtype=jnp.float32):
    r"""The XOR problem in the plane: the label says whether the two coordinates have the same sign.

    Each point has coordinates of magnitude :math:`U(0.1, 1)`; class 1 (same signs) fills the first and
    third quadrants, class 0 the second and fourth, each quadrant of a class equally likely; then
    Gaussian noise of std ``noise`` is added, which blurs the points across the axes.

    Drawn in float32 and cast to ``dtype``, like :func:`two_spirals`: one key, the same points in every precision.

    Returns:
        ``(x, y)``: inputs of shape ``(n, 2)`` in about ``[-1, 1]^2``, labels ``0.0``/``1.0`` of shape
        ``(n,)``, balanced (``n // 2`` of class 0), both of dtype ``dtype``.
    """
    _check_sample(n, key, noise, dtype)
    x, y = _xor(key, n, float(noise))
    return x.astype(dtype), y.astype(dtype)


def _check_sample(n, key, noise, dtype) -> None:
    """The checks every generator shares: ``n >= 2`` points, a key, a noise level ``>= 0``, a float dtype."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    check_nonnegative(noise, "noise")
    check_key(key)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}")


def _balanced_labels(n):
    return (jnp.arange(n) >= n // 2).astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=(1,))
def _moons(key, n, noise):
    k_t, k_noise = jax.random.split(key)
    labels = _balanced_labels(n)
    t = jax.random.uniform(k_t, (n,), jnp.float32, minval=0.0, maxval=jnp.pi)
    upper = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    lower = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=-1)
    x = jnp.where(labels[:, None] > 0.5, lower, upper)
    x = (x - jnp.array([0.5, 0.25], jnp.float32)) * jnp.float32(2.0 / 3.0)
    x = x + noise * jax.random.normal(k_noise, x.shape, jnp.float32)
    return x, labels


@functools.partial(jax.jit, static_argnums=(1,))
def _xor(key, n, noise):
    k_size, k_sign, k_noise = jax.random.split(key, 3)
    labels = _balanced_labels(n)
    size = jax.random.uniform(k_size, (n, 2), jnp.float32, minval=0.1, maxval=1.0)
    first = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), 1.0, -1.0).astype(jnp.float32)
    second = jnp.where(labels > 0.5, first, -first)  # class 1: same signs
    x = size * jnp.stack([first, second], axis=-1)
    x = x + noise * jax.random.normal(k_noise, x.shape, jnp.float32)
    return x, labels


def modular_addition(p: int, *, key, train_fraction: float = 0.5, dtype=jnp.float32):
    r"""The table of :math:`(a + b) \bmod p`, split at random into training and test examples (grokking).

    Every pair :math:`(a, b) \in \{0..p-1\}^2` is one example; its input is the concatenation of the one-hot
    codes of :math:`a` and :math:`b` (length :math:`2p`) and its label the class :math:`(a + b) \bmod p`. A random
    permutation (``key``) puts the first ``round(train_fraction * p**2)`` pairs in the training set and the
    rest in the test set: a model can only score on the test set by learning the rule, not the table.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: inputs of shape ``(m, 2p)`` and dtype ``dtype``, labels
        ``int32`` of shape ``(m,)``.
    """
    if not isinstance(p, int) or isinstance(p, bool) or p < 2:
        raise ValueError(f"p must be an integer >= 2, got {p!r}")
    check_key(key)
    check_finite(train_fraction, "train_fraction")
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction!r}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}")
    a, b = jnp.divmod(jnp.arange(p * p), p)
    order = jax.random.permutation(key, p * p)
    inputs = jnp.concatenate([jax.nn.one_hot(a, p, dtype=dtype), jax.nn.one_hot(b, p, dtype=dtype)], axis=1)[order]
    labels = ((a + b) % p).astype(jnp.int32)[order]
    m = int(round(float(train_fraction) * p * p))
    return inputs[:m], labels[:m], inputs[m:], labels[m:]


def lorenz63_vector_field(x, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    r"""The Lorenz-63 vector field :math:`\dot x = f(x)` (Lorenz 1963), for one state or a batch ``(..., 3)``:

    .. math:: \dot x_1 = \sigma (x_2 - x_1), \qquad \dot x_2 = x_1 (\rho - x_3) - x_2, \qquad
       \dot x_3 = x_1 x_2 - \beta x_3 .

    At the classic :math:`\sigma = 10, \rho = 28, \beta = 8/3` the flow has a chaotic attractor (largest
    Lyapunov exponent about 0.905 per unit time); its divergence :math:`-(\sigma + 1 + \beta)` is constant,
    so every volume shrinks by :math:`e^{-(\sigma + 1 + \beta) t}`.
    """
    if jnp.shape(x)[-1:] != (3,):
        raise ValueError(f"x must have shape (..., 3), got {jnp.shape(x)}")
    x1, x2, x3 = x[..., 0], x[..., 1], x[..., 2]
    return jnp.stack([sigma * (x2 - x1), x1 * (rho - x3) - x2, x1 * x2 - beta * x3], axis=-1)


def lorenz63_step(x, dt, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    r"""One classical Runge-Kutta (RK4) step of size ``dt`` of the Lorenz-63 flow (:func:`lorenz63_vector_field` :math:`f`):

    .. math:: x \mapsto x + \tfrac{dt}{6}(k_1 + 2k_2 + 2k_3 + k_4), \quad
       k_1 = f(x), \quad k_2 = f(x + \tfrac{dt}{2} k_1), \quad k_3 = f(x + \tfrac{dt}{2} k_2),
       \quad k_4 = f(x + dt\, k_3).

    Local error :math:`O(dt^5)`, global error :math:`O(dt^4)`. A pure function of arrays (no checks beyond
    the shape), so it can be the ``step`` of :func:`lessons.attractors.lyapunov_exponent`::

        step = lambda x: lorenz63_step(x, 0.01)
    """
    f = functools.partial(lorenz63_vector_field, sigma=sigma, rho=rho, beta=beta)
    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def lorenz63(
    num_steps: int,
    *,
    key,
    dt: float = 0.01,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
    burn_in: int = 1000,
    noise: float = 0.0,
    dtype=jnp.float32,
):
    r"""A trajectory of the Lorenz-63 system (:func:`lorenz63_vector_field`), sampled every ``dt``: shape ``(num_steps, 3)``.

    The start :math:`x_0 = (0, 0, \rho - 1) + 8\,\varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`, is drawn
    with a split of ``key`` in float32; :func:`lorenz63_step` (RK4) then runs ``burn_in + num_steps`` steps
    in one ``lax.scan`` and the first ``burn_in`` states are dropped (row ``t`` is :math:`x_{\mathrm{burn\_in} + t}`;
    with ``burn_in=0`` row 0 is the start). The default burn-in, 10 time units at ``dt = 0.01``, puts the
    state on the attractor. The integration runs in float64 when x64 is enabled (else float32) and the
    result is cast to ``dtype``: with x64 on, one key gives the same trajectory in every ``dtype``, up to the cast.

    With ``noise > 0``, Gaussian observation noise of std ``noise`` times each coordinate's standard deviation
    (over the returned trajectory) is added, drawn in float32 with the other split of ``key``.

    Cost: ``burn_in + num_steps`` RK4 steps, four vector-field evaluations each.
    """
    check_positive_int(num_steps, "num_steps")
    check_positive_int(burn_in, "burn_in", low=0)
    check_key(key)
    check_positive(dt, "dt")
    for value, name in ((sigma, "sigma"), (rho, "rho"), (beta, "beta")):
        check_finite(value, name)
    check_nonnegative(noise, "noise")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}")
    x = _lorenz63(key, num_steps, burn_in, float(dt), float(sigma), float(rho), float(beta), float(noise))
    return x.astype(dtype)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _lorenz63(key, num_steps, burn_in, dt, sigma, rho, beta, noise):
    compute = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    k_start, k_noise = jax.random.split(key)
    start = jnp.array([0.0, 0.0, rho - 1.0], jnp.float32) + 8.0 * jax.random.normal(k_start, (3,), jnp.float32)
    dt, sigma, rho, beta = (jnp.asarray(v, compute) for v in (dt, sigma, rho, beta))

    def step(x, _):
        return lorenz63_step(x, dt, sigma, rho, beta), x

    x, _ = jax.lax.scan(step, start.astype(compute), None, length=burn_in)
    _, xs = jax.lax.scan(step, x, None, length=num_steps)
    scale = noise * jnp.std(xs, axis=0)
    return xs + scale * jax.random.normal(k_noise, xs.shape, jnp.float32).astype(compute)
