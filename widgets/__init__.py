"""Descent Dynamics widgets: ipywidgets + plotly apps built on :mod:`lessons`, and the book's figures.

Each app has a plain-Python API (``run(steps)``, ``figure``, its controls as attributes) and a
``static_figure()`` for the rendered site, where no kernel runs.
"""

from widgets.landscape_explorer import LandscapeExplorer
from widgets.live_trainer import LiveTrainer
from widgets.optimizer_race import OptimizerRace
from widgets.scan_explorer import ScanExplorer

__all__ = ["LandscapeExplorer", "LiveTrainer", "OptimizerRace", "ScanExplorer"]
