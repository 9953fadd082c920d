r"""The training contract: an objective, its data as arguments, and one compiled "advance n steps".

Every loop of the book (:func:`train`, :func:`trajectory`, :func:`steps_to_tolerance`, the chapters'
experiments and both widgets) runs the single training step written here, :func:`step`:

.. math:: (L, g) = (L(\theta; D), \nabla_\theta L(\theta; D)), \qquad
   (u, s) = \mathrm{update}(g, s, \theta, \text{extras}), \qquad \theta \leftarrow \theta + u,

where the extras (the loss as a function, the batch, a PRNG key, the model's outputs: whatever a
method needs) are built in one place, :func:`update_extras`. Plain optax transformations ignore them;
second-order methods use ``value_fn``.

:func:`advance` runs ``num_steps`` of those steps in one ``lax.scan``, compiled once per
``(objective, optimizer, num_steps, record)`` and shape: the parameters, optimizer state (which holds
the hyperparameters, see :mod:`lessons.optimizers`), data, key and the number of steps actually taken
are all traced arguments, so new data, a new learning rate or a short last chunk never recompile. The
data are arguments, never captured in closures: that is what lets compiled code be shared (and sharded).

**The divergence rule** (one, everywhere): step :math:`t` is *bad* when the loss at :math:`\theta_t` is
not finite or :math:`\max|\theta_t|` exceeds ``blowup``. The run freezes at the first bad step
:math:`t`; it reports ``diverged_at = t`` and keeps :math:`\theta_{t-1}`, the last parameters whose loss
was finite.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from lessons import checks, runtime

PyTree = Any


# --- the objective ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Objective:
    r"""What training minimises, with the data left out: they are passed to every compiled call.

    Either a supervised objective, :math:`L(\theta; (x, y)) = \frac1n \sum_i \ell(f_\theta(x_i), y_i)`
    (``apply(params, x) -> outputs`` and ``loss(outputs, y) -> per-example losses``; later chapters use
    the outputs and the per-example losses), or a plain function ``function(params)`` (data-free, e.g.
    the 2-D test functions) or ``function(params, data)`` with ``takes_data=True``.

    Objectives are compared by their functions, so build one per model and reuse it: compiled code is
    cached on it.
    """

    apply: Callable | None = None
    loss: Callable | None = None
    function: Callable | None = None
    takes_data: bool = False

    def __post_init__(self):
        for name in ("apply", "loss", "function"):
            checks.check_callable(getattr(self, name), name, optional=True)
        supervised = self.apply is not None and self.loss is not None
        if supervised == (self.function is not None) or (self.apply is None) != (self.loss is None):
            raise ValueError("an Objective needs either apply and loss (supervised) or function, not both")

    @classmethod
    def of(cls, function: Callable) -> Objective:
        """The objective of a plain scalar function ``function(params)``."""
        if isinstance(function, Objective):
            return function
        if not callable(function):
            raise TypeError(f"loss_fn must be a function of the parameters or an Objective, got {type(function).__name__}")
        return cls(function=function)

    @classmethod
    def supervised(cls, apply: Callable, loss: Callable) -> Objective:
        """Mean of ``loss(apply(params, x), y)`` over the examples of the data ``(x, y)``."""
        return cls(apply=apply, loss=loss)

    def value_and_outputs(self, params, data=None):
        """``(L(params; data), outputs)``; outputs are ``None`` for a plain function."""
        if self.function is not None:
            return (self.function(params, data) if self.takes_data else self.function(params)), None
        x, y = data
        outputs = self.apply(params, x)
        return jnp.mean(self.loss(outputs, y)), outputs

    def value(self, params, data=None):
        """The loss :math:`L(\\theta; D)` at ``params``."""
        return self.value_and_outputs(params, data)[0]

    def bind(self, data) -> Callable:
        """``params -> L(params; data)``: the loss as a function, for ``value_fn`` and for plotting."""
        return lambda params: self.value(params, data)


# --- one step --------------------------------------------------------------------------------------


DEFAULT_EXTRAS = ("value", "grad", "value_fn")
"""What ``update`` receives unless asked for more: the names optax's own second-order methods take
(``optax.lbfgs`` refuses names it does not know, so the others are opt-in)."""
ALL_EXTRAS = (*DEFAULT_EXTRAS, "batch", "key", "outputs")


def update_extras(objective: Objective, params, data, key, value, grads, outputs, names=DEFAULT_EXTRAS) -> dict:
    """The extra arguments an ``update`` receives: the one place to add what a new method needs.

    ``value`` and ``grad`` (the loss and gradient at ``params``), ``value_fn`` (the loss as a function
    of the parameters, on this batch), ``batch`` (the data), ``key`` (a fresh PRNG key for this step, or
    ``None``) and ``outputs`` (the model's outputs on the batch; ``None`` for plain functions). Only
    ``names`` (a subset of :data:`ALL_EXTRAS`) are passed.
    """
    del params
    every = dict(value=value, grad=grads, value_fn=objective.bind(data), batch=data, key=key, outputs=outputs)
    unknown = set(names) - set(every)
    if unknown:
        raise ValueError(f"extras must be names in {ALL_EXTRAS}, got {sorted(unknown)}")
    return {name: every[name] for name in names}


def step(objective: Objective, optimizer, params, opt_state, data=None, key=None, extras=DEFAULT_EXTRAS):
    """One training step: ``(new_params, new_opt_state, loss at params)``. Pure; use inside ``jit``."""
    (value, outputs), grads = jax.value_and_grad(objective.value_and_outputs, has_aux=True)(params, data)
    extras = update_extras(objective, params, data, key, value, grads, outputs, extras)
    updates, opt_state = optax.with_extra_args_support(optimizer).update(grads, opt_state, params, **extras)
    return optax.apply_updates(params, updates), opt_state, value


def _tree_where(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _max_abs(tree):
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf), initial=0.0) for leaf in jax.tree.leaves(tree)]))


class Chunk(NamedTuple):
    """What :func:`advance` returns.

    ``params``/``opt_state`` after the steps (frozen at a bad step), ``last_good`` the last parameters
    whose loss was finite, ``losses[i]`` the loss before step ``i`` of the chunk, ``diverged`` the index
    of the first bad step in the chunk (``num_steps`` if none), ``records`` what ``record(params,
    opt_state)`` returned after each step (``None`` without ``record``), ``key`` the key to continue with,
    ``value`` the loss at the returned ``params``.
    """

    params: PyTree
    opt_state: PyTree
    last_good: PyTree
    losses: jax.Array
    diverged: jax.Array
    records: PyTree
    key: jax.Array | None
    value: jax.Array


def _advance(objective, optimizer, num_steps, record, extras, params, opt_state, data, key, num_active, blowup):
    def body(carry, index):
        params, state, last_good, ok, first_bad, key = carry
        step_key = None
        if key is not None:
            key, step_key = jax.random.split(key)
        new_params, new_state, value = step(objective, optimizer, params, state, data, step_key, extras)
        bad = ~jnp.isfinite(value) | (_max_abs(params) > blowup)
        active = index < num_active
        go = ok & ~bad & active
        last_good = _tree_where(ok & ~bad, params, last_good)
        first_bad = jnp.where(ok & bad & active, jnp.minimum(first_bad, index), first_bad)
        params, state = _tree_where(go, new_params, params), _tree_where(go, new_state, state)
        ok = ok & (~bad | ~active)
        recorded = None if record is None else record(params, state)
        return (params, state, last_good, ok, first_bad, key), (value, recorded)

    carry = (params, opt_state, params, jnp.bool_(True), jnp.int32(num_steps), key)
    steps = jnp.arange(num_steps, dtype=jnp.int32)
    (params, opt_state, last_good, _, first_bad, key), (losses, records) = lax.scan(body, carry, steps)
    return Chunk(params, opt_state, last_good, losses, first_bad, records, key, objective.value(params, data))


_advance_jit = jax.jit(_advance, static_argnums=(0, 1, 2, 3, 4))


def advance(
    objective: Objective,
    optimizer,
    params,
    opt_state,
    data=None,
    *,
    num_steps: int,
    num_active=None,
    key=None,
    blowup: float = math.inf,
    record: Callable | None = None,
    extras: tuple[str, ...] = DEFAULT_EXTRAS,
) -> Chunk:
    """Run up to ``num_steps`` training steps in one compiled ``lax.scan`` (see the module docstring).

    Only the first ``num_active`` steps (traced; default all) are taken, so a short last chunk reuses the
    compiled code. ``key`` (optional) is split once per step and handed to ``update`` as ``key``.
    ``extras`` names what ``update`` receives (:func:`update_extras`). Compiled once per
    ``(objective, optimizer, num_steps, record, extras)``: pass the same objects each time.
    """
    checks.check_positive_int(num_steps, "num_steps")
    checks.check_positive(blowup, "blowup", finite=False)
    checks.check_key(key, optional=True)
    num_active = num_steps if num_active is None else num_active
    dtype = jnp.result_type(*jax.tree.leaves(params)) if jax.tree.leaves(params) else jnp.float32
    blowup = jnp.asarray(blowup, dtype)
    return _advance_jit(
        objective, optimizer, int(num_steps), record, tuple(extras), params, opt_state, data, key, jnp.int32(num_active), blowup
    )


# --- trajectories of small problems ----------------------------------------------------------------


class Trajectory(NamedTuple):
    """Iterates of an optimizer: ``points[t]`` and ``values[t] = f(points[t])`` for ``t = 0..steps``.

    ``diverged_at`` is the first bad step (see the module docstring), ``None`` if there was none;
    ``points`` and ``values`` stop just before it. ``opt_state`` is the optimizer's state after the
    last step (to continue from ``points[-1]``), ``None`` after a divergence.
    """

    points: np.ndarray
    values: np.ndarray
    diverged_at: int | None
    opt_state: Any = None


def record_params(params, opt_state):
    """A ``record`` for :func:`advance`: the parameters after each step (the iterates of a trajectory)."""
    del opt_state
    return params


def trajectory(
    value_fn, x0, optimizer, num_steps: int, *, data=None, blowup: float = 1e6, opt_state=None, extras=DEFAULT_EXTRAS
) -> Trajectory:
    """Run ``optimizer`` from ``x0`` for ``num_steps`` steps on ``value_fn``, recording every iterate.

    Args:
        value_fn: ``x -> f(x)`` (e.g. ``problem.value``) or an :class:`Objective` (with its ``data``).
        x0: the starting point.
        optimizer: an optax transformation.
        num_steps: how many steps.
        blowup: an iterate farther than this from the origin counts as divergence.
        opt_state: start from this optimizer state instead of ``optimizer.init(x0)``.
    """
    checks.check_positive_int(num_steps, "num_steps", low=0)
    objective = Objective.of(value_fn)
    checks.check_transformation(optimizer)
    checks.check_positive(blowup, "blowup", finite=False)
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.result_type(float))
    opt_state = optimizer.init(x0) if opt_state is None else opt_state
    if num_steps == 0:
        done, final_state = 0, opt_state
        points, values = np.asarray(x0)[None], np.asarray(objective.value(x0, data))[None]
    else:
        chunk = advance(
            objective, optimizer, x0, opt_state, data, num_steps=num_steps, blowup=blowup, record=record_params, extras=extras
        )
        done = min(int(chunk.diverged), num_steps)  # steps taken before the first bad one
        final_state = chunk.opt_state
        points = np.concatenate([np.asarray(x0)[None], np.asarray(chunk.records)[:done]])
        values = np.append(np.asarray(chunk.losses)[:done], np.asarray(chunk.value))
    # points[done] has not been judged by a step yet: judge it by the same rule.
    if not np.isfinite(values[-1]) or np.abs(points[-1]).max(initial=0) > blowup or (num_steps > 0 and done < num_steps):
        return Trajectory(points[:done], values[:done], done)
    return Trajectory(points, values, None, final_state)


def steps_to_tolerance(value_fn, x0, x_star, optimizer, *, tol: float, max_steps: int, data=None):
    """Steps until ``|x_t - x*| <= tol |x_0 - x*|`` (``max_steps`` if never, or if the run diverges): traced.

    A ``lax.while_loop`` over :func:`step`: it can be jit-compiled and vmapped over problems or
    hyperparameters (pass the varying parts of the problem as ``data``).
    """
    objective = Objective.of(value_fn)
    checks.check_fraction(tol, "tol")
    checks.check_positive_int(max_steps, "max_steps")
    target = tol * jnp.linalg.norm(x0 - x_star)

    def not_done(carry):
        x, _, k = carry
        err = jnp.linalg.norm(x - x_star)
        return (err > target) & (k < max_steps) & jnp.isfinite(err)

    def body(carry):
        x, state, k = carry
        x, state, _ = step(objective, optimizer, x, state, data)
        return x, state, k + 1

    x, _, k = lax.while_loop(not_done, body, (x0, optimizer.init(x0), jnp.int32(0)))
    return jnp.where(jnp.isfinite(jnp.linalg.norm(x)), k, max_steps)


# --- training in chunks, with a History ------------------------------------------------------------


@dataclasses.dataclass
class History:
    """What a training run did.

    Attributes:
        loss: the loss before each step taken, shape ``(steps,)`` (``loss[0]`` at the initial params).
        params: the last parameters whose loss was finite.
        opt_state: the optimizer state to resume from (after a divergence: the state at the start
            of the chunk that diverged).
        steps: the number of steps taken (fewer than asked when the run diverged).
        diverged_at: the step whose loss was not finite, or ``None``.
        message: a sentence for humans: finished, or where and why it stopped.
        snapshots: ``(step, params)`` pairs, recorded every ``snapshot_every`` steps (and at 0).
        records: what ``record(params, opt_state)`` returned after each step, stacked along axis 0
            (``None`` when no ``record`` was given).
    """

    loss: np.ndarray
    params: PyTree
    opt_state: PyTree
    steps: int
    diverged_at: int | None = None
    message: str = ""
    snapshots: list[tuple[int, PyTree]] = dataclasses.field(default_factory=list)
    records: PyTree = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


def train(
    loss_fn,
    params: PyTree,
    optimizer,
    *,
    num_steps: int,
    data=None,
    key=None,
    chunk_size: int = 500,
    snapshot_every: int | None = None,
    opt_state: PyTree = None,
    record: Callable[[PyTree, PyTree], PyTree] | None = None,
    extras: tuple[str, ...] = DEFAULT_EXTRAS,
    progress: bool = True,
) -> History:
    r"""Minimise ``loss_fn`` from ``params`` with an optax ``optimizer``, in compiled chunks of :func:`advance`.

    Each step is :math:`\theta \leftarrow \theta + \mathrm{update}(\nabla L(\theta))`. The run stops at
    the first non-finite loss (the module's divergence rule), with ``History.message`` saying where;
    the parameters returned are the last ones whose loss was finite. Data holding a NaN are refused
    before the first step, with the array named.

    Args:
        loss_fn: ``params -> scalar``, or an :class:`Objective` whose ``data`` are passed as ``data``.
        params: initial parameters, any pytree.
        optimizer: an optax transformation (ours, optax's, a chain, or a registry method's).
        num_steps: number of steps.
        data: the objective's data (an :class:`Objective` only), passed to the compiled steps.
        key: a PRNG key handed to the optimizer, split once per step.
        chunk_size: steps per compiled call.
        snapshot_every: if set, keep a copy of the parameters every this many steps (chunks then have
            this length).
        opt_state: resume from this optimizer state instead of ``optimizer.init(params)``.
        record: ``(params, opt_state) -> pytree`` evaluated after every step inside the compiled loop
            (e.g. the CG iterations of :func:`lessons.newton.newton_cg`); stacked in ``History.records``.
        extras: what ``update`` receives besides the gradient (:func:`update_extras`).
        progress: show a progress bar for long runs (never in test mode).

    Example::

        >>> import jax.numpy as jnp
        >>> from lessons.first_order import gradient_descent
        >>> h = train(lambda w: jnp.sum(w**2), jnp.ones(3), gradient_descent(0.1), num_steps=50)
        >>> h.steps, h.loss[0]
        (50, np.float32(3.0))
    """
    objective = Objective.of(loss_fn)
    checks.check_positive_int(num_steps, "num_steps", low=0)
    checks.check_positive_int(chunk_size, "chunk_size")
    checks.check_transformation(optimizer)
    checks.check_key(key, optional=True)
    if snapshot_every is not None:
        checks.check_positive_int(snapshot_every, "snapshot_every")
        chunk_size = int(snapshot_every)
    checks.check_finite_data(data)
    checks.check_finite_data(params, "params")
    chunk_size = max(1, min(int(chunk_size), max(num_steps, 1)))
    opt_state = optimizer.init(params) if opt_state is None else opt_state

    losses: list[np.ndarray] = []
    records: list[PyTree] = []
    snapshots = [(0, params)] if snapshot_every else []
    done, diverged_at = 0, None
    num_chunks = math.ceil(num_steps / chunk_size)
    chunks = range(num_chunks)
    if progress and num_chunks > 1:
        chunks = runtime.progress(chunks, total=num_chunks, desc="training")
    for _ in chunks:
        active = min(chunk_size, num_steps - done)
        run = dict(num_steps=chunk_size, num_active=active, key=key, record=record, extras=extras)
        chunk = advance(objective, optimizer, params, opt_state, data, **run)
        key = chunk.key
        first = int(chunk.diverged)
        taken = min(first, active)
        losses.append(np.asarray(chunk.losses)[:taken])
        records.append(jax.tree.map(lambda r, taken=taken: np.asarray(r)[:taken], chunk.records))
        if first < active:
            diverged_at = done + first
            params = chunk.last_good
            done += first
            break
        params, opt_state = chunk.params, chunk.opt_state
        done += active
        if snapshot_every:
            snapshots.append((done, params))

    loss = np.concatenate(losses) if losses else np.zeros((0,), np.float32)
    if diverged_at is None:
        final = float(jax.jit(objective.value)(params, data))
        message = f"finished {done} steps; final loss {final:.4g}" if done else "no steps taken"
    elif diverged_at == 0:
        message = "the loss at the initial parameters is not finite: no step taken (look for a NaN or an infinity "
        message += "in the data or the initial parameters)"
    else:
        message = (
            f"diverged at step {diverged_at}: the loss became non-finite; "
            f"stopped and kept the parameters of step {diverged_at - 1}"
        )
    return History(
        loss=loss,
        params=params,
        opt_state=opt_state,
        steps=done,
        diverged_at=diverged_at,
        message=message,
        snapshots=snapshots,
        records=None if record is None or not records else jax.tree.map(lambda *r: np.concatenate(r), *records),
    )
