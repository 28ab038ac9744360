"""A Bernoulli multi-armed bandit small enough to enumerate every outcome.

Arm ``a`` pays reward 1 with probability ``p[a]`` and 0 otherwise. The agent is a softmax policy
π_θ(a) = exp(θ_a) / Σ_b exp(θ_b) over ``n_arms`` logits θ. Because one pull has only ``2 n_arms``
outcomes, every sequence of pulls over a few learning steps can be listed and weighted by its exact
probability: that is what makes this toy problem an exact oracle for meta-gradient estimators
(docs/notation.md §5).

Everything here is a pure function of arrays, safe to ``jit``, ``vmap``, ``grad`` and ``scan``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.checks import check_int


class BanditBatch(NamedTuple):
    """``batch_size`` pulls: ``actions`` int32 and ``rewards`` float, both [..., batch_size]."""

    actions: jax.Array
    rewards: jax.Array


def policy_probs(theta: jax.Array) -> jax.Array:
    """π_θ = softmax(θ). Shapes: [..., n_arms] -> [..., n_arms]."""
    return jax.nn.softmax(theta, axis=-1)


def expected_reward(theta: jax.Array, p: jax.Array) -> jax.Array:
    """J(θ) = Σ_a π_θ(a) p_a, the exact expected reward of one pull. [..., n_arms] -> [...]."""
    return jnp.sum(policy_probs(theta) * p, axis=-1)


def policy_entropy(theta: jax.Array) -> jax.Array:
    """H(π_θ) = −Σ_a π_θ(a) log π_θ(a). [..., n_arms] -> [...]."""
    log_probs = jax.nn.log_softmax(theta, axis=-1)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


def sample_batch(theta: jax.Array, p: jax.Array, key: jax.Array, batch_size: int) -> BanditBatch:
    """Pull ``batch_size`` arms from π_θ and draw their Bernoulli rewards.

    θ is used as data only (``stop_gradient``): which arm gets pulled is not differentiated.
    Shapes: θ [n_arms], p [n_arms] -> actions [batch_size], rewards [batch_size].
    """
    action_key, reward_key = jax.random.split(key)
    logits = jax.lax.stop_gradient(theta)
    actions = jax.random.categorical(action_key, logits, shape=(batch_size,))
    rewards = jax.random.bernoulli(reward_key, p[actions]).astype(p.dtype)
    return BanditBatch(actions.astype(jnp.int32), rewards)


def batch_log_prob(theta: jax.Array, p: jax.Array, batch: BanditBatch) -> jax.Array:
    """log P(batch | θ) = Σ_b [log π_θ(a_b) + log p(r_b | a_b)], differentiable in θ.

    Shapes: θ [n_arms], batch fields [batch_size] -> scalar.
    """
    log_pi = jax.nn.log_softmax(theta)[batch.actions]
    p_a = p[batch.actions]
    log_reward = jnp.log(jnp.where(batch.rewards > 0.5, p_a, 1.0 - p_a))
    return jnp.sum(log_pi + log_reward)


def enumerate_batches(n_arms: int, batch_size: int, n_steps: int, dtype=jnp.float32) -> BanditBatch:
    """Every sequence of ``n_steps`` batches of ``batch_size`` pulls, one path per sequence.

    There are n_paths = (2·n_arms)^(batch_size·n_steps) of them. Returns a ``BanditBatch`` with
    fields [n_paths, n_steps, batch_size], paths in lexicographic order of (step, pull, outcome).
    """
    for name, value in (("n_arms", n_arms), ("batch_size", batch_size), ("n_steps", n_steps)):
        check_int(name, value)
    outcomes = np.array(list(itertools.product(range(n_arms), (0.0, 1.0))))  # [2 n_arms, 2]
    n_pulls = batch_size * n_steps
    index = np.indices((len(outcomes),) * n_pulls).reshape(n_pulls, -1).T  # [n_paths, n_pulls]
    picked = outcomes[index].reshape(-1, n_steps, batch_size, 2)
    return BanditBatch(
        actions=jnp.asarray(picked[..., 0], dtype=jnp.int32),
        rewards=jnp.asarray(picked[..., 1], dtype=dtype),
    )
