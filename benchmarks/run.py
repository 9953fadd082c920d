"""Run every benchmark (``make bench``) and print their tables. Ratios are measured side by side in
one process on whatever device JAX sees; the numbers are not asserted anywhere (tests check
correctness only)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCHMARKS = [
    "benchmarks.widget_start",
    "benchmarks.widget_loop",
    "benchmarks.hvp",
    "benchmarks.curvature",
    "benchmarks.stability",
    "benchmarks.natural_gradient",
    "benchmarks.layerwise",
    "benchmarks.llqr",
    "benchmarks.lqr",
    "benchmarks.pmp",
    "benchmarks.scan",
]

if __name__ == "__main__":
    chosen = sys.argv[1:] or BENCHMARKS
    for name in chosen:
        importlib.import_module(name if name.startswith("benchmarks.") else f"benchmarks.{name}").main()
