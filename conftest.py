"""pytest configuration shared by the unit tests and nbval (which checks the chapters).

nbval compares each cell's stored outputs with a fresh run. Two adjustments make that comparison
about the content, not about incidental digits:

* plotly's JSON output is not compared (nbval cannot sanitize it; the figures' numbers are checked
  by the chapters' assert cells and by the unit tests);
* floating-point numbers in text outputs are rounded to 3 significant digits before comparison,
  so a last-digit difference between CPUs does not fail the book.

It also puts the kernels nbval starts in the book's test mode (see ``lessons/runtime.py``).
"""

from __future__ import annotations

import os
import re

PLOTLY_MIME = "application/vnd.plotly.v1+json"
_FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?![\w.])")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def round_floats(text: str, digits: int = 3) -> str:
    """Replace every float literal in ``text`` by its value to ``digits`` significant digits."""
    text = _FLOAT.sub(lambda m: f"{float(m.group()):.{digits}g}", text)
    return _ADDRESS.sub("0xADDRESS", text)


def pytest_configure(config):
    # Kernels started by nbval inherit this process's environment: run the chapters in test mode,
    # exactly as `make notebooks` stored them (quiet progress bars).
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        os.environ["DESCENT_DYNAMICS_TEST_MODE"] = "1"


def pytest_collection_modifyitems(session, config, items):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    for item in items:
        if isinstance(item, IPyNbCell) and PLOTLY_MIME not in item.parent.skip_compare:
            item.parent.skip_compare = (*item.parent.skip_compare, PLOTLY_MIME)


def _patch_nbval() -> None:
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    original = IPyNbCell.sanitize
    if getattr(original, "_rounds_floats", False):
        return

    def sanitize(self, s):
        s = original(self, s)
        return round_floats(s) if isinstance(s, str) else s

    sanitize._rounds_floats = True
    IPyNbCell.sanitize = sanitize


_patch_nbval()
