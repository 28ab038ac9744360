"""Joint exact moments across steps and the optimal mixing weights, against brute force."""

import itertools

import numpy as np
import pytest

from course_lib import exact, mixing, problems, stats

# Every test in float64 (the oracles compare to 1e-10): the fixture is in conftest.py.
pytestmark = pytest.mark.usefixtures("float64")


def random_joint_moments(rng, k_max, n_eta, scale=1.0):
    """A mean [k, n], a positive definite joint covariance [k, n, k, n] and a target [n]."""
    mean = rng.normal(size=(k_max, n_eta))
    factor = rng.normal(size=(k_max * n_eta, k_max * n_eta)) * scale
    cov = (factor @ factor.T / (k_max * n_eta)).reshape(k_max, n_eta, k_max, n_eta)
    return mean, cov, rng.normal(size=n_eta)


def simplex_grid(k_max, steps):
    """Every w >= 0 with Σ w = 1 on a grid of spacing 1/steps. [n_points, k_max]."""
    points = [c for c in itertools.product(range(steps + 1), repeat=k_max - 1) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in points], dtype=float) / steps


def mix_error(mean, cov, target, weights):
    return stats.scale_free_mse(*mixing.mix_moments(mean, cov, weights), target)


def grid_errors(mean, cov, target, grid):
    """Scale-free error of every mix on the grid [n_points, k_max], straight from the moments."""
    mix_mean = grid @ mean
    mix_cov = np.einsum("pk,kejf,pj->pef", grid, cov, grid)
    return stats.scale_free_mse(mix_mean, mix_cov, target)


# ------------------------------------------------------------------------------------------------
# Joint moments


def test_bandit_joint_moments_give_every_mix_exactly():
    problem, k_max = problems.make_problem("bandit"), 5
    mean, joint = map(
        np.asarray, exact.exact_meta_gradient_moments(problem, problem.eta0, k_max, joint=True)
    )
    _, per_k = exact.exact_meta_gradient_moments(problem, problem.eta0, k_max)
    assert joint.shape == (k_max, 2, k_max, 2)
    np.testing.assert_allclose(np.einsum("kekf->kef", joint), per_k, rtol=1e-12)
    prob, paths = map(np.asarray, exact.exact_meta_gradient_paths(problem, problem.eta0, k_max))
    w = np.array([0.1, 0.0, 0.3, 0.2, 0.4])
    mixed = mixing.mix(paths, w)
    mix_mean, mix_cov = mixing.mix_moments(mean, joint, w)
    expected_mean = prob @ mixed
    centred = mixed - expected_mean
    np.testing.assert_allclose(mix_mean, expected_mean, rtol=1e-10)
    np.testing.assert_allclose(
        mix_cov, np.einsum("p,pe,pf->ef", prob, centred, centred), rtol=1e-10
    )


def test_the_bandit_meta_gradients_all_point_one_way():
    """As its docstring says: cos(E g_k, g*_8) = 1 for every k and the SNR rises with k."""
    problem, k_max = problems.make_problem("bandit"), 8
    mean, cov = exact.exact_meta_gradient_moments(problem, problem.eta0, k_max)
    target = exact.true_meta_gradient(problem, problem.eta0, k_max)
    measures = stats.moment_measures(mean, cov, target)
    np.testing.assert_allclose(measures.cosine, 1.0, atol=1e-4)
    assert np.all(np.diff(measures.snr) > 0)
    np.testing.assert_allclose(measures.snr[[0, -1]], [0.17, 1.04], atol=0.01)


# ------------------------------------------------------------------------------------------------
# Optimal weights


@pytest.mark.parametrize("seed", range(6))
def test_optimal_weights_beat_a_fine_simplex_grid(seed):
    rng = np.random.default_rng(seed)
    mean, cov, target = random_joint_moments(rng, 3, 2, scale=[0.3, 1.0, 3.0][seed % 3])
    target = target if seed != 5 else mean[1] - 0.2 * mean[0]  # some weight surely matters
    weights = mixing.optimal_mixing_weights(mean, cov, target)
    assert weights.shape == (3,) and np.all(weights >= 0) and abs(weights.sum() - 1) < 1e-12
    best = mix_error(mean, cov, target, weights)
    on_grid = grid_errors(mean, cov, target, simplex_grid(3, 200))
    assert best <= on_grid.min() + 1e-12
    assert on_grid.min() - best < 1e-3  # the grid's spacing (1/200) bounds how far it can miss


def test_optimal_weights_when_no_mix_points_toward_the_target():
    mean = np.array([[1.0, 0.0], [0.5, 0.5]])
    cov = np.eye(4).reshape(2, 2, 2, 2)
    weights = mixing.optimal_mixing_weights(mean, cov, np.array([-1.0, -1.0]))
    np.testing.assert_allclose(weights, [0.5, 0.5])
    assert mix_error(mean, cov, np.array([-1.0, -1.0]), weights) == 1.0


def test_optimal_weights_from_samples_minimise_the_sampled_scale_free_error():
    rng = np.random.default_rng(7)
    mean, cov, target = random_joint_moments(rng, 3, 2)
    flat = rng.multivariate_normal(mean.ravel(), cov.reshape(6, 6), size=300)
    samples = flat.reshape(300, 3, 2)
    weights = mixing.optimal_mixing_weights_from_samples(samples, target)

    def sampled_error(w):
        return stats.meta_gradient_stats(
            mixing.mix(samples, w), target
        ).scale_free_mse

    grid = simplex_grid(3, 100)
    assert sampled_error(weights) <= min(sampled_error(w) for w in grid) + 1e-12


def test_on_the_quadratic_the_optimal_mix_beats_every_single_k():
    problem = problems.make_problem("quadratic")
    k_max, horizon = problem.settings["k_max"], problem.settings["horizon"]
    mean, joint = exact.exact_meta_gradient_moments(problem, problem.eta0, k_max, joint=True)
    target = np.asarray(exact.true_meta_gradient(problem, problem.eta0, horizon))
    weights = mixing.optimal_mixing_weights(mean, joint, target)
    singles = stats.scale_free_mse(mean, np.einsum("kekf->kef", joint), target)
    best_mix = mix_error(mean, joint, target, weights)
    assert best_mix < singles.min() - 0.02, (best_mix, singles)
    # The numbers the problem's docstring quotes.
    np.testing.assert_allclose([singles[-1], best_mix], [0.915, 0.88], atol=0.005)
    assert np.all(singles[:4] == 1.0) and np.all(weights[:5] == 0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: mixing.optimal_mixing_weights(np.zeros(3), np.zeros((3, 3)), np.ones(3)), "mean"),
        (
            lambda: mixing.optimal_mixing_weights(np.zeros((3, 2)), np.zeros((3, 2, 2)), [1, 0]),
            "joint_cov",
        ),
        (
            lambda: mixing.optimal_mixing_weights(np.ones((3, 2)), np.zeros((3, 2, 3, 2)), [0, 0]),
            "target",
        ),
        (
            lambda: mixing.optimal_mixing_weights_from_samples(np.zeros((1, 3, 2)), [1, 0]),
            "samples",
        ),
        (
            lambda: mixing.mix_moments(np.zeros((2, 2)), np.zeros((2, 2, 2, 2)), [0.5, 0.6]),
            "weights",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
