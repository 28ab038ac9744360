"""Every estimator's variance and SNR on a run's per-k samples, against NumPy."""

import numpy as np


def test_variance_and_snr_are_measured_from_the_samples_as_numpy_says(tiny_run):
    _, results = tiny_run
    samples = results.samples.astype(np.float64)  # [E, S, C, n, k, eta]
    mix = np.array([2 / 3, 1 / 3])  # geometric weights, λ_mix = 0.5, K = 2
    for f, estimator in enumerate(results.estimators[:2]):
        g = samples[..., 1, :] if estimator == "k2" else np.einsum("k,...ke->...e", mix, samples)
        variance = g.var(axis=-2, ddof=1).sum(-1)
        snr = (g.mean(axis=-2) ** 2).sum(-1) / variance
        np.testing.assert_allclose(results.variance[..., f], variance, rtol=1e-6)
        np.testing.assert_allclose(results.snr[..., f], snr, rtol=1e-6)
