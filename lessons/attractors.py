r"""Measures of dynamical-systems reconstruction: does a model's free run have the data's attractor?

A model :math:`F` trained on a chaotic time series cannot follow the data for long: nearby states separate
like :math:`e^{\lambda_1 t}`. What it can get right is the *long-term behaviour*: the geometry of the
attractor, its rhythms, its rate of chaos. Three measures, each comparing a free run
:math:`z_t = F(z_{t-1})` (:func:`free_run`) with the data :math:`x_t`:

- the **largest Lyapunov exponent** :math:`\lambda_1 = \lim_{n\to\infty} \tfrac{1}{n\,dt} \log \| J_{n-1} \cdots
  J_1 J_0 v \|`, :math:`J_t = \partial F / \partial z (z_t)`, the rate at which a tangent vector
  :math:`v` grows (:func:`lyapunov_exponent`; the whole spectrum by repeated QR in :func:`lyapunov_spectrum`);
- the **state-space divergence** :math:`D_{\mathrm{stsp}} = \mathrm{KL}(p_{\mathrm{data}} \,\|\, p_{\mathrm{gen}})`
  between histograms of the visited states (:func:`state_space_divergence`): the geometry;
- the **Hellinger distance of power spectra** :math:`D_H` (:func:`hellinger_distance`): the time structure.

These follow Koppe et al. (2019), Brenner et al. (2022) and Hess et al. (2023), whose choices (30 bins per
dimension, Laplace smoothing, Gaussian-smoothed spectra) we keep.

Example (the Lorenz-63 attractor: :math:`\lambda_1 \approx 0.9` per unit time)::

    >>> import jax
    >>> from lessons.data import lorenz63, lorenz63_step
    >>> x = lorenz63(2000, key=jax.random.key(0))
    >>> step = lambda z: lorenz63_step(z, 0.01)
    >>> 0.7 < lyapunov_exponent(step, x[0], 20_000, dt=0.01) < 1.1
    True
    >>> state_space_divergence(x, x), hellinger_distance(x, x)
    (0.0, 0.0)
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from lessons.checks import check_callable, check_finite_data, check_nonnegative, check_positive, check_positive_int

Step = Callable[[jax.Array], jax.Array]


def free_run(step: Step, z0, num_steps: int) -> jax.Array:
    r"""The free run :math:`z_t = F(z_{t-1})`, :math:`t = 1, \dots, T`, of a map ``step`` :math:`= F` from ``z0``.

    Returns the array ``(num_steps, M)`` of :math:`z_1, \dots, z_T` (the start is not included: row ``t`` is
    :math:`F^{t+1}(z_0)`, as in ``lax.scan``). ``step`` is any function of a state of shape ``(M,)``; it is
    compiled once per function object (one ``lax.scan``).
    """
    z0 = _check_map(step, z0)
    check_positive_int(num_steps, "num_steps")
    return _free_run(step, z0, num_steps)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _free_run(step, z0, num_steps):
    return lax.scan(lambda z, _: (step(z),) * 2, z0, None, length=num_steps)[1]


def lyapunov_exponent(step: Step, z0, num_steps: int, *, burn_in: int = 1000, dt: float = 1.0, renorm_every: int = 1) -> float:
    r"""The largest Lyapunov exponent of the map ``step`` :math:`= F` along the orbit of ``z0``, per unit time.

    The renormalised tangent-vector method (Benettin et al. 1980): carry a tangent vector along the orbit,
    :math:`v_{t+1} = J_t v_t` with :math:`J_t = \partial F/\partial z(z_t)` (one ``jax.jvp`` per step, no
    Jacobian is formed), and every ``renorm_every`` steps add :math:`\log\|v\|` to a sum and rescale
    :math:`v` to unit length (else it over- or underflows like :math:`e^{\lambda_1 t}`). Then

    .. math:: \lambda_1 \approx \frac{1}{n\, dt} \sum_k \log \|v_{k}\| ,

    over ``num_steps`` :math:`= n` steps, after ``burn_in`` steps that bring :math:`z` onto the attractor and
    turn :math:`v` towards the most unstable direction (renormalised, not counted). :math:`v_0` is a fixed
    pseudo-random unit vector (``jax.random.key(0)``), so almost surely not orthogonal to that direction.
    ``dt`` converts per step to per unit time (``dt = 0.01`` for :func:`lessons.data.lorenz63_step` at
    0.01); with the default ``dt = 1`` the exponent is per step. For a linear map :math:`z \mapsto Az` it is
    :math:`\log |\lambda_{\max}(A)|`; positive means chaos (on a bounded attractor), negative a stable fixed
    point or cycle. The error of the finite-time estimate shrinks like :math:`1/\sqrt{n}` on a chaotic
    attractor, like :math:`1/n` for a linear map.

    Returns a Python float. Cost: ``burn_in + num_steps`` steps of ``step`` and its JVP, in one compiled loop
    (compiled once per ``step`` object: the counts are traced, so a sweep over ``num_steps`` does not recompile).
    """
    z0 = _check_map(step, z0)
    check_positive_int(num_steps, "num_steps")
    check_positive_int(burn_in, "burn_in", low=0)
    check_positive(dt, "dt")
    check_positive_int(renorm_every, "renorm_every")
    v0 = _start_vectors(z0, 1)[:, 0]
    total = _lyapunov(step, z0, v0, num_steps, burn_in, renorm_every)
    return float(total) / (num_steps * float(dt))


@functools.partial(jax.jit, static_argnums=(0,))
def _lyapunov(step, z0, v0, num_steps, burn_in, renorm_every):
    def advance(t, carry, every, count):
        z, v, total = carry
        z, v = jax.jvp(step, (z,), (v,))
        norm = jnp.linalg.norm(v)
        renorm = (t + 1) % every == 0
        v = jnp.where(renorm & (norm > 0), v / norm, v)  # a collapsed v stays 0: the exponent is -inf
        return z, v, total + jnp.where(renorm & count, jnp.log(norm), 0.0)

    start = (z0, v0, jnp.zeros((), z0.dtype))
    z, v, _ = lax.fori_loop(0, burn_in, functools.partial(advance, every=1, count=False), start)
    _, v, total = lax.fori_loop(0, num_steps, functools.partial(advance, every=renorm_every, count=True), (z, v, start[2]))
    return total + jnp.log(jnp.linalg.norm(v))  # what grew since the last renormalisation (0 if just renormalised)


def lyapunov_spectrum(step: Step, z0, num_steps: int, *, num: int | None = None, burn_in: int = 1000, dt: float = 1.0):
    r"""The ``num`` largest Lyapunov exponents :math:`\lambda_1 \ge \dots \ge \lambda_k` of ``step``, per unit time.

    The QR method (Benettin et al. 1980; Shimada & Nagashima 1979): carry :math:`k` orthonormal tangent
    vectors :math:`Q_t` (shape ``(M, k)``) along the orbit, :math:`J_t Q_t = Q_{t+1} R_t` (a reduced QR each
    step; :math:`J_t Q_t` by ``jax.linearize`` and one ``vmap``-ed JVP), and

    .. math:: \lambda_i \approx \frac{1}{n\, dt} \sum_{t} \log |(R_t)_{ii}| ,

    after ``burn_in`` steps that align :math:`Q` (not counted). The volume of the :math:`k`-dimensional
    parallelepiped grows like :math:`e^{(\lambda_1 + \dots + \lambda_k) t}`; with :math:`k = M` the sum is
    the average of :math:`\log |\det J_t|` (per unit time), e.g. :math:`\log|\det A|` for a linear map and
    :math:`-(\sigma + 1 + \beta)` for the Lorenz-63 flow. ``num`` defaults to ``M``.

    Returns an array ``(num,)`` in the order the method finds them (decreasing, up to estimation error).
    Cost: ``burn_in + num_steps`` steps, each with ``num`` JVPs and an ``(M, num)`` QR.
    """
    z0 = _check_map(step, z0)
    check_positive_int(num_steps, "num_steps")
    check_positive_int(burn_in, "burn_in", low=0)
    check_positive(dt, "dt")
    num = z0.shape[0] if num is None else num
    check_positive_int(num, "num", high=z0.shape[0], high_name="the state dimension M")
    Q0 = jnp.linalg.qr(_start_vectors(z0, num))[0]
    return _spectrum(step, z0, Q0, num_steps, burn_in) / (num_steps * float(dt))


@functools.partial(jax.jit, static_argnums=(0,))
def _spectrum(step, z0, Q0, num_steps, burn_in):
    def advance(_, carry, count):
        z, Q, total = carry
        z_next, jvp = jax.linearize(step, z)
        Q, R = jnp.linalg.qr(jax.vmap(jvp, in_axes=1, out_axes=1)(Q))
        if count:
            total = total + jnp.log(jnp.abs(jnp.diagonal(R)))
        return z_next, Q, total

    start = (z0, Q0, jnp.zeros(Q0.shape[1], z0.dtype))
    z, Q, _ = lax.fori_loop(0, burn_in, functools.partial(advance, count=False), start)
    return lax.fori_loop(0, num_steps, functools.partial(advance, count=True), (z, Q, start[2]))[2]


def state_space_divergence(data, generated, *, bins: int = 30, pseudo_count: float = 1e-5) -> float:
    r"""The state-space divergence :math:`D_{\mathrm{stsp}} = \mathrm{KL}(p \,\|\, q) = \sum_b p_b \log (p_b / q_b)`
    between the histograms of ``data`` (:math:`p`) and ``generated`` (:math:`q`), both of shape ``(T, N)``.

    The grid: in each of the :math:`N` dimensions, ``bins`` equal bins from the data's minimum minus 10% of
    its standard deviation to its maximum plus 10% (Hess et al. 2023), :math:`B = \mathrm{bins}^N` cells in
    all. Laplace smoothing with a pseudo-count :math:`\alpha` = ``pseudo_count`` (default :math:`10^{-5}`,
    as in Hess et al.) in every cell keeps the logarithm finite where the model never goes:

    .. math:: p_b = \frac{c_b + \alpha}{T + \alpha B}, \qquad q_b = \frac{g_b + \alpha}{T_{\mathrm{in}} + \alpha B},

    with :math:`c_b, g_b` the counts of data and generated points in cell :math:`b`. Generated points outside
    the grid are *dropped* (:math:`T_{\mathrm{in}}` counts the rest; if none is left, :math:`q` is uniform).
    Only the occupied cells are visited (a sort of the cell indices), so any :math:`N` works: the
    :math:`B - (\text{occupied})` empty cells all contribute the same term, added in closed form. (But with
    :math:`\alpha B` comparable to :math:`T`, e.g. :math:`N \ge 5` at 30 bins, the smoothing mass dominates: use fewer bins.)

    ``0`` for identical data, ``> 0`` otherwise; invariant to the order of the points in time (it compares
    where the trajectories go, not when). It needs enough points to fill the occupied cells: compare runs
    of equal length, and read the value against two independent runs of the true system (a baseline).
    Returns a Python float (nats). Cost: a sort of ``T + T'`` points.
    """
    data, generated = _check_pair(data, generated)
    check_positive_int(bins, "bins")
    check_positive(pseudo_count, "pseudo_count")
    kl = _state_space_divergence(data, generated, bins, float(pseudo_count), float(bins) ** data.shape[1])
    return max(float(kl), 0.0)  # a KL is >= 0; the sum can round to -1e-16


@functools.partial(jax.jit, static_argnums=(2,))
def _state_space_divergence(data, generated, bins, alpha, num_cells):
    std = jnp.std(data, axis=0)
    low, high = data.min(0) - 0.1 * std, data.max(0) + 0.1 * std
    width = jnp.where(high > low, high - low, 1.0)  # a constant dimension: its value is in the first bin

    def cells(x):
        return jnp.clip(jnp.floor((x - low) / width * bins), -1, bins).astype(jnp.int32)  # -1, bins: outside

    c_data, c_gen = jnp.clip(cells(data), 0, bins - 1), cells(generated)  # round-off at the edges
    inside = jnp.all((c_gen >= 0) & (c_gen < bins), axis=1)
    points = jnp.concatenate([c_data, jnp.clip(c_gen, 0, bins - 1)])
    weights_p = jnp.concatenate([jnp.ones(len(data)), jnp.zeros(len(generated))])
    weights_q = jnp.concatenate([jnp.zeros(len(data)), inside.astype(data.dtype)])
    order = jnp.lexsort(points.T[::-1])
    points, weights_p, weights_q = points[order], weights_p[order], weights_q[order]
    new_cell = jnp.concatenate([jnp.ones(1, bool), jnp.any(points[1:] != points[:-1], axis=1)])
    cell = jnp.cumsum(new_cell) - 1
    c = jax.ops.segment_sum(weights_p, cell, num_segments=len(points))
    g = jax.ops.segment_sum(weights_q, cell, num_segments=len(points))
    occupied = (c > 0) | (g > 0)
    norm_p, norm_q = len(data) + alpha * num_cells, g.sum() + alpha * num_cells
    p, q = (c + alpha) / norm_p, (g + alpha) / norm_q
    p_empty, q_empty = alpha / norm_p, alpha / norm_q
    kl_occupied = jnp.sum(jnp.where(occupied, p * (jnp.log(p) - jnp.log(q)), 0.0))
    return kl_occupied + (num_cells - occupied.sum()) * p_empty * (jnp.log(p_empty) - jnp.log(q_empty))


def hellinger_distance(data, generated, *, smoothing: float = 20.0) -> float:
    r"""The power-spectrum distance :math:`D_H`: the Hellinger distance between the smoothed, normalised power
    spectra of ``data`` and ``generated`` (shape ``(T, N)``), averaged over the :math:`N` dimensions.

    Per dimension :math:`i`: both series are cut to the common length :math:`L = \min(T, T')` and
    standardised (each with its own mean and standard deviation); their power spectra :math:`|\hat x_k|^2`
    (``rfft``, :math:`k = 0, \dots, \lfloor L/2 \rfloor`) are smoothed with a Gaussian kernel of standard
    deviation ``smoothing`` frequency bins (truncated at 4 standard deviations, mirror-reflected at the
    ends: ``scipy.ndimage.gaussian_filter1d``) and normalised to sum 1, giving :math:`p, q`; then

    .. math:: H(p, q) = \sqrt{1 - \sum_k \sqrt{p_k q_k}} = \tfrac{1}{\sqrt 2} \big\| \sqrt p - \sqrt q \big\|_2
       \in [0, 1] .

    Standardising with the data's mean instead would only change the zero-frequency bin (the offset, which
    :func:`state_space_divergence` sees), and the scale cancels in the normalisation; with each series'
    own statistics (Hess et al. 2023) :math:`D_H` is symmetric in its arguments. One frequency bin is
    :math:`1/L` cycles per step, so ``smoothing`` is a smoothing width that narrows, in frequency, as the
    series get longer. ``smoothing=0`` compares the raw periodograms (noisy: :math:`D_H > 0` between two runs
    of the same system). Returns a Python float. Cost: one FFT per dimension and series.
    """
    data, generated = _check_pair(data, generated, min_length=2)
    check_nonnegative(smoothing, "smoothing")
    length = min(len(data), len(generated))
    radius = int(4.0 * float(smoothing) + 0.5)
    return float(_hellinger(data[:length], generated[:length], float(smoothing), radius))


@functools.partial(jax.jit, static_argnums=(3,))
def _hellinger(data, generated, smoothing, radius):
    def spectrum(x):
        x = (x - x.mean(0)) / jnp.where(x.std(0) > 0, x.std(0), 1.0)
        power = jnp.abs(jnp.fft.rfft(x, axis=0)) ** 2
        if radius > 0:
            offsets = jnp.arange(-radius, radius + 1)
            kernel = jnp.exp(-0.5 * (offsets / smoothing) ** 2)
            kernel = (kernel / kernel.sum()).astype(power.dtype)
            padded = jnp.pad(power, ((radius, radius), (0, 0)), mode="symmetric")
            power = jax.vmap(lambda column: jnp.convolve(column, kernel, mode="valid"), in_axes=1, out_axes=1)(padded)
        return power / power.sum(0)

    p, q = spectrum(data), spectrum(generated)
    return jnp.mean(jnp.linalg.norm(jnp.sqrt(p) - jnp.sqrt(q), axis=0)) / jnp.sqrt(2.0)  # exactly 0 for p = q


# --- checks -------------------------------------------------------------------------------------------


def _check_map(step, z0) -> jax.Array:
    """``z0`` as a finite float vector ``(M,)``, and ``step`` a function mapping it to the same shape."""
    check_callable(step, "step", "a function of a state z of shape (M,)")
    z0 = jnp.asarray(z0)
    if not jnp.issubdtype(z0.dtype, jnp.floating):
        z0 = z0.astype(jnp.result_type(float))
    if z0.ndim != 1 or z0.shape[0] == 0:
        raise ValueError(f"z0 must be a state vector of shape (M,), got shape {z0.shape}")
    check_finite_data(z0, "z0")
    try:
        out = jax.eval_shape(step, z0)
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"step fails on a state of shape {z0.shape}: {error}") from error
    if getattr(out, "shape", None) != z0.shape:
        raise ValueError(f"step must map a state of shape {z0.shape} to the same shape, got {getattr(out, 'shape', out)}")
    return z0


def _start_vectors(z0, num: int) -> jax.Array:
    """``num`` fixed pseudo-random unit columns ``(M, num)`` (float32 draws cast to ``z0``'s dtype): generic directions."""
    v = jax.random.normal(jax.random.key(0), (z0.shape[0], num), jnp.float32).astype(z0.dtype)
    return v / jnp.linalg.norm(v, axis=0)


def _check_pair(data, generated, *, min_length: int = 1) -> tuple[jax.Array, jax.Array]:
    """Two finite float arrays ``(T, N)`` and ``(T', N)``, each with at least ``min_length`` time steps."""
    arrays = []
    for x, name in ((data, "data"), (generated, "generated")):
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[0] < min_length or x.shape[1] == 0:
            raise ValueError(f"{name} must be a time series of shape (T, N) with T >= {min_length}, got shape {x.shape}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        check_finite_data(x, name)
        arrays.append(x)
    data, generated = arrays
    if data.shape[1] != generated.shape[1]:
        raise ValueError(f"generated must have as many dimensions as data ({data.shape[1]}), got shape {generated.shape}")
    dtype = jnp.result_type(data.dtype, generated.dtype)
    return data.astype(dtype), generated.astype(dtype)
