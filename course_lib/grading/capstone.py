"""Lessons 06–07's checks: reading experiments (NumPy exercises on measured numbers).

The references are ``course_lib.experiments``' own functions (its settings and analysis, which
load neither the runner nor the environments), so an exercise and the numbers the lessons print
always mean the same thing. Like lessons 03–05, the checks name the usual wrong answers
(``Comparison.mistakes``); the statistics are ``docs/notation.md`` §7.
"""

from __future__ import annotations

import numpy as np

from course_lib import drift, mixing
from course_lib.experiments import analysis, settings
from course_lib.grading.core import Comparison, graded
from course_lib.grading.inputs import f32, numbers


def _estimator_weights(kind: str, k: int, k_max: int, mix_lambda: float) -> np.ndarray:
    return settings.parse_estimator(f"{kind}{k}").weights(k_max, mix_lambda)


@graded("6.1")
def check_estimator_weights(rng) -> Comparison:
    """Exercise 6.1: ``estimator_weights(kind, k, k_max, mix_lambda) -> [k_max]``.

    The weights an estimator applies to g_1..g_{k_max}, zero beyond k: ``kind == "k"`` is one-hot
    at g_k; ``kind == "mix"`` is ``w_j = λ^(j−1) / Σ_{i=1}^{k} λ^(i−1)`` for j = 1..k (take
    0⁰ = 1); ``kind == "fixed"`` is all zeros (``docs/notation.md`` §3). The reference is
    ``experiments.parse_estimator(f"{kind}{k}").weights(k_max, mix_lambda)``.

    Args (of the learner's function):
      kind: ``"k"``, ``"mix"`` or ``"fixed"``.
      k: Python int >= 1, the estimator's horizon K.
      k_max: Python int >= k, the length of the result.
      mix_lambda: Python float in [0, 1], λ_mix.

    Returns: ``[k_max]``.
    """

    def sample(rng):
        k = int(rng.integers(1, 7))
        return {
            "kind": str(rng.choice(["k", "mix", "fixed"])),
            "k": k,
            "k_max": int(rng.integers(k, 9)),
            "mix_lambda": float(rng.choice([0.2, 0.5, 0.7, 0.9])),
        }

    def with_mix(mix_fn):
        """The reference, but the mix weights of ``mix_fn(k, lam) -> [k]``."""

        def weights(kind, k, k_max, mix_lambda):
            if kind != "mix":
                return _estimator_weights(kind, k, k_max, mix_lambda)
            return np.pad(mix_fn(k, mix_lambda), (0, k_max - k))

        return weights

    mistakes = [
        (
            with_mix(lambda k, lam: lam ** np.arange(k, dtype=float)),
            "normalise the mix weights: divide λ^(j−1) by their sum so that they add up to 1",
        ),
        (
            with_mix(lambda k, lam: mixing.geometric_weights(k, lam)[::-1]),
            "the mix weights are reversed: w_1 ∝ λ⁰ = 1 belongs to g_1 (index 0)",
        ),
        (
            lambda kind, k, k_max, mix_lambda: _estimator_weights(
                "k" if kind == "fixed" else kind, k, k_max, mix_lambda
            ),
            "the fixed control never uses its meta-gradient: its weights are all zero",
        ),
    ]
    return Comparison(
        _estimator_weights,
        sample,
        hint="start from np.zeros(k_max); k: weight 1 at index k − 1; mix: "
        "raw = mix_lambda ** np.arange(k), weights[:k] = raw / raw.sum(); fixed: leave the zeros",
        edge_cases=[
            {"kind": "mix", "k": 3, "k_max": 5, "mix_lambda": 0.5},
            {"kind": "mix", "k": 3, "k_max": 5, "mix_lambda": 0.0},
            {"kind": "mix", "k": 4, "k_max": 4, "mix_lambda": 1.0},
            {"kind": "k", "k": 3, "k_max": 5, "mix_lambda": 0.5},
            {"kind": "fixed", "k": 2, "k_max": 3, "mix_lambda": 0.5},
        ],
        mistakes=mistakes,
        output_name="weights",
    )


