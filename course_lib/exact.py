"""Exact references: what the sampled estimators are scored against, on problems that allow it.

- ``true_meta_gradients``: g*_k = ∇_η E[L_out(θ_k)], and g*_H for a long horizon H, the fixed
  target (docs/notation.md §4);
- ``exact_meta_gradient_paths`` and ``exact_meta_gradient_moments``: the K-step estimates g_k
  over every enumerated path, or their exact moments (docs/notation.md §5);
- ``references``: the target and the moments together where the problem allows them, else None
  (the question an explorer asks before it draws);
- ``quadratic_form_moments``: the moments of a quadratic function of standard-normal noise, which
  the Gaussian problems' references rest on. For ξ ~ N(0, I_n) and each output
  q_i(ξ) = c_i + a_iᵀξ + ½ ξᵀA_iξ (A_i symmetric),

      E q_i = c_i + ½ tr A_i,        Cov(q_i, q_j) = a_iᵀa_j + ½ tr(A_i A_j),

  since odd moments of ξ vanish and Cov(ξᵀAξ, ξᵀBξ) = 2 tr(AB). c, a and A are the value,
  gradient and Hessian at ξ = 0, which autodiff gives exactly: for a function that *is* a
  polynomial of degree at most 2 in ξ (a meta-gradient of SGD on a quadratic), the moments are
  exact, not approximations.

What a problem allows is answered by ``course_lib.problems`` (``target_refusal``,
``moments_refusal``). The exact moments of the other estimators (trace, ES) live beside them in
``course_lib.estimators``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from course_lib import unroll
from course_lib.checks import check_finite_per_step, check_int
from course_lib.problems.contract import (
    GaussianHooks,
    MetaProblem,
    check_noise_size,
    check_path_count,
    check_sampling_correction,
    moments_refusal,
    require_exact,
    target_refusal,
)


def quadratic_form_moments(fn: Callable[[jax.Array], jax.Array], dim: int, dtype=jnp.float32):
    """Mean and covariance of ``fn(ξ)`` for ξ ~ N(0, I_dim), exact when ``fn`` is quadratic in ξ.

    Args:
      fn: [dim] -> [*out], a polynomial of degree <= 2 in its argument (not checked: for any other
        function the result is the moments of its second-order Taylor expansion at 0).
      dim: the length of ξ.
    Returns: mean [*out], cov [*out, *out].
    """
    zero = jnp.zeros(dim, dtype)
    value = fn(zero)
    flat = lambda xi: fn(xi).reshape(-1)
    gradient = jax.jacfwd(flat)(zero)  # [m, dim]
    hessian = jax.jacfwd(jax.jacfwd(flat))(zero)  # [m, dim, dim]
    return _moments(value, gradient, hessian)


def _moments(value, gradient, hessian):
    """The moments of the module doc from c (``value`` [*out]), a [m, dim] and A [m, dim, dim]."""
    mean = value.reshape(-1) + 0.5 * jnp.trace(hessian, axis1=1, axis2=2)
    cov = gradient @ gradient.T + 0.5 * jnp.einsum("iab,jba->ij", hessian, hessian)
    return mean.reshape(value.shape), cov.reshape(value.shape + value.shape)


def quadratic_form_moments_from_values(
    fn: Callable[[jax.Array], jax.Array], dim: int, dtype=jnp.float32
):
    """``quadratic_form_moments`` from values of ``fn`` alone, at 0, ±e_i and e_i + e_j.

    A polynomial of degree <= 2 is fixed by those values (1 + 2 dim + dim², vmapped):

        a_i = (q(e_i) − q(−e_i)) / 2,    A_ij = q(e_i + e_j) − q(e_i) − q(e_j) + q(0),

    exactly, up to rounding. For functions whose derivatives in ξ are not those of their values:
    an estimator built with ``stop_gradient`` (e.g. the trace of ``course_lib.estimators``) has
    the right derivative in η but cuts the noise's path through θ as well, which autodiff in ξ
    would follow. Same arguments and returns as ``quadratic_form_moments``.
    """
    eye = jnp.eye(dim, dtype=dtype)
    flat = jax.vmap(lambda xi: fn(xi).reshape(-1))
    value = fn(jnp.zeros(dim, dtype))
    centre = value.reshape(-1)
    plus, minus = flat(eye), flat(-eye)  # [dim, m]
    pairs = flat((eye[:, None, :] + eye[None, :, :]).reshape(-1, dim)).reshape(dim, dim, -1)
    hessian = pairs - plus[:, None] - plus[None, :] + centre
    return _moments(value, ((plus - minus) / 2).T, jnp.moveaxis(hessian, -1, 0))


# --------------------------------------------------------------------------------------------------
# Exact references of the K-step estimator (problems with ``problem.exact``)


def _path_losses(problem: MetaProblem, eta, batches):
    """Along one enumerated path (batches [k, ...]): E[L_out(θ_j)] and log P(τ_{j−1} | θ_{j−1}),
    j = 1..k."""
    hooks = problem.exact

    def step(state, batch):
        log_p = hooks.batch_log_prob(state, batch)
        state = problem.inner_update(state, batch, eta)
        return state, (hooks.expected_outer_loss(state), log_p)

    return jax.lax.scan(step, problem.init_state, batches)[1]


@functools.partial(jax.jit, static_argnames=("problem", "k_max", "sampling_correction"))
def _exact_paths_jit(problem, eta, k_max, sampling_correction=False):
    def per_path(batches):
        losses = lambda e: _path_losses(problem, e, batches)
        log_p = jnp.sum(losses(eta)[1])
        if sampling_correction:
            return jnp.exp(log_p), unroll.score_corrected(losses, eta)
        return jnp.exp(log_p), jax.jacfwd(lambda e: losses(e)[0])(eta)

    return jax.vmap(per_path)(problem.exact.enumerate_batches(k_max))


@functools.partial(jax.jit, static_argnames=("problem", "k_max", "sampling_correction"))
def _gaussian_moments_jit(problem, eta, k_max, sampling_correction=False):
    shape = (k_max + 1, *problem.exact.noise_shape)

    def per_step(noise):  # g_1..g_k_max along the noise ξ_0..ξ_k_max: [k_max, n_eta]
        draw = lambda state, k: (noise.reshape(shape)[k], state)
        losses = lambda e: unroll.outer_losses_along(problem, e, draw, k_max, sampling_correction)
        if sampling_correction:
            return unroll.score_corrected(losses, eta)
        return jax.jacfwd(losses)(eta)

    return quadratic_form_moments(per_step, math.prod(shape), eta.dtype)


@functools.partial(jax.jit, static_argnames=("problem", "k_max"))
def _true_meta_gradients_jit(problem, eta, k_max):
    if isinstance(problem.exact, GaussianHooks):
        # The noise does not depend on η, so the exact expected losses are all there is to derive.
        return jax.jacfwd(lambda eta: problem.exact.expected_losses(eta, k_max))(eta)
    batches = problem.exact.enumerate_batches(k_max)

    def expected_losses(eta):
        # Weighting L_out(θ_k) by the whole path's probability gives E[L_out(θ_k)] for every k at
        # once: the factors of the batches after step k sum to one over their continuations, so
        # they change neither the value nor (their sum being constant) the derivative.
        losses, log_p = jax.vmap(lambda b: _path_losses(problem, eta, b))(batches)
        return jnp.exp(jnp.sum(log_p, axis=1)) @ losses

    return jax.jacfwd(expected_losses)(eta)


def exact_meta_gradient_paths(
    problem: MetaProblem, eta, k_max: int, sampling_correction: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Every sequence ω of k_max inner batches with its probability and its estimates g_1..g_k_max.

    P(ω; η) = Π_k P(τ_k | θ_k(η; ω)); g_k(ω) holds ω fixed, as the sampled estimator does. Any
    mix or statistic is then exact, e.g.
    ``stats.meta_gradient_stats(mixing.mix(g, w), probabilities=P)``. Enumerable problems
    only (the bandit). ``sampling_correction``: the corrected g̃_k(ω) of
    ``k_step_meta_gradients``, whose mean over ω is ``true_meta_gradients``.

    Returns: probabilities [n_paths] (summing to 1), per_step [n_paths, k_max, n_eta], with
    n_paths = (2·n_arms)^(batch_size·k_max) for the bandit.
    """
    check_int("k_max", k_max)
    check_path_count(problem, k_max)
    sampling_correction = check_sampling_correction(problem, sampling_correction)
    return _paths(problem, unroll.check_eta(problem, eta), int(k_max), sampling_correction)


