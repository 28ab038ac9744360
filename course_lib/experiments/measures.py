"""Every estimator's variance and SNR measured on a run's per-k samples: what loading results
computes (``results``) and what the analysis reads. NumPy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from course_lib import mixing, stats
from course_lib.experiments.settings import parse_estimator


def mix_samples(samples, weights) -> np.ndarray:
    """Every mix ``weights`` of every replica: Σ_k w_k g_k.

    Args:
      samples: [*lead, n_variance_samples, k_var, n_eta].
      weights: [F, *lead', k_var], one row per mix; ``lead'`` broadcasts against ``lead`` (e.g.
        [F, 1, S, C, k_var], per seed and checkpoint, against samples [E, S, C, ...]).
    Returns: [n_variance_samples, *lead, F, n_eta] (replicas first, as ``stats`` wants).
    """
    samples = np.asarray(samples, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    lead = samples.ndim - 3
    # Missing leading axes (e.g. [F, k_var] for fixed weights) broadcast over every run.
    missing = (1,) * (lead + 2 - weights.ndim)
    weights = weights.reshape(weights.shape[:1] + missing + weights.shape[1:])
    # The mixes as rows, [*lead', 1, F, k_var], against samples [*lead, n, k_var, n_eta].
    rows = np.moveaxis(weights, 0, -2)[..., None, :, :]
    return np.moveaxis(mixing.mix(samples, rows), -3, 0)  # [*lead, n, F, n_eta] -> replicas first


def measure_estimators(
    samples: np.ndarray, estimators: Sequence[str], mix_lambda: float = 0.5, weights=None
):
    """Variance and SNR of each estimator on per-k samples.

    Args:
      samples: [..., n_variance_samples, k_var, n_eta].
      estimators: names with K <= k_var.
      mix_lambda: λ_mix of the mixing weights.
      weights: instead of the estimators' own weights at ``mix_lambda``, these, [F, ..., k_var]
        (a row per estimator, broadcasting against the samples' leading axes, as
        ``Results.weights[:, None]``: auto<K>'s weights change over a run).
    Returns:
      (variance, snr), each [..., len(estimators)] (``stats.meta_gradient_stats``); NaN for a
      ``fixed`` control, which has no meta-gradient, for an estimator on several outer
      batches, which these samples (one outer batch per block) do not measure, and everywhere
      without samples (``n_variance_samples`` = 0).
    """
    parsed = [parse_estimator(e) for e in estimators]
    if np.shape(samples)[-3] == 0:
        nothing = np.full((*np.shape(samples)[:-3], len(parsed)), np.nan)
        return nothing, nothing.copy()
    if weights is None:
        weights = np.stack([e.weights(np.shape(samples)[-2], mix_lambda) for e in parsed])
    measured = stats.meta_gradient_stats(mix_samples(samples, weights))
    ok = np.array([e.measured for e in parsed])
    return np.where(ok, measured.variance, np.nan), np.where(ok, measured.snr, np.nan)
