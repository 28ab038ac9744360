"""Conclusions over seeds with their intervals: what the capstone's claims are made of.

Bootstrap (BCa) and Student-t intervals over seeds, both scipy's, for one run's per-seed numbers
and for paired differences between runs (docs/notation.md §7), the final-return gap, variance and
SNR ratios, SNR over training, the scale-free measures of every run and checkpoint, how far a
tuner started badly recovers, and the statistical agreement of a regenerated run with the stored
one. NumPy and SciPy only.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import jax
import numpy as np
from scipy import stats as scipy_stats

from course_lib import stats
from course_lib.experiments.analysis import final_returns, mix_samples, own_snr
from course_lib.experiments.settings import parse_estimator

if TYPE_CHECKING:
    from course_lib.experiments.results import Results


class Interval(NamedTuple):
    """A statistic over seeds and its interval: BCa bootstrap (``seed_interval``) or Student-t
    (``student_interval``) (docs/notation.md §7)."""

    value: float
    low: float
    high: float
    level: float  # central coverage, e.g. 0.9

    def excludes(self, x: float) -> bool:
        """Whether ``x`` lies outside the interval (e.g. 0: "no difference" is ruled out)."""
        return not self.low <= x <= self.high


def _finite_per_seed(per_seed) -> np.ndarray:
    """``per_seed`` as a 1-D float array without its NaN entries; at least 2 must remain."""
    values = np.asarray(per_seed, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"per_seed must be [n_seeds], got shape {values.shape}")
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError(f"per_seed needs at least 2 finite values, got {values.size}")
    return values


def seed_interval(per_seed, level: float = 0.9, n_boot: int = 2000, seed: int = 0) -> Interval:
    """The mean over seeds of ``per_seed`` [n_seeds] and its BCa bootstrap interval (seeds
    resampled with replacement, ``stats.bootstrap_ci``). NaN entries are dropped; at least 2
    must remain."""
    values = _finite_per_seed(per_seed)
    mean_over_seeds = lambda s: s.mean(axis=0)[..., 0]
    low, high = stats.bootstrap_ci(
        values[:, None], mean_over_seeds, jax.random.PRNGKey(seed), n_boot, level
    )
    return Interval(float(values.mean()), float(low), float(high), level)


def student_interval(per_seed, level: float = 0.9) -> Interval:
    """The mean over seeds of ``per_seed`` [n_seeds] with the Student-t interval
    mean ± t_{n−1} s/√n (NaN entries dropped; at least 2 must remain).

    With few seeds the bootstrap of ``seed_interval`` runs narrow: BCa corrects the percentile
    interval's bias and skew, but it still resamples only the n values seen, so at n = 8 normal
    values a nominal 0.9 covers about 0.81 (0.82 for the percentile interval; 3000 simulated
    draws), where this one covers 0.9. The t interval assumes roughly normal per-seed values
    instead. A claim that holds under both is one to state."""
    values = _finite_per_seed(per_seed)
    low, high = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(level)
    return Interval(float(values.mean()), float(low), float(high), level)


def paired_interval(a, b, level: float = 0.9, n_boot: int = 2000, seed: int = 0) -> Interval:
    """``seed_interval`` of the paired differences ``b − a`` [n_seeds] (seed s of every estimator
    starts from the same θ_0: the pairs cancel what the seeds share)."""
    return seed_interval(np.asarray(b, float) - np.asarray(a, float), level, n_boot, seed)


def return_gap(results: Results, a: str, b: str, level: float = 0.9, **bootstrap) -> Interval:
    """Final return (``final_returns``) of ``b`` minus that of ``a``, paired by seed."""
    finals = final_returns(results)
    return paired_interval(finals[results.index(a)], finals[results.index(b)], level, **bootstrap)


def measure_ratio(
    results: Results, measure: str, a: str, b: str, level: float = 0.9, **bootstrap
) -> Interval:
    """How many times ``measure`` ("variance" or "snr") of estimator ``a`` exceeds that of ``b``,
    both measured on the same samples (same agent state), over every run and checkpoint.

    Per seed, the geometric mean of the paired ratios over the runs of every estimator and every
    checkpoint (as ``variance_ratio``); the interval resamples seeds, the independent unit.
    Returned on the ratio scale: ``value`` = exp(mean over seeds of the per-seed log ratio).
    """
    if measure not in ("variance", "snr"):
        raise ValueError(f"measure must be 'variance' or 'snr', got {measure!r}")
    values = getattr(results, measure)  # [E, S, C, F]
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log(values[..., results.index(a)]) - np.log(values[..., results.index(b)])
    log_ratio = np.where(np.isfinite(log_ratio), log_ratio, np.nan)
    per_seed = np.nanmean(np.moveaxis(log_ratio, 1, 0).reshape(log_ratio.shape[1], -1), axis=1)
    logged = seed_interval(per_seed, level, **bootstrap)
    return Interval(*np.exp(logged[:3]).tolist(), level)


class Recovery(NamedTuple):
    """How far a tuner started from a poor setting gets (``recovery``): final returns, paired."""

    tuned: str
    gain: Interval  # tuned − the poor start held fixed
    shortfall: Interval  # the sweep's best held fixed − tuned
    recovered: Interval  # (tuned − poor) / (swept − poor): the share of the sweep's gain recovered
    env_steps: int  # environment steps per agent over the whole run (the tuner's cost)


def recovery(
    results: Results,
    tuned: str,
    poor: str = "fixed5@poor",
    swept: str = "fixed5@swept",
    level: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
) -> Recovery:
    """Does self-tuning replace a sweep? ``tuned`` (e.g. ``k1@poor``) against the poor start held
    fixed and the sweep's best setting held fixed, by final return (``final_returns``), seed by
    seed. ``recovered`` is a ratio of means over seeds, its interval from resampling seeds."""
    finals = final_returns(results)
    per_seed = np.stack([finals[results.index(name)] for name in (poor, tuned, swept)], axis=-1)

    def share(s):  # [n_seeds, n_boot, 3] -> [n_boot]
        m = s.mean(axis=0)
        return (m[..., 1] - m[..., 0]) / (m[..., 2] - m[..., 0])

    low, high = stats.bootstrap_ci(per_seed, share, jax.random.PRNGKey(seed), n_boot, level)
    bootstrap = dict(n_boot=n_boot, seed=seed)
    return Recovery(
        tuned,
        paired_interval(per_seed[:, 0], per_seed[:, 1], level, **bootstrap),
        paired_interval(per_seed[:, 1], per_seed[:, 2], level, **bootstrap),
        Interval(float(share(per_seed[:, None])[0]), float(low), float(high), level),
        int(results.env_steps[-1]),
    )


class OverTraining(NamedTuple):
    """A per-run series over checkpoints, summarised over seeds: mean and BCa interval."""

    env_steps: np.ndarray  # [C]
    mean: np.ndarray  # [C]
    low: np.ndarray  # [C]
    high: np.ndarray  # [C]
    per_seed: np.ndarray  # [S, C]


def over_training(
    results: Results, per_seed, level: float = 0.9, n_boot: int = 2000, seed: int = 0
) -> OverTraining:
    """Mean over seeds of ``per_seed`` [S, C] at every checkpoint, with BCa intervals."""
    per_seed = np.asarray(per_seed, dtype=float)
    intervals = [seed_interval(column, level, n_boot, seed) for column in per_seed.T]
    low, high = (np.array([i.low for i in intervals]), np.array([i.high for i in intervals]))
    return OverTraining(
        results.env_steps, np.array([i.value for i in intervals]), low, high, per_seed
    )


def snr_over_training(results: Results, estimator: str, level: float = 0.9) -> OverTraining:
    """Debiased SNR (``own_snr``) of each run of ``estimator`` at every checkpoint, with its mean
    over seeds and bootstrap interval: what lessons 06–07 plot and quote."""
    snr = own_snr(results)
    if estimator not in snr:
        raise ValueError(f"{estimator!r} is not measured; these are: {sorted(snr)}")
    return over_training(results, snr[estimator], level)


def scale_free_measures(results: Results) -> stats.ScaleFreeMeasures:
    """Cosine, SNR, right_direction and scale_free_mse (docs/notation.md §4) of every estimator
    on every run's samples, each [E, S, C, F] (F: the estimators, NaN where not ``measured``).

    The reference at run (e, s), checkpoint c is E g_{k_var}, the longest horizon the samples
    reach (not the far target g*: Snake has none), estimated cross-fitted: the replicas are split
    in two halves, each half is measured against the mean of g_{k_var} over the *other* half, and
    the two halves' measures are averaged. A reference built from the replicas it scores would
    share their noise: with n replicas, ‖Var g_{k_var}‖/n ≫ ‖E g_{k_var}‖² on Snake, so every
    estimator would be ranked by how much of g_{k_var}'s noise it shares, and ``k<k_var>`` would
    get cosine 1 by construction. Each half holds n/2 replicas, so the plain SNR's noise floor is
    about 2/n.
    """
    samples = np.asarray(results.samples, dtype=np.float64)  # [E, S, C, n, k, eta]
    parsed = [parse_estimator(e) for e in results.estimators]
    mixed = mix_samples(samples, results.weights[:, None])  # [n, E, S, C, F, eta]
    half = samples.shape[-3] // 2
    folds = ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half)))
    fields = []
    for measured_half, reference_half in folds:
        target = samples[..., reference_half, -1, :].mean(axis=-2)[
            ..., None, :
        ]  # [E, S, C, 1, eta]
        part = mixed[measured_half]
        fields.append(stats.meta_gradient_stats(part, np.broadcast_to(target, part.shape[1:])))
    ok = np.array([e.measured for e in parsed])
    names = ("cosine", "snr", "right_direction", "scale_free_mse")
    mean = (np.mean([getattr(fold, name) for fold in fields], axis=0) for name in names)
    return stats.ScaleFreeMeasures(*(np.where(ok, field, np.nan) for field in mean))


class Agreement(NamedTuple):
    """One measure of a regenerated run against the stored one (``agreement``)."""

    measure: str  # what is compared, e.g. "episode return of k5 at checkpoint 1"
    stored: float  # mean over the stored run's seeds
    regenerated: float  # mean over the regenerated run's seeds
    low: float  # interval of regenerated − stored
    high: float

    @property
    def ok(self) -> bool:
        """The interval holds 0: the two runs do not disagree on this measure."""
        return self.low <= 0.0 <= self.high


def agreement(stored: Results, regenerated: Results, level: float = 0.99) -> list[Agreement]:
    """Does ``regenerated`` (a prefix of ``stored``'s settings run again, perhaps on another
    machine) agree with ``stored`` within the spread over seeds?

    ``regenerated`` may have fewer checkpoints, fewer seeds and a subset of the estimators: seed s
    of an estimator starts from the same θ_0 and keys in both (common random numbers), and an
    estimator's runs do not depend on which others run beside it. For every estimator and
    checkpoint of ``regenerated``: the episode return, and the log variance and debiased SNR of
    the run's own meta-gradient (where ``measured``). Each is compared seed by seed: the paired
    differences d_s (regenerated − stored, s < n, n >= 2 seeds in both) give the interval
    mean(d) ± t·sd(d)/√n, with t the Student quantile (n − 1 degrees of freedom) at a per-check
    level Bonferroni-corrected so that ``level`` holds for the whole list: if the runs differ
    only by floating-point noise grown through sampling, all checks pass with probability at
    least ``level``. Bit-identical numbers (the same machine and JAX build) give d = 0.

    Raises:
      ValueError: other settings differ, or ``regenerated`` is not a prefix of ``stored``
        (estimators, seeds, checkpoints or environment steps).
    """
    free = dict(n_checkpoints=1, n_seeds=1, estimators=("k1",))
    if dataclasses.replace(stored.config, **free) != dataclasses.replace(
        regenerated.config, **free
    ):
        raise ValueError(
            "regenerated must have stored's settings but n_checkpoints, n_seeds and estimators"
        )
    _, n_seeds, n_checkpoints = regenerated.episode_return.shape
    n = min(n_seeds, stored.episode_return.shape[1])
    missing = set(regenerated.estimators) - set(stored.estimators)
    steps = stored.env_steps[:n_checkpoints]
    if missing or n < 2 or not np.array_equal(steps, regenerated.env_steps):
        raise ValueError(
            "regenerated must be a prefix of stored: its estimators among stored's (extra: "
            f"{sorted(missing)}), >= 2 seeds in both ({n}), the same environment steps "
            f"({regenerated.env_steps.tolist()} vs {steps.tolist()})"
        )
    own = [own_snr(stored), own_snr(regenerated)]
    pairs = []  # (measure, stored [S, C], regenerated [S, C])
    for e, name in enumerate(regenerated.estimators):
        s = stored.index(name)
        pairs.append(
            (f"episode return of {name}", stored.episode_return[s], regenerated.episode_return[e])
        )
        if name in own[1]:
            log_var = [np.log(stored.variance[s, ..., s]), np.log(regenerated.variance[e, ..., e])]
            pairs.append((f"log variance of {name}", *log_var))
            pairs.append((f"debiased SNR of {name}", own[0][name], own[1][name]))
    per_check = 1.0 - (1.0 - level) / (len(pairs) * n_checkpoints)
    t = float(scipy_stats.t.ppf(0.5 + per_check / 2, n - 1))
    checks = []
    for measure, a, b in pairs:
        for c in range(n_checkpoints):
            x, y = np.asarray(a[:n, c], float), np.asarray(b[:n, c], float)
            d = y - x
            half = t * d.std(ddof=1) / np.sqrt(n)
            checks.append(
                Agreement(
                    f"{measure} at checkpoint {c + 1}",
                    float(x.mean()),
                    float(y.mean()),
                    float(d.mean() - half),
                    float(d.mean() + half),
                )
            )
    return checks
