"""Estimators beyond the K-step family: the sampling correction (DiCE), the accumulating trace and
antithetic evolution strategies, against exact references and independent oracles.

The oracles: ``exact.true_meta_gradients`` (which differentiates the path probabilities, a
different code path from the score terms, and is itself checked against numpy in test_bandit.py);
plain-numpy recursions on the quadratic (the trace, by hand, with its moments by Isserlis); and the
smoothed objective by Stein's identity on the closed-form expected loss.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import estimators, exact, metagrad, problems

# Every test in float64 (the oracles compare to 1e-10): the fixture is in conftest.py.
pytestmark = pytest.mark.usefixtures("float64")


def bandit():
    return problems.make_problem("bandit")


def quadratic():
    return problems.make_problem("quadratic")


def within_standard_errors(samples, expected, n_se=4.5):
    samples = np.asarray(samples)
    se = samples.std(axis=0) / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - expected) <= n_se * se + 1e-12), (
        samples.mean(axis=0),
        expected,
        se,
    )


# ------------------------------------------------------------------------------------------------
# The sampling correction


def test_sampling_correction_makes_the_exact_mean_the_true_meta_gradient_on_the_bandit():
    problem, k_max = bandit(), 4
    true = np.asarray(exact.true_meta_gradients(problem, problem.eta0, k_max))
    corrected, _ = exact.exact_meta_gradient_moments(
        problem, problem.eta0, k_max, sampling_correction=True
    )
    np.testing.assert_allclose(corrected, true, rtol=1e-12, atol=1e-17)
    held_fixed, _ = exact.exact_meta_gradient_moments(problem, problem.eta0, k_max)
    bias = np.abs(np.asarray(held_fixed) - true).max(axis=1)
    assert bias[0] < 1e-17 and np.all(bias[1:] > 1e-4)  # the bias it removes is real for k >= 2


def test_sampling_correction_paths_samples_and_modes_agree():
    problem, key, k_max = bandit(), jax.random.key(5), 3
    forward = metagrad.k_step_meta_gradients(
        problem, problem.eta0, key, k_max, sampling_correction=True
    )
    reverse = metagrad.k_step_meta_gradients(
        problem, problem.eta0, key, k_max, mode="reverse", sampling_correction=True
    )
    np.testing.assert_allclose(forward, reverse, rtol=1e-12, atol=1e-17)
    plain = metagrad.k_step_meta_gradients(problem, problem.eta0, key, k_max)
    np.testing.assert_allclose(forward[0], plain[0], rtol=1e-12)  # g_1 has no score term
    samples = metagrad.sample_meta_gradients(
        problem, problem.eta0, key, k_max, 3, sampling_correction=True
    )
    one = metagrad.k_step_meta_gradients(
        problem, problem.eta0, jax.random.fold_in(key, 2), k_max, sampling_correction=True
    )
    np.testing.assert_allclose(samples[2], one, rtol=1e-12)
    prob, paths = exact.exact_meta_gradient_paths(
        problem, problem.eta0, k_max, sampling_correction=True
    )
    np.testing.assert_allclose(
        np.einsum("p,pke->ke", prob, paths),
        exact.true_meta_gradients(problem, problem.eta0, k_max),
        rtol=1e-12,
    )


def test_sampled_sampling_correction_is_unbiased_on_the_bandit():
    problem, k_max = bandit(), 3
    samples = metagrad.sample_meta_gradients(
        problem, problem.eta0, jax.random.key(2), k_max, 4000, sampling_correction=True
    )
    within_standard_errors(samples, exact.true_meta_gradients(problem, problem.eta0, k_max))


def test_sampling_correction_is_zero_on_the_quadratic():
    problem, key, k_max = quadratic(), jax.random.key(1), 4
    for mode in metagrad.AUTODIFF_MODES:
        np.testing.assert_allclose(
            metagrad.k_step_meta_gradients(
                problem, problem.eta0, key, k_max, mode=mode, sampling_correction=True
            ),
            metagrad.k_step_meta_gradients(problem, problem.eta0, key, k_max, mode=mode),
            rtol=1e-12,
        )
    corrected = exact.exact_meta_gradient_moments(
        problem, problem.eta0, k_max, joint=True, sampling_correction=True
    )
    plain = exact.exact_meta_gradient_moments(problem, problem.eta0, k_max, joint=True)
    for a, b in zip(corrected, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(batch_log_prob=None), "batch_log_prob"),
        (dict(outer_loss_is_cost=False), "outer_loss_is_cost"),
    ],
)
def test_sampling_correction_names_what_the_problem_lacks(change, match):
    problem = dataclasses.replace(bandit(), **change)
    with pytest.raises(ValueError, match=match):
        metagrad.k_step_meta_gradients(
            problem, problem.eta0, jax.random.key(0), 2, sampling_correction=True
        )
    with pytest.raises(ValueError, match=match):
        exact.exact_meta_gradient_moments(problem, problem.eta0, 2, sampling_correction=True)


def test_sampling_correction_must_be_a_bool():
    problem = bandit()
    with pytest.raises(ValueError, match="sampling_correction must be True or False"):
        metagrad.sample_meta_gradients(
            problem, problem.eta0, jax.random.key(0), 2, 2, sampling_correction="yes"
        )


def test_quadratic_form_moments_from_values_match_autodiff_on_a_random_quadratic():
    rng = np.random.default_rng(0)
    c, a, A = rng.normal(size=3), rng.normal(size=(3, 5)), rng.normal(size=(3, 5, 5))
    A = A + A.transpose(0, 2, 1)
    fn = lambda x: c + a @ x + 0.5 * jnp.einsum("iab,a,b->i", A, x, x)
    mean, cov = exact.quadratic_form_moments_from_values(fn, 5, jnp.float64)
    np.testing.assert_allclose(mean, c + 0.5 * np.trace(A, axis1=1, axis2=2), rtol=1e-12)
    np.testing.assert_allclose(cov, a @ a.T + 0.5 * np.einsum("iab,jba->ij", A, A), rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# The accumulating trace


def np_trace_affine(problem, decay, k_max):
    """Per horizon k and coordinate i, t_k,i = y·z with y = ∇L_out and z the trace, both affine in
    the stacked noise ξ_0..ξ_k_max: returns the coefficients (y0, Y, z0, Z), each [k_max, d(, n)].

    Coordinate i: θ' = θ − α(hθ + σξ), so ∂θ'/∂η_i = −α(hθ + σξ) (η = log α) and z' = μz + that.
    """
    s = problem.settings
    h, theta0, sigma = np.array(s["curvatures"]), np.array(s["theta0"]), s["noise"]
    alpha, d = np.exp(np.asarray(problem.eta0)), len(h)
    n = (k_max + 1) * d
    out = np.zeros((4, k_max, d), object)
    for i in range(d):
        t0, t, z0, z = theta0[i], np.zeros(n), 0.0, np.zeros(n)
        for k in range(1, k_max + 1):
            e_in, e_out = np.eye(n)[(k - 1) * d + i], np.eye(n)[k * d + i]
            du0, du = -alpha[i] * h[i] * t0, -alpha[i] * (h[i] * t + sigma * e_in)
            z0, z = decay * z0 + du0, decay * z + du
            t0, t = t0 - alpha[i] * h[i] * t0, t - alpha[i] * (h[i] * t + sigma * e_in)
            out[:, k - 1, i] = h[i] * t0, h[i] * t + sigma * e_out, z0, z
    return out


def test_trace_on_the_quadratic_matches_a_hand_written_recursion():
    problem, key, k_max, decay = quadratic(), jax.random.key(4), 5, 0.6
    d = problem.n_eta
    noise = np.stack(
        [np.asarray(problem.sample(None, jax.random.fold_in(key, k))[0]) for k in range(k_max + 1)]
    ).reshape(-1)
    y0, y, z0, z = np_trace_affine(problem, decay, k_max)
    expected = np.zeros((k_max, d))
    for k in range(k_max):
        for i in range(d):
            expected[k, i] = (y0[k, i] + y[k, i] @ noise) * (z0[k, i] + z[k, i] @ noise)
    got = estimators.trace_meta_gradients(problem, problem.eta0, key, k_max, decay)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_trace_exact_moments_on_the_quadratic_match_isserlis():
    problem, k_max, decay = quadratic(), 4, 0.6
    d = problem.n_eta
    y0, y, z0, z = np_trace_affine(problem, decay, k_max)
    mean = np.array(
        [[y0[k, i] * z0[k, i] + y[k, i] @ z[k, i] for i in range(d)] for k in range(k_max)]
    )
    cov = np.zeros((k_max, d, k_max, d))
    for a in np.ndindex(k_max, d):
        for b in np.ndindex(k_max, d):
            ya, za, yb, zb = y[a], z[a], y[b], z[b]
            cov[a + b] = (
                y0[a] * y0[b] * (za @ zb)
                + y0[a] * z0[b] * (za @ yb)
                + z0[a] * y0[b] * (ya @ zb)
                + z0[a] * z0[b] * (ya @ yb)
                + (ya @ yb) * (za @ zb)
                + (ya @ zb) * (za @ yb)
            )
    got_mean, got_cov = estimators.exact_trace_meta_gradient_moments(
        problem, problem.eta0, k_max, decay, joint=True
    )
    np.testing.assert_allclose(got_mean, mean, rtol=1e-10)
    np.testing.assert_allclose(got_cov, cov, rtol=1e-9, atol=1e-14)
    _, marginal = estimators.exact_trace_meta_gradient_moments(problem, problem.eta0, k_max, decay)
    np.testing.assert_allclose(marginal, np.einsum("kekf->kef", cov), rtol=1e-9, atol=1e-14)


def test_trace_without_decay_is_the_one_step_meta_gradient_along_the_run():
    problem, key, k_max = bandit(), jax.random.key(6), 4
    got = estimators.trace_meta_gradients(problem, problem.eta0, key, k_max, 0.0)
    np.testing.assert_allclose(
        got[0], metagrad.k_step_meta_gradients(problem, problem.eta0, key, 1)[0], rtol=1e-12
    )
    theta, (batch, _) = (
        problem.init_state,
        problem.sample(problem.init_state, jax.random.fold_in(key, 0)),
    )
    for k in range(1, k_max + 1):
        next_theta = problem.inner_update(theta, batch, problem.eta0)
        outer, _ = problem.sample(next_theta, jax.random.fold_in(key, k))
        one_step = jax.grad(
            lambda eta, theta=theta, batch=batch, outer=outer: problem.outer_loss(
                problem.inner_update(theta, batch, eta), outer
            )
        )(problem.eta0)
        np.testing.assert_allclose(got[k - 1], one_step, rtol=1e-12)
        theta, batch = next_theta, outer


def test_trace_on_the_bandit_exact_mean_and_samples_agree_and_full_decay_is_hessian_free():
    problem, k_max, decay = bandit(), 3, 0.5
    mean, cov = estimators.exact_trace_meta_gradient_moments(problem, problem.eta0, k_max, decay)
    assert mean.shape == (k_max, 2) and cov.shape == (k_max, 2, 2)
    samples = estimators.sample_trace_meta_gradients(
        problem, problem.eta0, jax.random.key(0), k_max, decay, 3000
    )
    within_standard_errors(samples, mean)
    np.testing.assert_allclose(np.cov(np.asarray(samples[:, -1]).T), cov[-1], rtol=0.15)
    # the bandit's ∂U/∂θ is not I, so μ = 1 (the Hessian-free g_k) differs from g_k beyond k = 1
    key = jax.random.key(1)
    full = estimators.trace_meta_gradients(problem, problem.eta0, key, k_max, 1.0)
    exact = metagrad.k_step_meta_gradients(problem, problem.eta0, key, k_max)
    np.testing.assert_allclose(full[0], exact[0], rtol=1e-12)
    assert np.abs(np.asarray(full[1:] - exact[1:])).max() > 1e-6


def test_trace_decay_is_checked():
    problem = bandit()
    with pytest.raises(ValueError, match="decay must be in"):
        estimators.trace_meta_gradients(problem, problem.eta0, jax.random.key(0), 2, 1.5)


# ------------------------------------------------------------------------------------------------
# Antithetic evolution strategies


def np_smoothed_gradient(problem, horizon, sigma, order=40):
    """∇ E_ε J(η + σε) = E_ε[J(η + σε) ε] / σ (Stein), J in closed form, Gauss–Hermite in numpy."""
    s = problem.settings
    h, theta0, noise = np.array(s["curvatures"]), np.array(s["theta0"]), s["noise"]

    def expected_loss(eta):
        alpha = np.exp(eta)
        r2 = (1 - alpha * h) ** 2
        second = r2**horizon * theta0**2 + (alpha * noise) ** 2 * (1 - r2**horizon) / (1 - r2)
        return 0.5 * np.sum(h * second)

    x, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    eta = np.asarray(problem.eta0)
    total = np.zeros(2)
    for a, wa in zip(x, w, strict=True):
        for b, wb in zip(x, w, strict=True):
            eps = np.array([a, b])
            total += wa * wb * expected_loss(eta + sigma * eps) * eps
    return total / sigma


def test_smoothed_gradient_matches_steins_identity_and_tends_to_the_true_gradient():
    problem, k_max = quadratic(), 4
    smoothed = estimators.smoothed_true_meta_gradients(problem, problem.eta0, k_max, 0.3)
    for k in (1, k_max):
        np.testing.assert_allclose(
            smoothed[k - 1], np_smoothed_gradient(problem, k, 0.3), rtol=1e-6
        )
    true = exact.true_meta_gradients(problem, problem.eta0, k_max)
    assert np.abs(np.asarray(smoothed - true)).max() > 1e-3  # smoothing moves the target at σ = 0.3
    np.testing.assert_allclose(
        estimators.smoothed_true_meta_gradients(problem, problem.eta0, k_max, 1e-3),
        true,
        rtol=1e-4,
    )


@pytest.mark.parametrize("name, sigma", [("quadratic", 0.3), ("bandit", 0.5)])
def test_es_is_unbiased_for_the_smoothed_gradient(name, sigma):
    problem, k_max = problems.make_problem(name), 3
    samples = estimators.sample_es_meta_gradients(
        problem, problem.eta0, jax.random.key(3), k_max, sigma, 2, 4000
    )
    within_standard_errors(
        samples, estimators.smoothed_true_meta_gradients(problem, problem.eta0, k_max, sigma)
    )


def test_es_variance_falls_as_one_over_the_number_of_pairs():
    problem, key = quadratic(), jax.random.key(8)
    var = [
        np.asarray(
            estimators.sample_es_meta_gradients(problem, problem.eta0, key, 3, 0.3, n, 4000)
        ).var(axis=0)
        for n in (1, 4)
    ]
    np.testing.assert_allclose(var[0] / var[1], 4.0, rtol=0.2)


def test_es_exact_moments_on_the_quadratic_match_the_smoothed_gradient_and_samples():
    problem, k_max, sigma = quadratic(), 4, 0.2
    mean, cov = estimators.exact_es_meta_gradient_moments(
        problem, problem.eta0, k_max, sigma, 2, joint=True
    )
    smoothed = estimators.smoothed_true_meta_gradients(problem, problem.eta0, k_max, sigma)
    np.testing.assert_allclose(mean, smoothed, rtol=1e-8)  # E[D ε]/2σ against E[∇J]
    samples = np.asarray(
        estimators.sample_es_meta_gradients(
            problem, problem.eta0, jax.random.key(9), k_max, sigma, 2, 4000
        )
    ).reshape(4000, -1)
    centred = samples - samples.mean(axis=0)
    products = centred[:, :, None] * centred[:, None, :]  # heavy-tailed: their own spread is the SE
    se = products.std(axis=0) / np.sqrt(len(samples))
    error = np.abs(products.mean(axis=0) - np.asarray(cov).reshape(2 * k_max, 2 * k_max))
    assert np.all(error <= 5 * se), (error / se).max()
    _, marginal = estimators.exact_es_meta_gradient_moments(problem, problem.eta0, k_max, sigma, 2)
    np.testing.assert_allclose(marginal, np.einsum("kekf->kef", cov), rtol=1e-12)


def test_es_exact_moments_refuse_an_unconverged_tail_and_non_gaussian_problems():
    problem = quadratic()
    with pytest.raises(ValueError, match="has not converged"):
        estimators.exact_es_meta_gradient_moments(problem, problem.eta0, 8, 0.3, 1)
    with pytest.raises(ValueError, match="not Gaussian"):
        estimators.exact_es_meta_gradient_moments(bandit(), bandit().eta0, 2, 0.3, 1)


def test_es_single_estimate_and_its_checks():
    problem, key = quadratic(), jax.random.key(2)
    one = estimators.es_meta_gradients(problem, problem.eta0, key, 3, 0.1, 3)
    assert one.shape == (3, 2) and np.all(np.isfinite(np.asarray(one)))
    with pytest.raises(ValueError, match="sigma must be a scalar > 0"):
        estimators.es_meta_gradients(problem, problem.eta0, key, 3, 0.0, 3)
    with pytest.raises(ValueError, match="n_pairs"):
        estimators.es_meta_gradients(problem, problem.eta0, key, 3, 0.1, 0)
    surrogate = dataclasses.replace(problem, outer_loss_is_cost=False)
    with pytest.raises(ValueError, match="outer_loss_is_cost=False"):
        estimators.es_meta_gradients(surrogate, problem.eta0, key, 3, 0.1, 3)


# ------------------------------------------------------------------------------------------------
# Compute


def test_estimator_cost_accounting():
    assert estimators.estimator_cost("k_step", 5, 2, jvp_cost=2.0) == 25.0
    assert estimators.estimator_cost("trace", 5, 2, jvp_cost=2.0) == 25.0
    assert estimators.estimator_cost("es", 5, 2, n_pairs=3) == 30.0
    # one g_k costs as much as 2.5 ES pairs with n_eta = 2, whatever k
    for k in (1, 8):
        assert estimators.estimator_cost("es", k, 2, n_pairs=5) == 2 * estimators.estimator_cost(
            "k_step", k, 2
        )
    np.testing.assert_allclose(
        estimators.variance_at_equal_compute(jnp.array([2.0, 4.0]), 10.0, 40.0), [0.5, 1.0]
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        estimators.estimator_cost("dice", 5, 2)
    with pytest.raises(ValueError, match="budget"):
        estimators.variance_at_equal_compute(1.0, 10.0, 0.0)
