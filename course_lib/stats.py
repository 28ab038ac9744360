"""How good is a meta-gradient estimator? Mean, variance, bias, cosine, SNR and MSE across seeds,
and the scale-free measures of docs/notation.md §4.

For estimates g^(1..N) of one meta-gradient (one row per seed) and a reference g*:

    mean      ḡ    = (1/N) Σ_i g^(i)
    variance  V    = tr Cov(g) = Σ_e 1/(N−1) Σ_i (g^(i)_e − ḡ_e)²        (unbiased)
    bias      b    = ‖ḡ − g*‖,      cosine = ḡ·g* / (‖ḡ‖ ‖g*‖)
    SNR            = ‖ḡ‖² / V       (above ~1: the sign of a single estimate can be trusted)
    MSE            = b² + V         (the expected squared error of one estimate)

η moves through Adam after clipping, so only an estimate's direction and its noise relative to
its size reach the agent; bias and MSE change with the scale of g, these do not:

    right_direction    = P(g·g* > 0)     (the share of single estimates whose step goes downhill)
    scale_free_mse     = min over c >= 0 of E‖c g − g*‖² / ‖g*‖²
                       = 1 − max(0, cos)² · SNR / (1 + SNR)      (c >= 0: shortened, never reversed)

0 is a perfect direction without noise, 1 is no better than not moving at all. Each measure
comes exact from a mean and covariance (``moment_measures``, ``scale_free_mse``) or sampled from
seeds (``meta_gradient_stats``, with bootstrap intervals from ``measure_intervals``).

Pure numpy: widgets call these on every slider move, and numpy answers a few hundred seeds in
microseconds where dispatching to JAX would cost more than the arithmetic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import scipy.stats

from course_lib.checks import check_count


class MetaGradientStats(NamedTuple):
    """Statistics over seeds. With samples [n_seeds, *batch, n_eta]: ``mean`` and
    ``per_component_variance`` are [*batch, n_eta]; the others are [*batch]. ``bias_norm``,
    ``cosine``, ``mse``, ``right_direction`` and ``scale_free_mse`` are None without a reference."""

    mean: np.ndarray
    variance: np.ndarray
    per_component_variance: np.ndarray
    snr: np.ndarray
    bias_norm: np.ndarray | None
    cosine: np.ndarray | None
    mse: np.ndarray | None
    right_direction: np.ndarray | None = None
    scale_free_mse: np.ndarray | None = None


class ScaleFreeMeasures(NamedTuple):
    """The scale-free measures of docs/notation.md §4, each [*batch] (see the module doc)."""

    cosine: np.ndarray
    snr: np.ndarray
    right_direction: np.ndarray
    scale_free_mse: np.ndarray


def _check_samples(samples) -> np.ndarray:
    samples = np.asarray(samples, dtype=float)
    if samples.ndim < 2:
        raise ValueError(f"samples must have shape [n_seeds, ..., n_eta], got {samples.shape}")
    return check_count("samples", samples, 2, "seeds (n_seeds >= 2)")


def _scale_free_error(dot, target_sq, second_moment):
    """1 − max(0, E g·g*)² / (‖g*‖² E‖g‖²), with E‖g‖² = ‖E g‖² + tr Cov g; 1 where g ≡ 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        explained = np.maximum(dot, 0.0) ** 2 / (target_sq * second_moment)
    return 1.0 - np.where(second_moment > 0, explained, 0.0)


def _check_reference(reference, shape: tuple[int, ...], name: str = "reference") -> np.ndarray:
    reference = np.asarray(reference, dtype=float)
    try:
        np.broadcast_shapes(reference.shape, shape)
    except ValueError:
        raise ValueError(
            f"{name} must broadcast to {shape} (the mean's shape), got {reference.shape}"
        ) from None
    return reference


