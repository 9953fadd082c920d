r"""Linear recurrences, sequentially and by a parallel (associative) scan.

The recurrence of this chapter is affine and time-varying,

.. math:: h_t = A_t h_{t-1} + b_t, \qquad t = 0, \dots, T-1, \qquad h_{-1} = h_0^{\text{init}},

with :math:`A_t` a dense :math:`d \times d` matrix (``A`` of shape ``(T, d, d)``) or a diagonal one
(``A`` of shape ``(T, d)``, applied elementwise). A loop needs :math:`T` steps one after the other
(:func:`sequential_scan`, ``lax.scan``). But each step is an affine map :math:`h \mapsto A h + b`, and
composing two affine maps gives another one,

.. math:: (A_2, b_2) \circ (A_1, b_1) = (A_2 A_1,\; A_2 b_1 + b_2) \qquad \text{(first 1, then 2)},

an associative operation (:func:`compose`). All prefix compositions :math:`(A_t \cdots A_0,\; h_t)` are
therefore a *prefix scan*, which a tree computes in :math:`O(\log T)` parallel steps
(:func:`parallel_scan`, ``jax.lax.associative_scan``). Fold the start into the first element,
:math:`b_0 \leftarrow A_0 h_{-1} + b_0`, and the :math:`b` part of the :math:`t`-th prefix is :math:`h_t`.

**The tree.** ``lax.associative_scan`` uses the odd/even recursion (Ladner-Fischer style, the one in
Blelloch's notes as "recursive doubling on pairs"): combine neighbours :math:`(0,1), (2,3), \dots`,
scan the :math:`\lceil T/2 \rceil`-ish odd positions recursively, then let every remaining even position
absorb the prefix just before it. :func:`scan_tree` lists those combines level by level, :func:`tree_scan`
replays them in pure Python; :math:`\approx 2 \log_2 T` levels and fewer than :math:`2T` combines.

**Cost** (:func:`work_depth`). Sequential: :math:`T` steps of :math:`2d^2` flops (dense) or :math:`2d`
(diagonal), depth :math:`T`. Parallel: :math:`< 2T` combines of :math:`2d^3 + 2d^2` flops (the matrix
products are the price: dense work grows by a factor :math:`\sim 2d`) or :math:`3d` (diagonal: the
same order as the loop), depth :math:`\approx 2 \log_2 T`. On a CPU the loop usually wins; the tree
pays off when thousands of cores run each level at once (a GPU).

Example::

    >>> import jax.numpy as jnp
    >>> A, b = jnp.full((5, 1), 0.5), jnp.ones((5, 1))
    >>> parallel_scan(A, b, jnp.zeros(1))[:, 0].tolist()  # h_t = h_(t-1) / 2 + 1 from 0
    [1.0, 1.5, 1.75, 1.875, 1.9375]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from lessons.checks import check_finite_data, check_positive_int

__all__ = ["compose", "parallel_scan", "scan_tree", "sequential_scan", "tree_scan", "work_depth"]


# --- the affine-composition operator ---------------------------------------------------------------


def compose(earlier, later):
    r"""Affine composition :math:`(A_2, b_2) \circ (A_1, b_1) = (A_2 A_1,\; A_2 b_1 + b_2)`: ``earlier`` first, then ``later``.

    Each argument is a pair ``(A, b)``; ``A`` is dense when it has one more axis than ``b`` (``(..., d, d)``
    with ``b`` ``(..., d)``) and diagonal when it has as many (``(..., d)``, applied elementwise). Leading
    axes are batch axes, so it is the operator ``lax.associative_scan`` needs. Associative, not commutative.
    """
    (A1, b1), (A2, b2) = earlier, later
    if jnp.ndim(A2) == jnp.ndim(b2) + 1:  # dense
        return A2 @ A1, (A2 @ b1[..., None])[..., 0] + b2
    return A2 * A1, A2 * b1 + b2


# --- the two scans -----------------------------------------------------------------------------------


def _check_linear(A, b, h0):
    """``(A, b, h0)`` as arrays of one floating dtype, or a ``ValueError`` naming the argument that does not fit."""
    A, b, h0 = jnp.asarray(A), jnp.asarray(b), jnp.asarray(h0)
    if b.ndim != 2 or b.shape[0] < 1:
        raise ValueError(f"b must have shape (T, d) with T >= 1, got {b.shape}")
    T, d = b.shape
    if A.ndim not in (2, 3):
        raise ValueError(f"A must have shape (T, d, d) (dense) or (T, d) (diagonal), got {A.shape}")
    if A.shape[0] != T:
        raise ValueError(f"A must have T = {T} steps like b, got {A.shape[0]} (A {A.shape}, b {b.shape})")
    if A.shape[1:] not in ((d, d), (d,)):
        raise ValueError(f"A must have shape ({T}, {d}, {d}) or ({T}, {d}) to match b {b.shape}, got {A.shape}")
    if h0.shape != (d,):
        raise ValueError(f"h0 must have shape ({d},) to match b {b.shape}, got {h0.shape}")
    check_finite_data(h0, "h0")
    dtype = jnp.result_type(A.dtype, b.dtype, h0.dtype, float)
    return A.astype(dtype), b.astype(dtype), h0.astype(dtype)


def sequential_scan(A, b, h0, *, reverse: bool = False) -> jax.Array:
    r"""The recurrence :math:`h_t = A_t h_{t-1} + b_t` from :math:`h_{-1}` = ``h0``, one step after the other (``lax.scan``).

    ``A`` ``(T, d, d)`` (dense) or ``(T, d)`` (diagonal), ``b`` ``(T, d)``, ``h0`` ``(d,)``; returns ``h`` ``(T, d)``
    with ``h[0] = A[0] h0 + b[0]``. ``reverse=True`` runs time backwards: :math:`h_t = A_t h_{t+1} + b_t`
    with :math:`h_T` = ``h0``, so ``h[T-1] = A[T-1] h0 + b[T-1]`` (a costate, a backward pass).
    Depth :math:`T`, work :math:`2Td^2` (dense) or :math:`2Td`.
    """
    return _sequential_scan(*_check_linear(A, b, h0), bool(reverse))


@functools.partial(jax.jit, static_argnums=3)
def _sequential_scan(A, b, h0, reverse):
    def step(h, Ab):
        A_t, b_t = Ab
        h = (A_t @ h if A_t.ndim == 2 else A_t * h) + b_t
        return h, h

    return lax.scan(step, h0, (A, b), reverse=reverse)[1]


def parallel_scan(A, b, h0, *, reverse: bool = False) -> jax.Array:
    r"""The same ``h`` as :func:`sequential_scan` by an associative scan of :func:`compose`: depth :math:`O(\log T)`.

    The start is folded into the first element (:math:`b_0 \leftarrow A_0 h_{-1} + b_0`) and
    ``lax.associative_scan`` forms every prefix composition; their :math:`b` parts are the states. Work
    :math:`< 2T` combines: :math:`O(T d^3)` flops and :math:`O(T d^2)` memory for a dense ``A``, :math:`O(T d)`
    for a diagonal one (:func:`work_depth`). ``reverse=True`` as in :func:`sequential_scan`. Round-off
    differs from the loop's (another order of operations), by a few ulps for a contracting ``A``.
    """
    return _parallel_scan(*_check_linear(A, b, h0), bool(reverse))


@functools.partial(jax.jit, static_argnums=3)
def _parallel_scan(A, b, h0, reverse=False):
    if reverse:  # time backwards = the forward scan of the reversed sequence
        return _parallel_scan(A[::-1], b[::-1], h0)[::-1]
    first = (A[0] @ h0 if A.ndim == 3 else A[0] * h0) + b[0]
    return lax.associative_scan(compose, (A, b.at[0].set(first)))[1]


# --- the tree, in pure Python ------------------------------------------------------------------------


def scan_tree(T: int) -> list[list[tuple[int, int]]]:
    r"""The combines of ``lax.associative_scan``'s odd/even recursion on ``T`` elements, level by level.

    Each pair ``(i, j)`` reads "element ``j`` absorbs the partial result ending at ``i``": ``j``'s slot
    becomes ``op(slot[i], slot[j])``; the pairs of one level touch disjoint slots and run in parallel.
    On the current list of positions :math:`p_0, p_1, \dots` the recursion is

    1. up: :math:`p_{2k+1}` absorbs :math:`p_{2k}` (neighbours pair up),
    2. recurse on the odd positions :math:`p_1, p_3, \dots` (their slots then hold full prefixes),
    3. down: :math:`p_{2k}` absorbs :math:`p_{2k-1}`, :math:`k \ge 1`.

    For :math:`T = 8`: ``[[(0, 1), (2, 3), (4, 5), (6, 7)], [(1, 3), (5, 7)], [(3, 7)], [(3, 5)],
    [(1, 2), (3, 4), (5, 6)]]``: 5 levels, 11 combines. In general at most :math:`2\lceil\log_2 T\rceil`
    levels and fewer than :math:`2T` combines (Blelloch's up/down sweep has the same counts up to a constant).
    """
    check_positive_int(T, "T")
    return _tree(list(range(T)))


def _tree(positions: list[int]) -> list[list[tuple[int, int]]]:
    if len(positions) < 2:
        return []
    up = [(positions[k], positions[k + 1]) for k in range(0, len(positions) - 1, 2)]
    down = [(positions[k - 1], positions[k]) for k in range(2, len(positions), 2)]
    return [up, *_tree(positions[1::2]), *([down] if down else [])]


def tree_scan(elements: Sequence, op: Callable) -> list:
    r"""All prefixes ``[e0, op(e0, e1), op(op(e0, e1), e2), ...]`` by replaying :func:`scan_tree` in Python.

    ``op(earlier, later)`` must be associative (:func:`compose`, string concatenation, ``+``). Each level
    reads the slots as they were before it, as the parallel hardware would. A teaching tool: it shows
    that the tree computes the same prefixes as a loop, for any ``T``.
    """
    check_positive_int(len(elements), "len(elements)")
    slots = list(elements)
    for level in scan_tree(len(slots)):
        before = list(slots)
        for i, j in level:
            slots[j] = op(before[i], before[j])
    return slots


def _tree_counts(T: int) -> tuple[int, int]:
    """``(combines, levels)`` of :func:`scan_tree` without listing them: the recursion on the count only."""
    combines = levels = 0
    while T >= 2:
        up, down = T // 2, (T - 1) // 2
        combines += up + down
        levels += 1 + (down > 0)
        T //= 2
    return combines, levels


def work_depth(T: int, d: int, *, diagonal: bool) -> dict:
    r"""Flops and depth of the recurrence on ``T`` steps of size ``d``, sequential vs parallel (module docstring).

    Sequential: ``T`` affine steps, :math:`2d^2` flops each (dense) or :math:`2d` (diagonal), depth ``T``.
    Parallel (:func:`parallel_scan`): the start folded into element 0 (one affine step), then the
    ``combines`` of :func:`scan_tree` at :math:`2d^3 + 2d^2` flops (dense) or :math:`3d` (diagonal) each; its
    depth is ``1 + levels`` (counted in combines: a dense combine is itself a product of depth
    :math:`O(\log d)`, not counted). ``parallel_memory`` counts the words one level holds: ``T`` elements
    of :math:`d^2 + d` (dense) or :math:`2d` numbers.

    Returns a dict with ``T``, ``d``, ``diagonal``, ``combines``, ``levels``, ``sequential_flops``,
    ``sequential_depth``, ``parallel_flops``, ``parallel_depth``, ``parallel_memory``, ``work_ratio``
    (parallel / sequential flops) and ``depth_ratio`` (sequential / parallel depth).
    """
    check_positive_int(T, "T")
    check_positive_int(d, "d")
    if not isinstance(diagonal, bool):
        raise TypeError(f"diagonal must be True or False, got {type(diagonal).__name__} {diagonal!r}")
    combines, levels = _tree_counts(T)
    step = 2 * d if diagonal else 2 * d * d
    per_combine = 3 * d if diagonal else 2 * d**3 + 2 * d * d
    sequential, parallel = T * step, step + combines * per_combine
    return {
        "T": T,
        "d": d,
        "diagonal": diagonal,
        "combines": combines,
        "levels": levels,
        "sequential_flops": sequential,
        "sequential_depth": T,
        "parallel_flops": parallel,
        "parallel_depth": 1 + levels,
        "parallel_memory": T * (2 * d if diagonal else d * d + d),
        "work_ratio": parallel / sequential,
        "depth_ratio": T / (1 + levels),
    }
