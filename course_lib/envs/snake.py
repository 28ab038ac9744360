"""Jumanji's Snake, batched and flattened for a small MLP.

A thin layer over InstaDeep's ``jumanji`` Snake (the environment family of Bonnet et al. 2021):
``n_envs`` boards stepped together with ``vmap``, automatic reset when an episode ends, flat float
observations, and running episode returns so that training curves need no extra bookkeeping.

This is the library's one door to jumanji, and ``make_snake`` opens it: importing this module (or
the agents, which train on any such batched environment) loads no jumanji.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib


def _import_jumanji_keeping_plot_backend():
    """Import jumanji without letting it switch a notebook to ipympl.

    On import inside IPython, jumanji runs ``%matplotlib ipympl``; lessons choose their own backend
    (inline for static figures), so the one in force before the import is put back.
    """
    before = matplotlib.get_backend()
    import jumanji.wrappers
    from jumanji.environments import Snake

    if matplotlib.get_backend() != before:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and "inline" in before:
            shell.run_line_magic("matplotlib", "inline")
        else:
            matplotlib.use(before)
    return jumanji.wrappers, Snake


GRID_RANGE = (6, 12)
N_ACTIONS = 4  # up, right, down, left


def _flat(grid: jax.Array, action_mask: jax.Array, time_left: jax.Array) -> jax.Array:
    """[..., R, C, 5], [..., 4], [...] -> [..., R*C*5 + 4 + 1]."""
    planes = grid.reshape(*grid.shape[:-3], -1)
    return jnp.concatenate(
        [planes, action_mask.astype(planes.dtype), time_left[..., None].astype(planes.dtype)], -1
    )


class SnakeState(NamedTuple):
    """Batched environment state; ``obs`` [n_envs, obs_dim], ``episode_return`` [n_envs].

    The observation is kept in jumanji's parts and flattened where it is read: carrying the flat
    [n_envs, obs_dim] copy through a ``lax.scan`` made every step about 40% slower on a CPU.
    """

    env_state: Any
    grid: jax.Array
    action_mask: jax.Array
    time_left: jax.Array
    episode_return: jax.Array

    @property
    def obs(self) -> jax.Array:
        return _flat(self.grid, self.action_mask, self.time_left)


class SnakeStep(NamedTuple):
    """What one batched step returns; every field is [n_envs] (``obs`` is [n_envs, obs_dim]).

    ``discount`` is 0 where the episode ended on this step (jumanji has no truncation: the time
    limit is a termination). ``obs`` is already the first observation of the next episode there.
    ``finished_return`` holds the return of an episode that ended on this step, 0 elsewhere.
    """

    obs: jax.Array
    reward: jax.Array
    discount: jax.Array
    done: jax.Array
    finished_return: jax.Array


class SnakeEnv(NamedTuple):
    """Batched Snake: pure ``reset(key) -> state`` and ``step(state, actions) -> (state, step)``."""

    reset: Callable[[jax.Array], SnakeState]
    step: Callable[[SnakeState, jax.Array], tuple[SnakeState, SnakeStep]]
    n_envs: int
    grid: int
    time_limit: int
    obs_dim: int
    n_actions: int
    raw_env: Any  # jumanji's Snake


def flatten_observation(observation, time_limit: int) -> jax.Array:
    """Jumanji's observation -> flat float vector: the 5 feature planes, the action mask, time left.

    Shapes: grid [..., R, C, 5], action_mask [..., 4], step_count [...] -> [..., R*C*5 + 4 + 1].
    """
    return _flat(observation.grid, observation.action_mask, _time_left(observation, time_limit))


def _time_left(observation, time_limit: int) -> jax.Array:
    return 1.0 - observation.step_count.astype(jnp.float32) / time_limit


def make_snake(grid: int = 6, time_limit: int = 500, n_envs: int = 64) -> SnakeEnv:
    """Batched, jit-able Snake on a ``grid`` x ``grid`` board.

    Args:
      grid: board side, from 6 to 12 (the paper's follow-up used 6, jumanji's default is 12).
      time_limit: steps after which an episode ends (jumanji counts it as a termination).
      n_envs: boards stepped in parallel.
    Returns:
      A ``SnakeEnv`` whose ``reset`` and ``step`` are pure: safe to ``jit``, ``vmap``, ``scan``.
    """
    if not isinstance(grid, int) or not GRID_RANGE[0] <= grid <= GRID_RANGE[1]:
        low, high = GRID_RANGE
        raise ValueError(f"grid must be an integer from {low} to {high}, got {grid!r}")
    if not isinstance(time_limit, int) or time_limit < 1:
        raise ValueError(f"time_limit must be a positive integer, got {time_limit!r}")
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")

    jumanji_wrappers, Snake = _import_jumanji_keeping_plot_backend()
    raw = Snake(num_rows=grid, num_cols=grid, time_limit=time_limit)
    batched = jumanji_wrappers.VmapAutoResetWrapper(raw)
    obs_dim = grid * grid * 5 + N_ACTIONS + 1

    def state_of(env_state, observation, episode_return) -> SnakeState:
        time_left = _time_left(observation, time_limit)
        return SnakeState(
            env_state, observation.grid, observation.action_mask, time_left, episode_return
        )

    def reset(key: jax.Array) -> SnakeState:
        env_state, timestep = batched.reset(jax.random.split(key, n_envs))
        return state_of(env_state, timestep.observation, jnp.zeros(n_envs))

    def step(state: SnakeState, actions: jax.Array) -> tuple[SnakeState, SnakeStep]:
        env_state, timestep = batched.step(state.env_state, actions)
        done = timestep.last()
        running = state.episode_return + timestep.reward
        next_state = state_of(env_state, timestep.observation, jnp.where(done, 0.0, running))
        out = SnakeStep(
            obs=next_state.obs,
            reward=timestep.reward,
            discount=timestep.discount,
            done=done,
            finished_return=jnp.where(done, running, 0.0),
        )
        return next_state, out

    return SnakeEnv(reset, step, n_envs, grid, time_limit, obs_dim, N_ACTIONS, raw)


def animate_rollout(env: SnakeEnv, states: SnakeState, env_index: int = 0, interval: int = 150):
    """Animate board ``env_index`` of a stacked rollout (``states`` with a leading time axis).

    Uses jumanji's own Snake viewer; returns a matplotlib ``FuncAnimation`` (show it in a notebook
    with ``IPython.display.HTML(anim.to_jshtml())``).
    """
    n_steps = jax.tree_util.tree_leaves(states.env_state)[0].shape[0]
    frames = [
        jax.tree_util.tree_map(lambda leaf, t=t: leaf[t, env_index], states.env_state)
        for t in range(n_steps)
    ]
    return env.raw_env.animate(frames, interval=interval)
