"""The checks of lesson 08 accept a correct answer and name the usual wrong ones.

Correct answers are written the way a learner would (loops, NumPy), not with the library's score
term or ``estimators``, so each passing check is also a cross-check of its reference; and the
reference of exercise 8.1 is checked to turn the plain g_k into the library's corrected one.
"""

import jax
import numpy as np
from grading_harness import harness_tests

from course_lib import grading, metagrad
from course_lib.grading import beyond

# --------------------------------------------------------------------------------------------
# Correct answers, written as a learner would


def sampling_correction(losses, score_gradients):
    losses, scores = np.asarray(losses, float), np.asarray(score_gradients, float)
    out, running = np.zeros_like(scores), np.zeros(scores.shape[1])
    for k in range(len(losses)):
        running = running + scores[k]
        out[k] = losses[k] * running
    return out


def antithetic_es(loss_fn, eta, sigma, epsilons):
    total = 0.0
    for eps in epsilons:
        difference = np.asarray(loss_fn(eta + sigma * eps)) - np.asarray(loss_fn(eta - sigma * eps))
        total = total + np.outer(difference, eps)
    return total / (2 * len(epsilons) * sigma)


CORRECT = {
    "8.1": (grading.check_sampling_correction, sampling_correction),
    "8.2": (grading.check_antithetic_es, antithetic_es),
}


# --------------------------------------------------------------------------------------------
# Plausible wrong answers: (exercise, wrong function, what the message must say)


def _exclusive(losses, scores):
    return sampling_correction(losses, np.concatenate([np.zeros_like(scores[:1]), scores[:-1]]))


def _one_sided(loss_fn, eta, sigma, epsilons):
    total = sum(
        np.outer(np.asarray(loss_fn(eta + sigma * e)) - np.asarray(loss_fn(eta)), e)
        for e in epsilons
    )
    return total / (len(epsilons) * sigma)


WRONG = {
    "8.1 sum over every batch": (
        "8.1",
        lambda loss, s: np.asarray(loss)[:, None] * np.asarray(s).sum(0),
        "a cumulative sum over j < k",
    ),
    "8.1 the last update's batch left out": ("8.1", _exclusive, "include j = k − 1"),
    "8.1 loss missing": ("8.1", lambda loss, s: np.cumsum(s, axis=0), "multiply the summed scores"),
    "8.1 only the last batch": (
        "8.1",
        lambda loss, s: np.asarray(loss)[:, None] * np.asarray(s),
        "not only of τ_{k−1}",
    ),
    "8.1 sign": ("8.1", lambda loss, s: -sampling_correction(loss, s), "the sign is flipped"),
    "8.2 no 1/(2σ)": (
        "8.2",
        lambda f, e, s, x: antithetic_es(f, e, s, x) * 2 * s,
        "divide by 2σ (and by N)",
    ),
    "8.2 1/σ": ("8.2", lambda f, e, s, x: antithetic_es(f, e, s, x) * 2, "divide by 2σ, not σ"),
    "8.2 sum over pairs": (
        "8.2",
        lambda f, e, s, x: antithetic_es(f, e, s, x) * len(x),
        "average over the N pairs",
    ),
    "8.2 one-sided": ("8.2", _one_sided, "one-sided difference"),
    "8.2 sign": ("8.2", lambda f, e, s, x: -antithetic_es(f, e, s, x), "the sign is flipped"),
}


(
    test_correct_answer_passes_with_one_line,
    test_plausible_wrong_answer_fails_with_a_plain_sentence,
    test_unstarted_exercise_says_what_to_do,
) = harness_tests(CORRECT, WRONG, calls=2)


def test_reference_correction_turns_g_k_into_the_library_corrected_meta_gradient():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        problem = beyond.random_bandit(rng, 3, 2)
        key, k = jax.random.key(7), 4
        plain, losses, scores = beyond.sampled_run(problem, problem.eta0, key, k)
        np.testing.assert_allclose(scores[0], 0.0, atol=1e-15)  # θ_0 does not depend on η
        assert np.abs(np.asarray(scores[1:])).max() > 1e-3
        np.testing.assert_allclose(
            losses, metagrad.prefix_outer_losses(problem, problem.eta0, key, k), rtol=1e-12
        )
        np.testing.assert_allclose(
            plain, metagrad.k_step_meta_gradients(problem, problem.eta0, key, k), rtol=1e-12
        )
        np.testing.assert_allclose(
            plain + beyond.reference_sampling_correction(losses, scores),
            metagrad.k_step_meta_gradients(problem, problem.eta0, key, k, sampling_correction=True),
            rtol=1e-12,
            atol=1e-15,
        )
