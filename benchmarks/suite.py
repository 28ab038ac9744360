"""How long the test suite takes, where the time goes, and how often each lesson is executed.

    .venv/bin/python benchmarks/suite.py [--json out.json] [pytest arguments ...]

Runs the suite as ``make test`` does (``COURSE_QUICK=1 pytest -n auto --dist loadgroup``; extra
arguments go to pytest, e.g. ``tests/test_stats.py``) and prints its wall time, the time of each
test file (setup, call and teardown added up, so that on several workers the files add up to more
than the wall time), the slowest tests, and how many times each lesson was executed and by what
(``nbval``: the solution cell by cell; ``nbclient``: the learner copy or a site build). A lesson
run more than twice, or a suite over 15 minutes on 2 cores, is the change to look at.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 15 * 60


def run_suite(pytest_args: list[str], folder: Path) -> dict:
    """Runs pytest as make test does; returns wall time, per-test times and lesson executions."""
    report, log = folder / "junit.xml", folder / "lessons.jsonl"
    command = [sys.executable, "-m", "pytest", "-n", "auto", "--dist", "loadgroup", "-q"]
    command += ["-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args]
    env = {**os.environ, "COURSE_QUICK": "1", "COURSE_LESSON_LOG": str(log)}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    tests = [
        (
            case.get("file") or case.get("classname", "").replace(".", "/") + ".py",
            case.get("name"),
            float(case.get("time", 0.0)),
        )
        for case in ElementTree.parse(report).getroot().iter("testcase")
    ]
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return {"wall_s": wall, "returncode": result.returncode, "tests": tests, "lesson_runs": runs}


def summary(figures: dict, n_slowest: int = 15) -> str:
    per_file = collections.Counter()
    for file, _, seconds in figures["tests"]:
        per_file[file] += seconds
    lines = [
        f"suite: {figures['wall_s']:.0f} s wall on {os.cpu_count()} cores "
        f"(target under {TARGET_S} s on 2), {len(figures['tests'])} tests, "
        f"pytest exit {figures['returncode']}",
        "",
        "seconds  test file",
    ]
    lines += [f"{seconds:7.1f}  {file}" for file, seconds in per_file.most_common()]
    lines += ["", "seconds  slowest tests"]
    slowest = sorted(figures["tests"], key=lambda test: -test[2])[:n_slowest]
    lines += [f"{seconds:7.1f}  {file}::{name}" for file, name, seconds in slowest]
    counts = collections.Counter((run["lesson"], run["how"]) for run in figures["lesson_runs"])
    lessons = sorted({lesson for lesson, _ in counts})
    lines += ["", "times executed  lesson (by nbval / nbclient)"]
    for lesson in lessons:
        nbval, nbclient = counts[(lesson, "nbval")], counts[(lesson, "nbclient")]
        lines.append(f"{nbval + nbclient:14d}  {lesson} ({nbval} / {nbclient})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also store the figures here")
    args, pytest_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        figures = run_suite(pytest_args, Path(folder))
    print(summary(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return figures["returncode"]


if __name__ == "__main__":
    sys.exit(main())
