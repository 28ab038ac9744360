"""How fast the live explorer answers a slider move (the course aims at well under 100 ms).

    .venv/bin/python benchmarks/widgets.py [--k-max 8] [--n-seeds 256] [--moves 40]
                                           [--backend both|agg|ipympl] [--batch-seeds 2000]

Builds ``MetaGradientExplorer`` on the noisy quadratic (exact target g*_H and exact joint
moments, as lessons 04–05 show it) and, per figure backend, moves each control through the widget
itself (as a learner's drag does), timing from the value change to the finished redraw. Printed
per control: the median latency, how many moves needed a full redraw (axes grew) instead of a
blit, and XLA compilations during the moves (should be 0). Also the recombination alone
(``widgets.recombine``: weights for every K, the mix, its measures from the exact moments and the
samples), a full redraw (the histogram's view changes) and a new sample set.

Then the explorers over stored data, each slider per backend against a full redraw of the same
figure (a lower bound on what rebuilding the figure per move, as the lessons' former ``interact``
cells did, costs): lesson 01's ``BatchSizeExplorer`` on the lesson's own data (batch-B REINFORCE
estimates on its bandit, without and with the baseline J(θ)); lesson 03's
``MetaLearningRateExplorer`` on stored runs cut to the full lesson's shapes (6 β x 3 seeds x 12
checkpoints); lesson 06's ``RunsExplorer`` and lesson 07's ``TrialDecisionExplorer`` on the stored
capstone runs.

Backends: "agg" is the headless path (a JPEG ``ipywidgets.Image``, as under pytest or the inline
backend); "ipympl" is ``%matplotlib widget``. Without a browser, ipympl keeps a base64 copy of the
figure for static export until a front end connects; the benchmark switches that off, as a
connected JupyterLab does, so the figure costs what it costs in the lab: one PNG diff per move,
encoded by ipympl.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from course_lib import exact, experiments, metagrad, problems, widgets
from course_lib.device import describe
from course_lib.envs import bandit

BACKENDS = {"agg": "agg", "ipympl": "module://ipympl.backend_nbagg"}


class Counter:
    """Counts XLA compilations and full figure draws while active."""

    def __init__(self, figure):
        self.compilations = 0
        self.full_draws = 0
        figure.canvas.mpl_connect("draw_event", self._on_draw)
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_draw(self, _event):
        self.full_draws += 1

    def _on_event(self, event, _duration, **_kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            self.compilations += 1

    def close(self):
        jax.monitoring.unregister_event_duration_listener(self._on_event)


def median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def time_moves(explorer, control, values) -> tuple[list[float], int, int]:
    """Move ``control`` through ``values``; (seconds per move, full redraws, compilations)."""
    counter = Counter(explorer.figure)
    times = []
    try:
        for value in values:
            start = time.perf_counter()
            control.value = value
            times.append(time.perf_counter() - start)
            if explorer.message:  # a rejected move would time no redraw
                raise RuntimeError(f"the explorer rejected {value!r}: {explorer.message}")
    finally:
        counter.close()
    return times, counter.full_draws, counter.compilations


def controls(explorer, n_moves: int, rng: np.random.Generator):
    """(name, control, values, setup) for each kind of slider move."""
    k_max = explorer.k_max
    ks = [1 + i % k_max for i in range(1, n_moves + 1)]
    lams = [round(0.05 * (i % 21), 2) for i in range(1, n_moves + 1)]
    yield "K", explorer.k_slider, ks, dict(mode="lambda-return", lam=0.5, k=k_max)
    yield "ρ (λ-return)", explorer.lam_slider, lams, dict(mode="lambda-return", k=k_max)
    yield "λ (geometric)", explorer.lam_slider, lams, dict(mode="geometric", k=k_max)
    free = [round(float(v), 2) for v in rng.uniform(0.05, 1.0, n_moves)]
    yield "free weight w1", explorer.weight_sliders[0], free, dict(weights=np.ones(k_max))
    kinds = list(widgets.EXPLORER_KINDS)
    modes = [kinds[i % len(kinds)] for i in range(1, n_moves + 1)]
    yield "estimator", explorer.mode_dropdown, modes, dict(weights=np.ones(k_max), mode="k-step")


def bench_backend(backend: str, problem, args, rng) -> None:
    plt.switch_backend(BACKENDS[backend])
    start = time.perf_counter()
    explorer = widgets.MetaGradientExplorer(problem, k_max=args.k_max, n_seeds=args.n_seeds)
    build = time.perf_counter() - start
    if backend == "ipympl":
        explorer.figure.canvas.syncing_data_url = False  # as once JupyterLab has connected
    print(
        f"\n[{backend}] figure {explorer.figure.canvas.get_width_height()} px; "
        f"explorer built in {build:.1f} s (the first build compiles the sampler and references)"
    )
    print(f"  {'control':<16} {'median ms':>10} {'max ms':>8} {'full redraws':>13} {'compiles':>9}")
    for name, control, values, setup in controls(explorer, args.moves, rng):
        explorer.set(**setup)
        times, full, compiles = time_moves(explorer, control, values)
        print(
            f"  {name:<16} {median_ms(times):>10.1f} {1e3 * max(times):>8.1f} "
            f"{full:>7}/{len(times):<5} {compiles:>9}"
        )
    views = [value for _, value in explorer.view_dropdown.options]
    times, _, compiles = time_moves(
        explorer, explorer.view_dropdown, [views[i % len(views)] for i in range(1, 8)]
    )
    print(
        f"  {'histogram view':<16} {median_ms(times):>10.1f} {1e3 * max(times):>8.1f} "
        f"{'(always full)':>13} {compiles:>9}"
    )
    times = []
    for _ in range(3):
        start = time.perf_counter()
        if not explorer.new_samples():
            raise RuntimeError(explorer.message)
        times.append(time.perf_counter() - start)
    print(f"  new sample set ({args.n_seeds} seeds, compiled): median {median_ms(times):.0f} ms")


def lesson_01_estimates(n_seeds: int, b_max: int = 256):
    """Lesson 01's data: ({name: [n_seeds, b_max, 3]} batch-B estimates, exact gradient [3])."""
    p, theta = jnp.array([0.2, 0.5, 0.8]), jnp.array([0.5, 0.0, -0.5])
    exact_reward = float(bandit.expected_reward(theta, p))
    keys = jax.random.split(jax.random.key(0), n_seeds)
    pulls = jax.vmap(lambda key: bandit.sample_batch(theta, p, key, b_max))(keys)
    # A softmax policy's score: onehot(a) − π_θ.
    scores = np.asarray(jax.nn.one_hot(pulls.actions, 3) - bandit.policy_probs(theta))
    rewards = np.asarray(pulls.rewards)[..., None]
    batch_sizes = np.arange(1, b_max + 1)[:, None]
    estimates = {
        name: np.cumsum(scores * weight, axis=1) / batch_sizes
        for name, weight in (("no baseline", rewards), ("baseline", rewards - exact_reward))
    }
    return estimates, np.asarray(jax.grad(bandit.expected_reward)(theta, p))


