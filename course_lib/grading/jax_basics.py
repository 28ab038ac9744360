"""Lesson 00's checks: JAX for RL (``lax.scan``, ``jax.grad``, ``jax.vmap``).

The references are JAX alone, so that lesson 00 imports no environment (``course_lib.reinforce``
imports the agents, which import Snake): the discounted sum is Horner's rule, ``jnp.polyval`` over
the reversed rewards, the recursion ``G = r_t + γ G`` of ``reinforce.reward_to_go``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from course_lib.grading.core import Comparison, graded
from course_lib.grading.inputs import discount_factor, f32, numbers, rewards_and_gamma


@jax.jit
def _reference_discounted_sum(rewards, gamma):
    return jnp.polyval(rewards[::-1], gamma)


_reference_gamma_gradients = jax.jit(
    jax.vmap(jax.grad(_reference_discounted_sum, argnums=1), in_axes=(0, None))
)


@graded("0.1")
def check_discounted_sum(rng) -> Comparison:
    """Exercise 0.1: ``discounted_sum(rewards, gamma) -> scalar``, written with ``jax.lax.scan``.

    ``Σ_t γ^t r_t = r_0 + γ r_1 + γ² r_2 + ...``

    Args (of the learner's function):
      rewards: ``[T]`` float32.
      gamma: Python float in [0, 1].

    Returns: a scalar (shape ``()``).
    """
    return Comparison(
        _reference_discounted_sum,
        rewards_and_gamma(rng),
        hint="the first reward is not discounted (γ⁰ = 1), the next one is multiplied by γ, "
        "and the function returns one number",
        edge_cases=[
            {"rewards": f32([1.0, 2.0, 3.0]), "gamma": 0.5},
            {"rewards": f32([2.0]), "gamma": 0.9},
            {"rewards": f32([1.0, -1.0, 1.0]), "gamma": 1.0},
        ],
    )


@graded("0.2")
def check_gamma_gradients(rng) -> Comparison:
    """Exercise 0.2: ``gamma_gradients(rewards, gamma) -> [B]`` with ``jax.grad`` and ``jax.vmap``.

    For each of B reward sequences, the derivative of its discounted sum with respect to γ:
    ``d/dγ Σ_t γ^t r_t = Σ_t t γ^(t-1) r_t`` (how much more return a slightly longer horizon buys;
    lesson 03 tunes γ with exactly this kind of derivative).

    Args (of the learner's function):
      rewards: ``[B, T]`` float32, one reward sequence per row.
      gamma: Python float in (0, 1].

    Returns: ``[B]``, one derivative per row.
    """
    shape = (int(rng.integers(1, 5)), int(rng.integers(2, 6)))
    return Comparison(
        _reference_gamma_gradients,
        lambda rng: {"rewards": numbers(rng, shape), "gamma": discount_factor(rng)},
        hint="differentiate one sequence's discounted sum with jax.grad(..., argnums=1), "
        "then jax.vmap it over rows (in_axes=(0, None)): one derivative per row",
        edge_cases=[{"rewards": f32([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]]), "gamma": 0.5}],
    )