@graded("6.2")
def check_variance_ratio(rng) -> Comparison:
    """Exercise 6.2: ``variance_ratio(variance_a, variance_b) -> scalar``, a paired ratio.

    ``exp(mean_i(log a_i − log b_i))``: the geometric mean of the paired ratios a_i / b_i, over
    every entry. The reference is ``experiments.variance_ratio``.

    Args (of the learner's function):
      variance_a, variance_b: float32 arrays of the same shape (any), positive entries.

    Returns: a scalar.
    """

    def sample(rng):
        shape = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(1, 4))))
        # Variances spanning orders of magnitude, as over a training run.
        scales = [0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0]
        return {
            "variance_a": rng.choice(scales, size=shape).astype(np.float32),
            "variance_b": rng.choice(scales, size=shape).astype(np.float32),
        }

    mistakes = [
        (
            lambda a, b: np.mean(np.asarray(a) / np.asarray(b)),
            "that is the arithmetic mean of the ratios a_i / b_i, which one large ratio decides: "
            "average the log-ratios and exponentiate (the geometric mean)",
        ),
        (
            lambda a, b: np.mean(a) / np.mean(b),
            "that is mean(a) / mean(b), which pairs nothing: take the ratio entry by entry, "
            "a_i / b_i, then the geometric mean of those ratios",
        ),
        (
            lambda a, b: np.mean(np.log(a) - np.log(b)),
            "that is the mean log-ratio: exponentiate it",
        ),
        (
            lambda a, b: analysis.variance_ratio(b, a),
            "that is ratio(b, a) = 1 / ratio(a, b): use log a − log b",
        ),
    ]
    return Comparison(
        analysis.variance_ratio,
        sample,
        hint="np.exp(np.mean(np.log(variance_a) − np.log(variance_b))), the mean over every entry",
        edge_cases=[
            {"variance_a": f32([1.0, 8.0, 2.0]), "variance_b": f32([2.0, 1.0, 1.0])},
            {
                "variance_a": f32([[1.0, 4.0], [9.0, 1.0]]),
                "variance_b": f32([[1.0, 1.0], [1.0, 4.0]]),
            },
            {"variance_a": f32([3.0]), "variance_b": f32([1.5])},
        ],
        mistakes=mistakes,
        output_name="ratio",
    )


@graded("6.3")
def check_paired_difference(rng) -> Comparison:
    """Exercise 6.3: ``paired_difference(a, b) -> (mean, standard error)``.

    With ``d_s = b_s − a_s`` for the n >= 2 paired seeds: ``mean = (1/n) Σ_s d_s`` and
    ``standard error = std(d) / √n``, std the n − 1 ("ddof=1") standard deviation. The reference
    is ``experiments.paired_difference``.

    Args (of the learner's function):
      a, b: ``[n_seeds]`` float32, one value per seed for each of two runs.

    Returns: a pair ``(mean, standard_error)`` of scalars.
    """

    def sample(rng):
        n = int(rng.integers(2, 9))
        a = rng.integers(50, 151, size=n) / 10  # returns around 10
        return {
            "a": a.astype(np.float32),
            "b": (a + rng.integers(-10, 21, size=n) / 10).astype(np.float32),
        }

    def from_differences(statistic):
        """``statistic(d)`` with ``d = b − a`` as a float64 vector."""
        return lambda a, b: statistic(np.asarray(b, float) - np.asarray(a, float))

    mistakes = [
        (
            from_differences(lambda d: (d.mean(), d.std() / np.sqrt(d.size))),
            "use the n − 1 standard deviation, d.std(ddof=1)",
        ),
        (
            from_differences(lambda d: (d.mean(), d.std(ddof=1))),
            "that is the standard deviation of d; the standard error of its mean divides it by √n",
        ),
        (
            from_differences(lambda d: (-d.mean(), d.std(ddof=1) / np.sqrt(d.size))),
            "the sign is flipped: d = b − a",
        ),
        (
            lambda a, b: (
                np.mean(b) - np.mean(a),
                np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / len(a)),
            ),
            "pair the seeds: take the standard error of the differences d_s = b_s − a_s, not of "
            "a and b separately",
        ),
    ]
    return Comparison(
        analysis.paired_difference,
        sample,
        hint="d = b − a; return (d.mean(), d.std(ddof=1) / np.sqrt(len(d)))",
        edge_cases=[
            {"a": f32([1.0, 2.0]), "b": f32([2.0, 5.0])},
            {"a": f32([0.0, 0.0, 0.0, 0.0]), "b": f32([1.0, 2.0, 3.0, 6.0])},
        ],
        mistakes=mistakes,
        output_name="(mean, standard error)",
    )