def bench_stored_explorer(backend: str, title: str, build, sliders) -> None:
    """Time ``build()`` (an explorer over stored data) and each (name, control, values) of
    ``sliders(explorer)`` moved through its widget, against a full redraw of the same figure (a
    lower bound on what rebuilding the figure per move, as the lessons' former ``interact`` cells
    did, costs)."""
    plt.switch_backend(BACKENDS[backend])
    start = time.perf_counter()
    explorer = build()
    built = time.perf_counter() - start
    if backend == "ipympl":
        explorer.figure.canvas.syncing_data_url = False  # as once JupyterLab has connected
    print(
        f"\n[{backend}] {title}, figure {explorer.figure.canvas.get_width_height()} px, "
        f"built in {1e3 * built:.0f} ms"
    )
    for name, control, values in sliders(explorer):
        times, full, compiles = time_moves(explorer, control, values)
        print(
            f"  {name}: median {median_ms(times):.1f} ms, max {1e3 * max(times):.1f} ms, "
            f"full redraws {full}/{len(times)}, compiles {compiles}"
        )
    redraws = []
    for _ in range(5):
        start = time.perf_counter()
        explorer._canvas.full_draw()
        redraws.append(time.perf_counter() - start)
    print(f"  full redraw of the same figure: median {median_ms(redraws):.0f} ms")


def bench_batch_size(backend: str, args) -> None:
    estimates, exact = lesson_01_estimates(args.batch_seeds)
    bench_stored_explorer(
        backend,
        f"lesson 01 BatchSizeExplorer, {args.batch_seeds} seeds x B <= 256",
        lambda: widgets.BatchSizeExplorer(estimates, exact, components=(0, 2), batch_size=4),
        # Jumps, and small B.
        lambda explorer: [
            (
                "batch-size slider",
                explorer.slider,
                [1 + (7 * i) % explorer.b_max for i in range(1, args.moves + 1)],
            )
        ],
    )


