"""The unrolled inner loop every estimator shares, and the check of η made before it is traced.

Along one run (docs/notation.md §2): θ_k = U(θ_{k−1}, τ_{k−1}; η), τ_k drawn from π_{θ_k} (or
given), L_k = L_out(θ_k; τ_k), k = 1..k_max. ``outer_losses_along`` gives L_1..L_k_max as a
function of η, which each estimator differentiates its own way: forward or reverse mode
(``metagrad``), with the score term of the sampled batches (``score_corrected``), along a decaying
trace or by perturbing η (``estimators``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.problems.contract import MetaProblem


def check_eta(problem: MetaProblem, eta) -> jax.Array:
    """``eta`` as an [n_eta] array of the problem's float type; a clear ``ValueError`` for another
    shape or a non-finite value (a traced ``eta`` is checked for its shape only)."""
    eta = jnp.asarray(eta)
    if eta.shape != (problem.n_eta,):
        raise ValueError(
            f"eta must have shape ({problem.n_eta},) for {problem.meta_names}, got {eta.shape}"
        )
    if not isinstance(eta, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(eta))):
        raise ValueError(f"eta must be finite, got {np.asarray(eta)}")
    return eta.astype(problem.eta0.dtype)


def outer_losses_along(
    problem: MetaProblem, eta, draw, k_max: int, sampling_correction: bool = False
) -> jax.Array:
    """L_1..L_k_max along the batches ``draw(state, k) -> (τ_k, state)``, k = 0..k_max.

    With ``sampling_correction``, the pair (L_k, log P(τ_j | θ_j) for j = k − 1), both [k_max].
    """

    def step(state_batch, k):
        state, batch = state_batch
        log_p = problem.batch_log_prob(state, batch) if sampling_correction else None
        state = problem.inner_update(state, batch, eta)  # θ_k = U(θ_{k−1}, τ_{k−1}; η)
        batch, state = draw(state, k)  # τ_k
        loss = problem.outer_loss(state, batch)  # L_k = L_out(θ_k; τ_k)
        return (state, batch), (loss, log_p) if sampling_correction else loss

    batch, state = draw(problem.init_state, 0)
    return jax.lax.scan(step, (state, batch), jnp.arange(1, k_max + 1))[1]


def sampled_outer_losses(
    problem: MetaProblem, eta, key, k_max: int, sampling_correction: bool = False
) -> jax.Array:
    """``outer_losses_along`` the batches the problem samples, τ_k with ``fold_in(key, k)``."""
    draw = lambda state, k: problem.sample(state, jax.random.fold_in(key, k))  # τ_k ~ π_{θ_k}
    return outer_losses_along(problem, eta, draw, k_max, sampling_correction)


def score_corrected(losses_and_log_probs, eta, jacobian=jax.jacfwd) -> jax.Array:
    """g̃_k = dL_k/dη + L_k Σ_{j<k} d log P(τ_j | θ_j)/dη from ``eta -> (L [k], log P [k])``.

    Written out rather than through DiCE's stop-gradient surrogate: its value and derivative in η
    are the same, but a further derivative in the noise (``exact.quadratic_form_moments``) would
    see the stop-gradient's missing half.
    """

    def losses_and_scores(eta):
        losses, log_probs = losses_and_log_probs(eta)
        out = (losses, jnp.cumsum(log_probs))
        return out, out

    (d_losses, d_scores), (losses, _) = jacobian(losses_and_scores, has_aux=True)(eta)
    return d_losses + losses[:, None] * d_scores


def is_differentiable(leaf) -> bool:
    """Whether η can reach ``leaf`` (floating point): integer and key leaves are carried as is."""
    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
