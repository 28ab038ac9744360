"""Snake throughput: our wrapper against jumanji's own batched step, and the trainer's speed.

    .venv/bin/python benchmarks/envs.py [--grid 6] [--n-envs 64] [--n-steps 1000] [--repeats 7]

Every rollout is one compiled ``lax.scan`` of uniformly random actions over the same grid, number
of boards and steps:

- raw: ``jumanji.wrappers.VmapAutoResetWrapper(Snake).step``, its timestep kept in the carry;
- raw + flatten: the same, also flattening the observation into the flat vector an MLP reads
  (``flatten_observation``), which is what any agent on raw jumanji has to add;
- ours: ``make_snake(...).step`` (flat observation, episode-return bookkeeping).

The rollouts are timed in turn, round after round, so that a busy machine slows them alike; each
figure is the median over ``--repeats`` rounds, after one compiling call each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jumanji.wrappers
from jumanji.environments import Snake

from course_lib.agents import TrainConfig, default_hyper, make_train
from course_lib.device import describe
from course_lib.envs.snake import N_ACTIONS, flatten_observation, make_snake


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each ``fn()`` over ``repeats`` rounds (one compiling call first)."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def random_actions(key: jax.Array, n_envs: int) -> jax.Array:
    return jax.random.randint(key, (n_envs,), 0, N_ACTIONS)


def compiled_rollout(init: Callable, step: Callable, n_envs: int, n_steps: int):
    """``() -> final carry`` of a jitted scan of ``carry = step(carry, random actions)``."""

    @jax.jit
    def run(key):
        reset_key, run_key = jax.random.split(key)

        def body(carry, step_key):
            return step(carry, random_actions(step_key, n_envs)), None

        return jax.lax.scan(body, init(reset_key), jax.random.split(run_key, n_steps))[0]

    return lambda: run(jax.random.PRNGKey(0))


def rollouts(grid: int, n_envs: int, n_steps: int, time_limit: int) -> dict[str, Callable]:
    """The three random rollouts compared (see the module docstring)."""
    raw = jumanji.wrappers.VmapAutoResetWrapper(
        Snake(num_rows=grid, num_cols=grid, time_limit=time_limit)
    )
    ours = make_snake(grid=grid, time_limit=time_limit, n_envs=n_envs)

    def raw_reset(key):
        return raw.reset(jax.random.split(key, n_envs))

    def raw_step(carry, actions):
        return raw.step(carry[0], actions)

    def flat(carry):
        state, timestep = carry
        return state, flatten_observation(timestep.observation, time_limit)

    return {
        "jumanji VmapAutoResetWrapper.step": compiled_rollout(raw_reset, raw_step, n_envs, n_steps),
        "jumanji step + flatten_observation": compiled_rollout(
            lambda key: flat(raw_reset(key)),
            lambda carry, actions: flat(raw.step(carry[0], actions)),
            n_envs,
            n_steps,
        ),
        "course_lib make_snake().step": compiled_rollout(
            ours.reset, lambda state, actions: ours.step(state, actions)[0], n_envs, n_steps
        ),
    }


def trainer(grid: int, n_envs: int, config: TrainConfig, n_seeds: int) -> Callable[[], object]:
    """The compiled actor-critic trainer, ``vmap``-ed over ``n_seeds`` keys."""
    env = make_snake(grid=grid, n_envs=n_envs)
    train = jax.jit(jax.vmap(make_train(env, config), in_axes=(0, None)))
    keys = jax.random.split(jax.random.PRNGKey(0), n_seeds)
    hyper = default_hyper()
    return lambda: train(keys, hyper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=6)
    parser.add_argument("--n-envs", type=int, default=64)
    parser.add_argument("--n-steps", type=int, default=1000, help="steps of each random rollout")
    parser.add_argument("--time-limit", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-updates", type=int, default=300, help="trainer updates per call")
    parser.add_argument("--rollout-len", type=int, default=10)
    parser.add_argument("--n-seeds", type=int, default=1, help="trainer runs vmapped together")
    args = parser.parse_args()

    print(describe())
    print(
        f"Snake {args.grid}x{args.grid}, {args.n_envs} boards x {args.n_steps} random steps, "
        f"median of {args.repeats} rounds"
    )
    seconds = median_seconds(
        rollouts(args.grid, args.n_envs, args.n_steps, args.time_limit), args.repeats
    )
    raw, flattened, ours = seconds.values()
    for name, s in seconds.items():
        print(f"  {name:36s} {args.n_envs * args.n_steps / s:12,.0f} steps/s")
    print(f"  ours / raw           = {ours / raw:.3f} (overhead {100 * (ours / raw - 1):+.1f}%)")
    print(f"  ours / raw + flatten = {ours / flattened:.3f}")

    config = TrainConfig(n_updates=args.n_updates, rollout_len=args.rollout_len)
    (seconds,) = median_seconds(
        {"train": trainer(args.grid, args.n_envs, config, args.n_seeds)}, args.repeats
    ).values()
    updates = args.n_seeds * args.n_updates
    env_steps = updates * args.rollout_len * args.n_envs
    print(
        f"Trainer: {args.n_seeds} seed(s) x {args.n_updates} updates of {args.n_envs} boards x "
        f"{args.rollout_len} steps, median {seconds:.2f} s per call"
    )
    print(f"  {updates / seconds:,.0f} updates/s, {env_steps / seconds:,.0f} env steps/s")


if __name__ == "__main__":
    main()
