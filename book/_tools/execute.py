"""Execute the book's chapters in place and store their outputs (``make notebooks``).

For each notebook: run it top to bottom in a fresh kernel of this environment, in test mode
(``DESCENT_DYNAMICS_TEST_MODE=1``: quiet progress bars, so stored outputs are what nbval reproduces),
then clean it for the repository:

* drop ``metadata.widgets`` (widget state: megabytes of JavaScript) and widget-view outputs, which
  cannot render without that state (the widget cells are tagged ``nbval-ignore-output``);
* drop per-cell execution timestamps (they would make every run a diff).

Then check each chapter as ``make test`` does: nbval against the outputs just stored, once on the
machine as it is and once under ``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2`` (another round-off; skipped off
x86-64). Finally write ``book/status.md``: per chapter, its execution time, the machine it ran on and
whether both checks passed. Those clock numbers live only there, never in a compared cell output.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

BOOK = Path(__file__).resolve().parents[1]
STATUS_JSON = BOOK / "_tools" / "status.json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LIMIT_MB = 2.0


def clean(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                continue  # a widget view without its state is a dead box; the reader re-runs the cell
            kept.append(out)
        cell.outputs = kept


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("DESCENT_DYNAMICS_TEST_MODE")
    os.environ["DESCENT_DYNAMICS_TEST_MODE"] = "1"
    try:
        client = NotebookClient(
            nb,
            timeout=900,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            record_timing=False,
        )
        t0 = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - t0
    finally:
        if env_before is None:
            os.environ.pop("DESCENT_DYNAMICS_TEST_MODE", None)
        else:
            os.environ["DESCENT_DYNAMICS_TEST_MODE"] = env_before
    clean(nb)
    nbformat.write(nb, path)
    size_mb = path.stat().st_size / 1e6
    if size_mb > LIMIT_MB:
        raise SystemExit(f"{path.name}: {size_mb:.2f} MB with outputs, over the {LIMIT_MB} MB limit")
    return seconds


SECOND_ISA = "SSE4_2"
CHECK = os.environ.get("DESCENT_DYNAMICS_SKIP_CHECKS", "") == ""  # set it to iterate on figures quickly


def check(path: Path, isa: str | None) -> str:
    """Run nbval on ``path`` (under ``--xla_cpu_max_isa=isa`` if given): ``"passed"``, ``"failed"`` or ``"skipped"``."""
    env = dict(os.environ, DESCENT_DYNAMICS_TEST_MODE="1")
    if isa is not None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return "skipped"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_cpu_max_isa={isa}".strip()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env", str(path)]
    result = subprocess.run(cmd, cwd=BOOK.parent, env=env, capture_output=True, text=True)
    return "passed" if result.returncode == 0 else "failed"


def machine() -> dict[str, str]:
    import jax

    device = jax.devices()[0]
    return {
        "device": device.platform.upper() + (f" ({device.device_kind})" if device.platform != "cpu" else ""),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "system": f"{platform.system()} {platform.machine()}",
    }


def chapter_title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def write_status(records: dict[str, dict]) -> None:
    lines = [
        "# Status of the chapters",
        "",
        "Every chapter is executed top to bottom by `make notebooks` and again by nbval in `make test`.",
        "This page records the last `make notebooks` run: how long each chapter took, where it ran, and whether",
        f"nbval then passed on it, natively and under `XLA_FLAGS=--xla_cpu_max_isa={SECOND_ISA}` (another round-off).",
        "The budget is 90 s per chapter on a 2-core CPU (60 s for chapter 1).",
        "",
        "| chapter | execution time | nbval | nbval, second instruction set | device | CPU cores | JAX | Python | executed on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(records):
        r = records[name]
        lines.append(
            f"| [{r['title']}]({name}) | {r['seconds']:.1f} s | {r.get('nbval', 'not run')} "
            f"| {r.get('nbval_second_isa', 'not run')} | {r['device']} | {r['cpus']} "
            f"| {r['jax']} | {r['python']} | {r['date']} |"
        )
    lines += ["", "Execution times are wall-clock seconds of a fresh kernel, imports and JIT compilation included.", ""]
    (BOOK / "status.md").write_text("\n".join(lines))


def main(paths: list[str]) -> None:
    records = json.loads(STATUS_JSON.read_text()) if STATUS_JSON.exists() else {}
    info = machine()
    for p in map(Path, paths):
        print(f"executing {p.name} ...", flush=True)
        seconds = execute(p)
        print(f"  {seconds:.1f} s, {p.stat().st_size / 1e6:.2f} MB", flush=True)
        native, second = (check(p, None), check(p, SECOND_ISA)) if CHECK else ("not run", "not run")
        print(f"  nbval: {native}; under {SECOND_ISA}: {second}", flush=True)
        records[p.stem] = {
            **info,
            "title": chapter_title(p),
            "seconds": seconds,
            "date": datetime.date.today().isoformat(),
            "nbval": native,
            "nbval_second_isa": second,
        }
    STATUS_JSON.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    write_status(records)


if __name__ == "__main__":
    main(sys.argv[1:])
