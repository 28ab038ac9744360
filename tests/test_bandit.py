"""The enumerable bandit: environment primitives, exact references, the effects lessons show.

The oracle here is a plain-numpy bandit (closed-form softmax gradients, explicit loops over paths,
finite differences); it shares no code with ``course_lib``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import exact, metagrad, mixing, problems, stats
from course_lib.envs import bandit

# Every test in float64 (the oracles compare to 1e-10): the fixture is in conftest.py.
pytestmark = pytest.mark.usefixtures("float64")


# ------------------------------------------------------------------------------------------------
# A numpy oracle for batch_size = 1


def np_softmax(theta):
    z = np.exp(theta - theta.max())
    return z / z.sum()


def np_update(theta, action, reward, eta):
    """θ + α [r (e_a − π) + c ∇H],  ∇H = −π (log π + H)."""
    alpha, c = np.exp(eta[0]), np.log1p(np.exp(eta[1]))
    pi = np_softmax(theta)
    entropy = -np.sum(pi * np.log(pi))
    return theta + alpha * (
        reward * (np.eye(len(theta))[action] - pi) - c * pi * (np.log(pi) + entropy)
    )


def np_paths(theta0, p, eta, k):
    """Yield (probability, [L_1..L_k]) for every sequence of k (action, reward) outcomes."""
    outcomes = list(itertools.product(range(len(p)), (0.0, 1.0)))
    for path in itertools.product(outcomes, repeat=k):
        theta, prob, losses = np.array(theta0, float), 1.0, []
        for action, reward in path:
            prob *= np_softmax(theta)[action] * (p[action] if reward else 1 - p[action])
            theta = np_update(theta, action, reward, eta)
            losses.append(-np_softmax(theta) @ p)
        yield prob, np.array(losses)


def np_theta0(settings):
    """θ_0 as the bandit's docstring defines it: given, or spread evenly from +1 to −1."""
    if settings["theta0"] is None:
        return np.linspace(1.0, -1.0, len(settings["p"]))
    return np.array(settings["theta0"])


def np_exact(problem, eta, k, eps=1e-6):
    """Probabilities, per-path g_1..g_k and ∇_η E[L_k], the last two by central differences."""
    theta0, p = np_theta0(problem.settings), np.array(problem.settings["p"])
    prob = np.array([pr for pr, _ in np_paths(theta0, p, eta, k)])
    grads, true = [], []
    for e in np.eye(len(eta)):
        plus = list(np_paths(theta0, p, eta + eps * e, k))
        minus = list(np_paths(theta0, p, eta - eps * e, k))
        grads.append([(lp - lm) / (2 * eps) for (_, lp), (_, lm) in zip(plus, minus, strict=True)])
        true.append(
            (sum(pp * lp[-1] for pp, lp in plus) - sum(pm * lm[-1] for pm, lm in minus)) / (2 * eps)
        )
    return prob, np.stack(grads, axis=-1), np.array(true)  # [n_paths], [n_paths, k, n_eta], [n_eta]


# ------------------------------------------------------------------------------------------------
# Environment primitives


def test_enumerated_batches_are_every_outcome_once_and_their_probabilities_sum_to_one():
    batches = bandit.enumerate_batches(n_arms=3, batch_size=2, n_steps=1, dtype=jnp.float64)
    assert batches.actions.shape == (36, 1, 2)
    rows = {
        tuple(a) + tuple(r)
        for a, r in zip(batches.actions[:, 0].tolist(), batches.rewards[:, 0].tolist(), strict=True)
    }
    assert len(rows) == 36
    theta, p = jnp.array([0.3, -1.0, 0.5]), jnp.array([0.2, 0.5, 0.9])
    log_p = jax.vmap(lambda b: bandit.batch_log_prob(theta, p, b))(
        jax.tree_util.tree_map(lambda x: x[:, 0], batches)
    )
    np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, rtol=1e-12)


def test_sampled_pulls_follow_the_policy_and_the_arm_probabilities():
    theta, p, n = jnp.array([0.5, -0.5, 0.0]), jnp.array([0.2, 0.6, 0.9]), 200_000
    batch = bandit.sample_batch(theta, p, jax.random.key(0), n)
    pi = np_softmax(np.asarray(theta))
    counts = np.bincount(np.asarray(batch.actions), minlength=3)
    np.testing.assert_allclose(counts / n, pi, atol=4 * np.sqrt(pi * (1 - pi) / n).max())
    for a in range(3):
        rewards = np.asarray(batch.rewards)[np.asarray(batch.actions) == a]
        assert abs(rewards.mean() - float(p[a])) < 4 * np.sqrt(0.25 / len(rewards))


def test_expected_reward_and_entropy_match_numpy():
    theta, p = np.array([0.3, -1.2, 2.0]), np.array([0.1, 0.5, 0.8])
    pi = np_softmax(theta)
    np.testing.assert_allclose(
        bandit.expected_reward(jnp.asarray(theta), jnp.asarray(p)), pi @ p, rtol=1e-12
    )
    np.testing.assert_allclose(
        bandit.policy_entropy(jnp.asarray(theta)), -pi @ np.log(pi), rtol=1e-12
    )


