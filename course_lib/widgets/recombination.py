"""The meta-gradient explorer's arithmetic, pure NumPy: every horizon's mix and its statistics.

The cache holds ``samples[s, k−1] = g_k(ω_s)``, [n_seeds, k_max, n_eta]. A slider move only
chooses weights (docs/notation.md §3) and recombines it,

    g_mix(ω_s) = Σ_{k=1}^{K} w_k g_k(ω_s),

for every horizon K at once, then measures each against g*_K (docs/notation.md §4).

The explorer's axes stay put while the sliders move, so a narrower histogram or a lower curve is
visible as such. That is possible because every estimate the sliders can produce is a convex
combination of g_1..g_K: per seed it lies between the K-step estimates (``histogram_span``), and
its variance (a convex quadratic in the weights) is at most max_k Var(g_k), reached at a one-hot
weight (``reachable_maxima``).
"""

from __future__ import annotations

import contextlib

import numpy as np

from course_lib import mixing
from course_lib.stats import meta_gradient_stats

# The estimator kinds the explorer offers (labels from ``mixing.ESTIMATOR_KINDS``).
EXPLORER_KINDS = {
    kind: mixing.ESTIMATOR_KINDS[kind] for kind in ("k-step", "geometric", "lambda-return", "free")
}
CURVES = {
    "variance": "variance tr Cov(g)",
    "bias_squared": "bias² ‖E g − g*_K‖²",
    "mse": "MSE = bias² + variance",
    "snr": "SNR ‖E g‖² / variance",
}
LOG_CURVES = ("variance", "mse", "snr")
REFERENCE_VIEW = "reference"  # the histogram's view along g*_K; the others are component indices


def recombine(samples, mode: str, lam: float, free_weights, reference=None):
    """Every horizon's estimate for the chosen weights, and its statistics: one NumPy pass.

    Args:
      samples: the cache [n_seeds, k_max, n_eta]; mode, lam, free_weights: the kind, λ or ρ and
        free weights of ``mixing.estimator_weights``.
      reference: [k_max, n_eta] or None.
    Returns: (mixed [n_seeds, k_max, n_eta] with column K−1 = Σ_k w_k g_k at horizon K, NaN where
    the weights are undefined; its ``curve_values``).
    """
    matrix = mixing.weight_matrix(mode, samples.shape[1], lam, free_weights)
    mixed = np.einsum("Kk,ske->sKe", matrix, samples)
    return mixed, curve_values(mixed, reference)


def curve_values(samples, reference=None) -> dict[str, np.ndarray]:
    """The explorer's numbers for one estimate per horizon, all horizons at once.

    Args:
      samples: [n_seeds, k_max, n_eta], the estimate at horizon K in column K−1.
      reference: [k_max, n_eta] true meta-gradients g*_K, or None.
    Returns: ``mean`` [k_max, n_eta] and ``variance``, ``snr``, ``bias``, ``bias_squared``,
    ``cosine``, ``mse``, each [k_max] (the last four NaN without a reference); see
    ``stats.meta_gradient_stats``.
    """
    stats = meta_gradient_stats(samples, reference)
    unknown = np.full(stats.variance.shape, np.nan)
    bias = unknown if stats.bias_norm is None else stats.bias_norm
    return {
        "mean": stats.mean,
        "variance": stats.variance,
        "snr": stats.snr,
        "bias": bias,
        "bias_squared": bias**2,
        "cosine": unknown if stats.cosine is None else stats.cosine,
        "mse": unknown if stats.mse is None else stats.mse,
    }


def reachable_maxima(k_step: dict, reference=None) -> dict[str, float]:
    """The largest variance, bias² and MSE that any mix of g_1..g_K can show at any horizon K.

    Each is convex in the weights (variance wᵀCw, bias² ‖Σ_j w_j E g_j − g*_K‖²), so over the
    simplex it peaks at a one-hot weight: max over K and j <= K of Var(g_j), ‖E g_j − g*_K‖² and
    their sum. ``k_step`` is ``curve_values`` of the K-step cache. NaN without a reference.
    """
    variance = k_step["variance"]
    out = {"variance": float(np.max(variance)), "bias_squared": np.nan, "mse": np.nan}
    if reference is None:
        return out
    # gap[j, K] = ‖E g_j − g*_K‖², only j <= K is reachable at horizon K.
    gap = ((k_step["mean"][:, None, :] - np.asarray(reference)[None, :, :]) ** 2).sum(-1)
    reachable = np.triu(np.ones_like(gap, dtype=bool))
    out["bias_squared"] = float(gap[reachable].max())
    out["mse"] = float((gap + variance[:, None])[reachable].max())
    return out


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


def direction(reference, view, k: int, n_eta: int) -> np.ndarray:
    """Unit vector of the histogram's ``view`` at horizon K: g*_K / ‖g*_K‖ for REFERENCE_VIEW
    (ValueError if g*_K = 0), else the component ``view``. [n_eta].

    With several meta-parameters each estimate is a vector. The default view projects it onto
    g*_K, because that is what a meta-update acts on: an estimate with a negative projection moves
    η the wrong way, and the spread along g*_K is the noise that matters for the update. The
    component views are the only ones when no reference is known.
    """
    if view != REFERENCE_VIEW:
        return np.eye(n_eta)[view]
    norm = np.linalg.norm(reference[k - 1])
    if norm == 0:
        raise ValueError(f"g*_{k} is zero, so it has no direction: pick a component view")
    return reference[k - 1] / norm


def histogram_span(samples, reference, view) -> tuple[float, float]:
    """(low, high) holding every histogram a setting can show in ``view``: a mix's estimate lies
    between the K-step estimates of its seed, so the range over all K of the projected g_1..g_K
    (plus 0 and g*_K) holds them all. Horizons without a direction are skipped."""
    n_eta = samples.shape[2]
    points = [0.0]
    for k in range(1, samples.shape[1] + 1):
        with contextlib.suppress(ValueError):
            unit = direction(reference, view, k, n_eta)
            projected = samples[:, :k] @ unit
            points += [projected.min(), projected.max()]
            if reference is not None:
                points.append(float(reference[k - 1] @ unit))
    return min(points), max(points)


def describe_setting(mode: str, lam) -> str:
    """The estimator in words, e.g. "λ-return style, ρ = 0.50"."""
    if mode in ("geometric", "lambda-return"):
        return f"{EXPLORER_KINDS[mode]} = {lam:.2f}"
    return EXPLORER_KINDS[mode]