def meta_gradient_stats(samples, reference=None, probabilities=None) -> MetaGradientStats:
    """Mean, variance (trace of the covariance), SNR and, given a reference, bias, cosine, MSE,
    right_direction and scale_free_mse (module doc).

    ``right_direction`` is the share of rows with g·g* > 0 and ``scale_free_mse`` is
    1 − max(0, cosine)²·SNR/(1 + SNR) with this function's cosine and SNR (so it is the error of
    ``min_c`` over the sample moments, the unbiased variance standing in for the covariance).

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
    reference = _check_reference(reference, mean.shape)
    bias_norm = np.linalg.norm(mean - reference, axis=-1)
    dot, reference_sq = np.sum(mean * reference, axis=-1), np.sum(reference**2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = dot / np.sqrt(mean_sq * reference_sq)
    agrees = np.sum(samples * reference, axis=-1) > 0
    right_direction = (
        agrees.mean(axis=0) if probabilities is None else np.tensordot(prob, agrees, axes=1)
    )
    return MetaGradientStats(
        mean,
        variance,
        per_component,
        snr,
        bias_norm,
        cosine,
        bias_norm**2 + variance,
        right_direction,
        _scale_free_error(dot, reference_sq, mean_sq + variance),
    )


def _check_moments(mean, cov, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, cov = np.asarray(mean, dtype=float), np.asarray(cov, dtype=float)
    if mean.ndim < 1 or cov.shape != mean.shape + mean.shape[-1:]:
        raise ValueError(
            f"cov must have shape [*batch, n_eta, n_eta] for a mean [*batch, n_eta] = "
            f"{mean.shape}, got {cov.shape}"
        )
    return mean, cov, _check_reference(target, mean.shape, "target")


def scale_free_mse(mean, cov, target) -> np.ndarray:
    """min over c >= 0 of E‖c g − g*‖² / ‖g*‖² from the exact moments of g (docs/notation.md §4):

        = 1 − max(0, E g·g*)² / (‖g*‖² (‖E g‖² + tr Cov g)) = 1 − max(0, cos)²·SNR/(1 + SNR).

    Exact for any distribution of g (it needs only the first two moments). 0: perfect direction,
    no noise; 1: no better than standing still (the mean points away from g*, or g ≡ 0).

    Args:
      mean: [*batch, n_eta]; cov: [*batch, n_eta, n_eta]; target: g*, broadcastable to the mean.
    Returns: [*batch].
    """
    return moment_measures(mean, cov, target).scale_free_mse


def scale_free_error(cosine, snr) -> np.ndarray:
    """The scale-free error from the direction and the SNR: 1 − max(0, cos)²·SNR/(1 + SNR)
    (docs/notation.md §4), elementwise; an infinite SNR gives 1 − max(0, cos)²."""
    cosine, snr = np.asarray(cosine, dtype=float), np.asarray(snr, dtype=float)
    with np.errstate(invalid="ignore"):
        kept = np.where(np.isinf(snr), 1.0, snr / (1.0 + snr))
    return 1.0 - np.maximum(0.0, cosine) ** 2 * kept


def moment_measures(mean, cov, target) -> ScaleFreeMeasures:
    """Cosine, SNR, right_direction and scale_free_mse from the exact moments of g.

    cosine = E g·g* / (‖E g‖ ‖g*‖) and SNR = ‖E g‖² / tr Cov g are exact for any distribution.
    ``right_direction`` is the Gaussian value

        P(gᵀg* > 0) = Φ(E gᵀg* / sqrt(g*ᵀ Cov g g*)),

    exact only when g is Gaussian. It is not for the toys: the quadratic's g_k is a quadratic form
    in Gaussian noise (skewed), the bandit's takes finitely many values. There it is the share of a
    Gaussian with the same moments, an approximation: the exact share comes from samples or from
    the enumerated paths, ``meta_gradient_stats(..., reference, probabilities).right_direction``.

    Args:
      mean: [*batch, n_eta]; cov: [*batch, n_eta, n_eta]; target: g*, broadcastable to the mean.
    Returns: ``ScaleFreeMeasures``, each field [*batch].
    """
    mean, cov, target = _check_moments(mean, cov, target)
    target = np.broadcast_to(target, mean.shape)
    mean_sq, variance = np.sum(mean**2, axis=-1), np.trace(cov, axis1=-2, axis2=-1)
    dot, target_sq = np.sum(mean * target, axis=-1), np.sum(target**2, axis=-1)
    spread = np.einsum("...e,...ef,...f->...", target, cov, target)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = dot / np.sqrt(mean_sq * target_sq)
        snr = mean_sq / variance
        z = np.where(spread > 0, dot / np.sqrt(spread), np.where(dot > 0, np.inf, -np.inf))
    right_direction = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    return ScaleFreeMeasures(
        cosine, snr, right_direction, _scale_free_error(dot, target_sq, mean_sq + variance)
    )


def bootstrap_ci(
    samples,
    stat_fn: Callable[[np.ndarray], np.ndarray],
    key: jax.Array,
    n_boot: int = 1000,
    level: float = 0.9,
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated (BCa) bootstrap confidence interval of ``stat_fn`` over
    seeds, by ``scipy.stats.bootstrap(..., method="BCa")``.

    Seeds are resampled with replacement ``n_boot`` times; the interval is the α_lo and α_hi
    quantiles of the replicates θ*_b of ``stat_fn`` (Efron and Tibshirani 1993, §14.3),

        α_lo = Φ(z₀ + (z₀ + z_α) / (1 − a (z₀ + z_α))),     α = (1 − level) / 2,

    α_hi the same with z_{1−α}. z₀ = Φ⁻¹(share of θ*_b below θ̂, ties counting half) corrects
    the replicates' bias; a = Σ_i U_i³ / (6 (Σ_i U_i²)^{3/2}), U_i = θ̂_(·) − θ̂_(i) over the
    leave-one-seed-out values θ̂_(i), their skew; z₀ = a = 0 is the percentile interval.
    Where z₀ or a is undefined (every replicate equal, a leave-one-out value not finite), that
    percentile interval of the same replicates is returned. So is it with more seeds than
    replicates (n_seeds > ``n_boot``): there z₀ and a, of order 1/√n_seeds, fall below the
    replicates' own Monte Carlo error (of order 1/√n_boot), and the n_seeds leave-one-out sets
    would cost more than the resampling.

    ``stat_fn`` is called on arrays [m, R, *batch, n_eta] (R resamples or leave-one-out sets
    ride along as an extra batch axis; m = n_seeds, or n_seeds − 1 left in) and must return
    [R, *batch]: every field of ``meta_gradient_stats`` does, e.g.
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

    def statistic(index, axis=-1):  # seed indices [R, m] (or [m]) -> [*batch, R] (or [*batch])
        rows = np.atleast_2d(index)
        replicates = np.asarray(stat_fn(np.swapaxes(samples[rows], 0, 1)), dtype=float)
        if replicates.shape[:1] != rows.shape[:1]:
            raise ValueError(
                f"stat_fn must return [{len(rows)} replicates, ...], got shape {replicates.shape}"
            )
        replicates = np.moveaxis(replicates, 0, -1)
        return replicates if np.ndim(index) == 2 else replicates[..., 0]

    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    with warnings.catch_warnings():  # undefined z₀ or a: handled below
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"scipy\.")
        result = scipy.stats.bootstrap(
            (np.arange(samples.shape[0]),),
            statistic,
            n_resamples=n_boot,
            vectorized=True,
            confidence_level=level,
            method="BCa" if samples.shape[0] <= n_boot else "percentile",
            rng=rng,
        )
    tail = (1.0 - level) / 2.0
    percentile = np.quantile(result.bootstrap_distribution, [tail, 1.0 - tail], axis=-1)
    bca = np.stack(result.confidence_interval)
    low, high = np.where(np.isnan(bca).any(axis=0), percentile, bca)
    return low, high


def measure_intervals(
    samples, reference, key: jax.Array, n_boot: int = 1000, level: float = 0.9
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Bootstrap intervals (``bootstrap_ci``, one resampling for all four) of the sampled
    cosine, SNR, right_direction and scale_free_mse of ``meta_gradient_stats(samples, reference)``.

    Args:
      samples: [n_seeds, *batch, n_eta]; reference: g*, broadcastable to [*batch, n_eta].
    Returns: {name: (low, high)}, each [*batch], for the four ``ScaleFreeMeasures`` names.
    """
    names = ScaleFreeMeasures._fields
    _check_reference(reference, _check_samples(samples).shape[1:])

    def measures(s):
        fields = meta_gradient_stats(s, reference)._asdict()
        return np.stack([fields[name] for name in names], axis=-1)

    low, high = bootstrap_ci(samples, measures, key, n_boot, level)
    return {name: (low[..., i], high[..., i]) for i, name in enumerate(names)}
