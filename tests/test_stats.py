"""Statistics over seeds against hand-worked numbers and plain numpy."""

import warnings

import jax
import numpy as np
import pytest
import scipy.stats

from course_lib import stats
from course_lib.stats import (
    bootstrap_ci,
    measure_intervals,
    meta_gradient_stats,
    moment_measures,
    scale_free_mse,
)


def test_hand_made_samples_give_hand_worked_statistics():
    samples = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0]])  # mean (2, 2)
    reference = np.array([2.0, 0.0])
    s = meta_gradient_stats(samples, reference)
    np.testing.assert_allclose(s.mean, [2.0, 2.0])
    np.testing.assert_allclose(s.per_component_variance, [1.0, 4.0])  # ddof = 1
    assert s.variance == pytest.approx(5.0)
    assert s.snr == pytest.approx(8.0 / 5.0)
    assert s.bias_norm == pytest.approx(2.0)
    assert s.cosine == pytest.approx(1 / np.sqrt(2))
    assert s.mse == pytest.approx(4.0 + 5.0)


def test_batched_statistics_equal_a_numpy_loop_over_k():
    rng = np.random.default_rng(0)
    samples = rng.normal(loc=[0.5, -1.0, 2.0], size=(64, 5, 3))
    reference = rng.normal(size=(5, 3))
    s = meta_gradient_stats(samples, reference)
    assert s.mean.shape == (5, 3) and s.variance.shape == (5,) and s.cosine.shape == (5,)
    for k in range(5):
        g = samples[:, k]
        mean = g.mean(axis=0)
        cov = np.cov(g, rowvar=False)
        np.testing.assert_allclose(s.variance[k], np.trace(cov), rtol=1e-12)
        np.testing.assert_allclose(s.snr[k], mean @ mean / np.trace(cov), rtol=1e-12)
        np.testing.assert_allclose(s.bias_norm[k], np.linalg.norm(mean - reference[k]), rtol=1e-12)
        cos = mean @ reference[k] / np.linalg.norm(mean) / np.linalg.norm(reference[k])
        np.testing.assert_allclose(s.cosine[k], cos, rtol=1e-12)
        np.testing.assert_allclose(
            s.mse[k], np.sum((mean - reference[k]) ** 2) + np.trace(cov), rtol=1e-12
        )


def test_probabilities_give_exact_weighted_moments():
    values = np.array([[0.0, 1.0], [2.0, -1.0], [4.0, 3.0]])
    prob = np.array([0.5, 0.25, 0.25])
    s = meta_gradient_stats(values, probabilities=prob)
    mean = prob @ values
    np.testing.assert_allclose(s.mean, mean)
    np.testing.assert_allclose(s.per_component_variance, prob @ (values - mean) ** 2)
    assert s.bias_norm is None and s.cosine is None and s.mse is None
    assert s.right_direction is None and s.scale_free_mse is None


# ------------------------------------------------------------------------------------------------
# Scale-free measures

# Three Gaussians g ~ N(mean, cov) in R^3 against one target each: pointing mostly along it, noisy
# and a little off, and pointing away (scale_free_mse = 1).
GAUSSIAN_MEANS = np.array([[1.0, 0.5, 0.0], [0.3, -0.2, 0.4], [-1.0, 0.2, 0.1]])
GAUSSIAN_TARGETS = np.array([[2.0, 0.0, 0.5], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def gaussian_covariances():
    factors = np.array(
        [
            [[0.5, 0, 0], [0.2, 0.4, 0], [0, 0.1, 0.3]],
            np.eye(3) * 0.8,
            [[1, 0, 0], [0.5, 1, 0], [0, 0, 0.2]],
        ]
    )
    return np.einsum("bij,bkj->bik", factors, factors)


def brute_force_scale_free(second_moment, dot, target_sq):
    """min over a fine grid of c >= 0 of (c² E‖g‖² − 2c E g·g* + ‖g*‖²) / ‖g*‖²."""
    c = np.linspace(0.0, 4.0 * max(dot, 0.0) / second_moment + 1e-3, 400_001)
    return np.min(c**2 * second_moment - 2 * c * dot + target_sq) / target_sq


def test_hand_made_samples_give_hand_worked_scale_free_measures():
    samples = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0], [-1.0, 2.0]])  # mean (1.25, 2)
    s = meta_gradient_stats(samples, np.array([2.0, 0.0]))
    assert s.right_direction == pytest.approx(0.75)  # the last row points away
    # V = (8.75 + 8) / 3 = 67/12, ‖ḡ‖² = 89/16, ḡ·g* = 2.5, ‖g*‖² = 4:
    # 1 − 2.5² / (4 (89/16 + 67/12)) = 1 − 15/107
    assert s.variance == pytest.approx(67 / 12)
    assert s.scale_free_mse == pytest.approx(92 / 107)
    assert s.scale_free_mse == pytest.approx(1 - max(s.cosine, 0) ** 2 * s.snr / (1 + s.snr))
    weighted = meta_gradient_stats(
        samples, np.array([2.0, 0.0]), probabilities=[0.1, 0.1, 0.1, 0.7]
    )
    assert weighted.right_direction == pytest.approx(0.3)


