"""Meta-gradient estimators beyond the K-step family, on the same problems and in the same layout.

Like ``metagrad.k_step_meta_gradients`` every estimator here returns one row per horizon,
[k_max, n_eta] (row k−1 estimates g*_k = ∇_η E[L_out(θ_k)], docs/notation.md §4), so prefixes,
mixes, ``stats`` and ``mixing.mix_moments`` apply unchanged:

- the **accumulating trace** of Xu et al. (2018) with decay μ (``trace_meta_gradients``): Z_k is
  replaced by a trace that forgets, z_k = μ z_{k−1} + ∂U/∂η, between g_1's one-step view (μ = 0)
  and the Hessian-free g_k (μ = 1); exact moments on the toys;
- **antithetic evolution strategies** on η (``es_meta_gradients``): finite differences of the
  losses along random directions, no derivative through learning at all, unbiased for the
  gradient of the Gaussian-smoothed objective (``smoothed_true_meta_gradients``), with exact
  moments on the quadratic (``exact_es_meta_gradient_moments``);
- ``estimator_cost``: what one estimate costs, to compare estimators at equal compute.

The sampling correction (DiCE) is an option of ``metagrad``'s own estimators:
``sampling_correction=True``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import exact, metagrad, problems, unroll
from course_lib.checks import check_choice, check_finite_per_step, check_int, check_unit_interval
from course_lib.problems import GaussianHooks, MetaProblem

MAX_QUADRATURE_NODES = 2**16
ESTIMATOR_COSTS = ("k_step", "trace", "es")
JVP_COST = 2.0

# --------------------------------------------------------------------------------------------------
# The accumulating trace (Xu et al. 2018)


@functools.lru_cache(maxsize=32)
def _trace_problem(problem: MetaProblem) -> MetaProblem:
    """``problem`` with the inner update U(⊥θ, τ; η) + μ (θ − ⊥θ) (⊥ = stop_gradient).

    Its value is U's, so the states, batches and losses are the original ones; its derivative is
    the trace's recursion dθ_k/dη = μ dθ_{k−1}/dη + ∂U/∂η. μ rides along as an extra last
    meta-parameter, so that changing it recompiles nothing (its own column, always zero, is
    dropped by the callers). Cached, so ``metagrad``'s compiled functions are reused.
    """

    def inner_update(state, batch, eta_and_decay):
        eta, decay = eta_and_decay[:-1], eta_and_decay[-1]
        frozen = jax.tree.map(
            lambda x: jax.lax.stop_gradient(x) if unroll.is_differentiable(x) else x, state
        )
        new = problem.inner_update(frozen, batch, eta)
        forget = lambda n, s: n + decay.astype(s.dtype) * (s - jax.lax.stop_gradient(s))
        return jax.tree.map(
            lambda n, s: forget(n, s) if unroll.is_differentiable(s) else n, new, state
        )

    hooks = problem.exact
    if isinstance(hooks, GaussianHooks):
        expected = hooks.expected_losses
        hooks = hooks._replace(expected_losses=lambda eta, horizon: expected(eta[:-1], horizon))
    return dataclasses.replace(
        problem,
        meta_names=(*problem.meta_names, "trace_decay"),
        eta0=jnp.append(problem.eta0, 0.0),
        inner_update=inner_update,
        hyper_parameters=lambda eta: problem.hyper_parameters(eta[:-1]),
        exact=hooks,
    )


def _with_decay(problem: MetaProblem, eta, decay) -> jax.Array:
    eta = unroll.check_eta(problem, eta)
    return jnp.append(eta, jnp.asarray(check_unit_interval("decay", decay), eta.dtype))


def trace_meta_gradients(problem: MetaProblem, eta, key: jax.Array, k_max: int, decay) -> jax.Array:
    """The accumulating-trace meta-gradients t_1..t_k_max along one run (Xu et al. 2018):

        t_k = ∇_θ L_out(θ_k; τ_k)ᵀ z_k,    z_k = μ z_{k−1} + ∂U/∂η(θ_{k−1}, τ_{k−1}; η),  z_0 = 0,

    i.e. g_k with ∂U/∂θ replaced by μ·I in the recursion for Z_k (docs/notation.md §2). μ = 0:
    t_k is the one-step meta-gradient at θ_{k−1} (t_1 = g_1); μ = 1: the Hessian-free g_k. The
    batches are those of ``metagrad.k_step_meta_gradients`` with the same key (paired).

    Args:
      decay: μ in [0, 1]; a traced value is fine (no recompile per μ).
    Returns: [k_max, n_eta]; row k−1 is t_k.
    """
    check_int("k_max", k_max)
    eta = _with_decay(problem, eta, decay)
    return metagrad.k_step_meta_gradients(_trace_problem(problem), eta, key, k_max)[:, :-1]


def sample_trace_meta_gradients(
    problem: MetaProblem, eta, key: jax.Array, k_max: int, decay, n_seeds: int
) -> jax.Array:
    """``trace_meta_gradients`` for ``n_seeds`` seeds, seed i on ``fold_in(key, i)`` (the seeds of
    ``metagrad.sample_meta_gradients``, so the two are paired). Returns: [n_seeds, k_max, n_eta].
    """
    check_int("k_max", k_max)
    eta = _with_decay(problem, eta, decay)
    samples = metagrad.sample_meta_gradients(_trace_problem(problem), eta, key, k_max, n_seeds)
    return samples[..., :-1]


@functools.partial(jax.jit, static_argnames=("problem", "k_max"))
def _trace_gaussian_moments_jit(problem, eta, k_max):
    shape = (k_max + 1, *problem.exact.noise_shape)
    trace = _trace_problem(problem)

    def per_step(noise):  # t_1..t_k_max along the noise ξ_0..ξ_k_max: [k_max, n_eta]
        draw = lambda state, k: (noise.reshape(shape)[k], state)
        losses = lambda e: unroll.outer_losses_along(trace, e, draw, k_max)
        return jax.jacfwd(losses)(eta)[:, :-1]

    return exact.quadratic_form_moments_from_values(per_step, math.prod(shape), eta.dtype)


def exact_trace_meta_gradient_moments(
    problem: MetaProblem, eta, k_max: int, decay, joint: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Exact mean and covariance of t_1..t_k_max (``trace_meta_gradients``), as
    ``exact.exact_meta_gradient_moments`` gives them for g_k (docs/notation.md §5): by
    enumeration on the bandit; on the quadratic t_k is a product of two affine functions of the
    noise (the outer gradient and z_k), so the moments of that quadratic form are exact. (They
    come from values at a few noise points, ``exact.quadratic_form_moments_from_values``: the
    trace's stop-gradient holds the right derivative in η, not in the noise.)

    Returns: mean [k_max, n_eta], cov [k_max, n_eta, n_eta] or, with ``joint``,
    [k_max, n_eta, k_max, n_eta].
    """
    check_int("k_max", k_max)
    eta = _with_decay(problem, eta, decay)
    if isinstance(problems.require_exact(problem), GaussianHooks):
        problems.check_noise_size(problem, k_max)
        mean, cov = _trace_gaussian_moments_jit(problem, eta, int(k_max))
        check_finite_per_step("exact trace meta-gradient", mean)
        return mean, cov if joint else jnp.einsum("kekf->kef", cov)
    mean, cov = exact.exact_meta_gradient_moments(_trace_problem(problem), eta, k_max, joint)
    return mean[:, :-1], cov[:, :-1, :, :-1] if joint else cov[:, :-1, :-1]


