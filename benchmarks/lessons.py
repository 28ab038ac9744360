"""How long each lesson's cells take at full size, and what they write to stderr.

    .venv/bin/python benchmarks/lessons.py [--quick] [--min-seconds 5] [--json out.json] [NN ...]

Executes the solution notebooks (all, or the lesson numbers given) top to bottom in a fresh kernel,
in full mode unless ``--quick`` (``COURSE_QUICK=1``, the tests' sizes), and prints, per lesson, the
total time and every cell that took at least ``--min-seconds`` with its first line, so the lessons'
"takes about ..." notes can quote measured figures for the device this runs on (printed first).

It also prints anything a cell writes to stderr (warnings, JAX notices): a learner should meet none
that the lesson does not explain. ``--json`` stores the figures for comparing machines.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_lib.device import describe

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNEL = "python3"


def run_lesson(path: pathlib.Path, quick: bool) -> dict:
    """Executes one notebook; returns its total seconds, per-cell seconds and stderr texts."""
    nb = nbformat.read(path, as_version=4)
    env_quick = os.environ.get("COURSE_QUICK")
    if quick:
        os.environ["COURSE_QUICK"] = "1"
    else:
        os.environ.pop("COURSE_QUICK", None)
    client = NotebookClient(
        nb,
        timeout=3600,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(ROOT / "solutions")}},
    )
    cells = []
    start = time.perf_counter()
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t0 = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as error:  # report it, and go on with the next lesson
                    return {
                        "seconds": time.perf_counter() - start,
                        "cells": cells,
                        "error": str(error),
                    }
                stderr = [o.get("text", "") for o in cell.outputs if o.get("name") == "stderr"]
                cells.append(
                    {
                        "index": index,
                        "first_line": cell.source.splitlines()[0] if cell.source else "",
                        "seconds": time.perf_counter() - t0,
                        "stderr": "".join(stderr),
                    }
                )
    finally:
        if env_quick is None:
            os.environ.pop("COURSE_QUICK", None)
        else:
            os.environ["COURSE_QUICK"] = env_quick
    return {"seconds": time.perf_counter() - start, "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 02 06 (default: all)")
    parser.add_argument("--quick", action="store_true", help="the tests' sizes (COURSE_QUICK=1)")
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--json", type=pathlib.Path, help="also store the figures here")
    args = parser.parse_args()

    paths = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if p.name[:2] in args.lessons]
    machine = (
        f"{describe()}; {os.cpu_count()} CPU cores; {platform.processor() or platform.machine()}"
    )
    print(f"{'quick' if args.quick else 'full'} mode on {machine}", flush=True)
    report = {"machine": machine, "quick": args.quick, "lessons": {}}
    for path in paths:
        result = run_lesson(path, args.quick)
        report["lessons"][path.stem] = result
        print(f"\n{path.stem}: {result['seconds']:.0f} s in all", flush=True)
        if "error" in result:
            print(f"  STOPPED by an error after cell {result['cells'][-1]['index']}:")
            print("  " + result["error"].strip()[-1500:].replace("\n", "\n  "))
        for cell in result["cells"]:
            if cell["seconds"] >= args.min_seconds:
                line = cell["first_line"][:66]
                print(f"  cell {cell['index']:>2}: {cell['seconds']:6.1f} s  {line}")
        for cell in result["cells"]:
            if cell["stderr"].strip():
                print(f"  cell {cell['index']:>2} stderr: {cell['stderr'].strip()[:500]}")
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