def test_inner_update_matches_the_closed_form():
    problem = problems.make_problem("bandit")
    eta = np.array([np.log(0.7), 0.3])
    for action, reward in [(0, 1.0), (1, 0.0), (1, 1.0)]:
        batch = bandit.BanditBatch(jnp.array([action], jnp.int32), jnp.array([reward]))
        ours = problem.inner_update(problem.init_state, batch, jnp.asarray(eta))
        expected = np_update(np_theta0(problem.settings), action, reward, eta)
        np.testing.assert_allclose(ours, expected, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# Exact references against the numpy oracle


def test_exact_moments_and_true_gradient_match_a_numpy_enumeration():
    problem = problems.make_problem("bandit", learning_rate=0.8, entropy_cost=0.2)
    eta, k = np.asarray(problem.eta0), 3
    prob, grads, true = np_exact(problem, eta, k)
    ours_prob, ours_grads = exact.exact_meta_gradient_paths(problem, eta, k)
    np.testing.assert_allclose(ours_prob, prob, rtol=1e-12)
    np.testing.assert_allclose(ours_grads, grads, rtol=1e-6, atol=1e-10)
    mean, cov = exact.exact_meta_gradient_moments(problem, eta, k)
    expected_mean = np.einsum("p,pke->ke", prob, grads)
    centred = grads - expected_mean
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(
        cov, np.einsum("p,pke,pkf->kef", prob, centred, centred), rtol=1e-5, atol=1e-12
    )
    np.testing.assert_allclose(
        exact.true_meta_gradient(problem, eta, k), true, rtol=1e-6, atol=1e-10
    )
    # One enumeration of the k-step paths gives g*_1..g*_k; the oracle enumerates each j alone.
    every_true = np.stack([np_exact(problem, eta, j)[2] for j in range(1, k)] + [true])
    np.testing.assert_allclose(
        exact.true_meta_gradients(problem, eta, k), every_true, rtol=1e-6, atol=1e-10
    )


def test_one_step_estimator_is_unbiased_and_multi_step_ones_are_not():
    problem = problems.make_problem("bandit")
    mean, _ = exact.exact_meta_gradient_moments(problem, problem.eta0, 4)
    true = np.stack([exact.true_meta_gradient(problem, problem.eta0, k) for k in range(1, 5)])
    np.testing.assert_allclose(mean[0], true[0], rtol=1e-12, atol=1e-15)
    relative_bias = np.linalg.norm(mean - true, axis=1) / np.linalg.norm(true, axis=1)
    assert np.all(relative_bias[1:] > 0.02), relative_bias  # the dropped sampling term


def test_monte_carlo_moments_converge_to_the_exact_ones():
    problem, k_max, n = problems.make_problem("bandit"), 6, 8192
    samples = np.asarray(
        metagrad.sample_meta_gradients(problem, problem.eta0, jax.random.key(7), k_max, n)
    )
    prob, paths = map(np.asarray, exact.exact_meta_gradient_paths(problem, problem.eta0, k_max))
    mean = np.einsum("p,pke->ke", prob, paths)
    variance = np.einsum("p,pke->ke", prob, (paths - mean) ** 2)
    fourth = np.einsum("p,pke->ke", prob, (paths - mean) ** 4)
    # Tolerances are 4.5 standard errors of the Monte Carlo estimates, from the exact moments.
    tolerance = 4.5 * np.sqrt(variance / n) + 1e-15
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= tolerance)
    tolerance = 4.5 * np.sqrt((fourth - variance**2) / n) + 1e-15
    assert np.all(np.abs(samples.var(axis=0, ddof=1) - variance) <= tolerance)


def test_default_bandit_shows_the_bias_variance_trade_off():
    """As documented: variance grows with k, bias to the 8-step target falls, mixes sit between."""
    problem, k_max = problems.make_problem("bandit"), 8
    prob, paths = map(np.asarray, exact.exact_meta_gradient_paths(problem, problem.eta0, k_max))
    target = np.asarray(exact.true_meta_gradient(problem, problem.eta0, k_max))
    per_k = stats.meta_gradient_stats(paths, target, probabilities=prob)
    assert np.all(np.diff(per_k.variance) > 0) and per_k.variance[-1] > 10 * per_k.variance[0]
    assert np.all(np.diff(per_k.bias_norm) < 0)
    mix = stats.meta_gradient_stats(
        mixing.mix(paths, mixing.uniform_weights(k_max)),
        target,
        probabilities=prob,
    )
    assert per_k.variance[0] < mix.variance < per_k.variance[-1]
    assert per_k.bias_norm[-1] < mix.bias_norm < per_k.bias_norm[0]
    assert mix.mse < min(per_k.mse[0], per_k.mse[-1])
