"""How much of Snake's meta-gradient the semi-gradient critic convention drops.

    .venv/bin/python benchmarks/critic_convention.py [--n-seeds 8] [--k 1 2 4] [--starts 0 1]
        [--out results/critic_convention.npz]

On the warm-started Snake problem (``problems.make_problem("snake", seed=start)``), the same
sampled data (keys ``seed_keys``) give g_K under both conventions of ``snake_problem``'s
``critic_targets``: "semi" (critic values in the inner loss are constants for η, the default) and
"full" (η reaches them through the critic's earlier updates; g_K = dL_K/dη with the data held
fixed). The outer surrogate's baseline is a constant in both. Per K it prints

- per seed: ‖g_full − g_semi‖ / ‖g_full‖, ‖g_semi‖ / ‖g_full‖ and cos(g_semi, g_full) (median
  and extreme over seeds), and how many (seed, component) pairs the two give opposite signs;
- of the means over seeds: the same numbers, and each component's mean with its standard error,
  so a difference can be read against the sampling noise.

With ``--out``, the meta-gradients are also stored (``semi`` and ``full``, each
[n_starts, n_seeds, max K, n_eta], with ``starts``, ``meta_names`` and a sidecar ``.json`` that
records the machine and the command): lesson 08 reads ``results/critic_convention.npz``, made by
``--n-seeds 16 --k 1 2 3 4 --starts 0 1 --out results/critic_convention.npz``.

Two checks in the output: g_1 reads θ_0's critic, which η has not moved, so its difference is 0
up to round-off; and the entropy cost moves only the policy, never the critic, so its component
is the same under both conventions at every K.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from course_lib import metagrad, problems
from course_lib.experiments.results import write_record


def relative_difference(semi: np.ndarray, full: np.ndarray) -> np.ndarray:
    """‖full − semi‖ / ‖full‖ along the last axis."""
    return np.linalg.norm(full - semi, axis=-1) / np.linalg.norm(full, axis=-1)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def both_conventions(start: int, k_max: int, n_seeds: int) -> tuple[np.ndarray, np.ndarray, list]:
    """g_1..g_k_max under "semi" and "full" on the same data: two [n_seeds, k_max, n_eta]."""
    out = []
    for critic_targets in ("semi", "full"):
        problem = problems.make_problem("snake", seed=start, critic_targets=critic_targets)
        key = jax.random.key(1000 + start)
        out.append(
            np.asarray(
                metagrad.sample_meta_gradients(problem, problem.eta0, key, k_max, n_seeds),
                np.float64,
            )
        )
    return out[0], out[1], list(problem.meta_names)


def report(semi: np.ndarray, full: np.ndarray, ks: list[int], names: list[str]) -> None:
    n_seeds = semi.shape[0]
    for k in ks:
        s, f = semi[:, k - 1], full[:, k - 1]
        rel, cos = relative_difference(s, f), cosine(s, f)
        ratio = np.linalg.norm(s, axis=-1) / np.linalg.norm(f, axis=-1)
        flips = int(np.sum(np.sign(s) * np.sign(f) < 0))
        mean_s, mean_f = s.mean(0), f.mean(0)
        se_s, se_f = s.std(0, ddof=1) / np.sqrt(n_seeds), f.std(0, ddof=1) / np.sqrt(n_seeds)
        se_d = (f - s).std(0, ddof=1) / np.sqrt(n_seeds)
        print(
            f"  K={k}: per seed  |full-semi|/|full| median {np.median(rel):.3f} "
            f"(max {rel.max():.3f}),  |semi|/|full| median {np.median(ratio):.2f} "
            f"({ratio.min():.2f}-{ratio.max():.2f}),  cos median {np.median(cos):.3f} "
            f"(min {cos.min():.3f}),  opposite signs {flips}/{s.size}"
        )
        print(
            f"        of means  |full-semi|/|full| {relative_difference(mean_s, mean_f):.3f},  "
            f"|semi|/|full| {np.linalg.norm(mean_s) / np.linalg.norm(mean_f):.2f},  "
            f"cos {cosine(mean_s, mean_f):.3f}"
        )
        for i, name in enumerate(names):
            print(
                f"        {name:>13}: semi {mean_s[i]:+.3e} ± {se_s[i]:.1e}   "
                f"full {mean_f[i]:+.3e} ± {se_f[i]:.1e}   "
                f"full-semi {mean_f[i] - mean_s[i]:+.2e} ± {se_d[i]:.1e}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-seeds", type=int, default=8, help="sampled data sets per start")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4], help="K to report")
    parser.add_argument("--starts", type=int, nargs="+", default=[0], help="warm-start seeds")
    parser.add_argument("--out", default=None, help="store the meta-gradients here (.npz)")
    args = parser.parse_args()
    stored, total = {"semi": [], "full": []}, 0.0
    for start in args.starts:
        begin = time.perf_counter()
        semi, full, names = both_conventions(start, max(args.k), args.n_seeds)
        seconds = time.perf_counter() - begin
        total += seconds
        print(f"warm start {start}, {args.n_seeds} seeds ({seconds:.0f} s, compile included):")
        report(semi, full, args.k, names)
        stored["semi"].append(semi)
        stored["full"].append(full)
    if args.out is not None:
        out = Path(args.out)
        np.savez_compressed(
            out,
            semi=np.stack(stored["semi"]),
            full=np.stack(stored["full"]),
            starts=np.array(args.starts),
            meta_names=np.array(names),
        )
        settings = {"n_seeds": args.n_seeds, "k_max": max(args.k), "starts": args.starts}
        command = ["python", "benchmarks/critic_convention.py", *sys.argv[1:]]
        write_record(out, settings, total, command)
        print(f"stored in {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
