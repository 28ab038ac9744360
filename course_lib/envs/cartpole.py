"""Gymnasium's CartPole driven by a JAX policy: whole episodes as arrays (REINFORCE: ``reinforce``).

Lesson 01's environment loop. Gymnasium steps the environments (``n_envs`` copies of
``CartPole-v1`` in CartPole's own vectorised implementation, ``CartPoleVectorEnv``, made with
``gymnasium.make_vec``: one NumPy step moves every copy); JAX does everything that is
differentiable: the policy (one jitted call per step for all copies), its log-probabilities, the
loss, the gradient, the update. Each sample is one episode per environment, run until it ends (the
pole falls or the cart leaves the track) or reaches ``max_steps`` (500 for ``CartPole-v1``), stored
time-major in arrays padded to ``max_steps`` so that every batch has the same shapes and the jitted
loss compiles once.

Reproducibility: a sample is a function of ``(params, key)``: the key seeds both gymnasium's resets
and the action sampling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from course_lib.checks import check_int

Array = jax.Array
PolicyLogits = Callable[[object, Array], Array]

ENV_ID = "CartPole-v1"
OBS_DIM = 4
N_ACTIONS = 2  # push the cart left, push it right
MAX_STEPS = 500  # CartPole-v1's own time limit


class Episodes(NamedTuple):
    """One episode in each of B environments, time-major and padded to T = ``max_steps``.

    obs [T, B, 4]: the observation the action at step t was chosen from; actions [T, B] int32;
    rewards [T, B] (CartPole pays 1 per step, 0 in the padding); dones [T, B] bool, True on each
    episode's last step (the pole fell, or the time limit); mask [T, B] float, 1 on the steps of
    the episode and 0 in the padding after it; episode_returns [B], the sum of each episode's
    rewards (for CartPole, its length).
    """

    obs: Array
    actions: Array
    rewards: Array
    dones: Array
    mask: Array
    episode_returns: Array


@functools.partial(jax.jit, static_argnames="policy_logits")
def _sample_actions(params, obs: Array, key: Array, t: int, policy_logits: PolicyLogits) -> Array:
    """Step t's actions [B] ~ ``softmax(policy_logits(params, obs [B, 4]))``, in one call."""
    # fold_in instead of a split per step: one key per step without a host-side split.
    return jax.random.categorical(jax.random.fold_in(key, t), policy_logits(params, obs))


def make_episode_sampler(
    n_envs: int,
    max_steps: int = MAX_STEPS,
    *,
    policy_logits: PolicyLogits,
) -> Callable[[object, Array], Episodes]:
    """Build ``sample(params, key) -> Episodes``: one CartPole episode in each of ``n_envs`` envs.

    Actions are drawn from ``softmax(policy_logits(params, obs))`` with ``obs [n_envs, 4]``, one
    jitted call for all environments per step (compiled once per policy and ``n_envs``). Stepping
    stops as soon as every episode has ended; the arrays are still ``max_steps`` long. An
    environment whose episode has ended is reset by gymnasium on its next step (its data after the
    end is dropped: the padding stays zero).

    Args:
      n_envs: episodes per sample (B), each in its own copy of the environment.
      max_steps: the time limit T, from 1 to 500 (``CartPole-v1``'s own limit).
      policy_logits: ``(params, obs [B, 4]) -> logits [B, 2]``, e.g. ``agents.mlp``.
    Returns:
      ``sample(params, key) -> Episodes``; the same ``(params, key)`` gives the same episodes.
    """
    check_int("n_envs", n_envs)
    check_int("max_steps", max_steps, maximum=MAX_STEPS)
    env = gymnasium.make_vec(
        ENV_ID,
        num_envs=n_envs,
        vectorization_mode="vector_entry_point",
        max_episode_steps=max_steps,
    )

    def sample(params, key: Array) -> Episodes:
        reset_key, act_key = jax.random.split(key)
        seed = int(jax.random.randint(reset_key, (), 0, np.iinfo(np.int32).max))
        obs, _ = env.reset(seed=seed)
        buf_obs = np.zeros((max_steps, n_envs, OBS_DIM), np.float32)
        buf_actions = np.zeros((max_steps, n_envs), np.int32)
        buf_rewards = np.zeros((max_steps, n_envs), np.float32)
        buf_dones = np.zeros((max_steps, n_envs), bool)
        buf_mask = np.zeros((max_steps, n_envs), np.float32)
        running = np.ones(n_envs, bool)
        for t in range(max_steps):
            actions = np.asarray(_sample_actions(params, obs, act_key, t, policy_logits))
            buf_obs[t, running], buf_actions[t, running] = obs[running], actions[running]
            buf_mask[t] = running
            obs, rewards, terminated, truncated, _ = env.step(actions)
            buf_rewards[t] = np.where(running, rewards, 0.0)
            buf_dones[t] = running & (terminated | truncated)
            running &= ~buf_dones[t]
            if not running.any():
                break
        return Episodes(
            jnp.asarray(buf_obs),
            jnp.asarray(buf_actions),
            jnp.asarray(buf_rewards),
            jnp.asarray(buf_dones),
            jnp.asarray(buf_mask),
            jnp.asarray(buf_rewards.sum(axis=0)),
        )

    return sample
