"""How soon each widget draws its first frame, and how fast it redraws afterwards.

Every first-frame time is the wall clock of the widget's constructor (it returns with the first frame
drawn and the readiness marker set), in a separate Python process so that nothing is compiled yet:

* fresh kernel, empty cache: ``import jax`` and the widgets done, JAX's persistent compilation cache
  pointed at an empty folder: everything compiles (a reader's very first session);
* fresh kernel, cache on disk: the same again with the folder the first run filled (every later session);
* warm kernel: the other widget already shown in the same process, as in a chapter that shows two
  widgets: with an empty cache, and with the cache ``make lab`` fills first (``python -m widgets.warm``);
* then frames/s and training steps/s of ``run(steps_per_frame)`` at default settings, headless, and the
  seconds from moving the learning-rate slider to the next frame drawn (nothing may recompile).

Targets on 2 CPU cores (issue: widgets start fast): first frame <= 6 s fresh, <= 3 s warm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from benchmarks._common import table

WIDGETS = {
    "OptimizerRace": "OptimizerRace(problem='quadratic', kappa=50.0, methods=('GD', 'Heavy ball', 'Nesterov', 'Adam'))",
    "LandscapeExplorer": "LandscapeExplorer('GD', learning_rate=1.0)",
    "LiveTrainer": "LiveTrainer()",
    "ScanExplorer": "ScanExplorer()",
}
LEARNING_RATE = {  # how to move each widget's learning-rate slider
    "OptimizerRace": "w.lr_sliders['GD'].value = 0.7",
    "LandscapeExplorer": "w.lr_slider.value = 0.5",
    "LiveTrainer": "w.lr_sliders['GD'].value = 0.7",
    "ScanExplorer": "w.gain_slider.value = 2.5",  # its model's setting in place of a learning rate
}

SCRIPT = """
import json, sys, time
import jax
from widgets import LandscapeExplorer, LiveTrainer, OptimizerRace, ScanExplorer
name, other, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
make = {widgets}
if other != "-":
    make[other]()
t0 = time.perf_counter()
w = make[name]()
first = time.perf_counter() - t0
assert w.ready
steps = int(w.steps_slider.value)
t0 = time.perf_counter()
w.run(steps)  # one frame of training: compiles what training needs, if anything is left
first_run = time.perf_counter() - t0
t0 = time.perf_counter()
for _ in range(frames):
    w.run(steps)
per_frame = (time.perf_counter() - t0) / frames
t0 = time.perf_counter()
{move_lr}  # resets the run (and redraws it at step 0) ...
w.run(steps)  # ... and the next frame trains at the new rate
after_lr = time.perf_counter() - t0
print(json.dumps({{"first": first, "frames_per_s": 1 / per_frame, "steps_per_s": steps / per_frame, "steps": steps,
                   "after_lr": after_lr, "first_run": first_run}}))
"""


def _measure(name: str, cache: str, other: str = "-", frames: int = 20) -> dict:
    widgets = "{" + ", ".join(f"{k!r}: lambda: {v}" for k, v in WIDGETS.items()) + "}"
    env = dict(os.environ, DESCENT_DYNAMICS_CACHE_DIR=cache)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(widgets=widgets, move_lr=LEARNING_RATE[name]), name, other, str(frames)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for name in WIDGETS:
        other = next(k for k in WIDGETS if k != name)
        with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as warm_kernel:
            fresh = _measure(name, cold)
            cached = _measure(name, cold)  # the cache the first run left
            warm = _measure(name, warm_kernel, other=other, frames=1)
            warm_cached = _measure(name, cold, other=other, frames=1)
        rows += [
            (f"{name}: first frame, fresh kernel, empty cache, s (<= 6)", f"{fresh['first']:.2f}", "-", "-"),
            (
                f"{name}: first frame, fresh kernel, cache on disk, s",
                f"{cached['first']:.2f}",
                f"{fresh['first']:.2f} (empty cache)",
                f"{fresh['first'] / cached['first']:.1f}x faster",
            ),
            (f"{name}: first frame, warm kernel ({other} shown first), s (<= 3)", f"{warm['first']:.2f}", "-", "-"),
            (
                f"{name}: first frame, warm kernel, cache on disk (after make lab's warm-up), s",
                f"{warm_cached['first']:.2f}",
                f"{warm['first']:.2f} (empty cache)",
                f"{warm['first'] / warm_cached['first']:.1f}x faster",
            ),
            (
                f"{name}: first Play frame (training compiles), s: fresh kernel, empty cache",
                f"{fresh['first_run']:.2f}",
                f"{cached['first_run']:.2f} (cache on disk)",
                f"{fresh['first_run'] / cached['first_run']:.1f}x faster",
            ),
            (
                f"{name}: frames/s at {fresh['steps']} steps a frame (training + redraw)",
                f"{cached['frames_per_s']:.1f}",
                "-",
                f"{cached['steps_per_s']:,.0f} training steps/s",
            ),
            (f"{name}: learning-rate change to the next frame drawn, s (<= 0.2)", f"{cached['after_lr']:.3f}", "-", "-"),
        ]
    print(table("Widget start-up and frame rate", rows))


if __name__ == "__main__":
    main()