# --------------------------------------------------------------------------------------------------
# Antithetic evolution strategies


def _require_cost(problem: MetaProblem):
    if not problem.outer_loss_is_cost:
        raise ValueError(
            f"problem {problem.name!r} has outer_loss_is_cost=False: its outer loss is a surrogate "
            "built for its gradient, and evolution strategies need the cost's value (the bandit "
            "and the quadratic have it)"
        )


def _check_sigma(sigma):
    if not isinstance(sigma, jax.core.Tracer) and not (np.ndim(sigma) == 0 and sigma > 0):
        raise ValueError(f"sigma must be a scalar > 0, got {sigma!r}")
    return sigma


def es_directions(key: jax.Array, n_pairs: int, n_eta: int, dtype) -> tuple[jax.Array, jax.Array]:
    """What ``es_meta_gradients`` draws from its key: the directions ε_1..ε_N [n_pairs, n_eta]
    and the pairs' keys [n_pairs] (each shared by both signs of its pair)."""
    direction_key, batch_key = jax.random.split(key)
    directions = jax.random.normal(direction_key, (n_pairs, n_eta), dtype)
    return directions, metagrad.seed_keys(batch_key, n_pairs)


def _es(problem, eta, key, k_max, sigma, n_pairs):
    directions, keys = es_directions(key, n_pairs, eta.shape[0], eta.dtype)

    def pair(direction, key):  # one key for both signs: common random numbers
        losses = lambda eta: unroll.sampled_outer_losses(problem, eta, key, k_max)
        return losses(eta + sigma * direction) - losses(eta - sigma * direction)

    differences = jax.vmap(pair)(directions, keys)
    return jnp.einsum("nk,ne->ke", differences, directions) / (2 * n_pairs * sigma)


