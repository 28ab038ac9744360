"""The meta-gradient explorer's arithmetic, pure NumPy: every horizon's mix and its measures.

The cache holds ``samples[s, k−1] = g_k(ω_s)``, [n_seeds, k_max, n_eta]. A slider move only
chooses weights (docs/notation.md §3) and recombines it,

    g_mix(ω_s) = Σ_{k=1}^{K} w_k g_k(ω_s),

for every horizon K at once, then measures each against ONE fixed target g* (docs/notation.md
§4), the same for every K: cosine of the mean to g*, SNR, right_direction = P(g·g* > 0) and
scale_free_mse, with the raw variance and bias² beside them (scale-dependent: they change with
the size of g, not only with its quality). Where the joint moments of g_1..g_k_max are exact
(``exact.exact_meta_gradient_moments(..., joint=True)``), every mix's mean and covariance are
exact too,

    E g_mix = Σ_k w_k E g_k,     Cov g_mix = Σ_k Σ_j w_k w_j Cov[g_k, g_j],

and the curves use them; right_direction always comes from the samples (the exact share needs
the whole distribution, not two moments).

The explorer's axes stay put while the sliders move, so a narrower histogram or a lower curve is
visible as such. That is possible because every estimate the sliders can produce is a convex
combination of g_1..g_K: per seed it lies between the K-step estimates (``histogram_span``), and
its variance and bias² (convex in the weights) are at most their largest one-hot values
(``reachable_maxima``).
"""

from __future__ import annotations

import numpy as np

from course_lib import mixing
from course_lib.stats import meta_gradient_stats, moment_measures

# The estimator kinds the explorer offers (labels from ``mixing.ESTIMATOR_KINDS``).
EXPLORER_KINDS = {
    kind: mixing.ESTIMATOR_KINDS[kind] for kind in ("k-step", "geometric", "lambda-return", "free")
}
CURVES = {
    "cosine": "cos(E g, g*)",
    "snr": "SNR ‖E g‖² / tr Cov g",
    "right_direction": "right direction P(g·g* > 0)",
    "scale_free_mse": "scale-free error",
    "variance": "variance tr Cov g (scale-dependent)",
    "bias_squared": "bias² ‖E g − g*‖² (scale-dependent)",
}
SCALE_DEPENDENT = ("variance", "bias_squared", "mse")
NEEDS_TARGET = ("cosine", "right_direction", "scale_free_mse", "bias_squared", "mse")
LOG_CURVES = ("snr", "variance", "bias_squared")
# Bounded measures keep one y-range; the others start from the sample set's and only grow.
FIXED_LIMITS = {"cosine": (-1.05, 1.05), "right_direction": (-0.03, 1.03)}
TARGET_VIEW = "target"  # the histogram's view along g*; the others are component indices


def recombine(samples, mode: str, lam: float, free_weights, target=None, moments=None):
    """Every horizon's estimate for the chosen weights, and its measures: one NumPy pass.

    Args:
      samples: the cache [n_seeds, k_max, n_eta]; mode, lam, free_weights: the kind, λ or ρ and
        free weights of ``mixing.estimator_weights``.
      target: the fixed g* [n_eta], or None.
      moments: exact (mean, joint_cov) of g_1..g_k_max, or None (then the samples' moments).
    Returns: (mixed [n_seeds, k_max, n_eta] with column K−1 = Σ_k w_k g_k at horizon K, NaN where
    the weights are undefined; its ``curve_values``).
    """
    matrix = mixing.weight_matrix(mode, samples.shape[1], lam, free_weights)
    mixed = mixing.mix(samples, matrix)
    horizon_moments = None if moments is None else mixing.mix_moments(*moments, matrix)
    return mixed, curve_values(mixed, target, horizon_moments)


