"""What every app of :mod:`widgets` shares at start-up: compiled code kept on disk, and a readiness marker.

* :func:`start` turns on JAX's persistent compilation cache (:func:`lessons.runtime.enable_compilation_cache`)
  before an app compiles anything, so a second session's first frame needs no compilation.
* :func:`mark_ready` adds the CSS class :data:`READY_CLASS` to an app's outer box once its first frame
  is drawn. Browser tests wait for ``.dd-ready`` instead of sleeping: a signal, not luck.
"""

from __future__ import annotations

import ipywidgets as W

from lessons import runtime

READY_CLASS = "dd-ready"


def start() -> None:
    """Call at the top of an app's ``__init__``: keep compiled code on disk (see the module docstring)."""
    runtime.enable_compilation_cache()


def mark_ready(box: W.Box) -> None:
    """Mark ``box`` (an app's outer widget) as drawn: its first frame is in the figure."""
    if READY_CLASS not in box._dom_classes:
        box.add_class(READY_CLASS)


def is_ready(box: W.Box) -> bool:
    """Whether :func:`mark_ready` was called on ``box``."""
    return READY_CLASS in box._dom_classes
