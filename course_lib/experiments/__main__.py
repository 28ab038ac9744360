"""Command line: ``python -m course_lib.experiments snake --out results/snake.npz [options]``.

Run it from the repository root; ``make results`` regenerates the stored run this way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from course_lib.experiments.results import REPOSITORY
from course_lib.experiments.run import run_experiment
from course_lib.experiments.settings import (
    FULL_ESTIMATORS,
    FULL_STARTS,
    full_config,
    quick_config,
)
from course_lib.experiments.sweep import SweepConfig, run_sweep, save_sweep


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.experiments",
        description="Run the capstone experiment and save its results.",
    )
    sub = parser.add_subparsers(dest="problem", required=True)
    snake = sub.add_parser("snake", help="self-tuning actor-critic agents on Snake")
    snake.add_argument(
        "--estimators",
        default=None,
        help="comma-separated k<K> (K-step), mix<K> (mixing) and fixed<K> (η never updated) "
        "names, optionally with x<M> (K-step on M outer batches) and @<start> (a start of "
        f"the config: {', '.join(FULL_STARTS)}); default {','.join(FULL_ESTIMATORS)}",
    )
    snake.add_argument("--seeds", type=int, default=None, help="agents per estimator")
    snake.add_argument("--checkpoints", type=int, default=None, help="how many times to log")
    snake.add_argument("--mix-lambda", type=float, default=None, help="λ_mix of the mixing weights")
    snake.add_argument("--seed", type=int, default=None, help="root PRNG seed (default 0)")
    snake.add_argument("--out", required=True, help="results file (.npz)")
    snake.add_argument(
        "--quick", action="store_true", help="the small CI-sized run (minutes on a CPU)"
    )
    snake.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out, and a partial run that cannot be resumed (a partial run "
        "with the same settings is always resumed)",
    )
    sweep = sub.add_parser("sweep", help="lesson 02's sweep of γ, λ and the entropy cost (A2C)")
    sweep.add_argument("--out", required=True, help="results file (.npz)")
    sweep.add_argument(
        "--quick", action="store_true", help="100 updates per setting instead of 1000"
    )
    sweep.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.problem == "sweep":
        return _sweep(parser, args)

    overrides = {}
    if args.estimators is not None:
        overrides["estimators"] = tuple(e for e in args.estimators.split(",") if e.strip())
    for field, _, attribute in _OPTIONS:
        if getattr(args, attribute) is not None:
            overrides[field] = getattr(args, attribute)
    config = (quick_config if args.quick else full_config)(**overrides)
    try:
        run_experiment(config, args.out, overwrite=args.overwrite, command=_command(args))
    except ValueError as error:
        parser.error(str(error))
    print(f"saved {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0


def _sweep(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npz" or (out.exists() and not args.overwrite):
        parser.error(f"--out must be a .npz file that does not exist (or --overwrite), got {out}")
    config = SweepConfig(n_updates=100) if args.quick else SweepConfig()
    result, seconds = run_sweep(config)
    command = ["python", "-m", "course_lib.experiments", "sweep", "--out", _relative(out)]
    command += [flag for flag in ("--quick", "--overwrite") if getattr(args, flag[2:])]
    save_sweep(result, out, seconds, command)
    print(f"saved {out} and {out.with_suffix('.json')} ({seconds:.0f} s)")
    return 0


# (config field, command-line option, its parsed attribute) for the options that override the config
_OPTIONS = (
    ("n_seeds", "--seeds", "seeds"),
    ("n_checkpoints", "--checkpoints", "checkpoints"),
    ("mix_lambda", "--mix-lambda", "mix_lambda"),
    ("seed", "--seed", "seed"),
)


def _command(args: argparse.Namespace) -> list[str]:
    """The command line of this run as given, to be run from the repository root: ``--out``
    relative to the repository, so the sidecar names no folder of the machine that made it."""
    command = ["python", "-m", "course_lib.experiments", args.problem]
    if args.estimators is not None:
        command += ["--estimators", args.estimators]
    for _, option, attribute in _OPTIONS:
        if getattr(args, attribute) is not None:
            command += [option, str(getattr(args, attribute))]
    command += ["--out", _relative(Path(args.out))]
    return command + [flag for flag in ("--quick", "--overwrite") if getattr(args, flag[2:])]


def _relative(path: Path) -> str:
    """``path`` relative to the repository, so a sidecar names no folder of its machine."""
    return Path(os.path.relpath(path.resolve(), REPOSITORY)).as_posix()


if __name__ == "__main__":
    sys.exit(main())