def lesson_03_runs(n_seeds: int = 3, n_checkpoints: int = 12):
    """Runs shaped like lesson 03's full-size ones (6 β x 3 seeds x 12 checkpoints of one
    estimator), cut from the stored capstone runs: the explorer's cost depends on the shapes only,
    and the lesson's own runs take minutes."""
    stored = experiments.load_results(experiments.STORED_RESULTS)
    runs = {}
    for index, rate in enumerate((0.001, 0.003, 0.01, 0.03, 0.1, 0.3)):
        e = index % len(stored.estimators)
        runs[rate] = stored._replace(
            estimators=(stored.estimators[e],),
            env_steps=stored.env_steps[:n_checkpoints],
            episode_return=stored.episode_return[e : e + 1, :n_seeds, :n_checkpoints],
            hyper=stored.hyper[e : e + 1, :n_seeds, : n_checkpoints + 1],
        )
    return runs


def bench_meta_lr(backend: str, args) -> None:
    runs = lesson_03_runs()
    rates = sorted(runs)
    bench_stored_explorer(
        backend,
        "lesson 03 MetaLearningRateExplorer, 6 β x 3 seeds x 12 checkpoints",
        lambda: widgets.MetaLearningRateExplorer(runs),
        lambda explorer: [
            ("meta-lr slider", explorer.slider, [rates[i % len(rates)] for i in range(args.moves)])
        ],
    )


def bench_trial_decision(backend: str, args) -> None:
    results = experiments.load_results(experiments.STORED_RESULTS)
    n_checkpoints = results.config.n_checkpoints
    bench_stored_explorer(
        backend,
        f"lesson 07 TrialDecisionExplorer on the stored runs {results.estimators}",
        lambda: widgets.TrialDecisionExplorer(results),
        lambda explorer: [
            (
                "threshold slider",
                explorer.threshold_slider,
                [10 ** (-3 + 0.05 * ((7 * i) % 51)) for i in range(1, args.moves + 1)],
            ),
            (
                "trial slider",
                explorer.trial_slider,
                [1 + (5 * i) % n_checkpoints for i in range(1, args.moves + 1)],
            ),
        ],
    )


def bench_runs(backend: str, args) -> None:
    results = experiments.load_results(experiments.STORED_RESULTS)
    names = results.estimators
    bench_stored_explorer(
        backend,
        f"lesson 06 RunsExplorer on the stored runs {names}",
        lambda: widgets.RunsExplorer(results),
        # One run, two, ...: every move changes the choice.
        lambda explorer: [
            (
                "runs list",
                explorer.run_list,
                [names[: 1 + i % len(names)] for i in range(args.moves)],
            )
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k-max", type=int, default=8)
    parser.add_argument("--n-seeds", type=int, default=256)
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--backend", choices=["both", *BACKENDS], default="both")
    parser.add_argument("--batch-seeds", type=int, default=2000, help="lesson 01's N_SEEDS")
    args = parser.parse_args()
    print(f"device: {describe()}")
    problem = problems.make_problem("quadratic")
    rng = np.random.default_rng(0)

    samples = np.asarray(
        metagrad.sample_meta_gradients(
            problem, problem.eta0, jax.random.key(0), args.k_max, args.n_seeds
        )
    )
    moments = exact.exact_meta_gradient_moments(problem, problem.eta0, args.k_max, joint=True)
    moments = tuple(np.asarray(m) for m in moments)
    target = rng.normal(size=samples.shape[2])
    for mode in widgets.EXPLORER_KINDS:
        times = []
        for i in range(args.moves):
            start = time.perf_counter()
            lam, free = 0.05 * (i % 21), np.ones(args.k_max)
            widgets.recombine(samples, mode, lam, free, target, moments)
            times.append(time.perf_counter() - start)
        print(
            f"recombination only ({args.n_seeds} seeds x k_max={args.k_max}, every K at once), "
            f"{mode}: median {median_ms(times):.2f} ms"
        )

    for backend in BACKENDS if args.backend == "both" else [args.backend]:
        bench_backend(backend, problem, args, rng)
    for backend in BACKENDS if args.backend == "both" else [args.backend]:
        bench_batch_size(backend, args)
        bench_meta_lr(backend, args)
        bench_runs(backend, args)
        bench_trial_decision(backend, args)


if __name__ == "__main__":
    main()
