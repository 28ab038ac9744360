"""The checks of lessons 03–05 accept a correct answer and name the usual wrong ones.

Correct answers are written the way a learner would (closed forms, ``lax.scan``, NumPy), not with
the references the checks use; exercise 4.1's is forward mode (the Z_k recursion with explicit
Jacobians) where its reference is reverse mode. The references themselves are tested against
independent oracles: the K-step reference against ``metagrad.k_step_meta_gradients`` on the batches
it sampled, the one-step reference against central finite differences in float64.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from grading_harness import harness_tests

from course_lib import grading, metagrad, mixing, problems, stats
from course_lib.envs import bandit, quadratic
from course_lib.grading import mixing_estimator, multi_step, one_step

# --------------------------------------------------------------------------------------------
# Correct answers, written as a learner would


def one_step_meta_gradient(theta, actions, rewards, eta, p):
    alpha, entropy_cost = jnp.exp(eta[0]), jax.nn.softplus(eta[1])
    pi = jax.nn.softmax(theta)
    policy_gradient = jnp.mean(
        rewards[:, None] * (jax.nn.one_hot(actions, theta.shape[0]) - pi), axis=0
    )
    entropy = -jnp.sum(pi * jnp.log(pi))
    entropy_gradient = -pi * (jnp.log(pi) + entropy)
    step = policy_gradient + entropy_cost * entropy_gradient
    pi1 = jax.nn.softmax(theta + alpha * step)
    outer_gradient = -pi1 * (p - pi1 @ p)
    dtheta_deta = jnp.stack([alpha * step, alpha * jax.nn.sigmoid(eta[1]) * entropy_gradient], 1)
    return outer_gradient @ dtheta_deta


def central_differences(f, eta, eps):
    return jnp.array([(f(eta + eps * e) - f(eta - eps * e)) / (2 * eps) for e in jnp.eye(len(eta))])


def _forward_mode(problem, batches, outer_batch, eta, *, hessian=True):
    """g_K from the recursion Z_k = ∂U/∂θ Z_{k−1} + ∂U/∂η with explicit Jacobians, unrolled in
    Python (forward mode; the check's reference is reverse mode through lax.scan). Without
    ``hessian``, ∂U/∂θ is taken as I: Xu et al.'s trace z' = z + ∂U/∂η with μ = 1."""
    theta = problem.init_state
    z = jnp.zeros((theta.shape[0], eta.shape[0]))
    for k in range(batches.actions.shape[0]):
        batch = jax.tree_util.tree_map(lambda x, k=k: x[k], batches)
        du_dtheta, du_deta = jax.jacobian(problem.inner_update, argnums=(0, 2))(theta, batch, eta)
        z = (du_dtheta @ z if hessian else z) + du_deta
        theta = problem.inner_update(theta, batch, eta)
    return jax.grad(problem.outer_loss)(theta, outer_batch) @ z


meta_gradient_through_batches = jax.jit(_forward_mode, static_argnums=0)


def forward_meta_gradients_through_batches(problem, batches, eta):
    """Exercise 4.2 as a learner might write it: one jvp per meta-parameter in a Python loop,
    the outer gradient by a second jvp (the check's reference is reverse mode)."""
    n_eta = eta.shape[0]

    def step(carry, k):
        theta, z = carry  # z: [d, n_eta], column e is dθ/dη_e
        inner = jax.tree_util.tree_map(lambda x: x[k], batches)
        outer = jax.tree_util.tree_map(lambda x: x[k + 1], batches)
        update = lambda th, et: problem.inner_update(th, inner, et)
        basis = jnp.eye(n_eta)
        columns = [jax.jvp(update, (theta, eta), (z[:, e], basis[e])) for e in range(n_eta)]
        theta, z = columns[0][0], jnp.stack([c[1] for c in columns], axis=1)
        loss = lambda th: problem.outer_loss(th, outer)
        return (theta, z), jnp.stack([jax.jvp(loss, (theta,), (z[:, e],))[1] for e in range(n_eta)])

    k = jax.tree_util.tree_leaves(batches)[0].shape[0] - 1
    z0 = jnp.zeros((problem.init_state.shape[0], n_eta))
    return jax.lax.scan(step, (problem.init_state, z0), jnp.arange(k))[1]


def variance_and_snr(samples):
    mean = samples.mean(axis=0)
    variance = samples.var(axis=0, ddof=1).sum(axis=-1)
    return variance, (mean**2).sum(axis=-1) / variance


def mix_meta_gradients(per_step, weights):
    return (weights[None, :, None] * per_step).sum(axis=1)


def geometric_weights(k, lam):
    raw = jnp.power(lam, jnp.arange(k, dtype=jnp.float32))
    return raw / raw.sum()


def mixed_meta_gradient(problem, batches, eta, weights, *, lag=0, last_only=False):
    """Exercise 5.3 as a learner writes it: one scan emitting w_k L_out(θ_k; τ_k), one jax.grad.
    ``lag=1`` scores θ_k on its own training batch and ``last_only`` keeps L_K alone (mistakes)."""
    inner = jax.tree_util.tree_map(lambda x: x[:-1], batches)
    outer = jax.tree_util.tree_map(lambda x: x[1 - lag : x.shape[0] - lag], batches)

    def mixed_loss(eta):
        def step(theta, xs):
            tau_in, tau_out, w = xs
            theta = problem.inner_update(theta, tau_in, eta)
            return theta, w * problem.outer_loss(theta, tau_out)

        _, weighted = jax.lax.scan(step, problem.init_state, (inner, outer, weights))
        return weighted[-1] if last_only else weighted.sum()

    return jax.grad(mixed_loss)(eta)


def optimal_weights(mean, joint_cov, target):
    """Exercise 5.4 as a learner writes it: a Cholesky factor turns uᵀSu − 2bᵀu into ‖Au − y‖²,
    which scipy's non-negative least squares minimises."""
    gram = mean @ mean.T + np.einsum("keje->kj", joint_cov)
    a = np.linalg.cholesky(gram).T
    u = scipy.optimize.nnls(a, np.linalg.solve(a.T, mean @ target))[0]
    return u / u.sum() if u.sum() > 0 else np.full(len(u), 1.0 / len(u))


CORRECT = {
    "3.1": (grading.check_one_step_meta_gradient, one_step_meta_gradient),
    "3.2": (grading.check_central_differences, central_differences),
    "4.1": (grading.check_meta_gradient_through_batches, meta_gradient_through_batches),
    "4.2": (
        grading.check_forward_meta_gradients_through_batches,
        forward_meta_gradients_through_batches,
    ),
    "4.3": (grading.check_variance_and_snr, variance_and_snr),
    "5.1": (grading.check_mix_meta_gradients, mix_meta_gradients),
    "5.2": (grading.check_geometric_weights, geometric_weights),
    "5.3": (grading.check_mixed_meta_gradient, mixed_meta_gradient),
    "5.4": (grading.check_optimal_weights, optimal_weights),
}


# --------------------------------------------------------------------------------------------
# Plausible wrong answers: (exercise, wrong function, what the message must say)


def _one_step_outer_gradient_at_theta0(theta, actions, rewards, eta, p):
    pi = jax.nn.softmax(theta)
    alpha, entropy_cost = jnp.exp(eta[0]), jax.nn.softplus(eta[1])
    policy_gradient = jnp.mean(
        rewards[:, None] * (jax.nn.one_hot(actions, theta.shape[0]) - pi), axis=0
    )
    entropy_gradient = -pi * (jnp.log(pi) - jnp.sum(pi * jnp.log(pi)))
    step = policy_gradient + entropy_cost * entropy_gradient
    dtheta_deta = jnp.stack([alpha * step, alpha * jax.nn.sigmoid(eta[1]) * entropy_gradient], 1)
    return (-pi * (p - pi @ p)) @ dtheta_deta


def _one_step_without_softplus_derivative(theta, actions, rewards, eta, p):
    correct = one_step_meta_gradient(theta, actions, rewards, eta, p)
    return correct / jnp.stack([jnp.exp(eta[0]), jax.nn.sigmoid(eta[1])])


def _forward_differences(f, eta, eps):
    return jnp.array([(f(eta + eps * e) - f(eta)) / eps for e in jnp.eye(len(eta))])


def _k_step_stop_gradient_between_updates(problem, batches, outer_batch, eta):
    def outer(eta):
        def step(theta, batch):
            return problem.inner_update(jax.lax.stop_gradient(theta), batch, eta), None

        theta, _ = jax.lax.scan(step, problem.init_state, batches)
        return problem.outer_loss(theta, outer_batch)

    return jax.grad(outer)(eta)


def _k_step_trace_without_hessian(problem, batches, outer_batch, eta):
    return _forward_mode(problem, batches, outer_batch, eta, hessian=False)


def _k_step_one_update_short(problem, batches, outer_batch, eta):
    return meta_gradient_through_batches(
        problem, jax.tree_util.tree_map(lambda x: x[:-1], batches), outer_batch, eta
    )


def _variance_population(samples):
    samples = np.asarray(samples)
    variance = samples.var(axis=0).sum(axis=-1)
    return variance, (samples.mean(axis=0) ** 2).sum(axis=-1) / variance


def _snr_mean_of_squares(samples):
    samples = np.asarray(samples)
    variance = samples.var(axis=0, ddof=1).sum(axis=-1)
    return variance, (samples**2).sum(axis=-1).mean(axis=0) / variance


VALUE = "is "
WRONG = {
    "3.1 sign flipped": (
        "3.1",
        lambda *args: -one_step_meta_gradient(*args),
        "the sign is flipped",
    ),
    "3.1 outer gradient at theta0": (
        "3.1",
        _one_step_outer_gradient_at_theta0,
        "at the updated logits θ_1",
    ),
    "3.1 derivative with respect to (alpha, c)": (
        "3.1",
        _one_step_without_softplus_derivative,
        "derivative with respect to (α, c)",
    ),
    "3.1 wrong shape": ("3.1", lambda *args: one_step_meta_gradient(*args)[0], "has shape (2,)"),
    "3.2 forward differences": ("3.2", _forward_differences, "one-sided difference"),
    "3.2 divided by eps": (
        "3.2",
        lambda f, e, eps: 2 * central_differences(f, e, eps),
        "divide by 2ε, not ε",
    ),
    "3.2 all components at once": (
        "3.2",
        lambda f, e, eps: jnp.full(e.shape, (f(e + eps) - f(e - eps)) / (2 * eps)),
        "one component at a time",
    ),
    "4.1 sign flipped": (
        "4.1",
        lambda *args: -meta_gradient_through_batches(*args),
        "the sign is flipped",
    ),
    "4.1 stop_gradient between updates": (
        "4.1",
        _k_step_stop_gradient_between_updates,
        "only the last update depends on η",
    ),
    "4.1 trace without the Hessian term": (
        "4.1",
        _k_step_trace_without_hessian,
        "drops how each update passes earlier changes on",
    ),
    "4.1 one update short": ("4.1", _k_step_one_update_short, "K − 1 updates"),
    "4.1 outer batch used as an inner batch": (
        "4.1",
        lambda pr, b, o, e: meta_gradient_through_batches(
            pr, jax.tree_util.tree_map(lambda x, y: jnp.concatenate([x, y[None]]), b, o), o, e
        ),
        "K + 1 updates",
    ),
    "4.2 sign flipped": (
        "4.2",
        lambda *args: -forward_meta_gradients_through_batches(*args),
        "the sign is flipped",
    ),
    "4.2 no dU/deta term": (
        "4.2",
        lambda pr, b, e: 0 * forward_meta_gradients_through_batches(pr, b, e),
        "the ∂U/∂η term is missing",
    ),
    "4.2 no Jacobian term": (
        "4.2",
        functools.partial(multi_step.forward_carry, jacobian=False),
        "drops the Jacobian term",
    ),
    "4.2 last update only": (
        "4.2",
        functools.partial(multi_step.forward_carry, jacobian=False, carry=False),
        "the last update's ∂U/∂η alone",
    ),
    "4.2 scored on the training batch": (
        "4.2",
        functools.partial(multi_step.forward_carry, lag=1),
        "not on τ_{k−1}",
    ),
    "4.2 g_K only": (
        "4.2",
        lambda pr, b, e: forward_meta_gradients_through_batches(pr, b, e)[-1],
        "has shape (",
    ),
    "4.3 population variance": ("4.3", _variance_population, "dividing by N − 1"),
    "4.3 mean of squared norms as signal": (
        "4.3",
        _snr_mean_of_squares,
        "squared norm of the mean",
    ),
    "4.3 per-component variance": (
        "4.3",
        lambda s: (np.var(s, axis=0, ddof=1), np.var(s, axis=0, ddof=1)),
        "has shape (2,",
    ),
    "5.1 weights ignored": ("5.1", lambda g, w: g.mean(axis=1), "the weights are missing"),
    "5.1 weights reversed": (
        "5.1",
        lambda g, w: mix_meta_gradients(g, w[::-1]),
        "the weights are reversed",
    ),
    "5.1 also averaged over seeds": (
        "5.1",
        lambda g, w: mix_meta_gradients(g, w).mean(axis=0),
        "has shape (",
    ),
    "5.2 not normalised": (
        "5.2",
        lambda k, lam: jnp.power(lam, jnp.arange(k, dtype=jnp.float32)),
        "normalise",
    ),
    "5.2 reversed": (
        "5.2",
        lambda k, lam: geometric_weights(k, lam)[::-1],
        "the largest weight belongs to g_1",
    ),
    "5.2 lambda-return weights": (
        "5.2",
        lambda k, lam: mixing.lambda_return_weights(k, lam),
        "λ-return weights",
    ),
    "5.2 one weight too many": ("5.2", lambda k, lam: geometric_weights(k + 1, lam), "has shape ("),
    "5.3 weights missing": (
        "5.3",
        lambda pr, b, e, w: mixed_meta_gradient(pr, b, e, jnp.ones_like(w)),
        "the weights are missing",
    ),
    "5.3 last outer loss only": (
        "5.3",
        lambda pr, b, e, w: mixed_meta_gradient(pr, b, e, w, last_only=True) / w[-1],
        "which gives g_K",
    ),
    "5.3 weights reversed": (
        "5.3",
        lambda pr, b, e, w: mixed_meta_gradient(pr, b, e, w[::-1]),
        "the weights are reversed",
    ),
    "5.3 scored on the training batch": (
        "5.3",
        functools.partial(mixed_meta_gradient, lag=1),
        "not on τ_{k−1}",
    ),
    "5.3 one meta-gradient per step": (
        "5.3",
        lambda pr, b, e, w: forward_meta_gradients_through_batches(pr, b, e) * w[:, None],
        "has shape (",
    ),
    "5.4 without u >= 0": (
        "5.4",
        lambda m, c, t: (
            np.linalg.solve(m @ m.T + np.einsum("keje->kj", c), m @ t).sum() ** -1
            * np.linalg.solve(m @ m.T + np.einsum("keje->kj", c), m @ t)
        ),
        "NON-NEGATIVE least squares",
    ),
    "5.4 no covariances between steps": (
        "5.4",
        lambda m, c, t: optimal_weights(m, c * np.eye(m.shape[0])[:, None, :, None], t),
        "ignores the covariances between steps",
    ),
    "5.4 best single K": (
        "5.4",
        lambda m, c, t: np.eye(m.shape[0])[
            np.argmin(stats.scale_free_mse(m, np.einsum("kekf->kef", c), t))
        ],
        "the best single K",
    ),
}


(
    test_correct_answer_passes_with_one_line,
    test_plausible_wrong_answer_fails_with_a_plain_sentence,
    test_unstarted_exercise_says_what_to_do,
) = harness_tests(CORRECT, WRONG)


# --------------------------------------------------------------------------------------------
# The references against independent oracles (float64)


def _library_batches(problem, eta, key, k):
    """The inner batches τ_0..τ_{k−1} and the outer batch τ_k that ``metagrad`` draws from ``key``,
    replayed from its documented schedule (step j samples with ``fold_in(key, j)``)."""
    batches, state = [], problem.init_state
    batch, state = problem.sample(state, jax.random.fold_in(key, 0))
    for j in range(1, k + 1):
        batches.append(batch)
        state = problem.inner_update(state, batch, eta)
        batch, state = problem.sample(state, jax.random.fold_in(key, j))
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batches), batch


@pytest.mark.parametrize("k", [1, 3, 6])
def test_k_step_reference_matches_the_library_on_its_own_batches(k, float64):
    problem = problems.make_problem("bandit", batch_size=2)
    eta, key = problem.eta0 + 0.3, jax.random.key(k)
    batches, outer_batch = _library_batches(problem, eta, key, k)
    expected = metagrad.k_step_meta_gradients(problem, eta, key, k)[k - 1]
    got = multi_step.reference_meta_gradient_through_batches(problem, batches, outer_batch, eta)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["quadratic", "bandit"])
