"""Mixing that tunes itself: the enumerated non-negative quadratic minimum against scipy's
non-negative least squares, the prior, the EMAs, and convergence to the optimal weights on the
exact toy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from course_lib import exact, metagrad, mixing, problems, self_tuning


def test_the_enumerated_minimum_matches_scipys_nonnegative_least_squares():
    """The oracle is scipy's NNLS (another algorithm, an active set): with S = a aᵀ, a [K, M],
    M >= K, and y solving a y = b, ‖aᵀu − y‖² = uᵀSu − 2bᵀu + ‖y‖², the same minimiser."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        k = int(rng.integers(1, 7))
        a = rng.normal(size=(k, k + int(rng.integers(0, 3))))
        gram, linear = a @ a.T, rng.normal(size=k)
        want = scipy.optimize.nnls(a.T, np.linalg.lstsq(a, linear, rcond=None)[0])[0]
        with jax.enable_x64(True):
            got = np.asarray(
                self_tuning.nonnegative_quadratic_minimum(jnp.asarray(gram), jnp.asarray(linear))
            )
        assert np.all(got >= 0)
        value_got, value_want = (u @ gram @ u - 2 * linear @ u for u in (got, want))
        assert value_got == pytest.approx(value_want, rel=1e-6, abs=1e-9)
        np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, np.abs(want).max()))


def test_no_moments_or_nothing_worth_mixing_gives_the_prior():
    prior = jnp.asarray(mixing.geometric_weights(3, 0.5), jnp.float32)
    moments = self_tuning.init_moments(3, 2)
    np.testing.assert_allclose(self_tuning.self_tuning_weights(moments, prior, 5.0), prior)
    np.testing.assert_allclose(self_tuning.self_tuning_weights(moments, prior, 0.0), prior)
    # g_3 = 0 on every draw: no mix has a mean along the stand-in target, keep the prior
    zero_last = jnp.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])
    moments = self_tuning.update_moments(moments, zero_last, 0.9)
    np.testing.assert_allclose(self_tuning.self_tuning_weights(moments, prior, 0.0), prior)


def test_the_emas_are_bias_corrected_and_count_the_window():
    draws = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2, 3)), jnp.float32)
    moments = self_tuning.init_moments(2, 3)
    for g in draws:
        moments = self_tuning.update_moments(moments, g, 0.5)
    ages = 0.5 ** np.arange(3, -1, -1)  # the last draw counts most
    mean = np.einsum("t,tke->ke", ages, draws) / ages.sum()
    gram = np.einsum("t,tke,tje->kj", ages, draws, draws) / ages.sum()
    np.testing.assert_allclose(moments.mean / moments.weight, mean, rtol=1e-5)
    np.testing.assert_allclose(moments.gram / moments.weight, gram, rtol=1e-5)
    assert float(moments.count) == pytest.approx(ages.sum())


def test_the_prior_pulls_with_the_weight_of_its_meta_updates():
    """One draw where g_2 is exactly the target and g_1 is orthogonal to it: the moments' optimum
    is all weight on g_2; a prior of strength p against a window of n draws gets p / (n + p)."""
    prior = jnp.array([1.0, 0.0])
    moments = self_tuning.update_moments(
        self_tuning.init_moments(2, 2), jnp.array([[0.0, 1.0], [1.0, 0.0]]), 0.0
    )
    weights = self_tuning.self_tuning_weights(moments, prior, 3.0)  # n = 1, p = 3
    np.testing.assert_allclose(weights, [0.75, 0.25], atol=1e-6)


def test_online_weights_approach_the_optimal_fixed_weights_for_the_target_they_see():
    """On the noisy quadratic, fed independent draws of (g_1..g_8) at η_0 with a long window, the
    weights converge to ``optimal_mixing_weights`` from the exact moments with g* = E g_8 (the
    longest horizon they see); not to the optimum against g*_100, which they cannot see."""
    k = 8
    with jax.enable_x64(True):
        problem = problems.make_problem("quadratic")
        mean, joint_cov = exact.exact_meta_gradient_moments(problem, problem.eta0, k, joint=True)
        mean, joint_cov = np.asarray(mean), np.asarray(joint_cov)
        draws = metagrad.sample_meta_gradients(problem, problem.eta0, jax.random.key(0), k, 4096)
        far_target = np.asarray(exact.true_meta_gradient(problem, problem.eta0, 100))
    want = mixing.optimal_mixing_weights(mean, joint_cov, mean[-1])
    far = mixing.optimal_mixing_weights(mean, joint_cov, far_target)
    prior = jnp.asarray(mixing.geometric_weights(k, 0.5), jnp.float32)

    def step(moments, g):
        return self_tuning.update_moments(moments, g, 0.999), None

    moments, _ = jax.lax.scan(step, self_tuning.init_moments(k, 2), jnp.asarray(draws, jnp.float32))
    got = np.asarray(self_tuning.self_tuning_weights(moments, prior, 10.0))
    assert np.abs(got - want).sum() < 0.15, (got, want)
    assert np.abs(got - far).sum() > 0.5  # the short horizons' target is not the far one


@pytest.mark.parametrize(
    ("decay", "strength", "message"),
    [
        (1.0, 1.0, "decay must be below 1"),
        (-0.1, 1.0, "decay must be a number from 0 to 1"),
        (0.5, -1.0, "prior_strength must be a number from 0"),
        (0.0, 0.0, "prior_strength must be > 0 when decay is 0"),
        (True, 1.0, "decay must be a number"),
    ],
)
def test_bad_settings_fail_clearly(decay, strength, message):
    with pytest.raises(ValueError, match=message):
        self_tuning.check_settings(decay, strength)


def test_horizons_beyond_the_enumerable_fail_clearly():
    with pytest.raises(ValueError, match="k must be an integer from 1 to 10"):
        self_tuning.init_moments(11, 2)
