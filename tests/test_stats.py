"""Statistics over seeds against hand-worked numbers and plain numpy."""

import jax
import numpy as np
import pytest

from course_lib.stats import bootstrap_ci, meta_gradient_stats


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


def test_bootstrap_interval_covers_the_truth_and_is_reproducible():
    rng = np.random.default_rng(1)
    samples = rng.normal(scale=[1.0, 2.0], size=(400, 2))  # true tr Cov = 5
    key = jax.random.key(0)
    low, high = bootstrap_ci(samples, lambda s: meta_gradient_stats(s).variance, key, n_boot=2000)
    assert low < 5.0 < high and low < meta_gradient_stats(samples).variance < high
    assert high - low < 2.0  # not vacuous: the standard error of the variance is about 0.4
    again = bootstrap_ci(samples, lambda s: meta_gradient_stats(s).variance, key, n_boot=2000)
    np.testing.assert_array_equal((low, high), again)


def test_bootstrap_works_over_k_with_the_replicates_as_a_batch_axis():
    rng = np.random.default_rng(2)
    samples = 1.0 + rng.normal(size=(128, 4, 2)) * np.array([1.0, 2.0, 3.0, 4.0])[:, None]
    low, high = bootstrap_ci(
        samples, lambda s: meta_gradient_stats(s).snr, jax.random.key(3), level=0.8
    )
    point = meta_gradient_stats(samples).snr
    assert low.shape == high.shape == (4,)
    assert np.all(low < point) and np.all(point < high)
    assert np.all(np.diff(point) < 0)  # the noisier k, the lower the SNR


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
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
