"""How long ``make results`` takes: the capstone's full run timed on one checkpoint, extrapolated.

    .venv/bin/python benchmarks/experiments.py [--checkpoints 1]

Runs ``full_config(n_checkpoints=1)`` (every estimator, every seed, one checkpoint: one chunk per
group of K and M, then the variance samples), then prints:

- the one-off cost: building the problem and warming up every seed, and compiling every group's
  chunk and the sampler (compile seconds from ``jax.monitoring``);
- the cost of one checkpoint once compiled (the steps' seconds minus the compiles among them);
- the full run's estimate: one-off + n_checkpoints x one checkpoint, and lesson 02's sweep
  (``results/a2c_sweep.json`` says how long it took where it was made);
- the machine: CPU, cores and the load average before and after, since the figure scales with it.

Measured 2026-12-02, jax 0.10.2 on 2 AMD EPYC cores (avx2, fma) shared with four other jobs
(load average 4.6 before, 3.1 after), for ``full_config()`` (10 estimators x 8 seeds = 80 runs):

    wall 311 s = one-off 230 s (set-up, warm-ups, 203 s of compiling) + 81 s per checkpoint
    estimated full run (16 checkpoints): 25 min;  lesson 02's sweep: 7 min (same load)

So ``make results`` takes about half an hour there; less on an idle machine. The run before these
controls (4 estimators x 4 seeds) took 8.4 minutes.

The stored run itself (``results/snake_full.json``): ``full_config()`` with ``auto5`` added (11
estimators x 8 seeds = 88 runs), 2026-12-02 on the same 2 AMD EPYC cores, jax 0.10.2, took
2,357 s (39 minutes), compiling once per group of K and M (4 groups) and once for the sampler;
other jobs (unit tests and a 3-minute benchmark) shared the cores for about 25 of those minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax

from course_lib import experiments
from course_lib.device import describe
from course_lib.experiments.results import machine_info
from course_lib.experiments.sweep import STORED_SWEEP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=1, help="checkpoints to time")
    args = parser.parse_args()
    full = experiments.full_config()
    config = experiments.full_config(n_checkpoints=args.checkpoints)
    compiles: list[tuple[float, float]] = []  # (when it ended, seconds)

    def on_event(event, duration, **_kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append((time.perf_counter(), duration))

    print(describe())
    info = machine_info()
    print(f"cpu: {info['cpu_model']}, {info['cpu_count']} cores, jax {info['jax']}")
    load_before = os.getloadavg()[0]
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "timing.npz"
            start = time.perf_counter()
            experiments.run_experiment(config, out)
            wall = time.perf_counter() - start
            steps = json.loads(out.with_suffix(".json").read_text())["compute_seconds"]
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    load_after = os.getloadavg()[0]
    steps_began = start + wall - steps  # the steps ran last; their seconds exclude the set-up
    step_compiles = sum(d for t, d in compiles if t >= steps_began)
    per_checkpoint = (steps - step_compiles) / args.checkpoints
    one_off = wall - per_checkpoint * args.checkpoints
    estimate = one_off + full.n_checkpoints * per_checkpoint
    runs = len(full.estimators) * full.n_seeds
    print(f"timed: {args.checkpoints} checkpoint(s) of the full config, {runs} runs")
    compiled = sum(d for _, d in compiles)
    print(
        f"  wall {wall:.0f} s = one-off {one_off:.0f} s (set-up, warm-ups, {compiled:.0f} s of "
        f"compiling) + {per_checkpoint:.0f} s per checkpoint"
    )
    print(f"estimated full run ({full.n_checkpoints} checkpoints): {estimate / 60:.0f} min")
    if STORED_SWEEP.with_suffix(".json").exists():
        sweep = json.loads(STORED_SWEEP.with_suffix(".json").read_text())
        print(f"lesson 02's sweep (stored sidecar): {sweep['compute_seconds'] / 60:.0f} min")
    print(
        f"load average (1 min): {load_before:.1f} before, {load_after:.1f} after, "
        f"on {os.cpu_count()} cores: the figures scale with the load"
    )


if __name__ == "__main__":
    main()
