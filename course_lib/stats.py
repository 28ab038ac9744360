"""How good is a meta-gradient estimator? Mean, variance, bias, cosine, SNR and MSE across seeds.

For estimates g^(1..N) of one meta-gradient (one row per seed) and a reference g*:

    mean      ḡ    = (1/N) Σ_i g^(i)
    variance  V    = tr Cov(g) = Σ_e 1/(N−1) Σ_i (g^(i)_e − ḡ_e)²        (unbiased)
    bias      b    = ‖ḡ − g*‖,      cosine = ḡ·g* / (‖ḡ‖ ‖g*‖)
    SNR            = ‖ḡ‖² / V       (above ~1: the sign of a single estimate can be trusted)
    MSE            = b² + V         (the expected squared error of one estimate)

Pure numpy: widgets call these on every slider move, and numpy answers a few hundred seeds in
microseconds where dispatching to JAX would cost more than the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np


class MetaGradientStats(NamedTuple):
    """Statistics over seeds. With samples [n_seeds, *batch, n_eta]: ``mean`` and
    ``per_component_variance`` are [*batch, n_eta]; the others are [*batch]. ``bias_norm``,
    ``cosine`` and ``mse`` are None without a reference."""

    mean: np.ndarray
    variance: np.ndarray
    per_component_variance: np.ndarray
    snr: np.ndarray
    bias_norm: np.ndarray | None
    cosine: np.ndarray | None
    mse: np.ndarray | None


def _check_samples(samples) -> np.ndarray:
    samples = np.asarray(samples, dtype=float)
    if samples.ndim < 2:
        raise ValueError(f"samples must have shape [n_seeds, ..., n_eta], got {samples.shape}")
    if samples.shape[0] < 2:
        raise ValueError(
            f"samples must hold at least 2 seeds (n_seeds >= 2), got {samples.shape[0]}"
        )
    return samples


def meta_gradient_stats(samples, reference=None, probabilities=None) -> MetaGradientStats:
    """Mean, variance (trace of the covariance), SNR and, given a reference, bias, cosine and MSE.

    Args:
      samples: [n_seeds, *batch, n_eta], e.g. [n_seeds, n_eta] for one estimator or the seed cache
        [n_seeds, k_max, n_eta] of ``metagrad.sample_meta_gradients`` for every k at once.
      reference: the target g*, broadcastable to [*batch, n_eta] (e.g. [n_eta] or [k_max, n_eta]).
      probabilities: [n_seeds] exact probabilities of the rows (e.g. enumerated paths, summing
        to 1); then the moments are exact (weighted, no N−1 correction).
    Returns:
      ``MetaGradientStats`` (see its docstring for shapes).
    """
    samples = _check_samples(samples)
    if probabilities is None:
        mean = samples.mean(axis=0)
        per_component = samples.var(axis=0, ddof=1)
    else:
        prob = np.asarray(probabilities, dtype=float)
        if prob.shape != samples.shape[:1] or np.any(prob < 0) or abs(prob.sum() - 1.0) > 1e-6:
            raise ValueError(
                f"probabilities must be [n_seeds]={samples.shape[:1]}, >= 0, summing to 1; "
                f"got shape {prob.shape}, sum {prob.sum()!r}"
            )
        mean = np.tensordot(prob, samples, axes=1)
        per_component = np.tensordot(prob, (samples - mean) ** 2, axes=1)
    variance = per_component.sum(axis=-1)
    mean_sq = np.sum(mean**2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = mean_sq / variance
    if reference is None:
        return MetaGradientStats(mean, variance, per_component, snr, None, None, None)
    reference = np.asarray(reference, dtype=float)
    try:
        np.broadcast_shapes(reference.shape, mean.shape)
    except ValueError:
        raise ValueError(
            f"reference must broadcast to {mean.shape} (the mean's shape), got {reference.shape}"
        ) from None
    bias_norm = np.linalg.norm(mean - reference, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.sum(mean * reference, axis=-1) / np.sqrt(
            mean_sq * np.sum(reference**2, axis=-1)
        )
    return MetaGradientStats(
        mean, variance, per_component, snr, bias_norm, cosine, bias_norm**2 + variance
    )


def bootstrap_ci(
    samples,
    stat_fn: Callable[[np.ndarray], np.ndarray],
    key: jax.Array,
    n_boot: int = 1000,
    level: float = 0.9,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap confidence interval of ``stat_fn`` over seeds.

    Seeds are resampled with replacement ``n_boot`` times. ``stat_fn`` is called ONCE, on an
    array [n_seeds, n_boot, *batch, n_eta] (the replicates ride along as an extra batch axis), and
    must return [n_boot, *batch]: every field of ``meta_gradient_stats`` does, e.g.
    ``lambda s: meta_gradient_stats(s).variance``.

    Args:
      samples: [n_seeds, *batch, n_eta].
      key: a JAX PRNG key (seeds the numpy resampler, so intervals are reproducible).
      n_boot: bootstrap replicates; level: central coverage in (0, 1).
    Returns:
      (low, high), each [*batch].
    """
    samples = _check_samples(samples)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    n_seeds = samples.shape[0]
    index = rng.integers(0, n_seeds, size=(n_seeds, n_boot))
    replicates = np.asarray(stat_fn(samples[index]))
    if replicates.shape[:1] != (n_boot,):
        raise ValueError(
            f"stat_fn must return [n_boot={n_boot}, ...], got shape {replicates.shape}"
        )
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail], axis=0)
    return low, high