@graded("7.1")
def check_debiased_snr(rng) -> Comparison:
    """Exercise 7.1: ``debiased_snr(samples) -> scalar``, the SNR less its noise floor 1/n.

    For ``samples [n, n_eta]`` (n estimates ``g^(i)``): ``(‖ḡ‖² − V/n) / V``, with ḡ the mean
    over the rows and ``V = Σ_e 1/(n−1) Σ_i (g^(i)_e − ḡ_e)²`` (unbiased, summed over the
    meta-parameters); equal to ``‖ḡ‖² / V − 1/n``. The reference is ``experiments.debiased_snr``.

    Args (of the learner's function):
      samples: ``[n, n_eta]`` float32, n >= 2 rows that are not all equal.

    Returns: a scalar (slightly negative when there is no signal).
    """
    shape = (int(rng.integers(3, 13)), int(rng.integers(1, 5)))

    def sample(rng):
        samples = numbers(rng, shape)
        while np.all(samples == samples[0]):  # V = 0: no SNR to speak of
            samples = numbers(rng, shape)
        return {"samples": samples}

    def snr_with(signal_fn, variance_fn, floor_fn):
        """``(signal_fn(g) − floor_fn(V, n)) / V`` with ``V = variance_fn(g)``."""

        def snr(samples):
            samples = np.asarray(samples, float)
            variance = variance_fn(samples)
            return (signal_fn(samples) - floor_fn(variance, len(samples))) / variance

        return snr

    def squared_norm_of_mean(g):
        return np.sum(g.mean(axis=0) ** 2)

    def unbiased_variance(g):
        return np.sum(g.var(axis=0, ddof=1))

    mistakes = [
        (
            snr_with(squared_norm_of_mean, unbiased_variance, lambda v, n: 0.0),
            "that is the plain SNR: subtract the noise floor V/n from ‖ḡ‖² before dividing by V",
        ),
        (
            snr_with(squared_norm_of_mean, lambda g: np.sum(g.var(axis=0)), lambda v, n: v / n),
            "use the unbiased variance over the rows, dividing by n − 1 (ddof=1)",
        ),
        (
            snr_with(squared_norm_of_mean, unbiased_variance, lambda v, n: v),
            "the noise floor is V/n, not V: the mean of n estimates has variance V/n",
        ),
        (
            snr_with(
                lambda g: np.mean(np.sum(g**2, axis=-1)), unbiased_variance, lambda v, n: v / n
            ),
            "the signal is the squared norm of the mean, ‖ḡ‖², not the mean of the squared norms",
        ),
    ]
    return Comparison(
        analysis.debiased_snr,
        sample,
        hint="V = samples.var(axis=0, ddof=1).sum(); return "
        "(np.sum(samples.mean(axis=0) ** 2) − V / n) / V with n = samples.shape[0]",
        edge_cases=[
            {"samples": f32([[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]])},
            {"samples": f32([[1.0], [-1.0]])},
        ],
        mistakes=mistakes,
        output_name="debiased SNR",
    )


@graded("7.2")
def check_choose_estimator(rng) -> Comparison:
    """Exercise 7.2: ``choose_estimator(trial_snr, ks, threshold) -> int``, the decision rule.

    Of the estimators whose trial SNR reaches the threshold (``snr >= threshold``; NaN never
    does), the index of the one with the largest K, on a tie in K the higher SNR; −1 when none
    qualifies. The reference is ``experiments.choose_estimator``.

    Args (of the learner's function):
      trial_snr: ``[E]`` float32, each candidate's trial SNR.
      ks: ``[E]`` int32, each candidate's horizon K.
      threshold: Python float.

    Returns: a Python int (or integer scalar) in −1..E−1.
    """

    def sample(rng):
        n = int(rng.integers(1, 6))
        return {
            "trial_snr": (rng.integers(-2, 21, size=n) / 100).astype(np.float32),
            "ks": rng.integers(1, 9, size=n).astype(np.int32),
            # Between the SNRs' grid of 0.01, so float32 rounding never decides a comparison.
            "threshold": float(rng.choice([0.025, 0.045, 0.075, 0.105])),
        }

    def inputs(trial_snr, ks, threshold):
        return {"trial_snr": f32(trial_snr), "ks": np.asarray(ks, np.int32), "threshold": threshold}

    def choose(key, accepts=lambda snr, threshold: snr >= threshold):
        """The rule with another ``key(snr, k)`` to maximise or another acceptance test."""

        def chosen(trial_snr, ks, threshold):
            snr, ks = np.asarray(trial_snr, float), np.asarray(ks)
            accepted = [e for e in range(len(ks)) if accepts(snr[e], threshold)]
            return max(accepted, key=lambda e: key(snr[e], ks[e])) if accepted else -1

        return chosen

    mistakes = [
        (
            choose(lambda snr, k: (-k, snr)),
            "scale the most far-sighted accepted estimator: the largest K, not the smallest",
        ),
        (
            choose(lambda snr, k: snr),
            "choose by K first (the largest among the accepted) and let the SNR only break ties",
        ),
        (
            choose(lambda snr, k: k),
            "on a tie in K take the higher SNR, not the first index",
        ),
        (
            choose(lambda snr, k: (k, snr), accepts=lambda snr, threshold: snr > threshold),
            "an SNR equal to the threshold reaches it: accept snr >= threshold",
        ),
    ]
    return Comparison(
        analysis.choose_estimator,
        sample,
        hint="keep the indices with trial_snr >= threshold; of them return the one with the "
        "largest (ks, trial_snr) pair, or -1 when none is kept",
        # Thresholds equal to an SNR are powers of two: the same number in float32 and float64.
        edge_cases=[
            inputs([0.1, 0.02, 0.05], [1, 5, 5], 0.03),
            inputs([0.1, 0.05, 0.06], [1, 5, 5], 0.03),
            inputs([0.05, 0.1, 0.06], [1, 3, 5], 0.03),
            inputs([0.5, 0.25, 0.125], [1, 3, 5], 0.25),
            inputs([0.01, np.nan], [1, 5], 0.03),
            inputs([0.01, 0.02], [3, 1], 0.03),
        ],
        mistakes=mistakes,
        output_name="index",
    )


