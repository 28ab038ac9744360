"""Statistics over seeds, on synthetic results with known answers: intervals, scale-free
measures, agreement with the stored run and recovery."""

import dataclasses

import numpy as np
import pytest
from tiny_experiment import TINY

from course_lib import experiments, stats


def synthetic_results(samples, episode_return, estimators=("k1", "k2", "mix2")):
    """``Results`` from given samples [E, S, C, n, 2, 3] and returns [E, S, C]."""
    e, s, c = episode_return.shape
    config = dataclasses.replace(TINY, estimators=estimators, n_seeds=s, n_checkpoints=c)
    saved = dict(
        env_steps=np.arange(1, c + 1) * 100,
        episode_return=episode_return,
        eta=np.zeros((e, s, c + 1, 3)),
        hyper=np.zeros((e, s, c + 1, 3)),
        samples=samples,
        skipped=np.zeros((e, s, c), np.int32),
        weights=np.stack(
            [
                np.broadcast_to(experiments.parse_estimator(name).weights(2, 0.5), (s, c, 2))
                for name in estimators
            ]
        ),
    )
    return experiments.results.with_measurements(config, saved, ("a", "b", "c"))


@pytest.fixture(scope="module")
def synthetic():
    """g_2 = 2 g_1 on every replica, g_1 ~ N((1, 0, 0), I): Var(k2) = 4 Var(k1), equal SNR; the
    return of mix2 is that of k1 plus 1 on every seed."""
    rng = np.random.default_rng(0)
    g1 = rng.normal(size=(3, 10, 4, 400, 3)) + np.array([1.0, 0.0, 0.0])
    samples = np.stack([g1, 2 * g1], axis=-2)  # [E, S, C, n, k, eta]
    returns = rng.normal(size=(3, 10, 4))
    returns[2] = returns[0] + 1.0
    return synthetic_results(samples, returns)


def test_paired_return_gaps_and_measure_ratios_give_the_known_answers(synthetic):
    gap = experiments.return_gap(synthetic, "k1", "mix2")
    assert gap[:3] == pytest.approx((1.0, 1.0, 1.0)) and gap.excludes(0.0)
    ratio = experiments.measure_ratio(synthetic, "variance", "k2", "k1")
    assert ratio[:3] == pytest.approx((4.0, 4.0, 4.0))
    assert experiments.measure_ratio(synthetic, "snr", "k2", "k1")[:3] == pytest.approx((1, 1, 1))
    with pytest.raises(ValueError, match="measure must be"):
        experiments.measure_ratio(synthetic, "bias", "k2", "k1")


def test_snr_over_training_finds_the_true_snr_within_its_interval(synthetic):
    curve = experiments.snr_over_training(synthetic, "k1", level=0.99)
    assert curve.per_seed.shape == (10, 4) and curve.mean.shape == (4,)
    assert np.all(curve.low <= curve.mean) and np.all(curve.mean <= curve.high)
    # true SNR ‖(1, 0, 0)‖² / tr I = 1/3, the same at every checkpoint
    assert np.all((curve.low < 1 / 3) & (1 / 3 < curve.high)), curve
    np.testing.assert_array_equal(curve.env_steps, [100, 200, 300, 400])


def test_seed_intervals_cover_the_true_mean_about_as_often_as_their_level():
    rng = np.random.default_rng(1)
    covered = [
        not experiments.seed_interval(rng.normal(size=30), 0.9, n_boot=400, seed=i).excludes(0.0)
        for i in range(200)
    ]
    assert 0.8 < np.mean(covered) < 0.97


def test_scale_free_measures_against_the_longest_horizon():
    """g_1 = −g_2 on every replica: k2 points along the target, k1 against it."""
    rng = np.random.default_rng(2)
    g2 = rng.normal(size=(2, 3, 2, 200, 3)) * 0.1 + np.array([1.0, 0.0, 0.0])
    samples = np.stack([-g2, g2], axis=-2)
    results = synthetic_results(samples, np.zeros((2, 3, 2)), estimators=("k1", "k2"))
    measures = experiments.scale_free_measures(results)
    np.testing.assert_allclose(measures.cosine[..., 1], 1.0, atol=1e-3)  # the other half's mean
    np.testing.assert_allclose(measures.cosine[..., 0], -1.0, atol=1e-3)
    np.testing.assert_array_equal(measures.right_direction[..., 0], 0.0)
    np.testing.assert_array_equal(measures.right_direction[..., 1], 1.0)
    np.testing.assert_allclose(measures.scale_free_mse[..., 0], 1.0)  # never reversed: stay put
    assert np.all(measures.scale_free_mse[..., 1] < 0.05)


