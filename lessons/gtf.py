r"""Generalized teacher forcing (GTF) and GTF-DEER: training recurrent models of chaotic data in parallel.

**The model and its data.** A latent map :math:`z_t = F_\theta(z_{t-1})`, :math:`z \in \mathbb R^M`, and data
:math:`x_0, \dots, x_{T-1} \in \mathbb R^N` seen through the identity observation model: the first
:math:`N \le M` latent dimensions *are* the data dimensions (:math:`P = [I_N \; 0]`, :math:`\hat x_t = P z_t`).

**Generalized teacher forcing** (Hess, Monfared, Brenner, Durstewitz, ICML 2023) pulls the observed part of
the state toward the data before each step,

.. math:: \tilde z_{t-1} = z_{t-1} + \alpha P^\top (x_{t-1} - P z_{t-1}), \qquad z_t = F_\theta(\tilde z_{t-1}),
   \qquad z_0 = P^\top x_0,

and the loss is the mean squared error of the forced predictions, :math:`\frac{1}{(T-1) N} \sum_{t=1}^{T-1}
\|P z_t - x_t\|^2`. At :math:`\alpha = 0` the model runs free from :math:`x_0` (back-propagation through chaos
explodes); at :math:`\alpha = 1` (:math:`M = N`) each prediction is the one-step-ahead :math:`F_\theta(x_{t-1})`.
In between, the forced recurrence's Jacobian is :math:`J_F(\tilde z_{t-1}) \,\mathrm{diag}((1-\alpha) I_N,
I_{M-N})`, :math:`(1 - \alpha) J_F` for :math:`M = N` (for :math:`M > N` the unobserved directions are not
forced). The *adaptive* :math:`\alpha` (:func:`adaptive_alpha`) is the smallest that makes it contract at the
data states: :math:`\alpha = \max(0, 1 - 1/N_J)`, :math:`N_J = \max_t \|J_F(P^\top x_t)\|_2`.

**GTF-DEER** (Hess, Götz, Durstewitz 2026): the forced recurrence is a recurrence :math:`z_t = f(z_{t-1}, x_{t-1})`
with the data (shifted by one) as input, so :mod:`lessons.deer` solves it by Newton's method over the whole
trajectory, each iteration one parallel scan. Newton's iteration count grows with :math:`T` when the
products of the Jacobians :math:`(1 - \alpha)^k J_F \cdots J_F` grow (chaos at :math:`\alpha = 0`); at the
adaptive :math:`\alpha` they shrink, and the count no longer depends on :math:`T`. The gradient is DEER's
implicit one (one more transposed scan), equal to back-propagation through time (``method="sequential"``).

**A linear state-space model** (:func:`init_lssm`): :math:`h_t = \lambda \odot h_{t-1} + B^\top x_{t-1}`,
:math:`\lambda = \tanh \nu \in (-1, 1)^H` (real, diagonal), :math:`\hat x_t = \mathrm{MLP}(h_t)`. Trained one
step ahead with the data as input, its states are one diagonal linear scan, no Newton at all; free running,
its prediction is fed back, :math:`h_t = \lambda \odot h_{t-1} + B^\top \mathrm{MLP}(h_{t-1})`: a nonlinear
recurrence it was never trained as.

Example (a shPLRNN's forced predictions on Lorenz-63, via DEER and via the sequential loop)::

    >>> import jax
    >>> from lessons import data, nets
    >>> x = data.lorenz63(200, key=jax.random.key(0))
    >>> x = (x - x.mean(0)) / x.std(0)
    >>> params = nets.init_shplrnn(3, 20, key=jax.random.key(1))
    >>> alpha = adaptive_alpha(nets.shplrnn, params, x)
    >>> z, iters = gtf_trajectory(nets.shplrnn, params, x, alpha)
    >>> z_seq, _ = gtf_trajectory(nets.shplrnn, params, x, alpha, method="sequential")
    >>> z.shape, bool(abs(z - z_seq).max() < 1e-4)
    ((199, 3), True)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from lessons import deer, nets, scan
from lessons.checks import check_callable, check_finite_data, check_key, check_learning_rate, check_positive_int, concrete

__all__ = [
    "METHODS",
    "Run",
    "adaptive_alpha",
    "force",
    "gtf_cell",
    "gtf_loss",
    "gtf_trajectory",
    "init_lssm",
    "jacobian_norm",
    "lssm_loss",
    "lssm_predictions",
    "lssm_readout",
    "lssm_states",
    "lssm_step",
    "train_gtf",
    "train_shplrnn",
    "train_ssm",
]

METHODS = ("deer", "quasi", "sequential")  # how gtf_trajectory solves the forced recurrence
SCANS = ("parallel", "sequential")  # how the LSSM's linear recurrence is scanned


# --- checks -----------------------------------------------------------------------------------------


def _check_alpha(alpha) -> None:
    number = concrete(alpha, "alpha")
    if number is not None and not 0.0 <= number <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")


def _check_data(data) -> jax.Array:
    data = jnp.asarray(data)
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] < 1:
        raise ValueError(f"data must have shape (T, N) with T >= 2 time steps, got {data.shape}")
    if not jnp.issubdtype(data.dtype, jnp.floating):
        raise TypeError(f"data must be a floating-point array, got {data.dtype}")
    check_finite_data(data, "data")
    return data


def _check_model(F, params, data, latent_dim) -> int:
    """The latent dimension M (default N), after checking that ``F(params, z)`` maps shape (M,) to (M,)."""
    check_callable(F, "F", "a function F(params, z) -> z_next")
    M = data.shape[1] if latent_dim is None else latent_dim
    check_positive_int(M, "latent_dim")
    if M < data.shape[1]:
        raise ValueError(f"latent_dim must be >= the data dimension N = {data.shape[1]} (the first N latents are observed): {M}")
    try:
        out = jax.eval_shape(F, params, jax.ShapeDtypeStruct((M,), data.dtype))
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"F(params, z) fails on a latent state of shape ({M},): {error}") from error
    if getattr(out, "shape", None) != (M,):
        raise ValueError(f"F(params, z) must map a latent state of shape ({M},) to ({M},), got {getattr(out, 'shape', out)}")
    return int(M)


def _check_method(method, allowed=METHODS) -> None:
    if method not in allowed:
        raise ValueError(f"method must be one of {allowed}, got {method!r}")


# --- generalized teacher forcing ----------------------------------------------------------------------


def force(z: jax.Array, x: jax.Array, alpha) -> jax.Array:
    r"""The GTF-forced state :math:`\tilde z = z + \alpha P^\top (x - P z)`: the first ``N = x.shape[-1]``
    entries of ``z`` become :math:`(1 - \alpha) z + \alpha x`, the rest are kept."""
    return z.at[..., : x.shape[-1]].set((1 - alpha) * z[..., : x.shape[-1]] + alpha * x)


def gtf_cell(F: Callable, params, alpha) -> Callable:
    r"""The forced recurrence as a cell for :mod:`lessons.deer`: ``cell(z, x) = F(params, force(z, x, alpha))``,
    run with ``xs = data[:-1]`` (the data shifted by one) from ``z0`` = :math:`P^\top x_0`."""
    _check_alpha(alpha)
    return lambda z, x: F(params, force(z, x, alpha))


def _pad(x, M):
    return jnp.zeros((*x.shape[:-1], M), x.dtype).at[..., : x.shape[-1]].set(x)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 8))
def _trajectory(F, params, data, alpha, method, M, max_iter, tol, warn=True):
    cell, z0, xs = gtf_cell(F, params, alpha), _pad(data[0], M), data[:-1]
    if method == "sequential":
        return deer.sequential(cell, z0, xs), jnp.int32(0)
    if warn:  # a DeerWarning when it stops unconverged
        solver = deer.deer if method == "deer" else deer.quasi_deer
        zs, iters = solver(cell, z0, xs, max_iter=max_iter, tol=tol)
    else:  # training: no host callback per step; an unconverged solve shows as iterations == max_iter
        zs, iters, *_ = deer.solve(cell, z0, xs, quasi=method == "quasi", max_iter=max_iter, tol=tol)
    return zs, jnp.asarray(iters, jnp.int32)


def gtf_trajectory(F: Callable, params, data, alpha, *, method: str = "deer", latent_dim=None, max_iter=None, tol=1e-6):
    r"""The forced predictions :math:`z_1, \dots, z_{T-1}` (shape ``(T-1, M)``) and the Newton iteration count.

    ``method``: ``"deer"`` (Newton with the dense Jacobians :math:`(T, M, M)`, quadratic convergence),
    ``"quasi"`` (their diagonals, :math:`O(TM)` per iteration, linear convergence) or ``"sequential"`` (one
    ``lax.scan``; its count is 0). ``max_iter`` (default ``T - 1``, when every method is exact) and ``tol``
    go to :func:`lessons.deer.deer`, which warns when it stops unconverged. Differentiable: DEER's implicit
    gradient equals the sequential one (BPTT).
    """
    data = _check_data(data)
    _check_alpha(alpha)
    _check_method(method)
    M = _check_model(F, params, data, latent_dim)
    if max_iter is not None:
        check_positive_int(max_iter, "max_iter")
    alpha, tol = jnp.asarray(alpha, data.dtype), jnp.asarray(tol, data.dtype)  # one compiled version for any value
    return _trajectory(F, params, data, alpha, method, M, max_iter, tol)


def gtf_loss(F: Callable, params, data, alpha, *, method: str = "deer", latent_dim=None, max_iter=None, tol=1e-6):
    r"""GTF's loss, :math:`\frac{1}{(T-1)N} \sum_{t=1}^{T-1} \|P z_t - x_t\|^2` over the forced predictions
    of :func:`gtf_trajectory` (same arguments). Its gradient through ``"deer"`` is DEER's implicit one."""
    z, _ = gtf_trajectory(F, params, data, alpha, method=method, latent_dim=latent_dim, max_iter=max_iter, tol=tol)
    return _mse(z, data)


