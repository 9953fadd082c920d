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

from lessons.checks import check_positive_int

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
    if not isinstance(iterable, Iterable):
        raise TypeError(f"iterable must be iterable (a range, a list), got {type(iterable).__name__} {iterable!r}")
    if total is not None:
        check_positive_int(total, "total", low=0)
    if test_mode():
        return iter(iterable)
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, total=total, desc=desc, leave=False))


CACHE_ENV = "DESCENT_DYNAMICS_CACHE_DIR"


def compilation_cache_dir() -> str | None:
    """Where :func:`enable_compilation_cache` keeps compiled code, or ``None`` when it is switched off.

    ``$DESCENT_DYNAMICS_CACHE_DIR`` if set (``0``, ``off`` or ``false`` switch the cache off), else
    ``descent-dynamics/jax`` in the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``).
    """
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "false", "no") else value
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "descent-dynamics", "jax")


def enable_compilation_cache() -> str | None:
    """Keep XLA's compiled code on disk, so that a widget's second session starts without compiling.

    Uses JAX's persistent compilation cache in :func:`compilation_cache_dir` and caches every
    compilation (a widget's first frame compiles a few dozen small functions, each well under JAX's
    default threshold of one second). A cache directory the user already configured is kept. The
    cache key includes the JAX version, the device and the XLA flags, so a stale entry is never used.
    Returns the directory in use, or ``None`` when caching is off. The widgets call this; the
    library's functions never do.
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    path = compilation_cache_dir()
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile as usual
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path
