"""Where the code runs and how loudly: the one test-mode flag of the book.

Automated execution (``make notebooks``, nbval in ``make test``) sets the environment variable
``DESCENT_DYNAMICS_TEST_MODE=1``. Under it, progress bars are silent and widget demos run short;
every number a chapter prints or asserts is the same in both modes, so the stored outputs compare.
The default, for a reader in JupyterLab, is the full, chatty run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import jax

TEST_MODE_ENV = "DESCENT_DYNAMICS_TEST_MODE"


def test_mode() -> bool:
    """True under automated execution (the environment variable ``DESCENT_DYNAMICS_TEST_MODE``)."""
    return os.environ.get(TEST_MODE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def device_label() -> str:
    """A short name for the device JAX computes on, e.g. ``"CPU"`` or ``"GPU (NVIDIA H100)"``."""
    device = jax.devices()[0]
    platform = device.platform.upper()
    kind = getattr(device, "device_kind", "")
    if platform == "CPU" or not kind:
        return platform
    return f"{platform} ({kind})"


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "") -> Iterator:
    """Wrap ``iterable`` in a progress bar, unless in test mode.

    In a notebook the bar is tqdm's widget; under automated execution it is silent, so that stored
    outputs carry neither widget state nor timings.
    """
    if test_mode():
        return iter(iterable)
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, total=total, desc=desc, leave=False))