def _mse(z, data):
    return jnp.mean((z[:, : data.shape[1]] - data[1:]) ** 2)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _jacobian_norm(F, params, data, M, window):
    J = jax.vmap(jax.jacfwd(lambda z: F(params, z)))(_pad(data, M))
    logs = jnp.cumsum(jnp.log(jnp.linalg.norm(J, 2, axis=(-2, -1))))
    return jnp.exp(jnp.max(logs[window - 1 :] - jnp.concatenate([jnp.zeros(1, logs.dtype), logs[:-window]])) / window)


def jacobian_norm(F: Callable, params, data, *, latent_dim=None, window: int = 1) -> jax.Array:
    r""":math:`N_J = \max_t \|J_F(P^\top x_t)\|_2` over the data-inferred states (unobserved latents at 0), by an
    SVD of each :math:`M \times M` Jacobian: cost :math:`O(T M^3)`. With ``window`` :math:`= w > 1`, the largest
    geometric mean of :math:`w` consecutive norms, :math:`\max_t (\prod_{s=t}^{t+w-1} \|J_F(x_s)\|_2)^{1/w}`: it
    bounds the growth of a product of :math:`w` Jacobians (Hess et al.'s "product upper bound")."""
    data = _check_data(data)
    check_positive_int(window, "window", high=data.shape[0], high_name="T")
    return _jacobian_norm(F, params, data, _check_model(F, params, data, latent_dim), window)


