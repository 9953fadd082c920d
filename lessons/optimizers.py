r"""The registry of optimizers: every method of the book once, with its factory, defaults, name and colour.

Chapters and widgets never list optimizers themselves: they look a method up here by its display name,
build it with :meth:`Method.transformation`, and change its hyperparameters with :func:`set_hyperparameters`.
Hyperparameters live in the optimizer's *state* (``optax.inject_hyperparams``), not in its code, so one
compiled training step serves every learning rate: moving a slider never recompiles.

    >>> import jax.numpy as jnp
    >>> from lessons import optimizers
    >>> method = optimizers.get("Heavy ball")
    >>> opt = method.transformation()
    >>> state = opt.init(jnp.zeros(2))
    >>> round(float(optimizers.hyperparameters(state)["learning_rate"]), 6)
    0.1
    >>> state = optimizers.set_hyperparameters(state, learning_rate=0.05)
    >>> round(float(optimizers.hyperparameters(state)["learning_rate"]), 6)
    0.05

Later chapters add their methods to :data:`REGISTRY` (and nowhere else).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax.numpy as jnp
import optax

from lessons import checks, first_order, layerwise, llqr, natural_gradient, nets, newton, pmp, train


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
    """One optimizer of the book.

    Attributes:
        name: the display name, also the key in :data:`REGISTRY` (``"GD"``, ``"Heavy ball"``, ...).
        factory: ``(**hyperparameters, **static) -> optax transformation``.
        defaults: the hyperparameters a reader can move (floats), with their default values; they are
            injected into the optimizer's state at run time.
        color: the method's colour in every figure of the book.
        static: fixed arguments of the factory that are not hyperparameters (e.g. CG's iteration cap).
        needs_value_fn: whether ``update`` needs the loss as ``value_fn`` (second-order methods).
        dense: whether a step forms the dense Hessian (:math:`O(P^2)` memory): small problems only.
        extras: what ``update`` must receive besides the gradient; pass it as ``extras=`` to
            :func:`lessons.train.train` / :func:`lessons.train.advance` (``batch`` and ``outputs`` for
            methods that build curvature from the model on the batch).
        model: for methods tied to a model, the kind they are built for (e.g. ``"mlp"``), else ``None``.
        edge: ``(**hyperparameters) -> sharpness`` at which the method becomes unstable on a quadratic
            (see :meth:`stability_edge`), or ``None``.
    """

    name: str
    factory: Callable[..., optax.GradientTransformation]
    defaults: Mapping[str, float]
    color: str
    static: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    needs_value_fn: bool = False
    dense: bool = False
    extras: tuple[str, ...] = train.DEFAULT_EXTRAS
    model: str | None = None
    edge: Callable[..., float] | None = None

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """The names of the hyperparameters a reader can move."""
        return tuple(self.defaults)

    def transformation(self) -> optax.GradientTransformationExtraArgs:
        """The optax transformation with every hyperparameter injected into its state.

        The same object is returned on every call (cached), so compiled functions that take it as a
        static argument compile once per method. Start from non-default values with
        ``set_hyperparameters(opt.init(params), learning_rate=...)``.
        """
        return _transformation(self)

    def init(self, params, **hyperparameters):
        """``transformation().init(params)`` with the given hyperparameters (the others at their defaults)."""
        return set_hyperparameters(self.transformation().init(params), **hyperparameters)

    def stability_edge(self, **hyperparameters) -> float | None:
        r"""The sharpness above which the method is unstable on a quadratic, or ``None`` if it has none.

        Gradient descent with step :math:`\eta`: :math:`2/\eta`; heavy ball with momentum :math:`\beta`:
        :math:`2(1 + \beta)/\eta` (where a root of :math:`z^2 - (1 + \beta - \eta\lambda) z + \beta`
        reaches :math:`-1`). Methods that rescale by curvature, or whose edge is not drawn, have none.
        """
        hyper = {**self.defaults, **hyperparameters}
        first_order.check_learning_rate(hyper["learning_rate"])
        if "momentum" in hyper:
            first_order.check_momentum(hyper["momentum"])
        return None if self.edge is None else float(self.edge(**{k: float(v) for k, v in hyper.items()}))


@functools.cache
def _transformation(method: Method) -> optax.GradientTransformationExtraArgs:
    names = tuple(method.static)
    return optax.inject_hyperparams(method.factory, static_args=names)(**method.defaults, **method.static)


def _adam(learning_rate):
    return optax.adam(learning_rate)


def _newton(learning_rate):
    return newton.newton(learning_rate)


def _newton_cg(learning_rate, damping, *, max_cg_iters):
    return newton.newton_cg(learning_rate, damping=damping, max_cg_iters=max_cg_iters)


def _kfac(learning_rate, damping, *, loss_kind):
    return natural_gradient.kfac(learning_rate, damping=damping, loss_kind=loss_kind)


def _layerwise(learning_rate, mu, *, loss_kind):
    return layerwise.layerwise_metric(learning_rate, mu=mu, loss_kind=loss_kind)


def _llqr(learning_rate, *, structure, loss_kind):
    return llqr.llqr(learning_rate, structure=structure, loss_kind=loss_kind)


def _emsa(learning_rate, rho, *, num_lbfgs_steps):
    return pmp.emsa(rho, learning_rate=learning_rate, num_lbfgs_steps=num_lbfgs_steps)


def _natural_gradient(learning_rate, damping, *, apply, loss_kind):
    return natural_gradient.natural_gradient(learning_rate, damping=damping, apply=apply, loss_kind=loss_kind)


_METHODS = [
    Method("GD", first_order.gradient_descent, {"learning_rate": 1.0}, "#1f77b4", edge=lambda learning_rate: 2.0 / learning_rate),
    Method(
        "Heavy ball",
        first_order.heavy_ball,
        {"learning_rate": 0.1, "momentum": 0.9},
        "#d62728",
        edge=lambda learning_rate, momentum: 2.0 * (1.0 + momentum) / learning_rate,
    ),
    Method("Nesterov", first_order.nesterov, {"learning_rate": 0.1, "momentum": 0.9}, "#2ca02c"),
    Method("Adam", _adam, {"learning_rate": 0.01}, "#9467bd"),
    Method("Newton", _newton, {"learning_rate": 1.0}, "#ff7f0e", needs_value_fn=True, dense=True),
    Method("Damped Newton", newton.newton, {"learning_rate": 1.0, "damping": 1.0}, "#8c564b", needs_value_fn=True, dense=True),
    Method(
        "Saddle-free Newton",
        newton.saddle_free_newton,
        {"learning_rate": 1.0, "damping": 0.01},
        "#e377c2",
        needs_value_fn=True,
        dense=True,
    ),
    Method(
        "Newton-CG",
        _newton_cg,
        {"learning_rate": 1.0, "damping": 1.0},
        "#17becf",
        static={"max_cg_iters": 20},
        needs_value_fn=True,
    ),
    Method(
        "Natural gradient",
        _natural_gradient,
        {"learning_rate": 1.0, "damping": 0.1},
        "#7b4173",
        static={"apply": nets.mlp, "loss_kind": "logistic"},
        extras=train.ALL_EXTRAS,
        model="mlp",
    ),
    Method(
        "K-FAC",
        _kfac,
        {"learning_rate": 0.3, "damping": 1e-2},
        "#637939",
        static={"loss_kind": "logistic"},
        extras=train.ALL_EXTRAS,
        model="mlp",
    ),
    Method(
        "Layerwise metric",
        _layerwise,
        {"learning_rate": 1 / 3, "mu": 1e-2},  # 1/N for the three-layer networks of the book (chapter 5)
        "#393b79",
        static={"loss_kind": "logistic"},
        extras=train.ALL_EXTRAS,
        model="mlp",
    ),
    Method(
        "LLQR",
        _llqr,
        {"learning_rate": 0.03},  # the outer Adam's: spirals MLP 0.71 -> 0.12 in 200 steps (f32 and f64; Adam alone 0.17)
        "#e6550d",
        static={"structure": "diagonal", "loss_kind": "logistic"},
        extras=train.ALL_EXTRAS,
        model="mlp",
    ),
    Method(
        "E-MSA",
        _emsa,
        # rho = 5: the loss of the spirals MLP falls at every step (float32 and float64); smaller rho is faster but bumpy
        {"learning_rate": 1.0, "rho": 5.0},
        "#b8860b",
        static={"num_lbfgs_steps": 10},
        extras=train.ALL_EXTRAS,
        model="mlp",
    ),
]
REGISTRY: Mapping[str, Method] = MappingProxyType({m.name: m for m in _METHODS})
"""Every method, by display name. Read-only: add a method by adding it to ``_METHODS``."""


def get(name: str) -> Method:
    """The method called ``name``; a ``ValueError`` that lists the names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (a string), got {type(name).__name__} {name!r}")
    if name not in REGISTRY:
        raise ValueError(f"method must be one of {list(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def color(name: str) -> str:
    """The colour of method ``name`` in every figure (exact name: ``"Newton-CG"`` is not ``"Newton"``)."""
    return get(name).color


def _inject_state(opt_state):
    """The ``InjectHyperparamsState`` inside ``opt_state`` (which may be one, or a chain containing one)."""
    if hasattr(opt_state, "hyperparams"):
        return opt_state
    raise ValueError(
        "opt_state must come from a registry method's transformation() (optax.inject_hyperparams), "
        f"got {type(opt_state).__name__}"
    )


def hyperparameters(opt_state) -> dict[str, Any]:
    """The hyperparameters stored in ``opt_state`` (arrays)."""
    return dict(_inject_state(opt_state).hyperparams)


def set_hyperparameters(opt_state, **values):
    """A copy of ``opt_state`` with the given hyperparameters replaced (no recompilation needed).

    Values are checked like the factories check them (positive learning rate, momentum in [0, 1),
    damping >= 0, mu and rho > 0) and cast to the stored dtype; an unknown name is a ``ValueError`` naming it.
    """
    state = _inject_state(opt_state)
    stored = dict(state.hyperparams)
    for name, value in values.items():
        if name not in stored:
            raise ValueError(f"unknown hyperparameter {name!r}; this optimizer has {sorted(stored)}")
        if name == "learning_rate":
            first_order.check_learning_rate(value)
        elif name == "momentum":
            first_order.check_momentum(value)
        elif name == "damping":
            newton.check_damping(value)
        elif name in ("mu", "rho"):
            checks.check_positive(value, name)
        stored[name] = jnp.asarray(value, dtype=jnp.asarray(stored[name]).dtype)
    return state._replace(hyperparams=stored)