_es_jit = jax.jit(_es, static_argnames=("problem", "k_max", "n_pairs"))


@functools.partial(jax.jit, static_argnames=("problem", "k_max", "n_pairs", "n_seeds"))
def _sample_es_jit(problem, eta, key, k_max, sigma, n_pairs, n_seeds):
    keys = metagrad.seed_keys(key, n_seeds)
    return jax.vmap(lambda key: _es(problem, eta, key, k_max, sigma, n_pairs))(keys)


def _check_es(problem, eta, k_max, sigma, n_pairs):
    check_int("k_max", k_max)
    check_int("n_pairs", n_pairs)
    _require_cost(problem)
    return unroll.check_eta(problem, eta), _check_sigma(sigma)


def es_meta_gradients(
    problem: MetaProblem, eta, key: jax.Array, k_max: int, sigma, n_pairs: int
) -> jax.Array:
    """Antithetic evolution strategies on η, every horizon from the same runs:

        ĝ_k = (1 / 2Nσ) Σ_{i=1}^N [L_k(η + σε_i; ω_i) − L_k(η − σε_i; ω_i)] ε_i,   ε_i ~ N(0, I),

    where L_k(η; ω) = L_out(θ_k; τ_k) is the loss of ``metagrad.prefix_outer_losses`` and ω_i its
    key, shared by both signs of pair i (common random numbers: the pair differs only through η).
    No derivative through learning is taken. E[ĝ_k] = ∇_η E_ε E[L_k(η + σε)], the gradient of
    the Gaussian-smoothed objective (``smoothed_true_meta_gradients``), for any σ > 0, with the
    batches' dependence on η included; σ → 0 gives g*_k, and Var[ĝ_k] falls as 1/N.

    Problems whose outer loss is the cost only (``outer_loss_is_cost``).

    Args:
      sigma: σ > 0, the smoothing scale (a traced value is fine: no recompile per σ).
      n_pairs: N, antithetic pairs per estimate (2N runs of k_max inner updates).
    Returns: [k_max, n_eta]; row k−1 is ĝ_k.
    """
    eta, sigma = _check_es(problem, eta, k_max, sigma, n_pairs)
    estimate = _es_jit(problem, eta, key, int(k_max), sigma, int(n_pairs))
    return check_finite_per_step("evolution-strategies estimate", estimate)


def sample_es_meta_gradients(
    problem: MetaProblem, eta, key: jax.Array, k_max: int, sigma, n_pairs: int, n_seeds: int
) -> jax.Array:
    """``es_meta_gradients`` for ``n_seeds`` seeds, seed i on ``fold_in(key, i)``.

    One compiled function per (problem, k_max, n_pairs, n_seeds). Returns: [n_seeds, k_max, n_eta].
    """
    eta, sigma = _check_es(problem, eta, k_max, sigma, n_pairs)
    check_int("n_seeds", n_seeds, minimum=2)
    samples = _sample_es_jit(problem, eta, key, int(k_max), sigma, int(n_pairs), int(n_seeds))
    return check_finite_per_step("evolution-strategies estimate", samples)