def adaptive_alpha(F: Callable, params, data, *, latent_dim=None, window: int = 1) -> jax.Array:
    r"""The adaptive forcing :math:`\alpha = \max(0, 1 - 1/N_J)`, :math:`N_J` = :func:`jacobian_norm`: with it,
    :math:`(1 - \alpha) \|J_F(x_t)\|_2 \le 1` at every data state (Hess et al. 2023); with ``window`` :math:`w`,
    every product of :math:`w` forced Jacobians along the data has norm :math:`\le 1`: a smaller :math:`\alpha`."""
    return jnp.maximum(0.0, 1.0 - 1.0 / jacobian_norm(F, params, data, latent_dim=latent_dim, window=window))


# --- a linear state-space model -------------------------------------------------------------------------


def init_lssm(data_dim: int, state_dim: int, hidden: int, *, key, dtype=jnp.float32) -> dict:
    r"""A diagonal linear state-space model with an MLP readout: ``nu`` :math:`(H,)` with
    :math:`\lambda = \tanh\nu \sim U(0, 0.95)` (memory from one step to about twenty), ``B`` :math:`(N, H)` with
    entries :math:`\mathcal N(0, 1/N)`, ``readout`` an MLP ``[H, hidden, N]`` (tanh; :func:`lessons.nets.init_mlp`)."""
    for value, name in ((data_dim, "data_dim"), (state_dim, "state_dim"), (hidden, "hidden")):
        check_positive_int(value, name)
    check_key(key)
    k_lam, k_b, k_mlp = jax.random.split(key, 3)
    lam = jax.random.uniform(k_lam, (state_dim,), jnp.float32, 0.0, 0.95)
    B = jax.random.normal(k_b, (data_dim, state_dim), jnp.float32) / jnp.sqrt(jnp.float32(data_dim))
    params = jax.tree.map(lambda a: a.astype(dtype), {"nu": jnp.arctanh(lam), "B": B})
    return {**params, "readout": nets.init_mlp([state_dim, hidden, data_dim], key=k_mlp, dtype=dtype)}