def test_scale_free_measures_cross_fit_their_reference():
    """Pure noise in g_2: a reference made from the replicas it scores would give k2 cosine 1
    by construction; from the other half of the replicas, its cosine is 0 on average."""
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(2, 50, 2, 24, 2, 3))  # [E, S, C, n, k, eta], no signal anywhere
    results = synthetic_results(samples, np.zeros((2, 50, 2)), estimators=("k1", "k2"))
    cosine = experiments.scale_free_measures(results).cosine[..., 1]  # k2 against E g_2
    assert abs(cosine.mean()) < 0.05 and cosine.std() > 0.3
    same_sample = samples[..., -1, :].mean(axis=-2)  # the reference the test rules out
    own = stats.meta_gradient_stats(np.moveaxis(samples[..., -1, :], -2, 0), same_sample).cosine
    np.testing.assert_allclose(own, 1.0)


def test_agreement_accepts_the_same_run_and_flags_a_shifted_one(synthetic):
    assert all(check.ok for check in experiments.agreement(synthetic, synthetic))
    shifted = synthetic._replace(episode_return=synthetic.episode_return + 5.0)
    flagged = [c.measure for c in experiments.agreement(synthetic, shifted) if not c.ok]
    assert len(flagged) == 3 * 4 and all(m.startswith("episode return") for m in flagged)
    with pytest.raises(ValueError, match="settings but n_checkpoints, n_seeds and estimators"):
        experiments.agreement(
            synthetic, synthetic._replace(config=dataclasses.replace(synthetic.config, seed=1))
        )
    # a prefix: two of the estimators, the first 2 checkpoints, 5 of the 10 seeds
    prefix = synthetic_results(
        synthetic.samples[[0, 2], :5, :2], synthetic.episode_return[[0, 2], :5, :2], ("k1", "mix2")
    )
    checks = experiments.agreement(synthetic, prefix)
    assert len(checks) == 2 * 3 * 2 and all(check.ok for check in checks)
    assert all(check.low == check.high == 0.0 for check in checks)  # the same numbers: d = 0


def test_a_regenerated_first_checkpoint_agrees_with_the_stored_run():
    """Regenerate the stored run's first checkpoint with its own settings on this machine and
    compare it with the stored numbers seed by seed, within intervals (``agreement``): identical
    numbers are promised only on the machine and JAX build that made them (results/*.json).
    A prefix of the stored run: its first checkpoint, for k5, mix5, auto5 and fixed5 (one compiled
    chunk: they share K) and the first 4 seeds (an estimator's runs do not depend on which others
    run beside it), so the test costs the same whatever the full run holds."""
    stored = experiments.load_results(experiments.STORED_RESULTS)
    estimators = ("k5", "mix5", "auto5", "fixed5")
    config = dataclasses.replace(
        stored.config, n_checkpoints=1, n_seeds=min(4, stored.config.n_seeds), estimators=estimators
    )
    regenerated = experiments.run_experiment(config, progress=False)
    checks = experiments.agreement(stored, regenerated)
    assert len(checks) == 4 + 3 * 2  # a return for each estimator; variance and SNR if measured
    assert all(check.ok for check in checks), [check for check in checks if not check.ok]


def test_recovery_measures_the_share_of_the_sweeps_gain_a_tuner_gets_back():
    """Poor start 2, sweep's best 6, the tuner 5 (± seed noise shared by all three): it recovers
    3 of the 4 the sweep gains, 1 short of it."""
    rng = np.random.default_rng(3)
    seeds = rng.normal(size=(1, 12, 4)) * 0.5
    returns = np.array([2.0, 5.0, 6.0])[:, None, None] + seeds  # [E, S, C]
    names = ("fixed2@poor", "k2@poor", "fixed2@swept")
    results = synthetic_results(np.ones((3, 12, 4, 2, 2, 3)), returns, estimators=names)
    result = experiments.recovery(results, "k2@poor", "fixed2@poor", "fixed2@swept")
    assert result.gain[:3] == pytest.approx((3.0, 3.0, 3.0))
    assert result.shortfall[:3] == pytest.approx((1.0, 1.0, 1.0))
    assert result.recovered.value == pytest.approx(0.75)
    assert result.recovered.low <= 0.75 <= result.recovered.high and result.env_steps == 400


def test_student_intervals_are_mean_plus_minus_t_sd_over_root_n_and_wider_than_the_bootstrap():
    rng = np.random.default_rng(5)
    values = rng.normal(size=8)
    got = experiments.student_interval(values, 0.9)
    half = 1.894579 * values.std(ddof=1) / np.sqrt(8)  # t_7 at 0.95, from a printed table
    assert (got.value, got.low, got.high) == pytest.approx(
        (values.mean(), values.mean() - half, values.mean() + half), rel=1e-6, abs=1e-6
    )
    boot = experiments.seed_interval(values, 0.9)
    assert got.low < boot.low and boot.high < got.high
    with pytest.raises(ValueError, match="at least 2 finite"):
        experiments.student_interval([1.0, np.nan])
