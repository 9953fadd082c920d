"""The library's layers point one way, and no module outgrows a reading.

Read from the source with ``ast`` (nothing is imported, so the test is instant and sees imports inside
functions too):

* building blocks (validation, derivative products, linear solvers, data, networks, test problems)
  import no concept module and nothing above;
* concept modules (one per idea of the book) may use building blocks and each other, but never the
  training loops or the experiments built on them, and never the widgets;
* nothing in ``lessons`` imports ``widgets`` (the widgets sit on top of the library, not inside it);
* every module is at most ``MAX_LINES`` lines, except those listed in ``TOO_LONG_FOR_NOW``.
"""

import ast
from pathlib import Path

import pytest

import lessons

ROOT = Path(__file__).resolve().parents[1]

BUILDING_BLOCKS = {"checks", "autodiff", "linalg", "runtime", "data", "nets", "problems"}
CONCEPTS = {
    "first_order",
    "newton",
    "costs",
    "lanczos",
    "curvature",
    "landscape",
    "stability",
    "exercises",
    "exercises_control",
    "exercises_scans",
    "fisher",
    "natural_gradient",
    "layerwise",
    "llqr",
    "lqr",
    "pmp",
    "pmp_nets",
    "scan",
    "deer",
    "attractors",
    "gtf",
}
# The training loops, the registry of optimizers that the widgets race, and the experiments that run them.
TOP = {"train", "optimizers", "rates"}

MAX_LINES = 450
# A file that must stay long for a while goes here, with the reason; today none does.
TOO_LONG_FOR_NOW: set[str] = set()


def modules(package: str) -> dict[str, Path]:
    return {path.stem: path for path in sorted((ROOT / package).glob("*.py")) if path.stem != "__init__"}


def imported(path: Path, package: str) -> set[str]:
    """The top-level packages and ``lessons.*`` modules that ``path`` imports, anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: ``from . import x`` or ``from .x import y`` inside ``package``
                base = f"{package}.{base}" if base else package
            names.add(base)
            # ``from lessons import train`` imports the module ``lessons.train``.
            names.update(f"{base}.{alias.name}" for alias in node.names if base == package)
    result = set()
    for name in names:
        parts = name.split(".")
        result.add(parts[0])
        if parts[0] == "lessons" and len(parts) > 1:
            result.add(parts[1])
    return result


LESSONS = modules("lessons")


def test_every_module_has_a_layer_and_is_exported():
    layers = BUILDING_BLOCKS | CONCEPTS | TOP
    assert set(LESSONS) == layers, "classify every module of lessons/ in exactly one layer here"
    assert not (BUILDING_BLOCKS & CONCEPTS or CONCEPTS & TOP or BUILDING_BLOCKS & TOP)
    assert sorted(lessons.__all__) == sorted(LESSONS), "lessons.__all__ must list every module of the package"


@pytest.mark.parametrize("name", sorted(BUILDING_BLOCKS))
def test_building_blocks_import_no_concept_and_nothing_above(name):
    bad = imported(LESSONS[name], "lessons") & (CONCEPTS | TOP | {"widgets"})
    assert not bad, f"lessons/{name}.py is a building block but imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(CONCEPTS))
def test_concepts_import_neither_the_training_loops_nor_the_widgets(name):
    bad = imported(LESSONS[name], "lessons") & (TOP | {"widgets"})
    assert not bad, f"lessons/{name}.py is a concept module but imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(LESSONS))
def test_nothing_in_lessons_imports_widgets(name):
    assert "widgets" not in imported(LESSONS[name], "lessons")


FILES = sorted(str(path.relative_to(ROOT)) for package in ("lessons", "widgets") for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", FILES)
def test_modules_fit_a_reading(path):
    lines = len((ROOT / path).read_text().splitlines())
    if path in TOO_LONG_FOR_NOW:
        pytest.skip(f"{path}: {lines} lines, allowed for now")
    assert lines <= MAX_LINES, f"{path} has {lines} lines (> {MAX_LINES}): split it by concept"


def test_the_import_parser_sees_every_form(tmp_path):
    # A self-check of ``imported`` on the forms of import a module can use.
    source = tmp_path / "probe.py"
    source.write_text(
        "import jax\nfrom lessons import train\nfrom lessons.rates import kappa_sweep\n"
        "import lessons.optimizers\nfrom . import checks\nfrom .nets import mlp\n"
        "def f():\n    from widgets import plots\n"
    )
    found = imported(source, "lessons")
    assert {"jax", "lessons", "train", "rates", "optimizers", "checks", "nets", "widgets"} <= found