@functools.partial(jax.jit, static_argnums=2)
def _states(params, inputs, method):
    lam = jnp.broadcast_to(jnp.tanh(params["nu"]), (inputs.shape[0], params["nu"].shape[0]))
    run = scan.parallel_scan if method == "parallel" else scan.sequential_scan
    return run(lam, inputs @ params["B"], jnp.zeros_like(params["nu"]))


def _check_lssm(params, data, method):
    data = _check_data(data)
    _check_method(method, SCANS)
    if not isinstance(params, dict) or params.get("B") is None or params["B"].shape[0] != data.shape[1]:
        raise ValueError(f"params must be an LSSM's (init_lssm) for data of dimension {data.shape[1]}")
    return data


def lssm_states(params: dict, inputs, *, method: str = "parallel") -> jax.Array:
    r"""The states :math:`h_1, \dots, h_T` (shape ``(T, H)``) after reading the inputs :math:`x_0, \dots, x_{T-1}`
    from :math:`h_0 = 0`: one diagonal linear scan, :func:`lessons.scan.parallel_scan` (or ``"sequential"``)."""
    return _states(params, _check_lssm(params, inputs, method), method)


@jax.jit
def lssm_readout(params: dict, h: jax.Array) -> jax.Array:
    r"""The observation :math:`\hat x = \mathrm{MLP}(h)` of states ``h`` of shape ``(..., H)``."""
    flat = h.reshape(-1, h.shape[-1])
    return nets.mlp(params["readout"], flat).reshape(*h.shape[:-1], -1)


def lssm_step(params: dict, h: jax.Array) -> jax.Array:
    r"""One free-running step, the prediction fed back: :math:`h \mapsto \lambda \odot h + B^\top \mathrm{MLP}(h)`."""
    return jnp.tanh(params["nu"]) * h + lssm_readout(params, h) @ params["B"]


def lssm_predictions(params: dict, data, *, method: str = "parallel") -> jax.Array:
    r"""Teacher-forced one-step-ahead predictions :math:`\hat x_1, \dots, \hat x_{T-1}` (shape ``(T-1, N)``)."""
    data = _check_lssm(params, data, method)
    return lssm_readout(params, _states(params, data[:-1], method))


def lssm_loss(params: dict, data, *, method: str = "parallel") -> jax.Array:
    r"""The teacher-forced loss :math:`\frac{1}{(T-1)N}\sum_{t=1}^{T-1} \|\hat x_t - x_t\|^2`: no Newton, one scan."""
    return jnp.mean((lssm_predictions(params, data, method=method) - jnp.asarray(data)[1:]) ** 2)


# --- training -----------------------------------------------------------------------------------------


class Run(NamedTuple):
    r"""A training run: ``loss[i]`` (batch mean before step ``i``), ``iterations[i]`` (the batch's most Newton
    iterations; 0 without DEER), ``alpha[j]`` (the forcing of steps ``j k .. (j+1) k - 1``, ``k = alpha_every``;
    empty for the LSSM), ``steps`` taken, ``diverged_at`` (the first step with a non-finite loss, where the run
    stopped, keeping in ``params`` the last parameters with a finite one; ``None`` if none), ``message``."""

    params: object
    loss: np.ndarray
    alpha: np.ndarray
    iterations: np.ndarray
    steps: int
    diverged_at: int | None
    message: str


