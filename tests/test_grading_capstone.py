"""The checks of lessons 06–07 accept a correct answer and name the usual wrong ones.

Correct answers are written the way a learner would (NumPy, loops), not with the
``course_lib.experiments`` functions the checks use as references, so each passing check is also a
cross-check of its reference.
"""

import numpy as np
from grading_harness import harness_tests

from course_lib import grading

# --------------------------------------------------------------------------------------------
# Correct answers, written as a learner would


def estimator_weights(kind, k, k_max, mix_lambda):
    weights = np.zeros(k_max)
    if kind == "k":
        weights[k - 1] = 1.0
    elif kind == "mix":
        raw = np.array([mix_lambda**j for j in range(k)])
        weights[:k] = raw / raw.sum()
    return weights


def variance_ratio(variance_a, variance_b):
    ratios = np.asarray(variance_a, float) / np.asarray(variance_b, float)
    return np.prod(ratios) ** (1 / ratios.size)


def paired_difference(a, b):
    d = [y - x for x, y in zip(np.asarray(a, float), np.asarray(b, float), strict=True)]
    mean = sum(d) / len(d)
    variance = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
    return mean, np.sqrt(variance / len(d))


def debiased_snr(samples):
    samples = np.asarray(samples, float)
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    variance = np.sum((samples - mean) ** 2) / (n - 1)
    return np.sum(mean**2) / variance - 1 / n


def choose_estimator(trial_snr, ks, threshold):
    best = -1
    for e, (snr, k) in enumerate(zip(np.asarray(trial_snr), np.asarray(ks), strict=True)):
        if snr >= threshold and (best < 0 or (k, snr) > (ks[best], trial_snr[best])):
            best = e
    return best


def predicted_travel(samples, learning_rate, n_updates):
    samples = np.asarray(samples, float)
    c, n, n_eta = samples.shape
    travel = np.zeros(n_eta)
    for e in range(n_eta):
        values = samples[:, :, e]
        mean = values.sum() / (c * n)
        variance = np.mean([np.var(row, ddof=1) for row in values])
        snr = max(0.0, (mean**2 - variance / (c * n)) / variance)
        travel[e] = -np.sign(mean) * n_updates * learning_rate * np.sqrt(snr / (1 + snr))
    return travel


CORRECT = {
    "6.1": (grading.check_estimator_weights, estimator_weights),
    "6.2": (grading.check_variance_ratio, variance_ratio),
    "6.3": (grading.check_paired_difference, paired_difference),
    "7.1": (grading.check_debiased_snr, debiased_snr),
    "7.2": (grading.check_choose_estimator, choose_estimator),
    "7.3": (grading.check_predicted_travel, predicted_travel),
}


# --------------------------------------------------------------------------------------------
# Plausible wrong answers: (exercise, wrong function, what the message must say)


def _weights_with_mix(mix):
    def weights(kind, k, k_max, mix_lambda):
        if kind != "mix":
            return estimator_weights(kind, k, k_max, mix_lambda)
        return np.concatenate([mix(k, mix_lambda), np.zeros(k_max - k)])

    return weights


def _fixed_as_k_step(kind, k, k_max, mix_lambda):
    return estimator_weights("k" if kind == "fixed" else kind, k, k_max, mix_lambda)


def _paired_difference_population_std(a, b):
    d = np.asarray(b) - np.asarray(a)
    return d.mean(), d.std() / np.sqrt(len(d))


def _snr_with_population_variance(samples):
    samples = np.asarray(samples, float)
    variance = samples.var(axis=0).sum()
    return (np.sum(samples.mean(axis=0) ** 2) - variance / len(samples)) / variance


def _choose_smallest_k(trial_snr, ks, threshold):
    accepted = [e for e in range(len(ks)) if trial_snr[e] >= threshold]
    return min(accepted, key=lambda e: (ks[e], -trial_snr[e])) if accepted else -1


def _choose_highest_snr(trial_snr, ks, threshold):
    accepted = [e for e in range(len(ks)) if trial_snr[e] >= threshold]
    return max(accepted, key=lambda e: trial_snr[e]) if accepted else -1


