"""The noisy quadratic toy: environment, exact references, the trade-off its defaults show.

The oracles are plain numpy: the closed-form second moment of SGD on a quadratic, and g_k built as
a product of two affine functions of the noise by an explicit linear recursion, whose moments
follow from Isserlis' theorem. They share no code with ``course_lib``.
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import exact, metagrad, problems, stats
from course_lib.envs import quadratic

# Every test in float64 (the oracles compare to 1e-10): the fixture is in conftest.py.
pytestmark = pytest.mark.usefixtures("float64")


def default_problem():
    return problems.make_problem("quadratic")


# ------------------------------------------------------------------------------------------------
# Numpy oracles


def np_expected_loss(settings, eta, horizon):
    """½ Σ h E θ_H², E θ_H² = r^{2H} θ_0² + α²σ² (1 − r^{2H}) / (1 − r²), r = 1 − αh."""
    h, theta0 = np.array(settings["curvatures"]), np.array(settings["theta0"])
    alpha, sigma = np.exp(eta), settings["noise"]
    r2 = (1 - alpha * h) ** 2
    second = r2**horizon * theta0**2 + (alpha * sigma) ** 2 * (1 - r2**horizon) / (1 - r2)
    return 0.5 * np.sum(h * second)


def np_moments(settings, eta, k_max):
    """Exact mean [k, d] and joint covariance [k, d, k, d] of g_1..g_k_max, by Isserlis.

    With ξ = (ξ_0..ξ_k_max) stacked, coordinate i: θ_k = a + a·ξ and Z_k = α dθ_k/dα = z + z·ξ are
    affine (the recursion below), the outer gradient is y = hθ_k + σ ξ_k, and g_k,i = y Z_k.
    """
    h, theta0 = np.array(settings["curvatures"]), np.array(settings["theta0"])
    alpha, sigma, d = np.exp(eta), settings["noise"], len(h)
    n = (k_max + 1) * d
    factors = []  # per (k, i): (y0, y, z0, z)
    for i in range(d):
        r = 1 - alpha[i] * h[i]
        t0, t, dt0, dt = theta0[i], np.zeros(n), 0.0, np.zeros(n)  # θ_k, dθ_k/dα: c + vector·ξ
        per_k = []
        for k in range(1, k_max + 1):
            e_in, e_out = np.eye(n)[(k - 1) * d + i], np.eye(n)[k * d + i]  # ξ_{k−1,i}, ξ_{k,i}
            # θ_k = r θ_{k−1} − ασ ξ_{k−1},   dθ_k/dα = r dθ_{k−1}/dα − h θ_{k−1} − σ ξ_{k−1}
            dt0, dt = r * dt0 - h[i] * t0, r * dt - h[i] * t - sigma * e_in
            t0, t = r * t0, r * t - alpha[i] * sigma * e_in
            per_k.append((h[i] * t0, h[i] * t + sigma * e_out, alpha[i] * dt0, alpha[i] * dt))
        factors.append(per_k)
    mean = np.array([[y0 * z0 + y @ z for (y0, y, z0, z) in factors[i]] for i in range(d)]).T
    cov = np.zeros((k_max, d, k_max, d))
    for k, i, j, m in np.ndindex(k_max, d, k_max, d):
        y0, y, z0, z = factors[i][k]
        u0, u, v0, v = factors[m][j]
        cov[k, i, j, m] = (
            y0 * u0 * (z @ v) + y0 * v0 * (z @ u) + z0 * u0 * (y @ v) + z0 * v0 * (y @ u)
            + (y @ u) * (z @ v) + (y @ v) * (z @ u)
        )  # fmt: skip
    return mean, cov


# ------------------------------------------------------------------------------------------------
# Environment primitives


def test_sgd_step_and_noisy_loss_are_the_documented_formulas():
    theta, xi = jnp.array([1.0, -2.0]), jnp.array([0.3, 0.7])
    h, alpha, sigma = jnp.array([1.0, 0.1]), jnp.array([0.2, 0.5]), 0.4
    np.testing.assert_allclose(
        quadratic.sgd_step(theta, xi, alpha, h, sigma), theta - alpha * (h * theta + sigma * xi)
    )
    grad = jax.grad(quadratic.noisy_loss)(theta, xi, h, sigma)
    np.testing.assert_allclose(grad, h * theta + sigma * xi, rtol=1e-12)


def test_expected_losses_match_the_closed_form_second_moment():
    problem = default_problem()
    eta = np.log([0.3, 0.05])
    losses = problem.exact.expected_losses(jnp.asarray(eta), 40)
    expected = [np_expected_loss(problem.settings, eta, k) for k in range(1, 41)]
    np.testing.assert_allclose(losses, expected, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# Exact references against the oracles and Monte Carlo


def test_true_meta_gradient_matches_finite_differences_of_the_exact_expected_loss():
    problem, eps = default_problem(), 1e-6
    eta = np.asarray(problem.eta0) + np.array([0.1, -0.2])
    for horizon in (1, 100, 160):  # 160 = 10 x the largest k_max the tests use
        finite = [
            (
                np_expected_loss(problem.settings, eta + eps * e, horizon)
                - np_expected_loss(problem.settings, eta - eps * e, horizon)
            )
            / (2 * eps)
            for e in np.eye(2)
        ]
        np.testing.assert_allclose(
            exact.true_meta_gradient(problem, eta, horizon), finite, rtol=1e-6, atol=1e-12
        )


def test_exact_moments_match_the_isserlis_oracle_at_k_max_16():
    problem, k_max = default_problem(), 16
    eta = np.asarray(problem.eta0) + np.array([0.2, -0.1])
    mean, cov = exact.exact_meta_gradient_moments(problem, eta, k_max, joint=True)
    expected_mean, expected_cov = np_moments(problem.settings, eta, k_max)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-10, atol=1e-14)
    # Without `joint`: the diagonal blocks; the noise does not depend on η, so E[g_k] = g*_k.
    _, per_k = exact.exact_meta_gradient_moments(problem, eta, k_max)
    np.testing.assert_allclose(per_k, np.einsum("kekf->kef", expected_cov), rtol=1e-10, atol=1e-14)
    true = exact.true_meta_gradients(problem, eta, k_max)
    np.testing.assert_allclose(mean, true, rtol=1e-10, atol=1e-14)


def test_exact_moments_match_monte_carlo_over_seeds():
    problem, n = default_problem(), 8192
    k_max = problem.settings["k_max"]
    samples = np.asarray(
        metagrad.sample_meta_gradients(problem, problem.eta0, jax.random.key(3), k_max, n)
    )
    mean, cov = map(np.asarray, exact.exact_meta_gradient_moments(problem, problem.eta0, k_max))
    variance = np.einsum("kee->ke", cov)
    # Tolerances: 4.5 standard errors, from the exact variance for the mean and from the samples'
    # fourth central moment for the variance (the quadratic forms are skewed and heavy-tailed).
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= 4.5 * np.sqrt(variance / n))
    centred = samples - samples.mean(axis=0)
    fourth = np.mean(centred**4, axis=0)
    tolerance = 4.5 * np.sqrt((fourth - variance**2) / n)
    assert np.all(np.abs(samples.var(axis=0, ddof=1) - variance) <= tolerance)
    # One cross-step covariance, g_1 against g_k_max in the first meta-parameter.
    product = centred[:, 0, 0] * centred[:, -1, 0]
    _, joint = exact.exact_meta_gradient_moments(problem, problem.eta0, k_max, joint=True)
    assert abs(product.mean() - joint[0, 0, -1, 0]) <= 4.5 * product.std() / np.sqrt(n)
    # The sampled right-direction shares the problem's docstring quotes (19% and 66%); a share's
    # standard error is at most 0.5 / sqrt(n) = 0.0055.
    target = exact.true_meta_gradient(problem, problem.eta0, problem.settings["horizon"])
    share = stats.meta_gradient_stats(samples, target).right_direction
    np.testing.assert_allclose(share[[0, -1]], [0.19, 0.66], atol=0.025)


@pytest.mark.parametrize("mode", metagrad.AUTODIFF_MODES)
def test_sampled_estimators_run_on_the_quadratic_and_match_finite_differences(mode):
    problem, key, k_max, eps = default_problem(), jax.random.key(5), 6, 1e-6
    eta = np.asarray(problem.eta0)
    grads = np.asarray(metagrad.k_step_meta_gradients(problem, eta, key, k_max, mode=mode))

    def losses(eta):
        return np.asarray(metagrad.prefix_outer_losses(problem, eta, key, k_max))

    finite = np.stack(
        [(losses(eta + eps * e) - losses(eta - eps * e)) / (2 * eps) for e in np.eye(2)]
    )
    assert grads.shape == (k_max, 2) and np.all(np.abs(grads) > 0)
    np.testing.assert_allclose(grads, finite.T, rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# The trade-off at the defaults (as the problem's docstring states)


def test_default_quadratic_misleads_the_myopic_estimator():
    problem = default_problem()
    k_max, horizon = problem.settings["k_max"], problem.settings["horizon"]
    assert k_max <= 16 and horizon >= 10 * k_max
    mean, cov = exact.exact_meta_gradient_moments(problem, problem.eta0, k_max)
    target = np.asarray(exact.true_meta_gradient(problem, problem.eta0, horizon))
    measures = stats.moment_measures(mean, cov, target)
    assert np.asarray(mean)[0] @ target < 0 < np.asarray(mean)[-1] @ target
    assert np.all(np.diff(measures.cosine) > 0), measures.cosine
    assert np.all(np.diff(measures.snr) < 0), measures.snr
    # The numbers the docstring quotes.
    np.testing.assert_allclose(measures.cosine[[0, -1]], [-0.28, 0.69], atol=0.01)
    np.testing.assert_allclose(measures.snr[[0, -1]], [2.0, 0.22], atol=0.01)


def test_make_problem_knows_the_quadratic_and_checks_its_settings():
    problem = default_problem()
    assert problem is problems.make_problem("quadratic")
    assert problem.meta_names == ("log_learning_rate_0", "log_learning_rate_1")
    np.testing.assert_allclose(problem.hyper_parameters(problem.eta0), [0.2, 0.2], rtol=1e-12)
    for settings, match in [
        ({"curvatures": (1.0, -0.1)}, "curvatures"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"noise": -1.0}, "noise"),
        ({"theta0": (1.0,)}, "theta0"),
        ({"k_max": 0}, "k_max"),
        ({"horizon": 4}, "horizon"),
    ]:
        with pytest.raises(ValueError, match=match):
            problems.make_problem("quadratic", **settings)
    with pytest.raises(ValueError, match="no paths"):
        exact.exact_meta_gradient_paths(problem, problem.eta0, 2)


def test_toy_problems_never_import_jumanji():
    code = (
        "import sys\n"
        "from course_lib import exact, metagrad, problems\n"
        "for name in ('bandit', 'quadratic'):\n"
        "    p = problems.make_problem(name)\n"
        "    exact.exact_meta_gradient_moments(p, p.eta0, 2)\n"
        "    metagrad.sample_meta_gradients(p, p.eta0, __import__('jax').random.key(0), 2, 2)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'jumanji')\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
