"""What lessons 06 and 07 read from results: variance ratios, debiased SNR, the choice of
estimator, the trial decision, and the stored full run against lesson 06's claims."""

import json

import numpy as np
import pytest

from conftest import ROOT
from course_lib import experiments


def test_variance_ratio_is_the_geometric_mean_of_paired_ratios():
    a = np.array([[1.0, 8.0], [2.0, np.nan]])
    b = np.array([[2.0, 1.0], [1.0, 5.0]])
    # pairs (1, 2), (8, 1), (2, 1): ratios 1/2, 8, 2 -> (1/2 · 8 · 2)^(1/3) = 2; NaN pair skipped
    assert experiments.variance_ratio(a, b) == pytest.approx(2.0)
    assert experiments.variance_ratio(b, a) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no finite positive entries"):
        experiments.variance_ratio([np.nan], [1.0])


def test_debiased_snr_removes_the_noise_floor_of_pure_noise():
    rng = np.random.default_rng(0)
    n = 24  # replicas per checkpoint in the stored run
    noise = rng.normal(size=(n, 20_000, 3))  # 20,000 sets of n zero-mean samples
    plain = ((noise.mean(0) ** 2).sum(-1) / noise.var(0, ddof=1).sum(-1)).mean()
    assert plain == pytest.approx(1 / n, rel=0.05)  # pure noise looks like SNR ≈ 1/n
    assert abs(experiments.debiased_snr(noise).mean()) < 0.1 / n
    shifted = noise + np.array([1.0, 0.0, 0.0])  # true SNR = 1 / 3
    assert experiments.debiased_snr(shifted).mean() == pytest.approx(1 / 3, rel=0.05)


@pytest.mark.parametrize(
    "snr, ks, threshold, chosen",
    [
        ([0.1, 0.02, 0.05], [1, 5, 5], 0.03, 2),  # k5 fails, mix5 (K = 5) beats k1 (K = 1)
        ([0.1, 0.06, 0.05], [1, 5, 5], 0.03, 1),  # equal K: the higher SNR
        ([0.1, 0.02, 0.01], [1, 5, 5], 0.03, 0),  # only the one-step estimator is stable
        ([0.01, 0.02, np.nan], [1, 5, 5], 0.03, -1),  # none: keep the hand-set values
    ],
)
def test_choose_estimator_scales_the_most_far_sighted_stable_one(snr, ks, threshold, chosen):
    assert experiments.choose_estimator(snr, ks, threshold) == chosen


def test_trial_decision_reads_the_trial_and_reports_every_outcome(tiny_run):
    _, results = tiny_run
    decision = experiments.trial_decision(results, snr_threshold=-np.inf, trial_checkpoints=1)
    assert set(decision.trial_snr) == {"k2", "mix2"} and decision.trial_env_steps == 18
    assert decision.accepted == ("k2", "mix2") and decision.chosen in ("k2", "mix2")
    assert set(decision.final_return) == {"k2", "mix2", "fixed2"}
    assert experiments.trial_decision(results, np.inf, 2).chosen is None
    with pytest.raises(ValueError, match="trial_checkpoints must be in 1..2"):
        experiments.trial_decision(results, 0.1, 3)


def test_the_stored_full_run_supports_what_lesson_06_states():
    """Recompute lesson 06's claims from the raw arrays of ``results/snake_full.npz`` with plain
    numpy, check them, and check that ``experiments.headline`` (what the lesson prints) agrees."""
    path = ROOT / "results" / "snake_full.npz"
    with np.load(path, allow_pickle=False) as data:
        settings = json.loads(str(data["settings"]))
        samples = data["samples"].astype(np.float64)  # [E, S, C, n, k, eta]
        episode_return = data["episode_return"].astype(np.float64)  # [E, S, C]
    names, k = settings["estimators"], 5

    def trace_variance(g):  # g: [..., n, eta] -> [...]
        return g.var(axis=-2, ddof=1).sum(-1)

    var_k = trace_variance(np.moveaxis(samples, 4, 3))  # [E, S, C, k]: every g_k on every state
    weights = settings["mix_lambda"] ** np.arange(k)
    var_mix = trace_variance(np.einsum("k,rscnke->rscne", weights / weights.sum(), samples))
    log_var_k = np.log(var_k).reshape(-1, var_k.shape[-1]).mean(0)
    growth = np.exp(log_var_k[k - 1] - log_var_k[0])
    cut = np.exp(np.mean(np.log(var_k[..., k - 1]) - np.log(var_mix)))
    n_last = round(0.25 * episode_return.shape[-1])
    finals = episode_return[..., -n_last:].mean(-1)  # [E, S]

    def paired(a, b):  # 90% Student-t interval of the paired differences, by hand
        d = finals[names.index(b)] - finals[names.index(a)]
        half = 1.894579 * d.std(ddof=1) / np.sqrt(d.size)  # t_{0.95}, 7 degrees of freedom
        return d.mean() - half, d.mean() + half

    assert settings["n_seeds"] == 8 and finals.shape[1] == 8
    # §7 of the lesson: variance grows with K, at every step of K
    assert growth > 3 and np.all(np.diff(log_var_k) > 0), (growth, log_var_k)
    # mixing cuts it, by more than the paper's 3x overall and at every checkpoint
    assert cut > 3, cut
    per_checkpoint = np.exp(np.mean(np.log(var_k[..., k - 1]) - np.log(var_mix), axis=(0, 1)))
    assert np.all(per_checkpoint > 1), per_checkpoint
    # returns: the K = 5 runs within the noise of one another and of the fixed control (t
    # intervals hold 0); the sweep's best setting well above; k1 and k5x5 well below
    for a, b in [("k5", "mix5"), ("fixed5", "k5"), ("fixed5", "mix5"), ("fixed5", "auto5")]:
        low, high = paired(a, b)
        assert low < 0 < high, (a, b, low, high)
    for a, b in [("fixed5", "fixed5@swept"), ("k1", "fixed5"), ("k5x5", "k5")]:
        assert paired(a, b)[0] > 0.5, (a, b)
    # from the poor start, the best tuner gets back a small part of what the sweep gains
    gain, sweep_gain = paired("fixed5@poor", "mix5@poor"), paired("fixed5@poor", "fixed5@swept")
    assert gain[1] < sweep_gain[0] / 3, (gain, sweep_gain)  # under a third, at both ends

    results = experiments.load_results(path)
    head = experiments.headline(results)
    assert head.k == k
    assert head.variance_growth == pytest.approx(growth, rel=1e-6)
    assert head.mixing_cut == pytest.approx(cut, rel=1e-6)
    for a, b in [("k5", "mix5"), ("fixed5@poor", "mix5@poor")]:
        t = experiments.student_interval(
            experiments.final_returns(results)[results.index(b)]
            - experiments.final_returns(results)[results.index(a)]
        )
        assert (t.low, t.high) == pytest.approx(paired(a, b), abs=1e-5)  # returns are float32
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["settings"] == settings and sidecar["compute_seconds"] > 0