def _travel_uphill(samples, learning_rate, n_updates):
    return -predicted_travel(samples, learning_rate, n_updates)


def _travel_without_the_floor(samples, learning_rate, n_updates):
    samples = np.asarray(samples, float)
    mean, variance = samples.mean(axis=(0, 1)), samples.var(axis=1, ddof=1).mean(axis=0)
    snr = mean**2 / variance
    return -np.sign(mean) * n_updates * learning_rate * np.sqrt(snr / (1 + snr))


def _travel_at_root_snr(samples, learning_rate, n_updates):
    samples = np.asarray(samples, float)
    c, n, _ = samples.shape
    mean, variance = samples.mean(axis=(0, 1)), samples.var(axis=1, ddof=1).mean(axis=0)
    snr = np.maximum((mean**2 - variance / (c * n)) / variance, 0)
    return -np.sign(mean) * n_updates * learning_rate * np.sqrt(snr)


WRONG = {
    "6.1 mix weights not normalised": (
        "6.1",
        _weights_with_mix(lambda k, lam: lam ** np.arange(k, dtype=float)),
        "normalise the mix weights",
    ),
    "6.1 mix weights reversed": (
        "6.1",
        _weights_with_mix(lambda k, lam: estimator_weights("mix", k, k, lam)[::-1]),
        "the mix weights are reversed",
    ),
    "6.1 fixed treated as the k-step estimator": (
        "6.1",
        _fixed_as_k_step,
        "its weights are all zero",
    ),
    "6.1 no zeros beyond k": (
        "6.1",
        lambda kind, k, k_max, lam: estimator_weights(kind, k, k, lam),
        "has shape (",
    ),
    "6.2 arithmetic mean of the ratios": (
        "6.2",
        lambda a, b: np.mean(np.asarray(a) / np.asarray(b)),
        "arithmetic mean of the ratios",
    ),
    "6.2 ratio of the means": ("6.2", lambda a, b: np.mean(a) / np.mean(b), "pairs nothing"),
    "6.2 log-ratio not exponentiated": (
        "6.2",
        lambda a, b: np.mean(np.log(a) - np.log(b)),
        "exponentiate it",
    ),
    "6.2 per-entry ratios": ("6.2", lambda a, b: np.asarray(a) / np.asarray(b), "has shape ("),
    "6.3 population standard deviation": (
        "6.3",
        _paired_difference_population_std,
        "ddof=1",
    ),
    "6.3 standard deviation, not standard error": (
        "6.3",
        lambda a, b: (np.mean(b) - np.mean(a), np.std(np.asarray(b) - np.asarray(a), ddof=1)),
        "divides it by √n",
    ),
    "6.3 a minus b": (
        "6.3",
        lambda a, b: paired_difference(b, a),
        "the sign is flipped",
    ),
    "7.1 plain SNR": (
        "7.1",
        lambda s: debiased_snr(s) + 1 / np.asarray(s).shape[0],
        "subtract the noise floor V/n",
    ),
    "7.1 population variance": ("7.1", _snr_with_population_variance, "ddof=1"),
    "7.1 floor V instead of V/n": (
        "7.1",
        lambda s: debiased_snr(s) + 1 / np.asarray(s).shape[0] - 1,
        "the noise floor is V/n, not V",
    ),
    "7.2 smallest K": ("7.2", _choose_smallest_k, "the largest K, not the smallest"),
    "7.2 highest SNR": ("7.2", _choose_highest_snr, "choose by K first"),
    "7.2 strict threshold": (
        "7.2",
        lambda snr, ks, t: choose_estimator(snr, ks, np.nextafter(np.float32(t), np.float32(1))),
        "accept snr >= threshold",
    ),
    "7.3 uphill": ("7.3", _travel_uphill, "against the sign of the mean"),
    "7.3 noise floor kept": ("7.3", _travel_without_the_floor, "remove the noise floor"),
    "7.3 root SNR": ("7.3", _travel_at_root_snr, "not β·√s"),
}


(
    test_correct_answer_passes_with_one_line,
    test_plausible_wrong_answer_fails_with_a_plain_sentence,
    test_unstarted_exercise_says_what_to_do,
) = harness_tests(CORRECT, WRONG, calls=3)
