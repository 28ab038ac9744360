"""Lesson 05's checks: the mixing estimator ``g_mix = Σ_k w_k g_k`` (``docs/notation.md`` §3).

Like lessons 03–04, the checks name the usual wrong answers (``Comparison.mistakes``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from course_lib import mixing
from course_lib.grading.core import Comparison, graded
from course_lib.grading.inputs import f32, numbers


@graded("5.1")
def check_mix_meta_gradients(rng) -> Comparison:
    """Exercise 5.1: ``mix_meta_gradients(per_step, weights) -> [n_seeds, n_eta]``.

    ``g_mix = Σ_k w_k g_k`` for every seed (``docs/notation.md`` §3): ``per_step [n_seeds, K,
    n_eta]`` holds g_1..g_K of each seed, ``weights [K]`` are >= 0 and sum to 1. The reference
    is ``mixing.mix_meta_gradients`` (which ``metagrad`` re-exports).

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
        mixing.mix_meta_gradients,
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
