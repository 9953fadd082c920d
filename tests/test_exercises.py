"""Exercise checkers: they accept the reference, reject wrong answers with a useful message, and
every solution printed in the book's dropdowns passes its checker."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lessons import exercises, exercises_control, exercises_scans
from lessons.first_order import gd_rate

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def test_checker_accepts_the_reference():
    result = exercises.check_gd_rate(gd_rate)
    assert result and result.passed and "all 20 seeded cases" in repr(result)


def test_checker_reports_the_first_differing_case():
    result = exercises.check_gd_rate(lambda learning_rate, mu, L: abs(1 - learning_rate * L))
    assert not result
    assert "differs" in result.message and "input:" in result.message and "expected:" in result.message


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (lambda learning_rate, mu, L: None, "returned None"),
        (lambda learning_rate, mu, L: 1 / 0, "raised ZeroDivisionError"),
        (lambda learning_rate, mu, L: (_ for _ in ()).throw(NotImplementedError), "not implemented yet"),
        (lambda learning_rate, mu, L: [1.0, 2.0], "returned shape (2,), expected ()"),
        (lambda learning_rate, mu, L: "fast", "returned str"),
    ],
)
def test_checker_explains_what_is_wrong(fn, fragment):
    result = exercises.check_gd_rate(fn)
    assert not result and fragment in result.message


def test_checker_rejects_non_callables():
    with pytest.raises(TypeError, match="expected a function"):
        exercises.check_gd_rate(3.0)


def test_heavy_ball_checker_catches_a_sign_error():
    good = lambda x, x_prev, grad, learning_rate, momentum: x - learning_rate * grad + momentum * (x - x_prev)
    bad = lambda x, x_prev, grad, learning_rate, momentum: x - learning_rate * grad - momentum * (x - x_prev)
    assert exercises.check_heavy_ball_step(good)
    assert not exercises.check_heavy_ball_step(bad)


def test_stable_learning_rate_checker_catches_1_over_L():
    assert exercises.check_max_stable_learning_rate(lambda H: 2 / np.linalg.eigvalsh(H)[-1])
    assert not exercises.check_max_stable_learning_rate(lambda H: 1 / np.linalg.eigvalsh(H)[-1])


def book_exercises(path):
    """(checker name, function name, solution code) for each exercise of a chapter."""
    cells = json.loads(path.read_text())["cells"]
    found = []
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        call = re.search(r"^(check_\w+)\((\w+)\)\s*$", source, re.MULTILINE)
        if not call:
            continue
        following = "".join(cells[i + 1]["source"]) if i + 1 < len(cells) else ""
        solution = re.search(r":::\{dropdown\} Solution\s*\n```python\n(.*?)```", following, re.DOTALL)
        found.append((call.group(1), call.group(2), solution.group(1) if solution else None))
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_book_exercise_has_a_solution_that_passes_its_checker(path):
    found = book_exercises(path)
    assert len(found) >= 3, f"{path.name}: needs at least three exercises with checkers"
    for checker, function, solution in found:
        assert solution is not None, f"{path.name}: {checker} has no solution dropdown right after it"
        namespace = {}
        exec(compile(solution, f"{path.name}:{checker}", "exec"), namespace)
        result = _checker(checker)(namespace[function])
        assert result.passed, f"{path.name}: the book's solution fails {checker}: {result.message}"


def test_chapter_3_checkers_catch_typical_slips():
    good_power = lambda A, v: (A @ v / np.linalg.norm(A @ v), v @ A @ v / (v @ v))
    assert exercises.check_power_step(good_power)
    assert not exercises.check_power_step(lambda A, v: (A @ v / np.linalg.norm(A @ v), v @ A @ v))  # v not unit
    assert exercises.check_hutchinson(lambda matvec, probes: np.mean([v @ matvec(v) for v in probes]))
    assert not exercises.check_hutchinson(lambda matvec, probes: np.sum([v @ matvec(v) for v in probes]))
    forgot_trace_squared = lambda a, c, B, sigma: (a + sigma**2 * np.trace(B) / 2) ** 2 + sigma**2 * c @ c
    assert not exercises.check_delta2_closed_form(forgot_trace_squared)
    check = lambda a, c, B, sigma: (a + sigma**2 * np.trace(B) / 2) ** 2 + sigma**2 * c @ c + sigma**4 * np.sum(B * B) / 2
    assert exercises.check_delta2_closed_form(check)


def _cg(matrix, rhs, steps):
    x, r = np.zeros_like(rhs), rhs.copy()
    p = r.copy()
    for _ in range(steps):
        Ap = matrix @ p
        alpha = (r @ r) / (p @ Ap)
        x, r_new = x + alpha * p, r - alpha * Ap
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
    return x


def _softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


def _emsa_objective(xs, xn, P, Pn, weights, bias, step, rho):
    t = np.tanh(xs @ weights + bias)
    out = xs + step * t
    back = Pn + step * ((1 - t**2) * Pn) @ weights.T
    terms = -np.sum(Pn * out) + 0.5 * rho * (np.sum((xn - out) ** 2) + np.sum((P - back) ** 2))
    return terms / len(xs)


def _riccati_step(Pn, A, B, Q, R):
    K = np.linalg.solve(R + B.T @ Pn @ B, B.T @ Pn @ A)
    return Q + A.T @ Pn @ A - A.T @ Pn @ B @ K, K


def _deer_step(iterate, start, weights, inputs):
    previous = np.vstack([start, iterate[:-1]])
    values = np.tanh(previous @ weights.T + inputs)
    jacobians = (1 - values**2)[:, :, None] * weights
    out, g = [], start
    for J, value, p in zip(jacobians, values, previous, strict=True):
        g = J @ g + value - J @ p
        out.append(g)
    return np.array(out)


def _hvp(fun, point, direction):
    import jax

    return jax.jvp(jax.grad(fun), (point,), (direction,))[1]


# Correct solutions whose parameters are named unlike the checkers' docstrings: the checkers call
# positionally, so only the order matters.
RENAMED_SOLUTIONS = {
    "check_gd_rate": lambda eta, m, big_l: max(abs(1 - eta * m), abs(1 - eta * big_l)),
    "check_heavy_ball_step": lambda p, p_old, g, eta, beta: p - eta * g + beta * (p - p_old),
    "check_max_stable_learning_rate": lambda hessian: 2 / np.linalg.eigvalsh(hessian)[-1],
    "check_newton_step": lambda hess, grad: -np.linalg.solve(hess, grad),
    "check_hvp": _hvp,
    "check_conjugate_gradient": _cg,
    "check_power_step": lambda M, u: (M @ u / np.linalg.norm(M @ u), u @ M @ u / (u @ u)),
    "check_hutchinson": lambda mv, vs: np.mean([v @ mv(v) for v in vs]),
    "check_woodbury_solve": lambda M, rhs, lam: (rhs - M.T @ np.linalg.solve(lam * np.eye(len(M)) + M @ M.T, M @ rhs)) / lam,
    "check_softmax_hessian": lambda logits: np.diag(_softmax(logits)) - np.outer(_softmax(logits), _softmax(logits)),
    "check_kfac_layer_step": lambda A0, G0, V0, lam: np.linalg.solve(
        A0 + np.sqrt(lam) * np.eye(len(A0)), np.linalg.solve(G0 + np.sqrt(lam) * np.eye(len(G0)), V0.T).T
    ),
    "check_layer_gram": lambda inputs, rows: (inputs @ inputs.T + 1) * (rows @ rows.T),
    "check_path_action": lambda w, h, gs, M: sum(
        h * (0.5 * d @ M @ d + 0.5 * m @ np.linalg.solve(M, m))
        for d, m in zip(np.diff(w, axis=0) / h, (gs[1:] + gs[:-1]) / 2, strict=True)
    ),
    "check_factor_pullback": lambda factor, weights, pre: (factor * (1 - np.tanh(pre) ** 2)) @ weights.T,
    "check_costate_step": lambda pn, weights, pre, step: pn + step * weights @ ((1 - np.tanh(pre) ** 2) * pn),
    "check_hamiltonian_gradient": lambda xs, pn, weights, bias, step: (
        step * xs.T @ ((1 - np.tanh(xs @ weights + bias) ** 2) * pn)
    ),
    "check_emsa_objective": _emsa_objective,
    "check_riccati_step": _riccati_step,
    "check_llqr_cost": lambda scale, grad, curv, lam: (
        -grad @ (scale * grad) + 0.5 * (scale * grad) @ (curv + lam * np.eye(len(grad))) @ (scale * grad)
    ),
    "check_kronecker_precondition": lambda left, right, grad: left @ grad @ right.T,
    "check_compose": lambda later, shift, earlier, offset: (later @ earlier, later @ offset + shift),
    "check_deer_step": _deer_step,
    "check_adaptive_alpha": lambda jacobians: max(0.0, 1 - 1 / np.linalg.norm(jacobians, 2, axis=(1, 2)).max()),
    "check_delta2_closed_form": lambda a0, c0, B0, s: (
        (a0 + s**2 * np.trace(B0) / 2) ** 2 + s**2 * c0 @ c0 + s**4 * np.sum(B0 * B0) / 2
    ),
}
MODULES = (exercises, exercises_control, exercises_scans)
CHECKERS = sorted(name for module in MODULES for name in dir(module) if name.startswith("check_"))


def _checker(name):
    """A checker by name, from whichever module holds it (chapters 1-5, 6-7 or 8)."""
    return next(getattr(module, name) for module in MODULES if hasattr(module, name))


def test_every_checker_has_a_renamed_solution():
    assert sorted(RENAMED_SOLUTIONS) == CHECKERS


@pytest.mark.parametrize("checker", CHECKERS)
def test_checkers_call_positionally_so_parameter_names_do_not_matter(checker):
    result = _checker(checker)(RENAMED_SOLUTIONS[checker])
    assert result.passed, result.message


@pytest.mark.parametrize("checker", CHECKERS)
def test_checkers_accept_positional_only_parameters(checker):
    solution = RENAMED_SOLUTIONS[checker]
    result = _checker(checker)(lambda *args: solution(*args))
    assert result.passed, result.message


@pytest.mark.parametrize("checker", CHECKERS)
def test_checker_docstrings_state_the_positional_order(checker):
    doc = _checker(checker).__doc__
    assert "Calls ``fn`` positionally" in doc, f"{checker}: the docstring must say in which order fn is called"


def test_chapter_8_checkers_catch_typical_slips():
    assert not exercises_scans.check_compose(lambda A2, b2, A1, b1: (A1 @ A2, A2 @ b1 + b2))  # composed the wrong way
    assert not exercises_scans.check_compose(lambda A2, b2, A1, b1: (A2 @ A1, b1 + b2))  # forgot to carry b1 through A2

    # one sequential evaluation instead of the Newton step (ignores the current iterate's linearisation)
    def sequential(hs, h0, W, u):
        out, h = [], h0
        for ut in u:
            h = np.tanh(W @ h + ut)
            out.append(h)
        return np.array(out)

    assert not exercises_scans.check_deer_step(sequential)
    assert not exercises_scans.check_adaptive_alpha(lambda J: 1 - 1 / np.linalg.norm(J, 2, axis=(1, 2)).max())  # no max(0, .)
    assert not exercises_scans.check_adaptive_alpha(lambda J: max(0.0, 1 - 1 / np.abs(J).max()))  # largest entry, not norm
