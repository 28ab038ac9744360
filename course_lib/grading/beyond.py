"""Lesson 08's checks: the sampling correction of DiCE and antithetic evolution strategies
(``docs/notation.md`` §2), each checked first on plain arrays, then against the library's
estimator on random toy problems (``metagrad``'s ``sampling_correction=True``,
``estimators.es_meta_gradients``).

Like lessons 03–05, the checks name the usual wrong answers (``Comparison.mistakes``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import estimators, metagrad, unroll
from course_lib.grading.core import Comparison, graded
from course_lib.grading.inputs import f32, numbers
from course_lib.grading.toy_problems import random_bandit, random_quadratic


@functools.partial(jax.jit, static_argnames=("problem", "k_max"))
def sampled_run(problem, eta, key: jax.Array, k_max: int):
    """Along the run of ``metagrad.k_step_meta_gradients`` with the same key, from one compiled
    ``jax.jacfwd``: the plain g_1..g_k_max [k_max, n_eta], the losses L_1..L_k_max [k_max]
    (``metagrad.prefix_outer_losses``) and the scores ∇_η log P(τ_j | θ_j(η)) for
    j = 0..k_max − 1 [k_max, n_eta] (τ_j trains update j + 1).

    Row 0 of the scores is zero: τ_0 is drawn by θ_0, which η has not touched yet.
    """
    run = lambda eta: unroll.sampled_outer_losses(problem, eta, key, k_max, True)
    (meta_gradients, scores), (losses, _) = jax.jacfwd(lambda eta: (run(eta),) * 2, has_aux=True)(
        eta
    )
    return meta_gradients, losses, scores


# --------------------------------------------------------------------------------------------------
# Exercise 8.1: the sampling correction


@jax.jit
def reference_sampling_correction(losses, score_gradients):
    """L_k Σ_{j<k} ∇_η log P(τ_j | θ_j), from the library's own ``unroll.score_corrected`` on
    log-probabilities linear in η with these gradients and losses constant in η (so its
    dL_k/dη is zero and only the correction is left)."""
    losses, scores = jnp.asarray(losses), jnp.asarray(score_gradients)
    linear = lambda eta: (losses, scores @ eta)
    return unroll.score_corrected(linear, jnp.zeros(scores.shape[1], scores.dtype))


def _corrected_with(sampling_correction):
    """The learner's term added to the plain g_k on a bandit run: what the library's corrected
    meta-gradient must equal. The learner's function is called on concrete arrays (it may use
    NumPy)."""

    def corrected(problem, eta, seed, k):
        plain, losses, scores = sampled_run(problem, eta, jax.random.key(seed), k)
        return plain + sampling_correction(losses, scores)

    return corrected


def _library_corrected(problem, eta, seed, k):
    key = jax.random.key(seed)
    return metagrad.k_step_meta_gradients(problem, eta, key, k, sampling_correction=True)


@graded("8.1")
def check_sampling_correction(rng) -> tuple[Comparison, Comparison]:
    """Exercise 8.1: ``sampling_correction(losses, score_gradients) -> [K, n_eta]``, the
    score-function term of DiCE that makes E[g̃_k] = g*_k (``docs/notation.md`` §2):

        c_k = L_k · Σ_{j=0}^{k−1} ∇_η log P(τ_j | θ_j),    k = 1..K,

    each L_k times the scores of every batch drawn before it (τ_{k−1} included: it trained θ_k).
    First on random arrays (reference: ``metagrad``'s own score term), then on random bandits:
    g_k + c_k must equal ``metagrad.k_step_meta_gradients(..., sampling_correction=True)``.

    Args (of the learner's function):
      losses: ``[K]``, L_1..L_K (``metagrad.prefix_outer_losses``).
      score_gradients: ``[K, n_eta]``, row j is ∇_η log P(τ_j | θ_j), j = 0..K − 1
        (``sampled_run``).

    Returns: ``[K, n_eta]``, row k − 1 is c_k.
    """
    shape = (int(rng.integers(2, 6)), int(rng.integers(1, 4)))
    losses = f32([1.0, -2.0, 0.5])
    scores = f32([[1.0, 0.0], [0.5, -1.0], [2.0, 1.0]])
    edge_cases = [
        {"losses": losses, "score_gradients": scores},
        {"losses": losses[:1], "score_gradients": scores[:1]},
    ]
    mistakes = [
        (
            lambda loss, s: loss[:, None] * jnp.sum(s, axis=0),
            "L_k depends only on the batches drawn before it: a cumulative sum over j < k "
            "(jnp.cumsum), not the sum over all K batches",
        ),
        (
            lambda loss, s: loss[:, None] * (jnp.cumsum(s, axis=0) - s),
            "include j = k − 1: τ_{k−1} (score_gradients[k − 1]) trained θ_k, so L_k depends on "
            "it; the cumulative sum is inclusive",
        ),
        (
            lambda loss, s: jnp.cumsum(s, axis=0),
            "multiply the summed scores by the loss L_k: the score-function term is L · ∇ log P",
        ),
        (
            lambda loss, s: loss[:, None] * s,
            "L_k needs the scores of every earlier batch, not only of τ_{k−1}: a cumulative sum",
        ),
        (
            lambda loss, s: -loss[:, None] * jnp.cumsum(s, axis=0),
            "the sign is flipped: ∇ E[L] = E[∇L + L ∇ log P], a plus",
        ),
    ]
    on_arrays = Comparison(
        reference_sampling_correction,
        lambda rng: {"losses": numbers(rng, shape[0]), "score_gradients": numbers(rng, shape)},
        hint="losses[:, None] * jnp.cumsum(score_gradients, axis=0)",
        edge_cases=edge_cases,
        mistakes=mistakes,
        output_name="correction",
    )
    n_arms, batch_size, k = (
        int(rng.integers(2, 4)),
        int(rng.integers(1, 3)),
        int(rng.integers(2, 5)),
    )
    problem = random_bandit(rng, n_arms, batch_size)

    def on_a_bandit(rng):
        eta = f32(np.asarray(problem.eta0) + numbers(rng, problem.n_eta) / 4)
        return {"problem": problem, "eta": eta, "seed": int(rng.integers(2**31)), "k": k}

    on_bandits = Comparison(
        _library_corrected,
        on_a_bandit,
        hint="on this bandit run g_k + your term is not the library's corrected meta-gradient; "
        "losses[:, None] * jnp.cumsum(score_gradients, axis=0)",
        n_trials=3,
        output_name="corrected meta-gradients g_k + c_k",
        adapt=_corrected_with,
    )
    return on_arrays, on_bandits


# --------------------------------------------------------------------------------------------------
# Exercise 8.2: antithetic evolution strategies


@jax.jit
def _polynomial_losses(c, a, b, e, eta):
    """c_k + a_k·η + ½ ηᵀ B_k η + e_k Σ_i η_i³ / 6 for k = 1..K: one compiled program per shape,
    not one per operation, when a learner's function calls it eagerly."""
    return c + a @ eta + 0.5 * jnp.einsum("kij,i,j->k", b, eta, eta) + e * jnp.sum(eta**3) / 6


class _PolynomialLosses:
    """L_k(η) = c_k + a_k·η + ½ ηᵀ B_k η + e_k Σ_i η_i³ / 6, k = 1..K: a deterministic loss with
    a readable repr for the messages."""

    def __init__(self, rng: np.random.Generator, k: int, n_eta: int):
        self.c, self.a, self.e = numbers(rng, k), numbers(rng, (k, n_eta)), numbers(rng, k)
        b = numbers(rng, (k, n_eta, n_eta))
        self.b = (b + np.swapaxes(b, 1, 2)) / 2

    def __call__(self, eta):
        return _polynomial_losses(self.c, self.a, self.b, self.e, eta)

    def __repr__(self):
        return f"a cubic loss_fn with K = {len(self.c)} losses (c + a·η + ½ ηᵀBη + e Σ η³/6)"


def reference_antithetic_es(loss_fn, eta, sigma, epsilons):
    """(1 / 2Nσ) Σ_i [L(η + σε_i) − L(η − σε_i)] ε_i for every loss in ``loss_fn``: [K, n_eta]."""
    losses = jax.vmap(loss_fn)
    differences = losses(eta + sigma * epsilons) - losses(eta - sigma * epsilons)  # [N, K]
    return jnp.einsum("nk,ne->ke", differences, epsilons) / (2 * epsilons.shape[0] * sigma)


_es_directions_jit = jax.jit(estimators.es_directions, static_argnums=(1, 2, 3))


def _es_with(antithetic_es):
    """The learner's estimate on ``estimators.es_meta_gradients``' own directions and keys: the
    mean over pairs of one-pair estimates, each with its pair's common random numbers."""

    def es(problem, eta, seed, k, sigma, n_pairs):
        epsilons, keys = _es_directions_jit(jax.random.key(seed), n_pairs, eta.shape[0], eta.dtype)
        pairs = [
            antithetic_es(
                lambda e, key=key: metagrad.prefix_outer_losses(problem, e, key, k),
                eta,
                sigma,
                epsilons[i : i + 1],
            )
            for i, key in enumerate(keys)
        ]
        return jnp.mean(jnp.stack(pairs), axis=0)

    return es


def _library_es(problem, eta, seed, k, sigma, n_pairs):
    return estimators.es_meta_gradients(problem, eta, jax.random.key(seed), k, sigma, n_pairs)


@graded("8.2")
def check_antithetic_es(rng) -> tuple[Comparison, Comparison]:
    """Exercise 8.2: ``antithetic_es(loss_fn, eta, sigma, epsilons) -> [K, n_eta]``, antithetic
    evolution strategies (``docs/notation.md`` §2):

        ĝ = (1 / 2Nσ) Σ_{i=1}^{N} [L(η + σε_i) − L(η − σε_i)] ε_i,

    for each of the K losses ``loss_fn`` returns. First on random cubic losses, then on random
    quadratics and bandits against ``estimators.es_meta_gradients`` (one call per pair, with
    that pair's direction and random numbers, averaged).

    Args (of the learner's function):
      loss_fn: η ``[n_eta]`` -> ``[K]`` losses, deterministic (its random numbers are fixed).
      eta: ``[n_eta]``.
      sigma: Python float > 0, the smoothing scale σ.
      epsilons: ``[N, n_eta]``, the directions ε_1..ε_N.

    Returns: ``[K, n_eta]``.
    """
    k, n_eta, n_pairs = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 5))

    def on_a_polynomial(rng):
        return {
            "loss_fn": _PolynomialLosses(rng, k, n_eta),
            "eta": numbers(rng, n_eta),
            "sigma": float(rng.choice([0.1, 0.3, 0.5])),
            "epsilons": numbers(rng, (n_pairs, n_eta)),
        }

    edge = _PolynomialLosses(np.random.default_rng(8), 2, 2)
    eps = f32([[1.0, 0.0], [0.5, -1.0], [-1.0, 2.0]])
    edge_cases = [
        {"loss_fn": edge, "eta": f32([0.5, -1.0]), "sigma": 0.5, "epsilons": eps},
        {"loss_fn": edge, "eta": f32([1.0, 0.5]), "sigma": 0.25, "epsilons": eps[:1]},
    ]

    def one_sided(f, e, s, x):
        return jnp.einsum("nk,ne->ke", jax.vmap(f)(e + s * x) - f(e), x) / (x.shape[0] * s)

    mistakes = [
        (
            lambda f, e, s, x: reference_antithetic_es(f, e, s, x) * 2 * s,
            "divide by 2σ (and by N): the difference of the two losses is about 2σ ε·∇L",
        ),
        (
            lambda f, e, s, x: reference_antithetic_es(f, e, s, x) * 2,
            "divide by 2σ, not σ: the two runs are 2σε apart",
        ),
        (
            lambda f, e, s, x: reference_antithetic_es(f, e, s, x) * x.shape[0],
            "average over the N pairs (divide the sum by N)",
        ),
        (
            one_sided,
            "that is a one-sided difference L(η + σε) − L(η): antithetic ES evaluates both "
            "η + σε and η − σε, which cancels the curvature's bias",
        ),
        (
            lambda f, e, s, x: -reference_antithetic_es(f, e, s, x),
            "the sign is flipped: L(η + σε) − L(η − σε), the plus side first",
        ),
    ]
    on_polynomials = Comparison(
        reference_antithetic_es,
        on_a_polynomial,
        hint="for each ε_i: (loss_fn(eta + sigma * ε_i) − loss_fn(eta − sigma * ε_i)) [K] times "
        "ε_i [n_eta], summed over i, divided by 2 N sigma",
        edge_cases=edge_cases,
        mistakes=mistakes,
        output_name="ES estimate",
    )
    problem = random_quadratic(rng) if rng.random() < 0.5 else random_bandit(rng, 2, 1)
    horizon, pairs_per_estimate = int(rng.integers(1, 4)), int(rng.integers(1, 4))

    def on_a_problem(rng):
        eta = f32(np.asarray(problem.eta0) + numbers(rng, problem.n_eta) / 4)
        return {
            "problem": problem,
            "eta": eta,
            "seed": int(rng.integers(2**31)),
            "k": horizon,
            "sigma": float(rng.choice([0.05, 0.1, 0.3])),
            "n_pairs": pairs_per_estimate,
        }

    on_problems = Comparison(
        _library_es,
        on_a_problem,
        hint="yours differs from estimators.es_meta_gradients on this problem: the formula "
        "above, with loss_fn called on eta ± sigma ε_i",
        n_trials=3,
        output_name="ES estimate (every horizon)",
        adapt=_es_with,
    )
    return on_polynomials, on_problems
