"""Meta-gradient engine speed and memory, and the same estimator in PyTorch (torch.func).

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
4. The same bandit meta-gradients (every prefix g_1..g_k_max, n_seeds seeds) in PyTorch with
   ``torch.func``: ``grad`` for the inner update, ``jacfwd`` (forward mode, as on the JAX side)
   through the k_max steps, ``vmap`` over seeds; the time per seed next to JAX's and their ratio,
   and, labelled as such, both sides unvectorised (one seed per call).

PyTorch is a benchmark-only peer (``pip install -e ".[bench]"``); without it part 4 prints one
line and is skipped.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import jax
import numpy as np

from course_lib import metagrad, mixing, problems
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
        weights = mixing.lambda_return_weights(k, rho)
        mixed = mixing.mix(samples, weights)
        meta_gradient_stats(mixed, reference[k - 1])
        meta_gradient_stats(samples, reference)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------------
# The PyTorch side: the bandit of course_lib.problems.bandit_problem, with torch.func


def torch_one_hot(actions, n_arms: int, dtype):
    """[..., n_arms] one-hot rows; by comparison, because ``one_hot`` reads its input's values,
    which ``vmap`` cannot batch."""
    import torch

    return (actions[..., None] == torch.arange(n_arms)).to(dtype)


def torch_prefix_losses(settings: dict, k_max: int, draw: Callable):
    """``losses(eta, noise)`` -> [k_max]: L_k = −J(θ_k) for k = 1..k_max, τ_k drawn at θ_k.

    ``draw(theta, noise, k)`` gives τ_k's (actions, rewards); the sampled data is held fixed (no
    gradient flows through the draw), as in ``metagrad``.
    """
    import torch
    from torch.func import grad

    p = torch.tensor(settings["p"])
    n_arms = len(settings["p"])
    # the bandit's θ_0: given, or spread evenly from +1 to −1
    given = settings["theta0"]
    theta0 = torch.linspace(1.0, -1.0, n_arms) if given is None else torch.tensor(given)

    def objective(theta, actions, rewards, entropy_cost):
        log_pi = torch.log_softmax(theta, -1)
        entropy = -(log_pi.exp() * log_pi).sum()
        chosen = torch_one_hot(actions, n_arms, theta.dtype)
        return (rewards * (chosen @ log_pi)).mean() + entropy_cost * entropy

    def losses(eta, noise):
        learning_rate, entropy_cost = eta[0].exp(), torch.nn.functional.softplus(eta[1])
        theta, out = theta0, []
        for k in range(k_max):
            actions, rewards = draw(theta, noise, k)
            theta = theta + learning_rate * grad(objective)(theta, actions, rewards, entropy_cost)
            out.append(-(torch.softmax(theta, -1) * p).sum())
        return torch.stack(out)

    return losses


def torch_uniform_draw(settings: dict):
    """``draw`` for ``torch_prefix_losses`` from noise [k_max, batch_size, 2] of uniforms: the
    action by inverse CDF of π_θ, the reward as u < p_a (no random op inside, so vmap can batch)."""
    import torch

    p = torch.tensor(settings["p"])

    def draw(theta, noise, k):
        cdf = torch.cumsum(torch.softmax(theta.detach(), -1), -1)
        actions = (noise[k, :, :1] > cdf[:-1]).sum(-1)
        chosen = torch_one_hot(actions, len(settings["p"]), p.dtype)
        return actions, (noise[k, :, 1] < chosen @ p).to(p.dtype)

    return draw


def torch_uniforms(settings: dict, k_max: int, n_seeds: int, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n_seeds, k_max, settings["batch_size"], 2, generator=generator)


def torch_matches_jax(problem, k_max: int) -> float:
    """Max |torch − JAX| on one seed, torch replaying the pulls JAX sampled."""
    import torch
    from torch.func import jacfwd

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
    losses = torch_prefix_losses(problem.settings, k_max, lambda theta, noise, k: replay[k])
    theirs = jacfwd(losses)(torch.tensor(np.array(problem.eta0)), None)
    return float(np.abs(ours - theirs.numpy()).max())


def torch_timings(problem, k_max: int, n_seeds: int, loop_seeds: int, repeats: int):
    """Seconds per seed of the same [n_seeds, k_max, 2] meta-gradients in PyTorch: vectorised
    (``vmap`` over seeds of ``jacfwd``, forward mode through the k_max steps, as the JAX side) and,
    for reference, unvectorised (the same ``jacfwd``, one seed per call in a Python loop)."""
    import torch
    from torch.func import jacfwd, vmap

    settings = problem.settings
    meta_gradients = jacfwd(torch_prefix_losses(settings, k_max, torch_uniform_draw(settings)))
    eta = torch.tensor(np.array(problem.eta0))
    batched = vmap(meta_gradients, in_dims=(None, 0))

    def vectorised(i):
        return batched(eta, torch_uniforms(settings, k_max, n_seeds, seed=i))

    _, median = first_and_median(vectorised, repeats)
    noise = torch_uniforms(settings, k_max, loop_seeds)
    meta_gradients(eta, noise[0])  # warm-up
    start = time.perf_counter()
    for seed_noise in noise:
        meta_gradients(eta, seed_noise)
    return median / n_seeds, (time.perf_counter() - start) / loop_seeds


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

    by_name = {"bandit": problems.make_problem("bandit")}
    if not args.skip_snake:
        start = time.perf_counter()
        by_name["snake"] = problems.make_problem("snake")
        seconds = time.perf_counter() - start
        print(f"make_problem('snake'), warm-up training included: {seconds:.1f} s")

    print(f"\n1. sample_meta_gradients, n_seeds={args.n_seeds}, k_max={args.k_max}")
    print(f"  {'problem':8s} {'first call':>12s} {'median':>10s} {'per seed':>10s}")
    per_seed = {}
    for name, problem in by_name.items():
        first, median = sampling(problem, args.k_max, args.n_seeds, args.repeats)
        per_seed[name] = median / args.n_seeds
        print(f"  {name:8s} {first:10.2f} s {1e3 * median:7.1f} ms {1e6 * per_seed[name]:7.1f} µs")

    print("\n2. compiled memory of one seed's k_step_meta_gradients (temporaries + outputs)")
    print(f"  {'problem':8s} {'k_max':>6s} {'forward':>12s} {'reverse':>12s}")
    for name, problem in by_name.items():
        for k_max in (10, 50, 200):
            fwd, rev = (compiled_bytes(problem, k_max, mode) for mode in ("forward", "reverse"))
            print(f"  {name:8s} {k_max:6d} {fwd / 2**10:9.1f} KiB {rev / 2**10:9.1f} KiB")

    print(f"\n3. recombination per slider move ({args.n_seeds} seeds, k_max={args.k_max})")
    for name, problem in by_name.items():
        key = jax.random.key(0)
        samples = np.asarray(
            metagrad.sample_meta_gradients(problem, problem.eta0, key, args.k_max, args.n_seeds)
        )
        reference = samples.mean(axis=0)
        seconds = recombination_seconds(samples, reference)
        print(f"  {name:8s} {1e3 * seconds:.3f} ms  (target < 5 ms)")

    if not args.skip_torch:
        torch_comparison(by_name["bandit"], args, per_seed["bandit"])


def torch_comparison(bandit, args, jax_per_seed: float) -> None:
    print(f"\n4. bandit meta-gradients, n_seeds={args.n_seeds}, k_max={args.k_max}: JAX vs PyTorch")
    try:
        import torch
    except ModuleNotFoundError:
        print('  skipped: PyTorch is not installed (pip install -e ".[bench]")')
        return
    difference = torch_matches_jax(bandit, args.k_max)
    print(
        f"  PyTorch {torch.__version__} replaying JAX's pulls: max |difference| = {difference:.1e}"
    )
    torch_vmapped, torch_loop = torch_timings(
        bandit, args.k_max, args.n_seeds, args.torch_seeds, args.repeats
    )

    def one_seed(i):
        return metagrad.k_step_meta_gradients(bandit, bandit.eta0, jax.random.key(i), args.k_max)

    _, jax_loop = first_and_median(one_seed, 50)
    rows = [
        ("JAX (jit, vmap over seeds)", jax_per_seed),
        ("PyTorch (torch.func: vmap, jacfwd)", torch_vmapped),
        ("JAX, unvectorised (one seed a call)", jax_loop),
        ("PyTorch, unvectorised (seed loop)", torch_loop),
    ]
    for label, seconds in rows:
        print(f"  {label:36s} {1e6 * seconds:10.1f} µs per seed")
    print(
        f"  ratio PyTorch / JAX = {torch_vmapped / jax_per_seed:.1f}x, both vectorised over seeds "
        f"({torch_loop / jax_loop:.1f}x unvectorised, one seed per call on each side)"
    )


if __name__ == "__main__":
    main()
