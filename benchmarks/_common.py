"""Timing helpers shared by the benchmarks: medians after warm-up, a plain-text table, the device."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import jax


def median_seconds(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def block(tree):
    """Wait for every array in a pytree (JAX dispatches asynchronously)."""
    return jax.block_until_ready(tree)


def device() -> str:
    d = jax.devices()[0]
    return (
        f"{d.platform.upper()} ({d.device_kind})"
        if d.platform != "cpu"
        else f"CPU ({jax.local_device_count()} device, {__import__('os').cpu_count()} cores)"
    )


def table(title: str, rows: list[tuple[str, str, str, str]], header=("measure", "ours", "baseline", "ratio")) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    out = [f"\n{title}  [{device()}, jax {jax.__version__}]", line]
    out.append("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    out.append(line)
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.append(line)
    return "\n".join(out)


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """JAX in float64 inside the block (steps are compared to round-off), as it was after it."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)
