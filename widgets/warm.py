"""Fill JAX's persistent compilation cache with what the widgets compile: ``python -m widgets.warm``.

``make lab`` runs it before JupyterLab starts, so a reader's very first widget draws its first frame
from compiled code on disk (see ``benchmarks/widget_start.py`` for the difference it makes). It builds
each widget headless at the settings the chapters use and plays a few frames; nothing is displayed.
With the cache switched off (``DESCENT_DYNAMICS_CACHE_DIR=off``) it does nothing.
"""

from __future__ import annotations

import time

from lessons import runtime


def main() -> None:
    if runtime.enable_compilation_cache() is None:
        print("the compilation cache is off: nothing to warm")
        return
    from widgets import LandscapeExplorer, LiveTrainer, OptimizerRace, ScanExplorer

    t0 = time.perf_counter()
    for make, frame in (
        (lambda: OptimizerRace(problem="quadratic", kappa=50.0, methods=("GD", "Heavy ball", "Nesterov", "Adam")), 2),
        (lambda: OptimizerRace(problem="saddle", methods=("GD", "Newton", "Saddle-free Newton")), 2),
        (lambda: LandscapeExplorer(optimizer="GD", learning_rate=1.0), 50),
        (lambda: LiveTrainer(), 10),  # every method at the default size: Play's first frame compiles nothing
        (lambda: ScanExplorer(), 1),  # the default T (each T compiles its own)
    ):
        widget = make()
        for _ in range(2):
            widget.run(frame)
    print(f"widgets compiled into {runtime.compilation_cache_dir()} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