@graded("7.3")
def check_predicted_travel(rng) -> Comparison:
    """Exercise 7.3: ``predicted_travel(samples, learning_rate, n_updates) -> [n_eta]``, the drift
    law's travel of η over a run (``docs/notation.md`` §6).

    Pooled over the run's checkpoints: ``m = samples.mean(axis=(0, 1))``, ``v`` the mean over the
    checkpoints of their variances (ddof=1), ``s = max(0, (m² − v / (C·n)) / v)`` per coordinate,
    and ``−sign(m) · n_updates · learning_rate · √(s / (1 + s))``. The reference is
    ``drift.predicted_travel``.

    Args (of the learner's function):
      samples: ``[C, n, n_eta]`` float32, n >= 2 estimates at each of C checkpoints, each
        coordinate with some spread.
      learning_rate: Python float > 0, β.
      n_updates: Python int >= 1, the run's meta-updates N.

    Returns: ``[n_eta]``.
    """
    shape = (int(rng.integers(2, 6)), int(rng.integers(3, 9)), int(rng.integers(1, 4)))

    def sample(rng):
        samples = numbers(rng, shape) + numbers(rng, shape[-1:])  # a mean per coordinate
        while np.any(np.all(samples == samples[:1, :1], axis=(0, 1))):  # a coordinate without noise
            samples = numbers(rng, shape) + numbers(rng, shape[-1:])
        return {
            "samples": samples,
            "learning_rate": float(rng.choice([1e-3, 3e-3, 0.01, 0.1])),
            "n_updates": int(rng.integers(10, 1000)),
        }

    def law(snr_of, step_of=lambda s: np.sqrt(s / (1 + s)), sign=-1.0):
        def travel(samples, learning_rate, n_updates):
            samples = np.asarray(samples, float)
            mean = samples.mean(axis=(0, 1))
            return sign * np.sign(mean) * n_updates * learning_rate * step_of(snr_of(samples))

        return travel

    def pooled(floor):
        def snr(samples):
            c, n, _ = samples.shape
            mean, variance = samples.mean(axis=(0, 1)), samples.var(axis=1, ddof=1).mean(axis=0)
            return np.maximum((mean**2 - floor * variance / (c * n)) / variance, 0.0)

        return snr

    def per_checkpoint(samples):
        mean, variance = samples.mean(axis=1), samples.var(axis=1, ddof=1)
        return np.maximum((mean**2 - variance / samples.shape[1]) / variance, 0.0).mean(axis=0)

    mistakes = [
        (law(pooled(1.0), sign=1.0), "η goes downhill: the travel is against the sign of the mean"),
        (law(pooled(0.0)), "remove the noise floor v / (C·n) from m² before dividing by v"),
        (law(pooled(1.0), step_of=np.sqrt), "the mean step is β·√(s / (1 + s)), not β·√s"),
        (law(per_checkpoint), "pool the run: one mean m over all C·n samples, then one s"),
    ]
    return Comparison(
        drift.predicted_travel,
        sample,
        hint="m = samples.mean(axis=(0, 1)); v = samples.var(axis=1, ddof=1).mean(axis=0); "
        "s = np.maximum((m**2 - v / (C * n)) / v, 0); "
        "return -np.sign(m) * n_updates * learning_rate * np.sqrt(s / (1 + s))",
        edge_cases=[
            {
                "samples": f32([[[1.0, 0.5], [3.0, -0.5]], [[2.0, 0.5], [2.0, -1.5]]]),
                "learning_rate": 0.01,
                "n_updates": 100,
            },
            {
                "samples": f32([[[1.0], [-1.0], [1.0], [-1.0]]]),
                "learning_rate": 0.1,
                "n_updates": 10,
            },
        ],
        mistakes=mistakes,
        output_name="predicted travel",
    )
