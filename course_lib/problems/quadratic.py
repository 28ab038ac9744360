"""The noisy quadratic of Wu et al. (2018): a meta-problem with Gaussian exact references."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from course_lib.checks import check_int, check_positive
from course_lib.envs import quadratic
from course_lib.problems.contract import GaussianHooks, MetaProblem, records_settings


@records_settings
def quadratic_problem(
    curvatures: tuple[float, ...] = (1.0, 0.1),
    learning_rate: float = 0.2,
    noise: float = 0.4,
    theta0: tuple[float, ...] = (1.0, 3.0),
    k_max: int = 8,
    horizon: int = 100,
) -> MetaProblem:
    """The noisy quadratic of Wu et al. (2018): a toy where the myopic meta-gradient misleads.

    θ ∈ R^d with curvatures h (``envs.quadratic``); one batch is ξ ~ N(0, I_d). Inner update: one
    SGD step on L(θ; ξ) = ½ Σ_i h_i θ_i² + σ ξ·θ with a learning rate per coordinate,

        θ' = θ − α ⊙ (h ⊙ θ + σ ξ),    α_i = exp(η_i),

    outer loss L(θ_k; ξ_k) on the next batch (its expectation is ½ Σ_i h_i θ_k,i²). The noise does
    not depend on θ, so E[g_k] = g*_k; the exact references are Gaussian (``GaussianHooks``):
    g*_k for any horizon from the second-moment recursion, the moments of g_1..g_k from quadratic
    forms in the noise (docs/notation.md §5).

    Args:
      curvatures: h_i > 0, one per coordinate (meta-parameter i is log α_i of coordinate i).
      learning_rate: every α_i at ``eta0``.
      noise: σ >= 0, the gradient noise's standard deviation per coordinate.
      theta0: θ_0, one value per coordinate.
      k_max: the largest K the lessons look ahead (recorded in ``settings``, used by no function).
      horizon: H, the long horizon whose g*_H is the fixed target (recorded likewise).

    Why these defaults (searched over curvatures, noise, learning rate, θ_0 and H): a steep
    coordinate (h = 1) far from its minimum and a shallow one (h = 0.1) farther still. Over a few
    steps the steep coordinate's progress dominates, and g_1 asks for a larger step there; by
    H = 100 it has long sat at its noise floor, where a smaller step is better, while the shallow
    one (time constant 1/(αh) = 50 steps) is still learning, and its progress dominates g*_H. So
    E[g_1] points away from g*_H and, as k grows to k_max = 8, exactly:

        cos(E g_k, g*_H)   −0.28 (k = 1) rising at every k to +0.69 (k = 8)
        SNR of g_k          2.0  (k = 1) falling at every k to  0.22 (k = 8)
        right_direction     19%  (k = 1) rising to 66% (k = 8, sampled)
        scale_free_mse      1.0 for k <= 4, 0.915 at k = 8; the optimal mix of g_6..g_8: 0.88

    The window for H is real: at H ≳ 150 the shallow coordinate has converged too, and every
    target asks for smaller steps. tests/test_quadratic.py checks these properties.
    """
    h = np.asarray(curvatures, dtype=float)
    if h.ndim != 1 or h.size < 1 or not np.all(np.isfinite(h) & (h > 0)):
        raise ValueError(f"curvatures must list at least one finite value > 0, got {curvatures!r}")
    check_positive("learning_rate", learning_rate, " (it is learnt through exp)")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    theta0_arr = np.asarray(theta0, dtype=float)
    if theta0_arr.shape != h.shape or not np.all(np.isfinite(theta0_arr)):
        raise ValueError(
            f"theta0 must hold one finite value per curvature ({h.size}), got {theta0!r}"
        )
    k_max = check_int("k_max", k_max)
    horizon = check_int("horizon", horizon, minimum=k_max)

    dtype = jnp.zeros(()).dtype
    h_, theta0_ = jnp.asarray(h, dtype), jnp.asarray(theta0_arr, dtype)
    noise_ = jnp.asarray(noise, dtype)

    def sample(theta, key):
        return quadratic.sample_noise(key, h.size, dtype), theta

    def inner_update(theta, xi, eta):
        return quadratic.sgd_step(theta, xi, jnp.exp(eta), h_, noise_)

    def outer_loss(theta, xi):
        return quadratic.noisy_loss(theta, xi, h_, noise_)

    def expected_losses(eta, horizon):
        return quadratic.expected_losses(theta0_, jnp.exp(eta), h_, noise_, horizon)

    return MetaProblem(
        name="quadratic",
        meta_names=tuple(f"log_learning_rate_{i}" for i in range(h.size)),
        eta0=jnp.full(h.size, np.log(learning_rate), dtype),
        init_state=theta0_,
        sample=sample,
        inner_update=inner_update,
        outer_loss=outer_loss,
        hyper_parameters=jnp.exp,
        exact=GaussianHooks(noise_shape=(h.size,), expected_losses=expected_losses),
        outer_loss_is_cost=True,
        # the noise's density: no θ in it, so the sampling correction is zero here
        batch_log_prob=lambda theta, xi: -0.5 * jnp.sum(xi**2 + jnp.log(2 * jnp.pi)),
    )