def test_scale_free_mse_is_the_brute_force_minimum_over_the_step_length():
    for mean, cov, target in zip(
        GAUSSIAN_MEANS, gaussian_covariances(), GAUSSIAN_TARGETS, strict=True
    ):
        second_moment = mean @ mean + np.trace(cov)
        expected = brute_force_scale_free(second_moment, mean @ target, target @ target)
        assert scale_free_mse(mean, cov, target) == pytest.approx(expected, abs=1e-9)
        m = moment_measures(mean, cov, target)
        closed = 1 - max(m.cosine, 0.0) ** 2 * m.snr / (1 + m.snr)
        assert m.scale_free_mse == pytest.approx(closed, abs=1e-12)
        assert stats.scale_free_error(m.cosine, m.snr) == pytest.approx(expected, abs=1e-9)
    assert stats.scale_free_error(-0.5, 3.0) == 1.0 and stats.scale_free_error(0.5, np.inf) == 0.75
    assert scale_free_mse(GAUSSIAN_MEANS[2], np.eye(3), GAUSSIAN_TARGETS[2]) == 1.0
    assert scale_free_mse(np.zeros(3), np.zeros((3, 3)), GAUSSIAN_TARGETS[0]) == 1.0  # g ≡ 0
    # Batched over a leading axis, with one target for all.
    batched = scale_free_mse(GAUSSIAN_MEANS, gaussian_covariances(), GAUSSIAN_TARGETS[0])
    assert batched.shape == (3,)


def test_weighted_rows_give_the_exact_minimum_over_the_step_length():
    # With exact probabilities the field is min_c Σ_i p_i ‖c g_i − g*‖² / ‖g*‖², by brute force.
    rng = np.random.default_rng(4)
    rows, prob, target = rng.normal(size=(6, 3)) + 0.5, rng.dirichlet(np.ones(6)), np.ones(3)
    s = meta_gradient_stats(rows, target, probabilities=prob)
    expected = brute_force_scale_free(prob @ np.sum(rows**2, -1), prob @ rows @ target, 3.0)
    assert s.scale_free_mse == pytest.approx(expected, abs=1e-9)