@pytest.mark.parametrize("mode", metagrad.AUTODIFF_MODES)
def test_forward_carry_reference_matches_the_library_on_its_own_batches(name, mode, float64):
    problem = problems.make_problem(name)
    eta, key, k = problem.eta0 + 0.2, jax.random.key(7), 5
    inner, outer_batch = _library_batches(problem, eta, key, k)
    batches = jax.tree_util.tree_map(lambda x, o: jnp.concatenate([x, o[None]]), inner, outer_batch)
    expected = metagrad.k_step_meta_gradients(problem, eta, key, k, mode=mode)
    got = multi_step.reference_forward_meta_gradients(problem, batches, eta)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


def test_one_step_reference_matches_central_differences(float64):
    theta, p = jnp.array([0.4, -0.2, 0.1]), jnp.array([0.2, 0.5, 0.9])
    actions, rewards, eta = jnp.array([2, 0]), jnp.array([1.0, 0.0]), jnp.array([-0.3, 0.2])
    problem = problems.make_problem("bandit", p=(0.2, 0.5, 0.9), batch_size=2)

    def outer(e):
        batch = bandit.BanditBatch(actions, rewards)
        return -bandit.expected_reward(problem.inner_update(theta, batch, e), p)

    eps = 1e-6
    expected = [(outer(eta + eps * e) - outer(eta - eps * e)) / (2 * eps) for e in jnp.eye(2)]
    got = one_step.reference_one_step_meta_gradient(theta, actions, rewards, eta, p)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_known_wrong_answers_differ_from_the_reference_on_the_edge_cases():
    """Otherwise a correct answer could be told it made a mistake: a failing check names a
    mistake only when the learner's answer equals it on every edge case, so every wrong answer
    the checks know must differ from the reference somewhere. Shown here for exercise 4.1, whose
    wrong answers are closest to the right one (they agree when K = 1)."""
    problem = problems.make_problem("bandit")
    actions, rewards = jnp.array([[1], [1], [0]]), jnp.array([[1.0], [1.0], [0.0]])
    batches = bandit.BanditBatch(actions, rewards)
    outer_batch = bandit.BanditBatch(actions[-1], rewards[-1])
    eta = jnp.array([-0.5, -1.0])
    right = multi_step.reference_meta_gradient_through_batches(problem, batches, outer_batch, eta)
    for wrong in (_k_step_stop_gradient_between_updates, _k_step_trace_without_hessian):
        assert not np.allclose(wrong(problem, batches, outer_batch, eta), right, rtol=1e-3)


def test_mixed_reference_is_the_gradient_of_the_librarys_mixed_outer_loss():
    """Exercise 5.3's reference on the batches ``metagrad.prefix_outer_losses`` draws for a key
    (the quadratic's batch k is the noise of ``fold_in(key, k)``) equals jax.grad of
    Σ_k w_k L_k there: the meta-gradient of the mixed loss is the mix of the meta-gradients."""
    problem, k = problems.make_problem("quadratic"), 5
    key, weights = jax.random.key(3), jnp.array([0.1, 0.0, 0.3, 0.2, 0.4])
    dim = problem.init_state.shape[0]
    batches = jnp.stack(
        [quadratic.sample_noise(jax.random.fold_in(key, j), dim) for j in range(k + 1)]
    )
    mixed_loss = lambda eta: weights @ metagrad.prefix_outer_losses(problem, eta, key, k)
    np.testing.assert_allclose(
        mixing_estimator.reference_mixed_meta_gradient(problem, batches, problem.eta0, weights),
        jax.grad(mixed_loss)(problem.eta0),
        rtol=1e-5,
        atol=1e-7,
    )
