"""Meta-gradient engine speed and memory, and the same estimator in a plain PyTorch loop.

    .venv/bin/python benchmarks/metagrad.py [--n-seeds 256] [--k-max 10] [--repeats 7]
                                            [--torch-seeds 32] [--skip-snake] [--skip-torch]

Prints, on this machine:
1. ``sample_meta_gradients`` (bandit and Snake, every prefix g_1..g_k_max for n_seeds seeds): the
   first call (compile + run) and the median of later calls with fresh keys.
2. Compiled memory (``memory_analysis()``: temporaries + outputs) of one seed's
   ``k_step_meta_gradients`` in forward and reverse mode at k_max = 10, 50, 200. Forward mode
   carries dθ/dη and should stay flat; reverse mode stores every step for the backward pass.
3. Recombination from the seed cache, what a widget does per slider move: λ-return weights for a
   new K, the mix, and ``meta_gradient_stats`` of the mix and of every g_k (target < 5 ms).
4. The bandit's K-step meta-gradients (all prefixes, one seed at a time) written the obvious way in
   PyTorch: a Python loop over inner steps, ``torch.func.grad`` for the inner update and
   ``torch.func.jacrev`` for dL_k/dη; the time per seed next to the JAX time per seed.

torch is a benchmark-only dependency (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import jax
import numpy as np

from course_lib import metagrad
from course_lib.device import describe
from course_lib.stats import meta_gradient_stats


def first_and_median(fn: Callable[[int], object], repeats: int) -> tuple[float, float]:
    """Seconds of ``fn(0)`` (compiles) and the median of ``fn(1..repeats)`` (fresh inputs each)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(0))
    first = time.perf_counter() - start
    times = []
    for i in range(1, repeats + 1):
        start = time.perf_counter()
        jax.block_until_ready(fn(i))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def sampling(problem, k_max: int, n_seeds: int, repeats: int) -> tuple[float, float]:
    def call(i):
        key = jax.random.key(i)
        return metagrad.sample_meta_gradients(problem, problem.eta0, key, k_max, n_seeds)

    return first_and_median(call, repeats)


def compiled_bytes(problem, k_max: int, mode: str) -> int:
    fn = functools.partial(metagrad.k_step_meta_gradients, problem, k_max=k_max, mode=mode)
    compiled = jax.jit(fn).lower(problem.eta0, jax.random.key(0)).compile()
    analysis = compiled.memory_analysis()
    return analysis.temp_size_in_bytes + analysis.output_size_in_bytes


def recombination_seconds(samples: np.ndarray, reference: np.ndarray, moves: int = 200) -> float:
    k_max = samples.shape[1]
    times = []
    for i in range(moves):
        k, rho = 1 + i % k_max, (i % 11) / 10
        start = time.perf_counter()
        weights = metagrad.lambda_return_weights(k, rho)
        mixed = metagrad.mix_meta_gradients(samples, weights)
        meta_gradient_stats(mixed, reference[k - 1])
        meta_gradient_stats(samples, reference)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------------
# The PyTorch side: the bandit of course_lib.problems.bandit_problem, written the obvious way


def torch_bandit_meta_gradients(settings: dict, eta, k_max: int, generator, replay=None):
    """[k_max, 2]: g_k = dL_k/dη for one seed, with L_k = −J(θ_k) and τ sampled from π_{θ_k}.

    ``replay``: optional [(actions, rewards)] for τ_0..τ_k_max, to compare with JAX on the same
    pulls.
    """
    import torch
    from torch.func import grad, jacrev

    p = torch.tensor(settings["p"])
    theta0 = torch.tensor(settings["theta0"])
    batch_size = settings["batch_size"]

    def objective(theta, actions, rewards, entropy_cost):
        log_pi = torch.log_softmax(theta, -1)
        entropy = -(log_pi.exp() * log_pi).sum()
        return (rewards * log_pi[actions]).mean() + entropy_cost * entropy

    def pulls(theta, k):
        if replay is not None:
            return replay[k]
        with torch.no_grad():
            probs = torch.softmax(theta, -1)
            actions = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
            rewards = torch.bernoulli(p[actions], generator=generator)
        return actions, rewards

    def prefix_losses(eta):
        learning_rate, entropy_cost = eta[0].exp(), torch.nn.functional.softplus(eta[1])
        theta, losses = theta0, []
        actions, rewards = pulls(theta, 0)
        for k in range(1, k_max + 1):
            theta = theta + learning_rate * grad(objective)(theta, actions, rewards, entropy_cost)
            losses.append(-(torch.softmax(theta, -1) * p).sum())
            actions, rewards = pulls(theta.detach(), k)
        return torch.stack(losses)

    return jacrev(prefix_losses)(torch.tensor(np.array(eta)))


