"""Lessons 01–02's checks: policy gradients, returns and the actor-critic loss.

The references are ``course_lib.reinforce`` and ``course_lib.agents``, so an exercise and the
library always mean the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import agents, reinforce
from course_lib.grading.core import Comparison, graded
from course_lib.grading.inputs import (
    discount_factor,
    discounts,
    f32,
    logits_and_actions,
    numbers,
    rewards_and_gamma,
)

# Jitted: each new input shape compiles once per session.
_reference_reward_to_go = jax.jit(reinforce.reward_to_go)
_reference_discounted_returns = jax.jit(agents.discounted_returns)
_reference_lambda_returns = jax.jit(agents.lambda_returns)


@jax.jit
def _reference_log_prob_gradient(logits, action):
    return jax.grad(lambda z: jax.nn.log_softmax(z)[action])(logits)


@jax.jit
def _reference_reinforce_loss(logits, actions, returns, baseline):
    return agents.policy_gradient_loss(logits, actions, returns - baseline)


@jax.jit
def _reference_actor_critic_loss(logits, actions, values, returns, value_cost, entropy_cost):
    return agents.actor_critic_loss(logits, actions, values, returns, value_cost, entropy_cost)[0]


def _with_gradient(loss_fn: Callable[..., Any], argnums: tuple[int, ...]) -> Callable[..., Any]:
    """``args -> the gradient of loss_fn w.r.t. args[argnums]``, flattened into one vector."""

    def gradient(*args):
        grads = jax.grad(loss_fn, argnums=argnums)(*args)
        return jnp.concatenate([jnp.ravel(g) for g in grads])

    return gradient


# The actor-critic check compares the gradient with respect to (logits, values) too.
_ACTOR_CRITIC_ARGNUMS = (0, 2)
_reference_actor_critic_gradient = jax.jit(
    _with_gradient(_reference_actor_critic_loss, _ACTOR_CRITIC_ARGNUMS)
)


# --------------------------------------------------------------------------------------------
# Lesson 01: policy gradients


@graded("1.1")
def check_log_prob_gradient(rng) -> Comparison:
    """Exercise 1.1: ``log_prob_gradient(logits, action) -> [A]``, the score function of a softmax.

    ``∇_logits log π(a) = onehot(a) − softmax(logits)`` where ``π = softmax(logits)``; derive it by
    hand (the check compares with ``jax.grad``).

    Args (of the learner's function):
      logits: ``[A]`` float32.
      action: int32 scalar array in ``[0, A)``.

    Returns: ``[A]``.
    """
    n_actions = int(rng.integers(2, 6))
    return Comparison(
        _reference_log_prob_gradient,
        lambda rng: {
            "logits": numbers(rng, (n_actions,)),
            "action": np.int32(rng.integers(n_actions)),
        },
        hint="log π(a) = logits[a] − log Σ_b exp(logits[b]), so its gradient is onehot(a) − π "
        "(it sums to zero)",
        edge_cases=[
            {"logits": f32([0.0, 0.0]), "action": np.int32(1)},
            {"logits": f32([1.0, 2.0, 3.0]), "action": np.int32(0)},
        ],
    )


@graded("1.2")
def check_reward_to_go(rng) -> Comparison:
    """Exercise 1.2: ``reward_to_go(rewards, gamma) -> [T]`` for one whole episode.

    The same signature as ``course_lib.reinforce.reward_to_go`` (its reference).

    ``G_t = Σ_{t' ≥ t} γ^(t'−t) r_t'``: the discounted rewards from step t on (an action cannot
    change rewards that came before it). Recursively ``G_t = r_t + γ G_{t+1}``, ``G_T = 0``.

    Args (of the learner's function):
      rewards: ``[T]`` float32, ``r_t`` is the reward received after the action at step t.
      gamma: Python float in [0, 1].

    Returns: ``[T]``.
    """
    # The same form as exercise 0.1's check, as data: another reference, hint and edge cases.
    return Comparison(
        _reference_reward_to_go,
        rewards_and_gamma(rng),
        hint="G_t starts with r_t itself (undiscounted) and only adds later rewards: "
        "G_t = r_t + γ G_(t+1), with nothing after the last step",
        edge_cases=[
            {"rewards": f32([1.0, 2.0, 3.0]), "gamma": 0.5},
            {"rewards": f32([1.0, 1.0]), "gamma": 0.0},
            {"rewards": f32([2.0]), "gamma": 0.9},
        ],
    )


@graded("1.3")
def check_reinforce_loss(rng) -> Comparison:
    """Exercise 1.3: ``reinforce_loss(logits, actions, returns, baseline) -> scalar``.

    The REINFORCE surrogate loss with a baseline, whose gradient is the policy-gradient estimate
    (with a minus sign, so that gradient *descent* improves the policy):
    ``L = −(1/B) Σ_i log π(a_i | s_i) · (G_i − b_i)``, with ``log π = log_softmax(logits)``.

    Args (of the learner's function):
      logits: ``[B, A]`` float32, the policy's logits for B samples.
      actions: ``[B]`` int32, the actions taken.
      returns: ``[B]`` float32, the return that followed each action.
      baseline: ``[B]`` float32, the baseline subtracted from each return.

    Returns: a scalar.
    """
    batch, n_actions = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    return Comparison(
        _reference_reinforce_loss,
        lambda rng: {
            **logits_and_actions(rng, batch, n_actions),
            "returns": numbers(rng, batch),
            "baseline": numbers(rng, batch),
        },
        hint="take log_softmax(logits) at each action taken, weight it by (return − baseline), "
        "average over the batch and put a minus sign in front",
        edge_cases=[
            {
                "logits": f32([[0.0, 0.0], [1.0, -1.0]]),
                "actions": np.asarray([0, 1], np.int32),
                "returns": f32([1.0, 2.0]),
                "baseline": f32([0.5, 0.5]),
            }
        ],
    )


# --------------------------------------------------------------------------------------------
# Lesson 02: actor-critic and returns


@graded("2.1")
def check_discounted_returns(rng) -> Comparison:
    """Exercise 2.1: ``discounted_returns(rewards, discounts, bootstrap_value, gamma) -> [T]``.

    The same signature as ``course_lib.agents.discounted_returns`` (its reference).

    Returns of a truncated rollout that may cross episode ends, bootstrapped from a value estimate:
    ``G_t = r_t + γ d_t G_{t+1}``, ``G_T = bootstrap_value``. ``d_t = 0`` when the episode ended
    with step t (then nothing after it counts), 1 otherwise.

    Args (of the learner's function):
      rewards: ``[T]`` float32, ``r_t`` received after the action at step t.
      discounts: ``[T]`` float32 in {0, 1}, ``d_t``.
      bootstrap_value: float32 scalar array, ``v(s_T)``, the value of the state after the rollout.
      gamma: Python float in [0, 1].

    Returns: ``[T]``.
    """
    length = int(rng.integers(2, 7))
    return Comparison(
        _reference_discounted_returns,
        lambda rng: {
            "rewards": numbers(rng, length),
            "discounts": discounts(rng, length),
            "bootstrap_value": numbers(rng, ()),
            "gamma": discount_factor(rng),
        },
        hint="work backwards from G = bootstrap_value with G = r_t + gamma * d_t * G, so the "
        "bootstrap is discounted too and an episode end (d_t = 0) cuts everything after step t",
        edge_cases=[
            {
                "rewards": f32([1.0, 1.0, 1.0]),
                "discounts": f32([1.0, 1.0, 1.0]),
                "bootstrap_value": np.float32(10.0),
                "gamma": 0.5,
            },
            {
                "rewards": f32([1.0, 2.0, 3.0, 4.0]),
                "discounts": f32([1.0, 0.0, 1.0, 1.0]),
                "bootstrap_value": np.float32(-2.0),
                "gamma": 0.9,
            },
            {
                "rewards": f32([1.0]),
                "discounts": f32([0.0]),
                "bootstrap_value": np.float32(5.0),
                "gamma": 0.9,
            },
        ],
    )


@graded("2.2")
def check_lambda_returns(rng) -> Comparison:
    """Exercise 2.2: ``lambda_returns(rewards, discounts, next_values, bootstrap_value, gamma, lam)
    -> [T]``, the same signature as ``course_lib.agents.lambda_returns`` (its reference).

    The λ-return mixes n-step returns with weights (1−λ)λ^(n−1):
    ``G_t = r_t + γ d_t [(1 − λ) v(s_{t+1}) + λ G_{t+1}]``, ``G_T = v(s_T)``.
    λ = 0 gives the one-step target ``r_t + γ d_t v(s_{t+1})``; λ = 1 gives the discounted return
    of exercise 2.1.

    Args (of the learner's function):
      rewards: ``[T]`` float32, ``r_t`` received after the action at step t.
      discounts: ``[T]`` float32 in {0, 1}, ``d_t`` (0 when the episode ended with step t).
      next_values: ``[T]`` float32, ``next_values[t] = v(s_{t+1})``, the value of the state each
        step led to (in a rollout ``next_values[-1]`` is usually ``bootstrap_value``).
      bootstrap_value: float32 scalar array, ``v(s_T)``, where the recursion starts.
      gamma: Python float in [0, 1].
      lam: Python float in [0, 1], λ.

    Returns: ``[T]``.
    """
    length = int(rng.integers(2, 7))
    trajectory = {
        "rewards": f32([1.0, 0.0, 2.0]),
        "discounts": f32([1.0, 1.0, 1.0]),
        "next_values": f32([2.0, 3.0, 4.0]),
        "bootstrap_value": np.float32(4.0),
    }
    return Comparison(
        _reference_lambda_returns,
        lambda rng: {
            "rewards": numbers(rng, length),
            "discounts": discounts(rng, length),
            "next_values": numbers(rng, length),
            "bootstrap_value": numbers(rng, ()),
            "gamma": discount_factor(rng),
            "lam": float(rng.choice([0.5, 0.8, 0.95])),
        },
        hint="work backwards from G = bootstrap_value with "
        "G = r_t + gamma * d_t * ((1 - lam) * next_values[t] + lam * G)",
        edge_cases=[
            {**trajectory, "gamma": 0.9, "lam": 0.0},
            {**trajectory, "gamma": 0.9, "lam": 1.0},
            {**trajectory, "discounts": f32([1.0, 0.0, 1.0]), "gamma": 0.5, "lam": 0.5},
        ],
    )


@graded("2.3")
def check_actor_critic_loss(rng) -> tuple[Comparison, Comparison]:
    """Exercise 2.3: ``actor_critic_loss(logits, actions, values, returns, value_cost,
    entropy_cost) -> scalar``, the loss an actor-critic agent minimises.

    ``L = −mean_t[log π(a_t|s_t) · sg(G_t − v_t)] + c_v · mean_t[(G_t − v_t)²]
    − c_ent · mean_t[H(π(·|s_t))]``, where ``sg`` is ``jax.lax.stop_gradient`` (the advantage
    weights the policy gradient; it is not something the policy term should change) and
    ``H(π) = −Σ_a π(a) log π(a)``. The check compares the loss and its gradient with respect to
    ``logits`` and ``values``.

    Args (of the learner's function):
      logits: ``[T, A]`` float32, policy logits at each step.
      actions: ``[T]`` int32, actions taken.
      values: ``[T]`` float32, the critic's ``v(s_t)``.
      returns: ``[T]`` float32, the targets ``G_t`` (e.g. λ-returns; constants here).
      value_cost: Python float ``c_v``.
      entropy_cost: Python float ``c_ent``.

    Returns: a scalar.
    """
    length, n_actions = int(rng.integers(2, 6)), int(rng.integers(2, 5))

    def sample(rng):
        return {
            **logits_and_actions(rng, length, n_actions),
            "values": numbers(rng, length),
            "returns": numbers(rng, length),
            "value_cost": float(rng.choice([0.25, 0.5, 1.0])),
            "entropy_cost": float(rng.choice([0.01, 0.1, 0.5])),
        }

    edge = {
        "logits": f32([[0.0, 1.0], [2.0, 0.0]]),
        "actions": np.asarray([1, 0], np.int32),
        "values": f32([0.5, 1.0]),
        "returns": f32([1.0, 2.0]),
        "value_cost": 0.5,
        "entropy_cost": 0.1,
    }
    loss = Comparison(
        _reference_actor_critic_loss,
        sample,
        hint="policy term −mean(log π(a_t) · stop_gradient(G_t − v_t)), plus value_cost · "
        "mean((G_t − v_t)²), minus entropy_cost · mean entropy (a bonus for exploring lowers the "
        "loss)",
        edge_cases=[edge],
        output_name="loss",
    )
    gradient = Comparison(
        _reference_actor_critic_gradient,
        sample,
        hint="the loss value is right but not its gradient: wrap the advantage G_t − v_t of the "
        "policy term in jax.lax.stop_gradient, so only the value term trains the critic",
        edge_cases=[edge],
        output_name="gradient with respect to (logits, values), flattened,",
        adapt=lambda learner_fn: _with_gradient(learner_fn, _ACTOR_CRITIC_ARGNUMS),
    )
    return loss, gradient