def _hermite_nodes(n_eta: int, order: int, dtype):
    """Gauss–Hermite product rule for ε ~ N(0, I_n_eta): nodes [order^n_eta, n_eta], weights."""
    x, w = np.polynomial.hermite_e.hermegauss(order)
    nodes = np.stack(np.meshgrid(*[x] * n_eta, indexing="ij"), -1).reshape(-1, n_eta)
    weights = np.prod(np.stack(np.meshgrid(*[w] * n_eta, indexing="ij"), -1), -1).reshape(-1)
    return jnp.asarray(nodes, dtype), jnp.asarray(weights / weights.sum(), dtype)


def smoothed_true_meta_gradients(
    problem: MetaProblem, eta, k_max: int, sigma, order: int = 16
) -> jax.Array:
    """∇_η E_ε E[L_out(θ_k(η + σε))], ε ~ N(0, I), k = 1..k_max: what ``es_meta_gradients``
    estimates without bias, from ``exact.true_meta_gradients`` at Gauss–Hermite nodes,

        Σ_q w_q g*_k(η + σ x_q)    (order^n_eta nodes; exact for polynomials of degree < 2·order
                                    in each coordinate, and converging fast for smooth g*).

    Exact problems only. Returns: [k_max, n_eta].
    """
    check_int("k_max", k_max)
    check_int("order", order, maximum=round(MAX_QUADRATURE_NODES ** (1 / problem.n_eta)))
    if not isinstance(problems.require_exact(problem), GaussianHooks):
        problems.check_path_count(problem, k_max)
    eta, sigma = unroll.check_eta(problem, eta), _check_sigma(sigma)
    return _smoothed_jit(problem, eta, int(k_max), sigma, int(order))


@functools.partial(jax.jit, static_argnames=("problem", "k_max", "order"))
def _smoothed_jit(problem, eta, k_max, sigma, order):
    nodes, weights = _hermite_nodes(eta.shape[0], order, eta.dtype)
    true = lambda eta: exact.true_meta_gradients(problem, eta, k_max)
    return jnp.einsum("q,qke->ke", weights, jax.vmap(true)(eta + sigma * nodes))


@functools.partial(jax.jit, static_argnames=("problem", "k_max", "order"))
def _es_gaussian_moments_jit(problem, eta, k_max, sigma, order):
    shape = (k_max + 1, *problem.exact.noise_shape)

    def losses(noise, eta):  # L_1..L_k_max along the noise ξ_0..ξ_k_max
        draw = lambda state, k: (noise.reshape(shape)[k], state)
        return unroll.outer_losses_along(problem, eta, draw, k_max)

    def difference_moments(direction):  # over ξ, of D_k = L_k(η + σε; ξ) − L_k(η − σε; ξ)
        up, down = eta + sigma * direction, eta - sigma * direction
        difference = lambda noise: losses(noise, up) - losses(noise, down)
        return exact.quadratic_form_moments(difference, math.prod(shape), eta.dtype)

    nodes, weights = _hermite_nodes(eta.shape[0], order, eta.dtype)
    means, covs = jax.vmap(difference_moments)(nodes)  # [q, k_max], [q, k_max, k_max]
    second = covs + means[:, :, None] * means[:, None, :]
    mean = jnp.einsum("q,qk,qe->ke", weights, means, nodes) / (2 * sigma)
    second = jnp.einsum("q,qkj,qe,qf->kejf", weights, second, nodes, nodes) / (4 * sigma**2)
    return mean, second - jnp.einsum("ke,jf->kejf", mean, mean)


