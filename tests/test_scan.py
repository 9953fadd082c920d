"""Linear recurrences: both scans against a plain Python loop in float64 (dense and diagonal, forwards and
backwards, T = 1 and T not a power of two), the composition operator's associativity, and the pure-Python
tree against a sequential fold and against the combines ``lax.associative_scan`` actually does."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lessons import scan


def loop(A, b, h0, reverse=False):
    """h_t = A_t h_(t-1) + b_t (or h_t = A_t h_(t+1) + b_t backwards), in numpy, one step at a time."""
    A, b, h = np.asarray(A), np.asarray(b), np.asarray(h0)
    out = np.zeros_like(b)
    for t in reversed(range(len(b))) if reverse else range(len(b)):
        h = (A[t] @ h if A.ndim == 3 else A[t] * h) + b[t]
        out[t] = h
    return out


def random_system(T, d, diagonal, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.uniform(-1.0, 1.0, (T, d)) if diagonal else 0.9 * rng.normal(size=(T, d, d)) / np.sqrt(d)
    return A, rng.normal(size=(T, d)), rng.normal(size=d)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("T, d", [(1, 3), (5, 1), (16, 4), (37, 3)])
def test_both_scans_match_a_python_loop(T, d, diagonal, reverse):
    A, b, h0 = random_system(T, d, diagonal, seed=T + d)
    expected = loop(A, b, h0, reverse)
    for method in (scan.sequential_scan, scan.parallel_scan):
        h = method(A, b, h0, reverse=reverse)
        assert h.shape == (T, d) and h.dtype == jnp.float64
        np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-12, err_msg=method.__name__)


def test_the_first_and_last_states_are_one_step_from_h0():
    A, b, h0 = random_system(6, 3, False)
    np.testing.assert_allclose(scan.parallel_scan(A, b, h0)[0], A[0] @ h0 + b[0], rtol=1e-14)
    np.testing.assert_allclose(scan.parallel_scan(A, b, h0, reverse=True)[-1], A[-1] @ h0 + b[-1], rtol=1e-14)


def test_a_long_diagonal_scan_in_float32_stays_close_to_the_loop():
    A, b, h0 = random_system(5000, 8, True, seed=3)
    A, b, h0 = (np.asarray(a, np.float32) for a in (A, b, h0))
    h = scan.parallel_scan(A, b, h0)
    assert h.dtype == jnp.float32
    np.testing.assert_allclose(h, loop(A.astype(float), b.astype(float), h0.astype(float)), atol=1e-4)


@pytest.mark.parametrize("diagonal", [False, True])
def test_compose_is_associative_and_means_earlier_then_later(diagonal):
    A, b, _ = random_system(3, 4, diagonal, seed=7)
    e = [(jnp.asarray(A[i]), jnp.asarray(b[i])) for i in range(3)]
    left = scan.compose(scan.compose(e[0], e[1]), e[2])
    right = scan.compose(e[0], scan.compose(e[1], e[2]))
    for x, y in zip(left, right, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    h = np.random.default_rng(0).normal(size=4)
    apply = lambda Ab, h: (Ab[0] @ h if Ab[0].ndim == 2 else Ab[0] * h) + Ab[1]
    np.testing.assert_allclose(apply(scan.compose(e[0], e[1]), h), apply(e[1], apply(e[0], h)), rtol=1e-12)
    if not diagonal:  # not commutative
        assert not np.allclose(scan.compose(e[0], e[1])[0], scan.compose(e[1], e[0])[0])


# --- the tree ----------------------------------------------------------------------------------------


def contiguous(earlier, later):
    """Concatenation of index intervals: fails unless ``later`` starts right after ``earlier`` ends."""
    assert earlier[1] + 1 == later[0], (earlier, later)
    return (earlier[0], later[1])


@pytest.mark.parametrize("T", range(1, 41))
def test_tree_scan_equals_a_sequential_fold(T):
    words = [chr(ord("a") + t % 26) * (1 + t % 3) for t in range(T)]
    folded = [words[0]]
    for w in words[1:]:
        folded.append(folded[-1] + w)
    assert scan.tree_scan(words, lambda x, y: x + y) == folded
    assert scan.tree_scan([(t, t) for t in range(T)], contiguous) == [(0, t) for t in range(T)]


def test_tree_scan_of_affine_maps_is_the_recurrence():
    A, b, h0 = random_system(11, 3, False, seed=2)
    prefixes = scan.tree_scan([(A[t], b[t]) for t in range(11)], scan.compose)
    states = [P @ h0 + q for P, q in prefixes]
    np.testing.assert_allclose(states, loop(A, b, h0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", [*range(1, 70), 127, 128, 129, 1000, 4097])
def test_scan_tree_is_log_depth_and_linear_work(T):
    levels = scan.scan_tree(T)
    work = sum(len(level) for level in levels)
    assert len(levels) <= 2 * math.ceil(math.log2(T)) if T > 1 else levels == []
    assert work < 2 * T
    for level in levels:  # one level touches each slot once: it runs in parallel
        written = [j for _, j in level]
        assert len(set(written)) == len(written) and not set(written) & {i for i, _ in level}
    counts = scan.work_depth(T, 3, diagonal=True)
    assert (counts["combines"], counts["levels"], counts["parallel_depth"]) == (work, len(levels), len(levels) + 1)


@pytest.mark.parametrize("T", [1, 2, 3, 8, 13, 100])
def test_scan_tree_matches_the_combines_of_lax_associative_scan(T):
    sizes = []

    def op(earlier, later):
        sizes.append(earlier.shape[0])
        return earlier + later

    jax.make_jaxpr(lambda x: jax.lax.associative_scan(op, x))(jnp.ones(T))
    # One batched call per level, in the same order (JAX also makes a few calls on empty batches).
    assert [n for n in sizes if n] == [len(level) for level in scan.scan_tree(T)]


def test_work_depth_counts_flops():
    dense, diag = scan.work_depth(1024, 16, diagonal=False), scan.work_depth(1024, 16, diagonal=True)
    assert dense["sequential_flops"] == 1024 * 2 * 16**2 and diag["sequential_flops"] == 1024 * 2 * 16
    assert dense["parallel_flops"] == 2 * 16**2 + dense["combines"] * (2 * 16**3 + 2 * 16**2)
    assert diag["parallel_flops"] == 2 * 16 + diag["combines"] * 3 * 16
    assert dense["sequential_depth"] == 1024 and dense["parallel_depth"] == 20  # 2 log2(T) - 1 levels, + the fold of h0
    assert dense["work_ratio"] > 16 and diag["work_ratio"] < 3


@pytest.mark.parametrize(
    "args, pattern",
    [
        ((np.ones((4, 2, 2)), np.ones((5, 2)), np.ones(2)), r"\bA\b must have T = 5"),
        ((np.ones((4, 3, 3)), np.ones((4, 2)), np.ones(2)), r"\bA\b must have shape"),
        ((np.ones((4, 2)), np.ones((4, 2)), np.ones(3)), r"\bh0\b"),
        ((np.ones((4, 2)), np.ones((4, 2)), np.array([1.0, np.nan])), r"\bh0\b"),
        ((np.ones(4), np.ones((4, 2)), np.ones(2)), r"\bA\b"),
        ((np.ones((4, 2)), np.ones(4), np.ones(2)), r"\bb\b"),
    ],
)
def test_bad_input_names_the_argument(args, pattern):
    for method in (scan.sequential_scan, scan.parallel_scan):
        with pytest.raises(ValueError, match=pattern):
            method(*args)
