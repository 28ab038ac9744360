"""Reading a capstone run (lessons 06 and 07): returns, variance and SNR of each estimator, the
paired comparisons over seeds, and the practitioner's trial-then-scale rule.

NumPy over stored arrays only (docs/notation.md §4 for the measures, §7 for the statistics over
seeds): nothing here imports the engine or the environments, so the explorers and the grading read
results without loading the runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np

from course_lib import plots, stats
from course_lib.experiments.measures import (
    measure_estimators,
    mix_samples,  # noqa: F401 - intervals imports it from here
)
from course_lib.experiments.results import Results
from course_lib.experiments.settings import checkpoint_rollouts, parse_estimator


def final_returns(results: Results, fraction: float = 0.25) -> np.ndarray:
    """Mean episode return over the last ``fraction`` of checkpoints, per run. [E, S]."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    n_last = max(1, round(fraction * results.episode_return.shape[-1]))
    return np.nanmean(results.episode_return[..., -n_last:], axis=-1)


def steps_per_rollout(results: Results) -> int:
    """Environment steps in one rollout (``rollout_len x n_envs``) of the run behind ``results``."""
    return int(results.env_steps[0]) // checkpoint_rollouts(results.config)


def variance_ratio(variance_a, variance_b) -> float:
    """How many times larger ``variance_a`` is than ``variance_b``, paired entry by entry.

    ``exp(mean(log a − log b))``: the geometric mean of the paired ratios. Variances measured on the
    same agent state (same samples) are paired; the geometric mean suits ratios that span orders of
    magnitude over training, and ``variance_ratio(b, a) == 1 / variance_ratio(a, b)``. Entries that
    are NaN or not positive are skipped.
    """
    a, b = np.broadcast_arrays(np.asarray(variance_a, float), np.asarray(variance_b, float))
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if not ok.any():
        raise ValueError("variance_a and variance_b share no finite positive entries")
    return float(np.exp(np.mean(np.log(a[ok]) - np.log(b[ok]))))


def variance_by_k(results: Results) -> np.ndarray:
    """tr Cov of each g_k, k = 1..k_var, on every run's samples. [E, S, C, k_var]."""
    names = [f"k{k}" for k in range(1, results.samples.shape[-2] + 1)]
    return measure_estimators(results.samples, names, results.config.mix_lambda)[0]


class Headline(NamedTuple):
    """What the capstone measures, pooled over every run, seed and checkpoint (see ``headline``)."""

    k: int  # the horizon compared: estimators k<k> and mix<k>
    variance_by_k: np.ndarray  # [k_var] geometric mean of tr Cov(g_k) on every agent state
    variance_growth: float  # Var(g_K) / Var(g_1), paired on the same samples
    mixing_cut: float  # Var(k<K>) / Var(mix<K>), paired on the same samples
    final_return: dict  # estimator -> (mean over seeds, standard error)
    return_gap: tuple[float, float]  # final return of mix<K> minus k<K>: mean of seed pairs, s.e.


def headline(results: Results, k: int | None = None) -> Headline:
    """The capstone's numbers: does variance grow with K, how much does mixing cut it, and what
    happens to the return.

    Variances are compared on the same samples (same agent state, same replicas) and summarised by
    ``variance_ratio`` over every run, seed and checkpoint. Final returns (``final_returns``) of the
    two estimators are compared seed by seed: seed s of every estimator starts from the same θ_0.

    Args:
      k: the horizon to compare; default the largest K with both ``k<K>`` and ``mix<K>`` present.
    """
    if k is None:
        both = [parse_estimator(e).k for e in results.estimators if e.startswith("mix")]
        both = [j for j in both if f"k{j}" in results.estimators]
        if not both:
            raise ValueError(f"need k<K> and mix<K> for the same K, got {results.estimators}")
        k = max(both)
    k_step, mix = results.index(f"k{k}"), results.index(f"mix{k}")
    by_k = variance_by_k(results)
    finals = final_returns(results)
    return Headline(
        k=k,
        variance_by_k=np.exp(np.log(by_k).reshape(-1, by_k.shape[-1]).mean(axis=0)),
        variance_growth=variance_ratio(by_k[..., k - 1], by_k[..., 0]),
        mixing_cut=variance_ratio(results.variance[..., k_step], results.variance[..., mix]),
        final_return={
            name: paired_difference(np.zeros_like(f), f)
            for name, f in zip(results.estimators, finals, strict=True)
        },
        return_gap=paired_difference(finals[k_step], finals[mix]),
    )