def test_sampled_measures_converge_to_the_exact_gaussian_ones():
    n, n_batches = 200_000, 20
    covs = gaussian_covariances()
    rng = np.random.default_rng(5)
    noise = rng.normal(size=(n, 3, 3))
    samples = GAUSSIAN_MEANS + np.einsum("bij,nbj->nbi", np.linalg.cholesky(covs), noise)
    exact = moment_measures(GAUSSIAN_MEANS, covs, GAUSSIAN_TARGETS)  # Gaussian: all four exact
    sampled = meta_gradient_stats(samples, GAUSSIAN_TARGETS)
    # Tolerance: 4.5 standard errors, each estimated from the spread of the statistic over 20
    # disjoint batches of the samples (batch means), plus round-off.
    batches = samples.reshape(n_batches, n // n_batches, 3, 3).swapaxes(0, 1)
    per_batch = meta_gradient_stats(batches, GAUSSIAN_TARGETS)
    for name in ("cosine", "snr", "right_direction", "scale_free_mse"):
        error = np.abs(getattr(sampled, name) - getattr(exact, name))
        standard_error = getattr(per_batch, name).std(axis=0, ddof=1) / np.sqrt(n_batches)
        assert np.all(error <= 4.5 * standard_error + 1e-12), (name, error, standard_error)
    assert np.all(exact.scale_free_mse[:2] < 1) and exact.scale_free_mse[2] == 1.0


def test_measure_intervals_cover_the_exact_values():
    # Twelve intervals (3 Gaussians x 4 measures) at 99.9% each: all should cover.
    rng = np.random.default_rng(6)
    covs = gaussian_covariances()
    noise = rng.normal(size=(1000, 3, 3))
    samples = GAUSSIAN_MEANS + np.einsum("bij,nbj->nbi", np.linalg.cholesky(covs), noise)
    exact = moment_measures(GAUSSIAN_MEANS, covs, GAUSSIAN_TARGETS)
    intervals = measure_intervals(
        samples, GAUSSIAN_TARGETS, jax.random.key(0), n_boot=1000, level=0.999
    )
    sampled = meta_gradient_stats(samples, GAUSSIAN_TARGETS)
    assert set(intervals) == {"cosine", "snr", "right_direction", "scale_free_mse"}
    for name, (low, high) in intervals.items():
        value, point = getattr(exact, name), getattr(sampled, name)
        assert low.shape == (3,) and np.all(low <= point) and np.all(point <= high)
        inside = (low <= value + 1e-12) & (value <= high + 1e-12)
        assert np.all(inside), (name, low, value, high)


def mean_over_seeds(s):
    return s.mean(axis=0)[..., 0]


def test_bootstrap_intervals_are_the_bca_quantiles_of_the_enumerated_bootstrap():
    """Six skewed values: all 6⁶ resamples enumerate the bootstrap distribution of the mean, and
    Efron and Tibshirani (§14.3) give z₀, a and the BCa levels by hand. The interval's
    ends must lie between the enumerated quantiles half a percent either side of those levels,
    which the percentile levels (0.05, 0.95) are not."""
    values = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 20.0])  # integers: tied means are exactly tied
    n = len(values)
    means = values[np.indices((n,) * n).reshape(n, -1).T].mean(axis=1)  # [6⁶]
    theta = values.mean()
    z0 = scipy.stats.norm.ppf((np.mean(means < theta) + np.mean(means <= theta)) / 2)
    centred = values - theta  # the jackknife's U_i for the mean
    a = np.sum(centred**3) / (6 * np.sum(centred**2) ** 1.5)
    z = scipy.stats.norm.ppf([0.05, 0.95])
    levels = scipy.stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    assert levels[0] > 0.1 and levels[1] > 0.98  # far from the percentile levels
    low, high = bootstrap_ci(values[:, None], mean_over_seeds, jax.random.key(2), n_boot=20_000)
    for end, level in zip((low, high), levels, strict=True):
        assert np.quantile(means, level - 0.005) <= end <= np.quantile(means, level + 0.005)


def test_bootstrap_intervals_are_reproducible_from_their_key():
    values = np.random.default_rng(3).exponential(size=(8, 1))
    first = bootstrap_ci(values, mean_over_seeds, jax.random.key(4))
    assert bootstrap_ci(values, mean_over_seeds, jax.random.key(4)) == first
    assert bootstrap_ci(values, mean_over_seeds, jax.random.key(5)) != first


def test_more_seeds_than_replicates_get_scipys_percentile_interval():
    """n_seeds > n_boot: BCa's corrections are below the replicates' Monte Carlo error and its
    leave-one-out sets would cost more than the resampling (the docstring's rule)."""
    values = np.random.default_rng(6).exponential(size=300)
    key = jax.random.key(7)
    got = bootstrap_ci(values[:, None], mean_over_seeds, key, n_boot=100)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    want = scipy.stats.bootstrap(
        (values,), np.mean, n_resamples=100, method="percentile", confidence_level=0.9, rng=rng
    ).confidence_interval
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_statistic_without_spread_gets_the_percentile_interval_without_warnings():
    """Equal values: BCa's z₀ and a are 0/0; the percentile interval of the replicates is
    the one value."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = bootstrap_ci(np.full((5, 2), 3.0), mean_over_seeds, jax.random.key(0), 100)
    assert low == high == 3.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: meta_gradient_stats(np.zeros((1, 2))), "n_seeds"),
        (lambda: meta_gradient_stats(np.zeros(5)), "samples"),
        (lambda: meta_gradient_stats(np.zeros((4, 3, 2)), reference=np.zeros(3)), "reference"),
        (
            lambda: meta_gradient_stats(np.zeros((3, 2)), probabilities=[0.5, 0.5, 0.5]),
            "probabilities",
        ),
        (lambda: bootstrap_ci(np.zeros((4, 2)), np.mean, jax.random.key(0), n_boot=1), "n_boot"),
        (lambda: bootstrap_ci(np.zeros((4, 2)), np.mean, jax.random.key(0), level=1.0), "level"),
        (lambda: bootstrap_ci(np.zeros((4, 2)), np.mean, jax.random.key(0)), "stat_fn"),
        (lambda: scale_free_mse(np.zeros(3), np.eye(2), np.ones(3)), "cov"),
        (lambda: scale_free_mse(np.zeros(3), np.eye(3), np.ones(2)), "target"),
        (lambda: moment_measures(np.zeros((2, 3)), np.zeros((3, 3)), np.ones(3)), "cov"),
        (
            lambda: measure_intervals(np.zeros((4, 2, 3)), np.ones(2), jax.random.key(0)),
            "reference",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