@dataclasses.dataclass(frozen=True)
class _GTFBatchLoss:
    """``(params, batch, alpha, tol) -> (mean loss, max iterations)``; equal by value: compiled chunks are reused."""

    F: Callable
    method: str
    M: int
    max_iter: int | None

    def __call__(self, params, batch, alpha, tol):
        def one(seq):
            z, iters = _trajectory(self.F, params, seq, alpha, self.method, self.M, self.max_iter, tol, False)
            return _mse(z, seq), iters

        losses, iters = jax.vmap(one)(batch)
        return jnp.mean(losses), jnp.max(iters)


def _lssm_batch_loss(method, params, batch, alpha, tol):
    preds = jax.vmap(lambda seq: lssm_readout(params, _states(params, seq[:-1], method)))(batch)
    return jnp.mean((preds - batch[:, 1:]) ** 2), jnp.int32(0)


_LSSM_LOSSES = {m: functools.partial(_lssm_batch_loss, m) for m in SCANS}  # one object each: compiled once


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _chunk(loss_fn, optimizer, num_steps, seq_len, batch_size, params, opt_state, last_good, ok, data, alpha, tol, key, active):
    """Up to ``num_steps`` Adam steps (the first ``active``) on random crops, with lessons.train's divergence
    rule: the run freezes at the first non-finite loss and ``last_good`` keeps the last parameters with a finite one."""

    def body(carry, index):
        params, state, last_good, ok, key = carry
        key, sub = jax.random.split(key)
        starts = jax.random.randint(sub, (batch_size,), 0, data.shape[0] - seq_len + 1)
        batch = jax.vmap(lambda s: lax.dynamic_slice_in_dim(data, s, seq_len))(starts)
        (value, iters), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, alpha, tol)
        updates, new_state = optimizer.update(grads, state, params)
        good = ok & jnp.isfinite(value) & (index < active)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(good, a, b), new, old)
        last_good = keep(params, last_good)
        params, state = keep(optax.apply_updates(params, updates), params), keep(new_state, state)
        return (params, state, last_good, ok & (jnp.isfinite(value) | (index >= active)), key), (value, iters)

    carry, (losses, iters) = lax.scan(body, (params, opt_state, last_good, ok, key), jnp.arange(num_steps))
    return carry, losses, iters


@functools.lru_cache(maxsize=32)
def _adam(learning_rate):
    return optax.adam(learning_rate)  # one object per rate or schedule: compiled chunks are reused across runs


def _fit(loss_fn, params, data, *, key, num_steps, seq_len, batch_size, learning_rate, alpha_fn, alpha_every, tol):
    check_key(key)
    for value, name in ((num_steps, "num_steps"), (batch_size, "batch_size"), (alpha_every, "alpha_every")):
        check_positive_int(value, name)
    check_positive_int(seq_len, "seq_len", low=2, high=data.shape[0], high_name="the number of data points")
    if not callable(learning_rate):
        check_learning_rate(learning_rate)
        learning_rate = float(learning_rate)
    check_finite_data(params, "params")
    dtype = jax.tree.leaves(params)[0].dtype
    data = data.astype(dtype)
    optimizer = _adam(learning_rate)
    opt_state, last_good, ok = optimizer.init(params), params, jnp.bool_(True)
    losses, iters, alphas, done = [], [], [], 0
    chunk = min(alpha_every, num_steps)  # one compiled length; a short last chunk masks its extra steps
    while done < num_steps and bool(ok):
        k = min(alpha_every, num_steps - done)
        alphas.append(float(alpha_fn(params, alphas[-1] if alphas else 1.0)))
        args = (params, opt_state, last_good, ok, data, jnp.asarray(alphas[-1], dtype), jnp.asarray(tol, dtype), key, k)
        (params, opt_state, last_good, ok, key), loss, it = _chunk(loss_fn, optimizer, chunk, seq_len, batch_size, *args)
        losses.append(np.asarray(loss)[:k])
        iters.append(np.asarray(it)[:k])
        done += k
    loss, iters = np.concatenate(losses), np.concatenate(iters)
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size == 0:
        message = f"finished {num_steps} steps; last loss {loss[-1]:.4g}"
        return Run(params, loss, np.asarray(alphas), iters, num_steps, None, message)
    at = int(bad[0])
    kept = f"the parameters of step {at - 1}" if at else "the initial parameters (look for an overflow or a NaN in them)"
    message = f"diverged at step {at}: the loss became non-finite; stopped and kept {kept}"
    return Run(last_good, loss[:at], np.asarray(alphas), iters[:at], at, at, message)