def _paths(problem: MetaProblem, eta, k_max: int, sampling_correction: bool):
    """``exact_meta_gradient_paths`` on checked arguments."""
    prob, per_step = _exact_paths_jit(problem, eta, k_max, sampling_correction)
    return prob, check_finite_per_step("exact meta-gradient", per_step)


def exact_meta_gradient_moments(
    problem: MetaProblem, eta, k_max: int, joint: bool = False, sampling_correction: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Exact mean and covariance of g_1..g_k_max (docs/notation.md §5).

    Enumerable problems (the bandit), over every sequence ω of inner batches:

        E[g_k] = Σ_ω P(ω; η) g_k(ω),  Cov[g_k, g_j] = Σ_ω P(ω; η) (g_k(ω) − E g_k)(g_j(ω) − E g_j)ᵀ.

    Gaussian problems (the quadratic): each component of g_k is a quadratic form in the noise
    ξ = (ξ_0..ξ_k_max), whose moments follow from its value, gradient and Hessian at ξ = 0
    (``quadratic_form_moments``). One compiled function per (problem, k_max).

    Args:
      joint: also the covariances across steps, so that the moments of any mix are exact
        (``mixing.mix_moments``, ``mixing.optimal_mixing_weights``).
      sampling_correction: the moments of the corrected g̃_k of ``k_step_meta_gradients`` (mean
        g*_k); on Gaussian problems the correction is zero.
    Returns: mean [k_max, n_eta] and cov [k_max, n_eta, n_eta] (Cov[g_k]), or with ``joint`` the
    cov [k_max, n_eta, k_max, n_eta] with Cov[g_k, g_j] at [k−1, :, j−1, :].
    """
    check_int("k_max", k_max)
    sampling_correction = check_sampling_correction(problem, sampling_correction)
    if isinstance(require_exact(problem), GaussianHooks):
        check_noise_size(problem, k_max)
    else:
        check_path_count(problem, k_max)
    eta = unroll.check_eta(problem, eta)
    return _moments_of_g(problem, eta, int(k_max), joint, sampling_correction)


def _moments_of_g(problem: MetaProblem, eta, k_max: int, joint: bool, sampling_correction: bool):
    """``exact_meta_gradient_moments`` on checked arguments."""
    if isinstance(problem.exact, GaussianHooks):
        mean, cov = _gaussian_moments_jit(problem, eta, k_max, sampling_correction)
        check_finite_per_step("exact meta-gradient", mean)
        return mean, cov if joint else jnp.einsum("kekf->kef", cov)
    prob, per_step = _paths(problem, eta, k_max, sampling_correction)
    mean = jnp.einsum("p,pke->ke", prob, per_step)
    centred = per_step - mean
    spec = "p,pke,pjf->kejf" if joint else "p,pke,pkf->kef"
    return mean, jnp.einsum(spec, prob, centred, centred)


def true_meta_gradients(problem: MetaProblem, eta, k_max: int) -> jax.Array:
    """g*_k = ∇_η E_ω[L_out(θ_k(η; ω))] for k = 1..k_max: the gradients the k-step estimators
    approximate, and g*_H for a long horizon H the fixed target they are scored against.

    Enumerable problems differentiate Σ_ω P(ω; η) E[L_out(θ_k(η; ω))], P too, so g*_k equals
    E[g_k] only for k = 1; one enumeration of the k_max-step paths serves every k. Gaussian
    problems differentiate the exact expected losses (the noise does not depend on η, so
    g*_k = E[g_k] for every k): a scan over k_max steps, fast for horizons in the thousands.

    Returns: [k_max, n_eta].
    """
    return _true_meta_gradients_jit(*_checked_horizon(problem, eta, "k_max", k_max))


def true_meta_gradient(problem: MetaProblem, eta, k: int) -> jax.Array:
    """g*_k alone, for any horizon k (see ``true_meta_gradients``). Returns: [n_eta]."""
    return _true_meta_gradients_jit(*_checked_horizon(problem, eta, "k", k))[-1]


def _checked_horizon(problem: MetaProblem, eta, name: str, k) -> tuple[MetaProblem, jax.Array, int]:
    """(problem, eta, k) for ``_true_meta_gradients_jit``, with k named ``name`` in messages."""
    k = check_int(name, k)
    if not isinstance(require_exact(problem), GaussianHooks):
        check_path_count(problem, k)
    return problem, unroll.check_eta(problem, eta), k


class References(NamedTuple):
    """The exact references an explorer scores its samples against (``references``).

    ``target``: g*_horizon [n_eta]; ``moments``: (mean [k_max, n_eta], joint cov
    [k_max, n_eta, k_max, n_eta]) of g_1..g_k_max, or None where they are too large to compute.
    """

    target: jax.Array
    moments: tuple[jax.Array, jax.Array] | None


def references(problem: MetaProblem, eta, k_max: int, horizon: int) -> References | None:
    """The exact target g*_horizon and the joint moments of g_1..g_k_max, or None where the problem
    has no exact target at that horizon (Snake; the bandit beyond a million paths).

    The moments are None where only they are out of reach (``problems.moments_refusal``).
    """
    k_max = check_int("k_max", k_max)
    horizon = check_int("horizon", horizon)
    if target_refusal(problem, horizon):
        return None
    eta = unroll.check_eta(problem, eta)
    target = _true_meta_gradients_jit(problem, eta, horizon)[-1]
    if moments_refusal(problem, k_max):
        return References(target, None)
    return References(
        target, _moments_of_g(problem, eta, k_max, joint=True, sampling_correction=False)
    )
