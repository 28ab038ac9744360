"""REINFORCE on CartPole episodes: reward-to-go, baselines, the surrogate loss and a training loop.

Lesson 01's algorithm. ``envs.cartpole`` turns gymnasium's CartPole into padded arrays of episodes;
this module does the learning on them, all in JAX (docs/notation.md, §1):

    ∇_θ J ≈ (1/B) Σ_i Σ_t ∇_θ log π_θ(a_t,i | s_t,i) (G_t,i − b_t,i)

with G_t the reward-to-go and b_t a baseline that leaves episode i out.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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
# vmap axes of a batch of episodes: the batch is axis 1 of the time-major fields, 0 of the returns.
BATCH_AXES = Episodes(1, 1, 1, 1, 1, 0)


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


@functools.partial(jax.jit, static_argnames="baseline")
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


@functools.partial(jax.jit, static_argnames="policy_logits")
def per_episode_gradients(
    params, episodes: Episodes, advantages: Array, policy_logits: PolicyLogits = mlp
) -> Array:
    """One REINFORCE gradient estimate per episode, flattened: ``[B, n_params]``.

    Their mean is the batch estimate ``∇L``; their spread is what lesson 01 measures.
    """

    def one_episode(episode: Episodes, adv: Array) -> Array:
        grads = jax.grad(reinforce_loss)(params, episode, adv, policy_logits)
        return ravel_pytree(grads)[0]

    return jax.vmap(one_episode, in_axes=(BATCH_AXES, 1))(episodes, advantages)


class ReinforceConfig(NamedTuple):
    """Settings of REINFORCE on CartPole: ``n_runs`` independent runs, trained side by side."""

    n_updates: int = 40
    n_envs: int = 16
    learning_rate: float = 0.02
    gamma: float = 0.99
    baseline: bool = True
    hidden: tuple[int, ...] = (32,)
    max_steps: int = MAX_STEPS
    n_runs: int = 1


@functools.partial(jax.jit, static_argnames="hidden")
def init_policy(key: Array, hidden: tuple[int, ...] = (32,)) -> MLPParams:
    """A CartPole policy MLP ``4 -> hidden -> 2`` with a near-uniform first policy."""
    return init_mlp(key, (OBS_DIM, *hidden, N_ACTIONS), last_layer_scale=0.01)


def split_runs(episodes: Episodes, n_runs: int) -> Episodes:
    """Episodes of ``n_runs`` runs side by side (run r's are the r-th block of the batch axis) as
    one batch per run: fields [T, n_runs·B, ...] -> [T, n_runs, B, ...], returns -> [n_runs, B].
    """
    *time_major, episode_returns = episodes
    return Episodes(
        *(x.reshape(x.shape[0], n_runs, -1, *x.shape[2:]) for x in time_major),
        episode_returns.reshape(n_runs, -1),
    )


def runs_logits(params: MLPParams, obs: Array) -> Array:
    """The MLP policies of R runs side by side, in one call: params with leading [R] axes,
    obs [R·B, 4] (run r's environments are the r-th block) -> logits [R·B, 2]."""
    n_runs = jax.tree.leaves(params)[0].shape[0]
    return jax.vmap(mlp)(params, obs.reshape(n_runs, -1, OBS_DIM)).reshape(-1, N_ACTIONS)


def train_reinforce(key: Array, config: ReinforceConfig | None = None):
    """Train ``n_runs`` CartPole policies with REINFORCE (reward-to-go, optional baseline) and Adam.

    Each update samples ``n_envs`` whole episodes per run with its current policy and takes one
    Adam step per run on ``reinforce_loss``. The runs share one vector env of ``n_runs · n_envs``
    CartPoles and one jitted policy call per step (``runs_logits``); each has its own initial
    policy, episodes and baseline. Gymnasium's stepping keeps this a Python loop; the
    initialisation and the update are jitted. The same ``(key, config)`` gives the same runs.

    Returns:
      ``(params, episode_returns)``: the final policy MLPs (leaves with a leading [n_runs] axis)
      and ``[n_runs, n_updates, n_envs]`` returns of the episodes each update was computed from.
    """
    config = ReinforceConfig() if config is None else config
    if config.n_updates < 1:
        raise ValueError(f"n_updates must be >= 1, got {config.n_updates}")
    if config.n_runs < 1:
        raise ValueError(f"n_runs must be >= 1, got {config.n_runs}")
    init_key, run_key = jax.random.split(key)
    optimizer = optax.adam(config.learning_rate)

    @jax.jit
    def init(key: Array):
        keys = jax.random.split(key, config.n_runs)
        params = jax.vmap(init_policy, in_axes=(0, None))(keys, config.hidden)
        return params, jax.vmap(optimizer.init)(params)

    def update_one(params, opt_state, episodes: Episodes):
        adv = reinforce_advantages(episodes, config.gamma, config.baseline)
        grads = jax.grad(reinforce_loss)(params, episodes, adv)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def update(params, opt_state, episodes: Episodes):
        runs = split_runs(episodes, config.n_runs)
        params, opt_state = jax.vmap(update_one, in_axes=(0, 0, BATCH_AXES))(
            params, opt_state, runs
        )
        return params, opt_state, runs.episode_returns

    sample = make_episode_sampler(
        config.n_runs * config.n_envs, config.max_steps, policy_logits=runs_logits
    )
    params, opt_state = init(init_key)
    history = []
    for step in range(config.n_updates):
        episodes = sample(params, jax.random.fold_in(run_key, step))
        params, opt_state, episode_returns = update(params, opt_state, episodes)
        history.append(np.asarray(episode_returns))
    return params, jnp.asarray(np.stack(history, axis=1))