def train_gtf(
    F: Callable,
    params,
    data,
    *,
    key,
    num_steps: int,
    seq_len: int = 200,
    batch_size: int = 4,
    learning_rate: float = 1e-3,
    alpha="adaptive",
    alpha_every: int = 25,
    alpha_decay: float = 0.9,
    alpha_window: int = 1,
    method: str = "deer",
    latent_dim=None,
    max_iter=None,
    tol: float = 1e-6,
) -> Run:
    r"""Train ``F(params, z)`` by GTF with Adam (``learning_rate``: a number or an optax schedule): each step the mean
    :func:`gtf_loss` of ``batch_size`` sequences of ``seq_len`` steps cut from ``data`` at random starts (``key``).

    ``alpha``: a number in [0, 1] or ``"adaptive"``: every ``alpha_every`` steps :math:`\hat\alpha` =
    :func:`adaptive_alpha` (on all of ``data``, with ``window=alpha_window``) is recomputed and, as in Hess et al.'s
    code, annealed from :math:`\alpha_0 = 1`: :math:`\alpha_j = \max(\hat\alpha_j, \gamma \alpha_{j-1} + (1 - \gamma)
    \hat\alpha_j)`, :math:`\gamma` = ``alpha_decay`` (0: the bare estimate, with which a freshly drawn, contracting
    model runs free and learns slowly). Each ``alpha_every`` steps are one compiled ``lax.scan``; a non-finite
    loss stops the run (:class:`Run`). Cost per step: ``batch_size`` DEER solves, :math:`O(\text{iters} \cdot T M^3)`.
    """
    data = _check_data(data)
    _check_method(method)
    M = _check_model(F, params, data, latent_dim)
    if isinstance(alpha, str):
        if alpha != "adaptive":
            raise ValueError(f"alpha must be a number in [0, 1] or 'adaptive', got {alpha!r}")
        if not 0.0 <= concrete(alpha_decay, "alpha_decay") < 1.0:
            raise ValueError(f"alpha_decay must lie in [0, 1), got {alpha_decay!r}")
        check_positive_int(alpha_window, "alpha_window", high=data.shape[0], high_name="T")

        def alpha_fn(p, previous):
            estimate = max(0.0, 1.0 - 1.0 / float(_jacobian_norm(F, p, data, M, alpha_window)))
            return max(estimate, alpha_decay * previous + (1.0 - alpha_decay) * estimate)

    else:
        _check_alpha(alpha)
        alpha_fn = lambda p, previous: alpha
    if max_iter is not None:
        check_positive_int(max_iter, "max_iter")
    loss_fn = _GTFBatchLoss(F, method, M, max_iter)
    return _fit(loss_fn, params, data, key=key, num_steps=num_steps, seq_len=seq_len, batch_size=batch_size,
                learning_rate=learning_rate, alpha_fn=alpha_fn, alpha_every=alpha_every, tol=tol)  # fmt: skip


def train_shplrnn(params: dict, data, **kwargs) -> Run:
    """:func:`train_gtf` for :func:`lessons.nets.shplrnn` (its latent dimension read from ``params["A"]``)."""
    if not isinstance(params, dict) or "A" not in params:
        raise ValueError("params must be a shPLRNN's, from lessons.nets.init_shplrnn")
    return train_gtf(nets.shplrnn, params, data, latent_dim=int(params["A"].shape[0]), **kwargs)


def train_ssm(
    params: dict, data, *, key, num_steps: int, seq_len: int = 200, batch_size: int = 4, learning_rate: float = 1e-3,
    method: str = "parallel",
) -> Run:  # fmt: skip
    r"""Train the LSSM (:func:`init_lssm`) one step ahead with the data as input (:func:`lssm_loss`): the same
    random crops, Adam and divergence rule as :func:`train_gtf`, one linear scan per sequence, no Newton."""
    data = _check_lssm(params, data, method)
    run = _fit(_LSSM_LOSSES[method], params, data, key=key, num_steps=num_steps, seq_len=seq_len, batch_size=batch_size,
               learning_rate=learning_rate, alpha_fn=lambda p, previous: 0.0, alpha_every=max(num_steps, 1), tol=0.0)  # fmt: skip
    return run._replace(alpha=np.zeros((0,)))
