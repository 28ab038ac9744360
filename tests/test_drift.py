"""Adam's drift law (course_lib.drift) against optax's Adam run on Gaussian draws."""

import jax
import numpy as np
import pytest

from course_lib import drift

BETA = 1e-3
SETTLED = 5000  # updates after which Adam's second moment has forgotten its start (5x its window)


@pytest.fixture(scope="module")
def runs():
    """η / β along 64 runs of 20,000 updates, per SNR: the issue's own simulation."""
    snrs = (0.0, 0.005, 0.01, 0.05, 1.0)
    return {
        s: np.asarray(drift.simulate_adam(jax.random.key(i), np.sqrt(s), 1.0, BETA, 20_000, 64))
        / BETA
        for i, s in enumerate(snrs)
    }


def test_a_settled_update_moves_eta_by_beta_times_root_s_over_one_plus_s(runs):
    for s, etas in runs.items():
        steps = -np.diff(etas[:, SETTLED:], axis=1)  # downhill: against the positive mean
        assert steps.mean() == pytest.approx(drift.mean_step(s, 1.0), rel=0.03, abs=0.002), s
        assert steps.std() == pytest.approx(drift.step_jitter(s, 1.0), rel=0.03), s
    # the figures the course quotes: 0.07β at s = 0.005, 0.1β at 0.01, 0.22β at 0.05, 0.71β at 1
    np.testing.assert_allclose(
        drift.mean_step([0.005, 0.01, 0.05, 1.0], 1.0), [0.0705, 0.0995, 0.218, 0.707], atol=5e-4
    )
    assert drift.step_jitter(0.0, 1.0) == pytest.approx(0.229, abs=1e-3)


def test_over_n_updates_eta_drifts_n_times_the_step_and_random_walks_root_n(runs):
    n = 400
    for s, etas in runs.items():
        ends = etas[:, SETTLED::n]
        travel = -(ends[:, 1:] - ends[:, :-1])  # 37 windows x 64 runs
        assert travel.mean() == pytest.approx(drift.drift(s, 1.0, n), rel=0.03, abs=0.1 * n**0.5)
        if s <= 0.05:  # the regime of meta-gradients; at s = 1 the walk is about 10% smaller
            assert travel.std() == pytest.approx(drift.random_walk(s, 1.0, n), rel=0.05), s
    # drift / walk = sqrt(N s): the signal shows after 1/s updates
    s = np.array([0.005, 0.05])
    np.testing.assert_allclose(
        drift.drift(s, 1.0, n) / drift.random_walk(s, 1.0, n), np.sqrt(n * s)
    )
    np.testing.assert_allclose(drift.updates_to_resolve(s), 1 / s)
    assert drift.updates_to_resolve(0.0) == np.inf


def test_the_learning_rate_to_travel_a_distance_inverts_the_drift():
    beta = drift.learning_rate_to_travel(3.2, 0.01, 320)
    assert drift.drift(0.01, float(beta), 320) == pytest.approx(3.2)
    assert beta == pytest.approx(3.2 / (320 * np.sqrt(0.01 / 1.01)))


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda: drift.mean_step(-0.1, 1e-3), "snr"),
        (lambda: drift.mean_step(np.nan, 1e-3), "snr"),
        (lambda: drift.mean_step(0.1, 0.0), "learning_rate"),
        (lambda: drift.drift(0.1, 1e-3, 0), "n_updates"),
        (lambda: drift.random_walk(0.1, 1e-3, True), "n_updates"),
        (lambda: drift.step_jitter(0.1, 1e-3, b1=1.0), "b1"),
        (lambda: drift.updates_to_resolve(0.1, ratio=0), "ratio"),
        (lambda: drift.learning_rate_to_travel(-1, 0.1, 10), "distance"),
        (lambda: drift.simulate_adam(jax.random.key(0), 0.0, -1.0, 1e-3, 10, 2), "std"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, named):
    with pytest.raises(ValueError, match=named):
        call()


def test_the_travel_predicted_from_a_runs_samples_is_what_adam_travels_on_them():
    """Samples of the estimate at 64 checkpoints (96 each) predict the travel of a fresh Adam
    fed the same distribution for 2,000 updates: within 10%, sign included. (With fewer samples
    the prediction carries their noise: at s = 0.05, 384 samples estimate s within about ±45%.)"""
    rng = np.random.default_rng(0)
    for mean, s in ((1.0, 0.05), (-1.0, 0.2)):
        std = abs(mean) / np.sqrt(s)
        samples = rng.normal(mean, std, size=(64, 96, 1))
        predicted = drift.predicted_travel(samples, BETA, 2000)[0]
        etas = np.asarray(drift.simulate_adam(jax.random.key(7), mean, std, BETA, 2000, 256))
        travelled = (etas[:, -1] - etas[:, 0]).mean()
        assert np.sign(predicted) == np.sign(travelled) == -np.sign(mean)
        assert predicted == pytest.approx(travelled, rel=0.1), (s, predicted, travelled)


def test_predicted_travel_removes_the_noise_floor_and_takes_full_steps_without_noise():
    pure_noise = np.tile([[1.0], [-1.0]], (3, 12, 1))  # [3, 24, 1]: mean 0
    assert drift.predicted_travel(pure_noise, BETA, 100)[0] == 0.0
    # a mean exactly at the noise floor, m^2 = v / (C n): no drift
    c, n = 3, 4
    at_floor = np.tile(np.array([1.0, -1.0, 1.0, -1.0])[:, None], (c, 1, 1))  # v = 4/3
    at_floor = at_floor + np.sqrt(at_floor.var(axis=1, ddof=1).mean() / (c * n))
    assert drift.predicted_travel(at_floor, BETA, 100)[0] == pytest.approx(0.0, abs=1e-12)
    noiseless = np.full((2, 3, 2), [0.5, -2.0])
    np.testing.assert_allclose(drift.predicted_travel(noiseless, BETA, 10), [-10 * BETA, 10 * BETA])
    with pytest.raises(ValueError, match="samples"):
        drift.predicted_travel(np.ones((3, 1, 2)), BETA, 10)