def torch_matches_jax(problem, k_max: int) -> float:
    """Max |torch − JAX| on one seed, torch replaying the pulls JAX sampled."""
    import torch

    def as_torch(batch):
        return tuple(torch.tensor(np.array(x)) for x in batch)

    key = jax.random.key(123)
    batch, state = problem.sample(problem.init_state, jax.random.fold_in(key, 0))
    replay = [as_torch(batch)]
    for k in range(1, k_max + 1):  # τ_0..τ_k_max, as in metagrad's prefix structure
        state = problem.inner_update(state, batch, problem.eta0)
        batch, state = problem.sample(state, jax.random.fold_in(key, k))
        replay.append(as_torch(batch))
    ours = np.asarray(metagrad.k_step_meta_gradients(problem, problem.eta0, key, k_max))
    theirs = torch_bandit_meta_gradients(problem.settings, problem.eta0, k_max, None, replay)
    return float(np.abs(ours - theirs.numpy()).max())


def torch_seconds_per_seed(problem, k_max: int, n_seeds: int) -> float:
    import torch

    generator = torch.Generator().manual_seed(0)
    torch_bandit_meta_gradients(problem.settings, problem.eta0, k_max, generator)  # warm-up
    start = time.perf_counter()
    for _ in range(n_seeds):
        torch_bandit_meta_gradients(problem.settings, problem.eta0, k_max, generator)
    return (time.perf_counter() - start) / n_seeds


# --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-seeds", type=int, default=256)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--torch-seeds", type=int, default=32)
    parser.add_argument("--skip-snake", action="store_true")
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    print(describe())

    problems = {"bandit": metagrad.make_problem("bandit")}
    if not args.skip_snake:
        start = time.perf_counter()
        problems["snake"] = metagrad.make_problem("snake")
        seconds = time.perf_counter() - start
        print(f"make_problem('snake'), warm-up training included: {seconds:.1f} s")

    print(f"\n1. sample_meta_gradients, n_seeds={args.n_seeds}, k_max={args.k_max}")
    print(f"  {'problem':8s} {'first call':>12s} {'median':>10s} {'per seed':>10s}")
    per_seed = {}
    for name, problem in problems.items():
        first, median = sampling(problem, args.k_max, args.n_seeds, args.repeats)
        per_seed[name] = median / args.n_seeds
        print(f"  {name:8s} {first:10.2f} s {1e3 * median:7.1f} ms {1e6 * per_seed[name]:7.1f} µs")

    print("\n2. compiled memory of one seed's k_step_meta_gradients (temporaries + outputs)")
    print(f"  {'problem':8s} {'k_max':>6s} {'forward':>12s} {'reverse':>12s}")
    for name, problem in problems.items():
        for k_max in (10, 50, 200):
            fwd, rev = (compiled_bytes(problem, k_max, mode) for mode in ("forward", "reverse"))
            print(f"  {name:8s} {k_max:6d} {fwd / 2**10:9.1f} KiB {rev / 2**10:9.1f} KiB")

    print(f"\n3. recombination per slider move ({args.n_seeds} seeds, k_max={args.k_max})")
    for name, problem in problems.items():
        key = jax.random.key(0)
        samples = np.asarray(
            metagrad.sample_meta_gradients(problem, problem.eta0, key, args.k_max, args.n_seeds)
        )
        reference = samples.mean(axis=0)
        seconds = recombination_seconds(samples, reference)
        print(f"  {name:8s} {1e3 * seconds:.3f} ms  (target < 5 ms)")

    if not args.skip_torch:
        import torch

        bandit = problems["bandit"]
        print(f"\n4. bandit meta-gradients, k_max={args.k_max}: JAX vs PyTorch {torch.__version__}")
        difference = torch_matches_jax(bandit, args.k_max)
        print(f"  PyTorch replaying JAX's pulls: max |difference| = {difference:.1e}")
        torch_per_seed = torch_seconds_per_seed(bandit, args.k_max, args.torch_seeds)

        def one_seed(i):
            key = jax.random.key(i)
            return metagrad.k_step_meta_gradients(bandit, bandit.eta0, key, args.k_max)

        _, jax_one_call = first_and_median(one_seed, 50)
        print(f"  {'JAX (jit + vmap over seeds)':34s} {1e6 * per_seed['bandit']:10.1f} µs per seed")
        print(f"  {'JAX (one seed per call)':34s} {1e6 * jax_one_call:10.1f} µs per seed")
        print(f"  {'PyTorch (loop, torch.func)':34s} {1e6 * torch_per_seed:10.1f} µs per seed")
        print(
            f"  ratio PyTorch / JAX = {torch_per_seed / per_seed['bandit']:.0f}x (vmapped), "
            f"{torch_per_seed / jax_one_call:.0f}x (one seed per call)"
        )


if __name__ == "__main__":
    main()
