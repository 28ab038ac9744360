"""Does a lesson ever stall when executed without a browser? Runs it headless many times and says.

Executed by nbclient (as `tools.executor` does for `benchmarks/lessons.py` and the site build, and
the learner-notebook test),
a display built on an ipywidgets Output widget (`interactive_output`) used to stall a cell for the
whole timeout in about 1 run in 4 (nbclient issue #312 describes the same). The explorers draw on
their own figure instead. This script executes the first cells of a lesson, through its explorers,
N times in fresh kernels, each cell with a short timeout, and prints the slowest cell of each run;
a cell that raises a timeout or runs into it counts as a stall.

Measured on a 2-core CPU shared with other work (20 runs each, 60 s a cell): lesson 06 as it is,
cells 0-17, 0 stalls (slowest cell 7.1 s); the lesson before its run chooser moved off the
Output widget (commit e8bcd78^), cells 0-10, 1 stall (its chooser cell took the full 60 s).

    python -m benchmarks.headless_stalls                     # lesson 06, 20 runs, up to cell 17
    python -m benchmarks.headless_stalls --runs 5 --lesson 07_in_practice --upto 15
    python -m benchmarks.headless_stalls --notebook old_06.ipynb   # any notebook file, e.g. the
        # lesson before its run chooser changed: git show e8bcd78^:solutions/06_capstone_snake.ipynb
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics

from benchmarks.lessons import ROOT, run_lesson
from course_lib import quick_mode

STALL_FRACTION = 0.9


def run_once(nb_path: pathlib.Path, upto: int, timeout: float) -> tuple[float, int, bool]:
    """(slowest cell's seconds, its index, whether a cell stalled) for one headless execution.

    nbclient may stop waiting for a stalled cell's output at the timeout without raising: the cell
    then "takes" the whole timeout, which counts as a stall like a raised timeout does.
    """
    run = run_lesson(nb_path, quick_mode(), cell_timeout=timeout, upto=upto)
    if "failed_cell" in run:
        if not run["timed_out"]:
            raise RuntimeError(f"cell {run['failed_cell']} failed: {run['error']}")
        return timeout, run["failed_cell"], True
    slowest = max(run["cells"], key=lambda cell: cell["seconds"])
    return slowest["seconds"], slowest["index"], slowest["seconds"] >= STALL_FRACTION * timeout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", default="06_capstone_snake")
    parser.add_argument("--notebook", type=pathlib.Path, help="a notebook file instead of a lesson")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--upto", type=int, default=17, help="last cell index to execute")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per cell")
    args = parser.parse_args()
    os.environ.setdefault("COURSE_QUICK", "1")
    path = args.notebook or ROOT / "solutions" / f"{args.lesson}.ipynb"
    print(f"{path.name}: cells 0..{args.upto}, {args.runs} kernels, {args.timeout:.0f} s a cell")
    slowest, stalls = [], 0
    for run in range(1, args.runs + 1):
        seconds, index, stalled = run_once(path, args.upto, args.timeout)
        stalls += stalled
        slowest.append(seconds)
        note = "  STALLED (timed out)" if stalled else ""
        print(f"  run {run:2d}: slowest cell {index:2d} took {seconds:5.1f} s{note}")
    median, worst = statistics.median(slowest), max(slowest)
    print(
        f"{stalls} of {args.runs} stalled; slowest cell: median {median:.1f} s, max {worst:.1f} s"
    )
    raise SystemExit(1 if stalls else 0)


if __name__ == "__main__":
    main()
