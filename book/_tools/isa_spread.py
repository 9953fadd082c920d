"""Run chapters under several XLA instruction sets and show which printed outputs move.

A float32 result that depends on summation order prints differently on another CPU. XLA's
``--xla_cpu_max_isa`` flag makes it emit code for an older instruction set on this machine, which
changes round-off the way another machine does. This script executes each chapter once per
instruction set (fresh kernel, test mode, outputs written under ``--out``) and prints, for every
code cell whose text output is not the same in all runs, the output of each run side by side: the
spread a check cell's tolerance must cover. Nothing in the book is modified.

    .venv/bin/python book/_tools/isa_spread.py book/03_curvature.ipynb --isa native SSE4_2 AVX AVX2

Cells are numbered as in the notebook (all cells, markdown included), as ``[n]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TEXT = "text/plain"
PLOTLY = "application/vnd.plotly.v1+json"


def run(path: Path, isa: str, out_dir: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, DESCENT_DYNAMICS_TEST_MODE="1")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_cpu_max_isa")]
    if isa != "native":
        flags.append(f"--xla_cpu_max_isa={isa}")
    env["XLA_FLAGS"] = " ".join(flags)
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env=env)  # the kernel's own environment: runs in parallel do not share one
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    return nb


def text_outputs(nb: nbformat.NotebookNode) -> dict[int, str]:
    texts = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data") and PLOTLY not in out.get("data", {}):
                parts.append(out.get("data", {}).get(TEXT, ""))
            elif out.output_type == "error":
                parts.append(f"ERROR {out.ename}: {out.evalue}")
        texts[i] = "".join(parts)
    return texts


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--isa", nargs="+", default=["native", "SSE4_2", "AVX", "AVX2"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/isa_spread"))
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (each a kernel)")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = dict(zip(args.isa, pool.map(lambda isa, path=path: run(path, isa, args.out / isa), args.isa), strict=True))
        texts = {isa: text_outputs(nb) for isa, nb in runs.items()}
        print(f"=== {path.name}")
        for i in texts[args.isa[0]]:
            variants = {isa: t[i] for isa, t in texts.items()}
            if len(set(variants.values())) > 1:
                print(f"--- cell [{i}] differs")
                for isa, text in variants.items():
                    print(f"  {isa:>7}: " + text.rstrip().replace("\n", "\n           "))


if __name__ == "__main__":
    main(sys.argv[1:])