def exact_es_meta_gradient_moments(
    problem: MetaProblem, eta, k_max: int, sigma, n_pairs: int, joint: bool = False, order: int = 16
) -> tuple[jax.Array, jax.Array]:
    """Mean and covariance of ``es_meta_gradients``' ĝ_1..ĝ_k_max on Gaussian problems.

    One pair's ĝ_k = D_k ε / 2σ, with D_k = L_k(η + σε; ξ) − L_k(η − σε; ξ) quadratic in the
    shared noise ξ (SGD on a quadratic), so its moments given ε are exact quadratic forms
    (``exact.quadratic_form_moments``); then over ε by Gauss–Hermite, ``order`` nodes a
    coordinate:

        E ĝ_k = E_ε[E_ξ(D_k) ε] / 2σ,   E ĝ_k ĝ_jᵀ = E_ε[E_ξ(D_k D_j) ε εᵀ] / 4σ²,

    and the N independent pairs divide the covariance by N (docs/notation.md §5). The quadrature
    is checked against twice the order (relative change <= 1e-6, else ``ValueError``): D_k grows
    like α^(2k) with the learning rate α = exp(η + σε), so E[D_k²] weighs directions out to
    ε ≈ 4kσ, rare ones where the inner loop diverges, and for large kσ the variance is theirs
    (at the quadratic's defaults σ <= 0.2 converges for k_max = 8, σ = 0.3 does not).

    Returns: mean [k_max, n_eta], cov [k_max, n_eta, n_eta] or, with ``joint``,
    [k_max, n_eta, k_max, n_eta].
    """
    eta, sigma = _check_es(problem, eta, k_max, sigma, n_pairs)
    if not isinstance(problems.require_exact(problem), GaussianHooks):
        raise ValueError(
            f"problem {problem.name!r} is not Gaussian: the exact moments of evolution strategies "
            "need the quadratic's noise (on the bandit, sample_es_meta_gradients)"
        )
    check_int("order", order, maximum=round(MAX_QUADRATURE_NODES ** (1 / problem.n_eta)) // 2)
    problems.check_noise_size(problem, k_max)
    mean, cov = _es_gaussian_moments_jit(problem, eta, int(k_max), sigma, int(order))
    finer = _es_gaussian_moments_jit(problem, eta, int(k_max), sigma, 2 * int(order))[1]
    change = float(jnp.max(jnp.abs(finer - cov)) / jnp.max(jnp.abs(finer)))
    if not change <= 1e-6:
        raise ValueError(
            f"the covariance of evolution strategies has not converged ({change:.1e} relative "
            f"change from order {order} to {2 * order}): rare directions where η ± σε makes the "
            "inner loop diverge dominate it; use a smaller sigma or k_max, or sample"
        )
    cov = cov / n_pairs
    return mean, cov if joint else jnp.einsum("kekf->kef", cov)


# --------------------------------------------------------------------------------------------------
# Compute


def estimator_cost(
    kind: str, k: int, n_eta: int, n_pairs: int = 1, jvp_cost: float = JVP_COST
) -> float:
    """The compute of one estimate at horizon k, in inner-update evaluations.

    The unit is one inner update U with the rollout it learns from (the forward work of one step
    of learning). A Jacobian-vector product through U, one tangent direction, counts ``jvp_cost``
    units (U already holds a gradient of the inner loss, so its jvp is a second-order product;
    about 2 is typical, and measured timings can replace it). Then:

        "k_step"  k (1 + n_eta · jvp_cost): forward mode pushes n_eta tangents through each of
                  the k updates; every prefix g_1..g_k, hence any mix, and the sampling
                  correction (one more jvp of log P, small) come from the same pass;
        "trace"   the same count from θ_0 (its jvps are through η only, not θ, so somewhat
                  cheaper); run online along a learner's own steps it costs 1 + n_eta · jvp_cost
                  per estimate, since z is carried over, where g_k needs a fresh k-step block;
        "es"      2 N k: N pairs of k-step runs, no derivatives.

    Estimators at equal compute C average m = C / cost independent estimates: divide the
    variance by m, and so multiply the SNR ‖E g‖² / tr Cov g by m. E.g. with n_eta = 2 and
    jvp_cost = 2, one g_k costs as much as N = 2.5 ES pairs at the same k.
    """
    check_choice("kind", kind, ESTIMATOR_COSTS)
    check_int("k", k)
    check_int("n_eta", n_eta)
    check_int("n_pairs", n_pairs)
    if not (math.isfinite(jvp_cost) and jvp_cost >= 0):
        raise ValueError(f"jvp_cost must be a finite number >= 0, got {jvp_cost!r}")
    if kind == "es":
        return float(2 * n_pairs * k)
    return float(k * (1 + n_eta * jvp_cost))


def variance_at_equal_compute(variance, cost: float, budget: float):
    """The variance of the mean of ``budget / cost`` independent estimates, each of variance
    ``variance`` (any shape) and cost ``cost`` (``estimator_cost``): variance · cost / budget."""
    if not (cost > 0 and budget > 0):
        raise ValueError(f"cost and budget must be > 0, got cost={cost!r}, budget={budget!r}")
    return jnp.asarray(variance) * (cost / budget)