def curve_values(samples, target=None, moments=None) -> dict[str, np.ndarray]:
    """The explorer's numbers for one estimate per horizon, all horizons at once.

    Args:
      samples: [n_seeds, k_max, n_eta], the estimate at horizon K in column K−1.
      target: the fixed g* [n_eta], or None.
      moments: exact (mean [k_max, n_eta], cov [k_max, n_eta, n_eta]) of the same estimates
        (``mixing.mix_moments`` of a weight matrix), or None; they need a target.
    Returns: ``mean`` [k_max, n_eta] and ``cosine``, ``snr``, ``right_direction``,
    ``scale_free_mse``, ``variance``, ``bias_squared``, ``mse``, each [k_max] (NaN without a
    target where they need one). ``right_direction`` is the samples' share; the rest come from
    ``moments`` if given (``stats.moment_measures``), else from the samples
    (``stats.meta_gradient_stats``).
    """
    sampled = meta_gradient_stats(samples, target)
    unknown = np.full(sampled.variance.shape, np.nan)
    if target is None:
        return {
            "mean": sampled.mean,
            "variance": sampled.variance,
            "snr": sampled.snr,
            **{name: unknown for name in NEEDS_TARGET},
        }
    if moments is None:
        mean, variance, measures = sampled.mean, sampled.variance, sampled
    else:
        mean, cov = moments
        variance = np.trace(cov, axis1=-2, axis2=-1)
        measures = moment_measures(mean, cov, target)
    bias_squared = np.sum((mean - target) ** 2, axis=-1)
    return {
        "mean": mean,
        "cosine": measures.cosine,
        "snr": measures.snr,
        "right_direction": sampled.right_direction,
        "scale_free_mse": measures.scale_free_mse,
        "variance": variance,
        "bias_squared": bias_squared,
        "mse": bias_squared + variance,
    }


def reachable_maxima(k_step: dict) -> dict[str, float]:
    """The largest variance, bias² and MSE that any mix of g_1..g_K can show at any horizon K.

    Each is convex in the weights (variance wᵀCw, bias² ‖Σ_j w_j E g_j − g*‖²), so over the
    simplex it peaks at a one-hot weight: max over j of Var(g_j), ‖E g_j − g*‖² and their sum.
    ``k_step`` is ``curve_values`` of the K-step estimates. NaN without a target.
    """
    return {name: float(np.max(k_step[name])) for name in SCALE_DEPENDENT}


def slider_weights(weights, k_max: int) -> np.ndarray:
    """Free weights w_1..w_j (j <= k_max, finite, >= 0) for the explorer's sliders: scaled into
    their range [0, 1] (normalising afterwards undoes the scale), zero after j. [k_max]."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 1 or not 1 <= weights.size <= k_max:
        raise ValueError(f"weights must list 1 to k_max={k_max} numbers, got shape {weights.shape}")
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(f"free weights must be finite and >= 0, got {weights}")
    free = np.zeros(k_max)
    free[: weights.size] = weights / max(weights.max(), 1.0)
    return free


def direction(target, view, n_eta: int) -> np.ndarray:
    """Unit vector of the histogram's ``view``: g*/‖g*‖ for TARGET_VIEW, else the component
    ``view``. [n_eta].

    With several meta-parameters each estimate is a vector. The default view projects it onto
    g*, because that is what decides a meta-update's direction: an estimate with a negative
    projection moves η the wrong way. The component views are the only ones without a target.
    """
    if view != TARGET_VIEW:
        return np.eye(n_eta)[view]
    return target / np.linalg.norm(target)


def histogram_span(samples, target, view) -> tuple[float, float]:
    """(low, high) holding every histogram a setting can show in ``view``: a mix's estimate lies
    between the K-step estimates of its seed, so the range of the projected g_1..g_k_max (plus 0)
    holds them all."""
    projected = samples @ direction(target, view, samples.shape[2])
    return min(0.0, projected.min()), max(0.0, projected.max())


def describe_setting(mode: str, lam) -> str:
    """The estimator in words, e.g. "λ-return style, ρ = 0.50"."""
    if mode in ("geometric", "lambda-return"):
        return f"{EXPLORER_KINDS[mode]} = {lam:.2f}"
    return EXPLORER_KINDS[mode]
