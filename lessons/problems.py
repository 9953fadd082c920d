"""Two-dimensional test functions, each with its value, gradient, Hessian and known minimisers.

The gradients and Hessians are written out by hand (not by autodiff), so the tests can check them
against finite differences and against ``jax.hessian``: three independent derivations that must
agree. Every function takes a point ``x`` of shape ``(2,)`` and is jit- and vmap-friendly.

Example::

    >>> from lessons import problems
    >>> p = problems.quadratic(kappa=10.0)
    >>> float(p.value(p.minimisers[0]))
    0.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from lessons.checks import check_finite, check_positive, check_positive_int, concrete

Array = jnp.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A smooth function of two variables with its derivatives and landmarks.

    Attributes:
        name: short identifier (``"quadratic"``, ``"rosenbrock"``, ...).
        title: a human-readable title, with parameters.
        value: ``x -> f(x)``, a scalar.
        grad: ``x -> grad f(x)``, shape ``(2,)``.
        hessian: ``x -> Hess f(x)``, shape ``(2, 2)``.
        minimisers: known global or local minimisers, shape ``(m, 2)``.
        min_value: the smallest value of ``f`` (at the global minimisers).
        saddles: known saddle points, shape ``(s, 2)`` (possibly empty).
        bounds: ``((xmin, xmax), (ymin, ymax))``, a box that shows the interesting part.
        start: a default starting point that makes the function's difficulty visible.
        curvature: ``(mu, L)``, the extreme Hessian eigenvalues, where they are constant.

    Problems compare by identity (``eq=False``), so they can be static arguments of ``jax.jit``.
    """

    name: str
    title: str
    value: Callable[[Array], Array]
    grad: Callable[[Array], Array]
    hessian: Callable[[Array], Array]
    minimisers: np.ndarray
    min_value: float
    bounds: tuple[tuple[float, float], tuple[float, float]]
    start: np.ndarray
    saddles: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2)))
    curvature: tuple[float, float] | None = None

    def grid(self, num: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values on a ``num x num`` grid over :attr:`bounds`: ``(xs, ys, Z)`` with ``Z[i, j] = f(xs[j], ys[i])``."""
        import jax

        check_positive_int(num, "num")
        (x0, x1), (y0, y1) = self.bounds
        xs = np.linspace(x0, x1, num)
        ys = np.linspace(y0, y1, num)
        X, Y = np.meshgrid(xs, ys)
        points = jnp.stack([jnp.asarray(X.ravel()), jnp.asarray(Y.ravel())], axis=-1)
        Z = jax.vmap(self.value)(points)
        return xs, ys, np.asarray(Z).reshape(num, num)


def _point(x) -> Array:
    x = jnp.asarray(x)
    if x.shape != (2,):
        raise ValueError(f"x must be a point of shape (2,), got shape {x.shape}")
    return x


def _checked(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
    def wrapped(x):
        return fn(_point(x))

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def quadratic(kappa: float = 10.0, *, angle: float = math.pi / 6) -> Problem:
    r"""A rotated quadratic canyon with condition number ``kappa``.

    .. math:: f(x) = \tfrac12 x^\top H x, \qquad H = R_\theta \operatorname{diag}(1/\kappa, 1) R_\theta^\top,

    so the largest curvature is ``L = 1`` (the stability limit of gradient descent is ``lr < 2``
    whatever ``kappa`` is) and the smallest is ``mu = 1/kappa``. The minimiser is the origin.
    """
    kappa = concrete(kappa, "kappa")
    if not math.isfinite(kappa) or kappa < 1.0:
        raise ValueError(f"kappa must be a finite number >= 1, got {kappa}")
    check_finite(angle, "angle")
    c, s = math.cos(angle), math.sin(angle)
    R = np.array([[c, -s], [s, c]])
    H_np = R @ np.diag([1.0 / kappa, 1.0]) @ R.T

    def value(x):
        H = jnp.asarray(H_np, dtype=x.dtype)
        return 0.5 * x @ H @ x

    def grad(x):
        return jnp.asarray(H_np, dtype=x.dtype) @ x

    def hessian(x):
        return jnp.asarray(H_np, dtype=x.dtype) + 0.0 * x[0]

    # Start far along the flat direction and a little across the steep one: the canyon's zig-zag.
    start = R @ np.array([-1.8, 0.6])
    return Problem(
        name="quadratic",
        title=f"quadratic canyon, kappa = {kappa:g}",
        value=_checked(value),
        grad=_checked(grad),
        hessian=_checked(hessian),
        minimisers=np.zeros((1, 2)),
        min_value=0.0,
        bounds=((-2.0, 2.0), (-2.0, 2.0)),
        start=start,
        curvature=(1.0 / kappa, 1.0),
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Problem:
    r"""Rosenbrock's banana valley, :math:`f(x, y) = (a - x)^2 + b (y - x^2)^2`, minimum at ``(a, a^2)``."""
    check_finite(a, "a")
    check_positive(b, "b")

    def value(p):
        x, y = p[0], p[1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    def grad(p):
        x, y = p[0], p[1]
        return jnp.stack([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)])

    def hessian(p):
        x, y = p[0], p[1]
        hxx = 2 - 4 * b * y + 12 * b * x**2
        hxy = -4 * b * x
        return jnp.stack([jnp.stack([hxx, hxy]), jnp.stack([hxy, 2 * b + 0 * x])])

    return Problem(
        name="rosenbrock",
        title=f"Rosenbrock, a = {a:g}, b = {b:g}",
        value=_checked(value),
        grad=_checked(grad),
        hessian=_checked(hessian),
        minimisers=np.array([[a, a**2]]),
        min_value=0.0,
        bounds=((-2.0, 2.0), (-1.0, 3.0)),
        start=np.array([-1.2, 1.0]),
    )


def saddle() -> Problem:
    r"""A saddle between two valleys: :math:`f(x, y) = \tfrac12 x^2 + \tfrac14 y^4 - \tfrac12 y^2`.

    The origin is a saddle point (Hessian ``diag(1, -1)``); the minima are ``(0, +-1)`` with value
    ``-1/4``. Started near the saddle's stable manifold ``y = 0``, gradient descent creeps towards
    the saddle before escaping; Newton's method is attracted to it.
    """

    def value(p):
        x, y = p[0], p[1]
        return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2

    def grad(p):
        x, y = p[0], p[1]
        return jnp.stack([x, y**3 - y])

    def hessian(p):
        x, y = p[0], p[1]
        zero = 0.0 * x
        return jnp.stack([jnp.stack([1.0 + zero, zero]), jnp.stack([zero, 3 * y**2 - 1])])

    return Problem(
        name="saddle",
        title="saddle between two valleys",
        value=_checked(value),
        grad=_checked(grad),
        hessian=_checked(hessian),
        minimisers=np.array([[0.0, 1.0], [0.0, -1.0]]),
        min_value=-0.25,
        bounds=((-2.0, 2.0), (-1.6, 1.6)),
        start=np.array([1.5, 0.05]),
        saddles=np.zeros((1, 2)),
    )


_HIMMELBLAU_MINIMA = np.array(
    [
        [3.0, 2.0],
        [-2.805118086952745, 3.131312518250573],
        [-3.779310253377747, -3.2831859912861696],
        [3.5844283403304917, -1.8481265269644036],
    ]
)


def himmelblau() -> Problem:
    r"""Himmelblau's function, :math:`f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2`.

    Non-convex, with four global minima (value 0), a local maximum and four saddles: which minimum
    an optimiser reaches depends on where it starts and on its dynamics.
    """

    def value(p):
        x, y = p[0], p[1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    def grad(p):
        x, y = p[0], p[1]
        u, v = x**2 + y - 11, x + y**2 - 7
        return jnp.stack([4 * x * u + 2 * v, 2 * u + 4 * y * v])

    def hessian(p):
        x, y = p[0], p[1]
        hxx = 12 * x**2 + 4 * y - 42
        hxy = 4 * x + 4 * y
        hyy = 12 * y**2 + 4 * x - 26
        return jnp.stack([jnp.stack([hxx, hxy]), jnp.stack([hxy, hyy])])

    return Problem(
        name="himmelblau",
        title="Himmelblau (four minima)",
        value=_checked(value),
        grad=_checked(grad),
        hessian=_checked(hessian),
        minimisers=_HIMMELBLAU_MINIMA.copy(),
        min_value=0.0,
        bounds=((-5.0, 5.0), (-5.0, 5.0)),
        start=np.array([-0.5, 0.5]),
    )


PROBLEMS: dict[str, Callable[..., Problem]] = {
    "quadratic": quadratic,
    "rosenbrock": rosenbrock,
    "saddle": saddle,
    "himmelblau": himmelblau,
}


def make(name: str, **kwargs) -> Problem:
    """Build a problem by name (a key of :data:`PROBLEMS`), passing ``kwargs`` to its constructor."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {sorted(PROBLEMS)}, got {type(name).__name__} {name!r}")
    if name not in PROBLEMS:
        raise ValueError(f"name must be one of {sorted(PROBLEMS)}, got {name!r}")
    return PROBLEMS[name](**kwargs)
