"""Lesson 05's checks: the mixing estimator ``g_mix = Σ_k w_k g_k`` (``docs/notation.md`` §3),
the mixed outer loss in one scan, and the optimal weights (§4).

Like lessons 03–04, the checks name the usual wrong answers (``Comparison.mistakes``).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from course_lib import mixing, problems, stats
from course_lib.envs import bandit
from course_lib.grading.core import Comparison, graded
from course_lib.grading.inputs import f32, numbers
from course_lib.grading.multi_step import forward_carry, reference_forward_meta_gradients
from course_lib.grading.toy_problems import random_bandit, random_pulls, random_quadratic


@graded("5.1")
def check_mix_meta_gradients(rng) -> Comparison:
    """Exercise 5.1: ``mix_meta_gradients(per_step, weights) -> [n_seeds, n_eta]``.

    ``g_mix = Σ_k w_k g_k`` for every seed (``docs/notation.md`` §3): ``per_step [n_seeds, K,
    n_eta]`` holds g_1..g_K of each seed, ``weights [K]`` are >= 0 and sum to 1. The reference
    is ``mixing.mix``.

    Args (of the learner's function):
      per_step: ``[n_seeds, K, n_eta]`` float32.
      weights: ``[K]`` float32, w_1..w_K.

    Returns: ``[n_seeds, n_eta]``.
    """
    shape = (int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(1, 4)))

    def sample(rng):
        raw = rng.integers(0, 5, size=shape[1]).astype(np.float32) + np.eye(shape[1])[0]
        return {"per_step": numbers(rng, shape), "weights": (raw / raw.sum()).astype(np.float32)}

    per_step = f32([[[1.0, 2.0], [3.0, -1.0], [0.0, 4.0]], [[-2.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    mistakes = [
        (
            lambda g, w: jnp.mean(g, axis=1),
            "the weights are missing: an equal-weight average is only the uniform mix",
        ),
        (
            lambda g, w: jnp.einsum("k,ske->se", w[::-1], g),
            "the weights are reversed: w_1 belongs to g_1, the one-step estimate (per_step[:, 0])",
        ),
    ]
    return Comparison(
        mixing.mix,
        sample,
        hint="multiply each g_k (axis 1) by w_k and sum over k only: "
        "jnp.einsum('k,ske->se', weights, per_step), or (weights[:, None] * per_step).sum(1)",
        edge_cases=[
            {"per_step": per_step, "weights": f32([0.5, 0.25, 0.25])},
            {"per_step": per_step, "weights": f32([0.0, 0.0, 1.0])},
            {"per_step": per_step[:, :1], "weights": f32([1.0])},
        ],
        mistakes=mistakes,
        output_name="mixed meta-gradients",
    )


@graded("5.2")
def check_geometric_weights(rng) -> Comparison:
    """Exercise 5.2: ``geometric_weights(k, lam) -> [k]``, normalised weights ``w_j ∝ lam^(j−1)``.

    ``w_j = lam^(j−1) / Σ_{i=1}^{k} lam^(i−1)``, j = 1..k: lam = 0 puts all weight on g_1 (take
    0⁰ = 1), lam = 1 gives the uniform mix 1/k. The reference is ``mixing.geometric_weights``
    (which ``metagrad`` re-exports).

    Args (of the learner's function):
      k: Python int >= 1, the horizon K.
      lam: Python float in [0, 1].

    Returns: ``[k]``, summing to 1.
    """
    mistakes = [
        (
            lambda k, lam: lam ** np.arange(k, dtype=float),
            "normalise: divide by the sum so that the weights add up to 1",
        ),
        (
            lambda k, lam: mixing.geometric_weights(k, lam)[::-1],
            "the largest weight belongs to g_1 when lam < 1: w_j ∝ lam^(j−1) for j = 1..k",
        ),
        (
            mixing.lambda_return_weights,
            "those are the λ-return weights (the last one takes the rest); here every w_j is "
            "∝ lam^(j−1), normalised",
        ),
    ]
    return Comparison(
        mixing.geometric_weights,
        lambda rng: {"k": int(rng.integers(2, 9)), "lam": float(rng.choice([0.2, 0.5, 0.7, 0.9]))},
        hint="raw = lam ** jnp.arange(k) (so w_1 ∝ lam⁰ = 1), then raw / raw.sum()",
        edge_cases=[
            {"k": 4, "lam": 0.5},
            {"k": 3, "lam": 0.0},
            {"k": 5, "lam": 1.0},
            {"k": 1, "lam": 0.5},
        ],
        mistakes=mistakes,
        output_name="weights",
    )


# --------------------------------------------------------------------------------------------------
# Exercise 5.3: the mixed outer loss in one scan


def reference_mixed_meta_gradient(problem, batches, eta, weights):
    """Σ_k w_k g_k with g_1..g_K from exercise 4.2's reference (reverse mode through the prefix
    losses), mixed by ``mixing.mix``."""
    return mixing.mix(reference_forward_meta_gradients(problem, batches, eta), weights)


def _random_weights(rng: np.random.Generator, k: int) -> np.ndarray:
    """[k] weights >= 0 summing to 1, in tenths, with w_1 > 0 and w_K > 0 so that a reversal or a
    dropped end shows."""
    raw = rng.integers(1, 6, size=k).astype(np.float32)
    raw[1:-1] *= rng.integers(0, 2, size=max(k - 2, 0))
    return (raw / raw.sum()).astype(np.float32)


@graded("5.3")
def check_mixed_meta_gradient(rng) -> Comparison:
    """Exercise 5.3: ``mixed_meta_gradient(problem, batches, eta, weights) -> [n_eta]``, the
    gradient of the mixed outer loss in ONE ``jax.lax.scan``.

    ``g_mix = d/dη Σ_k w_k L_out(θ_k; τ_k)`` with ``θ_k = problem.inner_update(θ_{k−1}, τ_{k−1},
    η)`` from ``θ_0 = problem.init_state`` (``docs/notation.md`` §2–§3): one scan over the pairs
    (τ_{k−1}, τ_k) and the weights, emitting w_k L_out(θ_k; τ_k), summed and differentiated once.
    The reference mixes exercise 4.2's g_1..g_K with ``mixing.mix`` (the meta-gradient is linear
    in the loss, so the two agree). Random noisy quadratics and bandits.

    Args (of the learner's function):
      problem: a ``problems.make_problem(...)`` problem whose state is one array θ [d].
      batches: τ_0..τ_K, a pytree with leading axis K + 1 (the quadratic's noise ξ [K + 1, d];
        the bandit's ``BanditBatch`` of ``actions`` and ``rewards`` [K + 1, B]).
      eta: ``[n_eta]`` float32.
      weights: ``[K]`` float32, >= 0, summing to 1.

    Returns: ``[n_eta]``.
    """
    k = int(rng.integers(2, 6))
    if rng.random() < 0.5:
        problem = random_quadratic(rng)
        dim = len(problem.settings["curvatures"])

        def batches_and_eta(rng):
            return numbers(rng, (k + 1, dim)), f32(np.asarray(problem.eta0) + numbers(rng, dim) / 4)
    else:
        n_arms, batch_size = int(rng.integers(2, 4)), int(rng.integers(1, 3))
        problem = random_bandit(rng, n_arms, batch_size)

        def batches_and_eta(rng):
            actions, rewards, eta = random_pulls(rng, n_arms, (k + 1, batch_size))
            return bandit.BanditBatch(jnp.asarray(actions), jnp.asarray(rewards)), eta

    def sample(rng):
        batches, eta = batches_and_eta(rng)
        weights = _random_weights(rng, k)
        return {"problem": problem, "batches": batches, "eta": eta, "weights": weights}

    default = problems.make_problem("quadratic")
    noise = f32([[0.5, -1.0], [1.0, 0.5], [-1.5, 1.0], [0.0, 2.0]])
    edge_cases = [
        {
            "problem": default,
            "batches": noise,
            "eta": f32(default.eta0),
            "weights": f32([0.5, 0.3, 0.2]),
        },
        {"problem": default, "batches": noise, "eta": f32([-1.0, -2.0]), "weights": f32([0, 0, 1])},
    ]
    per_step = reference_forward_meta_gradients
    mistakes = [
        (
            lambda pr, b, e, w: per_step(pr, b, e).sum(axis=0),
            "the weights are missing: multiply each step's outer loss L_k by w_k before summing",
        ),
        (
            lambda pr, b, e, w: per_step(pr, b, e)[-1],
            "only the last outer loss counts in yours, which gives g_K: add w_k L_out(θ_k; τ_k) "
            "at every step of the scan",
        ),
        (
            lambda pr, b, e, w: mixing.mix(per_step(pr, b, e), w[::-1]),
            "the weights are reversed: w_1 scores θ_1, the agent after the first update",
        ),
        (
            lambda pr, b, e, w: w @ functools.partial(forward_carry, lag=1)(pr, b, e),
            "score θ_k on the next batch τ_k = batches[k], not on τ_{k−1}, the batch it was "
            "trained on",
        ),
    ]
    return Comparison(
        reference_mixed_meta_gradient,
        sample,
        hint="def mixed_loss(eta): scan over (batches[:-1], batches[1:], weights) from "
        "problem.init_state, each step θ = problem.inner_update(θ, τ_in, eta) and emit "
        "w * problem.outer_loss(θ, τ_out); return the sum. Then jax.grad(mixed_loss)(eta)",
        edge_cases=edge_cases,
        mistakes=mistakes,
        n_trials=3,
        output_name="mixed meta-gradient",
    )


# --------------------------------------------------------------------------------------------------
# Exercise 5.4: the optimal weights as a constrained least-squares problem


def _gram(mean, joint_cov, cross=True):
    """S_kj = E[g_k · g_j] = E g_k · E g_j + tr Cov[g_k, g_j] (only k = j without ``cross``)."""
    traces = np.einsum("keje->kj", np.asarray(joint_cov, dtype=float))
    mean = np.asarray(mean, dtype=float)
    return mean @ mean.T + (traces if cross else np.diag(np.diag(traces)))


def _unconstrained_weights(mean, joint_cov, target):
    u = np.linalg.solve(_gram(mean, joint_cov), np.asarray(mean) @ np.asarray(target))
    return u / u.sum()


def _uncorrelated_steps_weights(mean, joint_cov, target):
    """The optimum as if g_1..g_K were independent (no cross-step covariances)."""
    k = np.shape(mean)[0]
    uncorrelated = np.zeros_like(np.asarray(joint_cov, dtype=float))
    for j in range(k):
        uncorrelated[j, :, j, :] = np.asarray(joint_cov)[j, :, j, :]
    return mixing.optimal_mixing_weights(mean, uncorrelated, target)


def _best_single_step_weights(mean, joint_cov, target):
    per_step_cov = np.einsum("kekf->kef", np.asarray(joint_cov, dtype=float))
    errors = stats.scale_free_mse(mean, per_step_cov, target)
    return np.eye(len(errors))[int(np.argmin(errors))]


def _random_moments(rng: np.random.Generator, k: int, n_eta: int):
    """(mean [k, n_eta], joint_cov [k, n_eta, k, n_eta], target [n_eta]): a well-conditioned
    positive-definite joint covariance, and a target some E g_k points towards."""
    factor = rng.normal(size=(k * n_eta, 2 * k * n_eta + 4)) / np.sqrt(2 * k * n_eta + 4)
    joint_cov = (factor @ factor.T + 0.1 * np.eye(k * n_eta)).reshape(k, n_eta, k, n_eta)
    mean = numbers(rng, (k, n_eta)).astype(float)
    target = numbers(rng, n_eta).astype(float)
    if not np.any(mean @ target > 0):
        target = -target
    if not np.any(mean @ target > 0):  # both signs fail only when every E g_k ⟂ g*
        target = mean[0] + 0.1
    return mean, joint_cov, target


@graded("5.4")
def check_optimal_weights(rng) -> Comparison:
    """Exercise 5.4: ``optimal_weights(mean, joint_cov, target) -> [K]``, the mixing weights with
    the smallest scale-free error, as a non-negative least-squares problem.

    With b_k = E g_k · g* and S_kj = E[g_k · g_j] = E g_k · E g_j + tr Cov[g_k, g_j]
    (``docs/notation.md`` §4), E‖Σ_k u_k g_k − g*‖² = uᵀSu − 2bᵀu + ‖g*‖², and the scale-free
    error's (c, w) enter only through u = c·w >= 0. So u* = argmin_{u >= 0} uᵀSu − 2bᵀu (a
    non-negative least squares: with S = AᵀA and Aᵀy = b it is min_{u >= 0} ‖Au − y‖²), and
    w = u*/Σ u*. When every b_k <= 0 (no mix points towards g*) return the uniform weights 1/K.
    The reference is ``mixing.optimal_mixing_weights``.

    Args (of the learner's function):
      mean: ``[K, n_eta]`` E g_k.
      joint_cov: ``[K, n_eta, K, n_eta]`` Cov[g_k, g_j] at [k − 1, :, j − 1, :].
      target: ``[n_eta]`` g*, non-zero.

    Returns: ``[K]``, >= 0, summing to 1.
    """
    k, n_eta = int(rng.integers(2, 6)), int(rng.integers(1, 4))

    def sample(rng):
        mean, joint_cov, target = _random_moments(rng, k, n_eta)
        return {"mean": mean, "joint_cov": joint_cov, "target": target}

    # Three steps: g_1 points at g* but is noisy, g_3 is quiet and points half-way, g_2 points
    # away and is correlated with g_1: the optimum [0.3, 0, 0.7] needs the cross-covariances, and
    # without u >= 0 g_2 would get a negative weight.
    mean = np.array([[1.0, 0.0], [0.3, -0.5], [0.5, 0.5]])
    joint_cov = np.zeros((3, 2, 3, 2))
    for j, scale in enumerate((2.0, 1.0, 0.3)):
        joint_cov[j, :, j, :] = scale * np.eye(2)
    joint_cov[0, :, 1, :] = joint_cov[1, :, 0, :] = 1.2 * np.eye(2)
    edge_cases = [
        {"mean": mean, "joint_cov": joint_cov, "target": np.array([1.0, 0.0])},
        {"mean": mean, "joint_cov": joint_cov, "target": np.array([-1.0, 0.0])},
    ]
    mistakes = [
        (
            _unconstrained_weights,
            "your weights solve S u = b without the constraint u >= 0, so some come out "
            "negative: a mix may only shorten a step, so solve a NON-NEGATIVE least squares",
        ),
        (
            _uncorrelated_steps_weights,
            "your S ignores the covariances between steps: g_1..g_K share batches, so use "
            "tr Cov[g_k, g_j] for every pair (k, j), not only k = j",
        ),
        (
            _best_single_step_weights,
            "yours is the best single K (a one-hot weight): a mix of several steps can do better",
        ),
    ]
    return Comparison(
        mixing.optimal_mixing_weights,
        sample,
        hint="S = mean @ mean.T + np.einsum('keje->kj', joint_cov), b = mean @ target; "
        "A = np.linalg.cholesky(S).T, y = np.linalg.solve(A.T, b); "
        "u = scipy.optimize.nnls(A, y)[0]; w = u / u.sum() (uniform if u is all zero)",
        edge_cases=edge_cases,
        mistakes=mistakes,
        output_name="weights",
    )
