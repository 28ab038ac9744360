"""REINFORCE on CartPole episodes: reward-to-go, baselines, the surrogate loss and a training loop.

Lesson 01's algorithm. ``envs.cartpole`` turns gymnasium's CartPole into padded arrays of episodes;
this module does the learning on them, all in JAX (docs/notation.md, §1):

    ∇_θ J ≈ (1/B) Σ_i Σ_t ∇_θ log π_θ(a_t,i | s_t,i) (G_t,i − b_t,i)

with G_t the reward-to-go and b_t a baseline that leaves episode i out.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from course_lib.agents import MLPParams, discounted_returns, init_mlp, mlp, policy_gradient_loss
from course_lib.envs.cartpole import (
    MAX_STEPS,
    N_ACTIONS,
    OBS_DIM,
    Episodes,
    PolicyLogits,
    make_episode_sampler,
)

Array = jax.Array


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
    sample = make_episode_sampler(config.n_envs, config.max_steps, policy_logits=mlp)
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