def paired_difference(a, b) -> tuple[float, float]:
    """Mean of ``b − a`` over paired seeds and its standard error, std(b − a, ddof=1) / √n.

    Seed s of every estimator starts from the same θ_0 and boards, so differences seed by seed
    cancel what the seeds share. The standard error is 0 with a single pair.

    Args:
      a, b: [n_seeds] one value per seed (e.g. final returns of two estimators).
    Returns:
      (mean, standard error).
    """
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diff.ndim != 1 or diff.size == 0:
        raise ValueError(f"a and b must be [n_seeds] with n_seeds >= 1, got shape {diff.shape}")
    sem = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else 0.0
    return float(diff.mean()), float(sem)


def debiased_snr(samples) -> np.ndarray:
    """The SNR with its noise floor removed: (‖ḡ‖² − V/n) / V = SNR − 1/n.

    With n samples, E‖ḡ‖² = ‖E g‖² + tr Cov / n, so the plain SNR ‖ḡ‖² / V of pure noise comes out
    near 1/n, not 0. Subtracting V/n from the numerator removes that floor (the result can be
    slightly negative when there is no signal).

    Args:
      samples: [n, *batch, n_eta] (n >= 2 independent estimates).
    Returns:
      [*batch].
    """
    samples = np.asarray(samples, dtype=float)
    return stats.meta_gradient_stats(samples).snr - 1.0 / samples.shape[0]


def choose_estimator(trial_snr, ks, threshold: float) -> int:
    """The practitioner's rule: among the estimators whose trial SNR reaches ``threshold``, scale up
    the most far-sighted one (largest K; on a tie, the higher SNR). −1 when none qualifies.

    Args:
      trial_snr: [E] SNR of each estimator measured in a small trial.
      ks: [E] each estimator's horizon K.
      threshold: the SNR an estimator must reach.
    Returns:
      The index of the chosen estimator, or −1.
    """
    trial_snr, ks = np.asarray(trial_snr, dtype=float), np.asarray(ks)
    if trial_snr.shape != ks.shape or trial_snr.ndim != 1:
        raise ValueError(f"trial_snr and ks must both be [E], got {trial_snr.shape} and {ks.shape}")
    accepted = np.flatnonzero(trial_snr >= threshold)
    if accepted.size == 0:
        return -1
    return int(max(accepted, key=lambda e: (ks[e], trial_snr[e])))


class Decision(NamedTuple):
    """The practitioner's rule applied to a trial of the first ``trial_checkpoints`` checkpoints."""

    trial_env_steps: int  # environment steps per agent spent in the trial
    trial_snr: dict  # estimator -> mean debiased SNR of its own runs over the trial (fixed: none)
    accepted: tuple[str, ...]  # estimators whose trial SNR reached the threshold
    chosen: str | None  # ``choose_estimator``'s pick; None: keep the hand-set hyper-parameters
    final_return: dict  # estimator -> mean final return over seeds, in the full run


def own_snr(results: Results) -> dict[str, np.ndarray]:
    """``debiased_snr`` of each self-tuning run's own meta-gradient, per seed and checkpoint.

    Returns:
      {estimator: [n_seeds, n_checkpoints]} for every estimator the samples measure
      (``Estimator.measured``: not the fixed controls, nor one on several outer batches).
    """
    snr = {}
    for e, estimator in enumerate(map(parse_estimator, results.estimators)):
        if estimator.measured:
            own = np.einsum("sck,scnke->nsce", results.weights[e], results.samples[e])
            snr[estimator.name] = debiased_snr(own)
    return snr


