"""How long each lesson's cells take at full size, on a first and a second run, and their stderr.

    .venv/bin/python -m benchmarks.lessons [--quick] [--once] [--min-seconds 5] [--json out.json]
                                           [NN ...]

Executes the solution notebooks (all, or the lesson numbers given) top to bottom in a fresh kernel
(``tools.executor``, as the site build does), in full mode unless ``--quick`` (``COURSE_QUICK=1``,
the tests' sizes), and prints, per lesson, the total time and every cell that took at least
``--min-seconds`` with its first line, so the lessons' "takes about ..." notes can quote measured
figures for the device this runs on (printed first).

Each lesson runs twice in fresh kernels sharing a compilation cache that starts empty: the first
run is a learner's first (every program compiled), the second a learner's next (JAX's persistent
cache, which course_lib turns on, supplies the compiled programs). ``--once`` skips the second.

It also prints anything a cell writes to stderr (warnings, JAX notices): a learner should meet none
that the lesson does not explain. ``--json`` stores the figures for comparing machines.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import tempfile

from nbclient.exceptions import CellTimeoutError

from course_lib.device import describe
from tools.executor import execute

ROOT = pathlib.Path(__file__).resolve().parent.parent
# A bounded wait per cell: a cell that stalls (a lost kernel message, say) fails loudly within
# minutes instead of holding the run for an hour. The slowest full-size cell takes about a minute
# on 2 cores.
CELL_TIMEOUT_S = 600


def run_lesson(
    path: pathlib.Path,
    quick: bool,
    cell_timeout: float = CELL_TIMEOUT_S,
    upto: int | None = None,
    env: dict[str, str | None] | None = None,
) -> dict:
    """Executes one notebook (its cells 0..``upto``, all by default) in a fresh kernel with the
    environment variables ``env`` (None: unset); returns its total seconds, per-cell seconds and
    stderr texts, and on an error the failing cell's index, the error and whether it was a
    timeout."""
    run = execute(path, quick, cell_timeout, env=env, upto=upto)
    cells = []
    for index, seconds in run.cell_seconds.items():
        if index == run.failed_cell:
            continue
        cell = run.notebook.cells[index]
        stderr = [o.get("text", "") for o in cell.outputs if o.get("name") == "stderr"]
        cells.append(
            {
                "index": index,
                "first_line": cell.source.splitlines()[0] if cell.source else "",
                "seconds": seconds,
                "stderr": "".join(stderr),
            }
        )
    result = {"seconds": run.seconds, "cells": cells}
    if run.error is not None:
        result.update(
            failed_cell=run.failed_cell,
            error=str(run.error),
            timed_out=isinstance(run.error, CellTimeoutError),
        )
    return result


def run_twice(path: pathlib.Path, quick: bool, once: bool) -> list[dict]:
    """The lesson's first run on an empty compilation cache and (unless ``once``) its second."""
    with tempfile.TemporaryDirectory(prefix="lesson-jax-cache-") as cache:
        env = {"COURSE_JAX_CACHE": cache, "JAX_COMPILATION_CACHE_DIR": None}
        runs = [run_lesson(path, quick, env=env)]
        if not once and "error" not in runs[0]:
            runs.append(run_lesson(path, quick, env=env))
    return runs


def _print_lesson(name: str, runs: list[dict], min_seconds: float) -> None:
    first = runs[0]
    line = f"\n{name}: {first['seconds']:.0f} s first run (empty compilation cache)"
    if len(runs) > 1:
        line += f", {runs[1]['seconds']:.0f} s second run (cache warm)"
    print(line, flush=True)
    for label, run in zip(("first", "second"), runs, strict=False):
        if "error" in run:
            print(f"  {label} run STOPPED by an error in cell {run['failed_cell']}:")
            print("  " + run["error"].strip()[-1500:].replace("\n", "\n  "))
    again = {cell["index"]: cell["seconds"] for cell in runs[-1]["cells"]} if len(runs) > 1 else {}
    for cell in first["cells"]:
        if cell["seconds"] >= min_seconds:
            second = f"{again[cell['index']]:6.1f} s" if cell["index"] in again else ""
            first_line = cell["first_line"][:60]
            print(f"  cell {cell['index']:>2}: {cell['seconds']:6.1f} s {second:>8}  {first_line}")
    for cell in first["cells"]:
        if cell["stderr"].strip():
            print(f"  cell {cell['index']:>2} stderr: {cell['stderr'].strip()[:500]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 02 06 (default: all)")
    parser.add_argument("--quick", action="store_true", help="the tests' sizes (COURSE_QUICK=1)")
    parser.add_argument("--once", action="store_true", help="skip the second (cache-warm) run")
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
    if not args.once:
        print("per cell: first run, second run (cache warm)")
    report = {"machine": machine, "quick": args.quick, "lessons": {}}
    for path in paths:
        runs = run_twice(path, args.quick, args.once)
        report["lessons"][path.stem] = {
            "first_run": runs[0],
            "second_run": runs[1] if len(runs) > 1 else None,
        }
        _print_lesson(path.stem, runs, args.min_seconds)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
