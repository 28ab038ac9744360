"""The noisy quadratic of Wu et al. (2018), *Understanding Short-Horizon Bias in Stochastic
Meta-Optimization*: SGD on a diagonal quadratic with Gaussian gradient noise.

θ ∈ R^d, curvatures h_i > 0, noise scale σ. One batch is a standard-normal draw ξ ~ N(0, I_d), and

    L(θ; ξ) = ½ Σ_i h_i θ_i² + σ ξ·θ,    ∇_θ L(θ; ξ) = h ⊙ θ + σ ξ,    E_ξ L(θ; ξ) = ½ Σ_i h_i θ_i²,

so the gradient is the true gradient plus noise σξ (the θ-free part of ½ Σ_i h_i (θ_i − c_i)², with
c_i = −σ ξ_i / h_i the sampled minimum). SGD with a learning rate α_i per coordinate:

    θ' = θ − α ⊙ (h ⊙ θ + σ ξ).

Because ξ does not depend on θ, the moments of θ evolve deterministically, coordinate by
coordinate (ξ_k is independent of θ_k):

    E θ'_i² = (1 − α_i h_i)² E θ_i² + α_i² σ²,

which gives the expected loss after any number of steps exactly (``expected_losses``).

Everything here is a pure function of arrays, safe to ``jit``, ``vmap``, ``grad`` and ``scan``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_noise(key: jax.Array, dim: int, dtype=jnp.float32) -> jax.Array:
    """ξ ~ N(0, I_dim), one batch. Returns [dim]."""
    return jax.random.normal(key, (dim,), dtype)


def noisy_loss(theta, noise, curvatures, noise_scale) -> jax.Array:
    """L(θ; ξ) = ½ Σ_i h_i θ_i² + σ ξ·θ. Shapes: θ, ξ, h [d], σ scalar -> scalar."""
    return 0.5 * jnp.sum(curvatures * theta**2) + noise_scale * jnp.dot(noise, theta)


def sgd_step(theta, noise, learning_rates, curvatures, noise_scale) -> jax.Array:
    """θ' = θ − α ⊙ (h ⊙ θ + σ ξ), one SGD step on L(·; ξ). Shapes: [d] -> [d]."""
    return theta - learning_rates * (curvatures * theta + noise_scale * noise)


def expected_losses(theta0, learning_rates, curvatures, noise_scale, horizon: int) -> jax.Array:
    """E[L(θ_k; ξ_k)] = ½ Σ_i h_i E θ_k,i² for k = 1..horizon, exact, from θ_0 = ``theta0``.

    A scan over the second moments (module doc), differentiable in every argument but
    ``horizon``. Returns: [horizon].
    """

    def step(second_moment, _):
        second_moment = (1.0 - learning_rates * curvatures) ** 2 * second_moment + (
            learning_rates * noise_scale
        ) ** 2
        return second_moment, 0.5 * jnp.sum(curvatures * second_moment)

    _, losses = jax.lax.scan(step, jnp.asarray(theta0) ** 2, None, length=horizon)
    return losses