def trial_decision(results: Results, snr_threshold: float, trial_checkpoints: int) -> Decision:
    """Decide from the first ``trial_checkpoints`` checkpoints which estimator to scale up.

    Each estimator's trial SNR is ``own_snr`` averaged over seeds and the trial's checkpoints;
    ``choose_estimator`` picks among those reaching ``snr_threshold``. ``final_return`` tells how
    each choice turned out by the end of the stored run.
    """
    n_checkpoints = results.snr.shape[2]
    if isinstance(trial_checkpoints, bool) or not 1 <= int(trial_checkpoints) <= n_checkpoints:
        raise ValueError(
            f"trial_checkpoints must be in 1..{n_checkpoints}, got {trial_checkpoints!r}"
        )
    trial = int(trial_checkpoints)
    snr = {name: float(np.mean(v[:, :trial])) for name, v in own_snr(results).items()}
    ks = [parse_estimator(name).k for name in snr]
    chosen = choose_estimator(list(snr.values()), ks, snr_threshold)
    finals = final_returns(results).mean(axis=1)
    return Decision(
        trial_env_steps=int(results.env_steps[trial - 1]),
        trial_snr=snr,
        accepted=tuple(name for name, value in snr.items() if value >= snr_threshold),
        chosen=None if chosen < 0 else list(snr)[chosen],
        final_return=dict(zip(results.estimators, finals.tolist(), strict=True)),
    )


STEPS_LABEL = "environment steps (thousands)"  # the x-axis of every panel


class RunPanel(NamedTuple):
    """One panel of ``plot_runs``: a series over environment steps per estimator."""

    title: str
    y_label: str
    x: np.ndarray  # [n_points], thousands of environment steps
    curves: dict  # {estimator: [S, n_points]}, one row per seed
    noise: float | None  # the SNR pure noise would show (1/n for n replicas), or None


def run_panels(results: Results) -> list[RunPanel]:
    """The six panels of ``plot_runs``: return; the variance (log₁₀ tr Cov) and SNR of each
    self-tuning run's own meta-gradient; and the three hyper-parameters η maps to (from step 0)."""
    steps = results.env_steps / 1e3
    names = results.estimators
    tuning = [(e, name) for e, name in enumerate(names) if parse_estimator(name).measured]
    variances = {name: np.log10(results.variance[e, :, :, e]) for e, name in tuning}
    snrs = {name: results.snr[e, :, :, e] for e, name in tuning}
    panels = [
        RunPanel(
            "mean episode return",
            "return",
            steps,
            dict(zip(names, results.episode_return, strict=True)),
            None,
        ),
        RunPanel("variance of own meta-gradient", "log₁₀ tr Cov(ĝ)", steps, variances, None),
        RunPanel(
            "SNR of own meta-gradient",
            "‖E ĝ‖² / tr Cov(ĝ)",
            steps,
            snrs,
            1 / results.samples.shape[3],
        ),
    ]
    with_start = np.concatenate([[0], steps])
    y_labels = ["γ", "λ", "entropy cost"]
    for i, (meta_name, y_label) in enumerate(zip(results.meta_names, y_labels, strict=True)):
        hyper = {name: results.hyper[e, :, :, i] for e, name in enumerate(names)}
        panels.append(RunPanel(f"{meta_name} (hyper-parameter)", y_label, with_start, hyper, None))
    return panels


def plot_runs(results: Results, estimators: Sequence[str] | None = None, band: str = "sem"):
    """The panels of ``run_panels`` over environment steps, mean ± ``band`` across seeds for each
    estimator, with the SNR that pure noise would show (1/n for n replicas) dashed.

    Returns the matplotlib figure.
    """
    names = list(results.estimators if estimators is None else estimators)
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.5), layout="constrained")
    for ax, panel in zip(axes.flat, run_panels(results), strict=True):
        for name in names:
            if name in panel.curves:
                color = f"C{results.index(name)}"
                plots.plot_mean_band(
                    ax, panel.curves[name], panel.x, band=band, label=name, color=color
                )
        if panel.noise is not None:
            ax.axhline(panel.noise, color="grey", linestyle="--", label="pure noise (1/n)")
        ax.set(title=panel.title, xlabel=STEPS_LABEL, ylabel=panel.y_label)
    axes[0, 0].legend(fontsize="small")
    axes[0, 2].legend(fontsize="small")
    return fig
