"""Gymnasium's CartPole driven by a JAX policy: whole episodes as arrays, and REINFORCE on them.

Lesson 01's environment loop. Gymnasium steps the environments (a vector env of ``n_envs`` copies of
``CartPole-v1``, made with ``gymnasium.make_vec``); JAX does everything that is differentiable:
the policy, its log-probabilities, the loss, the gradient, the update. Each sample is one episode
per environment, run until it ends (the pole falls or the cart leaves the track) or reaches
``max_steps`` (500 for ``CartPole-v1``), stored time-major in arrays padded to ``max_steps`` so
that every batch has the same shapes and the jitted loss compiles once.

Reproducibility: a sample is a function of ``(params, key)``: the key seeds both gymnasium's resets
and the action sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from course_lib.agents import MLPParams, discounted_returns, init_mlp, mlp, policy_gradient_loss

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


def make_episode_sampler(
    n_envs: int,
    max_steps: int = MAX_STEPS,
    policy_logits: PolicyLogits = mlp,
    vectorization_mode: str = "sync",
) -> Callable[[object, Array], Episodes]:
    """Build ``sample(params, key) -> Episodes``: one CartPole episode in each of ``n_envs`` envs.

    Actions are drawn from ``softmax(policy_logits(params, obs))`` with ``obs [n_envs, 4]``; the
    sampling step is jitted once here, so every call after the first reuses it. Stepping stops as
    soon as every episode has ended; the arrays are still ``max_steps`` long.

    Args:
      n_envs: episodes per sample (B), each in its own copy of the environment.
      max_steps: the time limit T, from 1 to 500 (``CartPole-v1``'s own limit).
      policy_logits: ``(params, obs [B, 4]) -> logits [B, 2]``; the default is ``agents.mlp``.
      vectorization_mode: gymnasium's ``"sync"`` (a ``SyncVectorEnv`` of ``n_envs`` ordinary
        environments) or ``"vector_entry_point"`` (CartPole's numpy-vectorised env, faster).
    Returns:
      ``sample(params, key) -> Episodes``; the same ``(params, key)`` gives the same episodes.
    """
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
    if not isinstance(max_steps, int) or not 1 <= max_steps <= MAX_STEPS:
        raise ValueError(f"max_steps must be an integer from 1 to {MAX_STEPS}, got {max_steps!r}")
    if vectorization_mode not in ("sync", "vector_entry_point"):
        raise ValueError(
            f"vectorization_mode must be 'sync' or 'vector_entry_point', got {vectorization_mode!r}"
        )
    env = gymnasium.make_vec(
        ENV_ID, num_envs=n_envs, vectorization_mode=vectorization_mode, max_episode_steps=max_steps
    )

    @jax.jit
    def act(params, obs: Array, key: Array, t: Array) -> Array:
        # fold_in instead of a split per step: one key per step without a host-side split.
        return jax.random.categorical(jax.random.fold_in(key, t), policy_logits(params, obs))

    def sample(params, key: Array) -> Episodes:
        reset_key, act_key = jax.random.split(key)
        seed = int(jax.random.randint(reset_key, (), 0, np.iinfo(np.int32).max))
        obs, _ = env.reset(seed=seed)  # env i is seeded with seed + i
        buf_obs = np.zeros((max_steps, n_envs, OBS_DIM), np.float32)
        buf_actions = np.zeros((max_steps, n_envs), np.int32)
        buf_rewards = np.zeros((max_steps, n_envs), np.float32)
        buf_dones = np.zeros((max_steps, n_envs), bool)
        buf_mask = np.zeros((max_steps, n_envs), np.float32)
        running = np.ones(n_envs, bool)
        for t in range(max_steps):
            actions = np.asarray(act(params, obs, act_key, t))
            # Padding stays zero: an ended episode's env is reset by gymnasium and its data dropped.
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


def reward_to_go(rewards: Array, gamma: Array | float = 1.0) -> Array:
    """``G_t = Σ_{t' ≥ t} γ^(t'−t) r_t'`` within each episode (rewards are 0 after it ends).

    Shapes: rewards [T, ...] -> [T, ...]; γ a scalar in [0, 1].
    """
    ones = jnp.ones_like(rewards)
    return discounted_returns(rewards, ones, jnp.zeros_like(rewards[0]), gamma)


def leave_one_out_baseline(returns: Array, mask: Array) -> Array:
    """``b_{t,i}``: the mean return-to-go at step t of the *other* episodes still running at t.

    Leaving episode i out makes the baseline independent of episode i's own actions, so the policy
    gradient stays unbiased; it is 0 where no other episode is running.
    Shapes: returns, mask [T, B] -> [T, B].
    """
    if returns.shape != mask.shape or returns.ndim != 2:
        raise ValueError(
            f"returns and mask must both be [T, B], got {returns.shape} and {mask.shape}"
        )
    total = jnp.sum(returns * mask, axis=1, keepdims=True) - returns * mask
    others = jnp.sum(mask, axis=1, keepdims=True) - mask
    return jnp.where(others > 0, total / jnp.maximum(others, 1.0), 0.0)


def reinforce_loss(
    params, episodes: Episodes, advantages: Array, policy_logits: PolicyLogits = mlp
) -> Array:
    """REINFORCE surrogate ``L = −(1/B) Σ_i Σ_t m_{t,i} A_{t,i} log π(a_{t,i} | s_{t,i})``.

    Its gradient is minus the policy-gradient estimate (summed over each episode's steps, averaged
    over episodes), so gradient descent on L improves the policy. ``advantages`` are data
    (reward-to-go minus a baseline); they must not depend on ``params``.
    Shapes: episodes' fields [T, B, ...], advantages [T, B] -> scalar (one episode: no B axis).
    """
    logits = policy_logits(params, episodes.obs)
    n_steps = episodes.actions.shape[0]
    # policy_gradient_loss averages over T as well; ×T turns that into a sum over each episode.
    return n_steps * policy_gradient_loss(logits, episodes.actions, episodes.mask * advantages)


def reinforce_advantages(
    episodes: Episodes, gamma: Array | float = 1.0, baseline: bool = True
) -> Array:
    """Reward-to-go ``G_t`` minus (when ``baseline``) the leave-one-out baseline, 0 in the padding.

    Shapes: episodes' fields [T, B, ...] -> [T, B].
    """
    returns = reward_to_go(episodes.rewards, gamma)
    if baseline:
        returns = returns - leave_one_out_baseline(returns, episodes.mask)
    return returns * episodes.mask


def per_episode_gradients(
    params, episodes: Episodes, advantages: Array, policy_logits: PolicyLogits = mlp
) -> Array:
    """One REINFORCE gradient estimate per episode, flattened: ``[B, n_params]``.

    Their mean is the batch estimate ``∇L``; their spread is what lesson 01 measures.
    """

    def one_episode(episode: Episodes, adv: Array) -> Array:
        grads = jax.grad(reinforce_loss)(params, episode, adv, policy_logits)
        return ravel_pytree(grads)[0]

    in_axes = (Episodes(1, 1, 1, 1, 1, 0), 1)
    return jax.vmap(one_episode, in_axes=in_axes)(episodes, advantages)


class ReinforceConfig(NamedTuple):
    """Settings of a REINFORCE run on CartPole (defaults learn in about 20 s on a laptop CPU)."""

    n_updates: int = 40
    n_envs: int = 16
    learning_rate: float = 0.02
    gamma: float = 0.99
    baseline: bool = True
    hidden: tuple[int, ...] = (32,)
    max_steps: int = MAX_STEPS


def init_policy(key: Array, hidden: tuple[int, ...] = (32,)) -> MLPParams:
    """A CartPole policy MLP ``4 -> hidden -> 2`` with a near-uniform first policy."""
    return init_mlp(key, (OBS_DIM, *hidden, N_ACTIONS), last_layer_scale=0.01)


def train_reinforce(key: Array, config: ReinforceConfig | None = None):
    """Train a CartPole policy with REINFORCE (reward-to-go, optional baseline) and Adam.

    Each update samples ``n_envs`` whole episodes with the current policy and takes one Adam step
    on ``reinforce_loss``. Gymnasium's stepping keeps this a Python loop; the update is jitted.

    Returns:
      ``(params, episode_returns)``: the final policy MLP and ``[n_updates, n_envs]`` returns of
      the episodes each update was computed from.
    """
    config = ReinforceConfig() if config is None else config
    if config.n_updates < 1:
        raise ValueError(f"n_updates must be >= 1, got {config.n_updates}")
    init_key, run_key = jax.random.split(key)
    params = init_policy(init_key, config.hidden)
    sample = make_episode_sampler(config.n_envs, config.max_steps)
    optimizer = optax.adam(config.learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def update(params, opt_state, episodes: Episodes):
        adv = reinforce_advantages(episodes, config.gamma, config.baseline)
        grads = jax.grad(reinforce_loss)(params, episodes, adv)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    history = []
    for step_key in jax.random.split(run_key, config.n_updates):
        episodes = sample(params, step_key)
        history.append(episodes.episode_returns)
        params, opt_state = update(params, opt_state, episodes)
    return params, jnp.stack(history)
