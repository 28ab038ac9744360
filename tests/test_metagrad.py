"""The meta-gradient engine against independent oracles: jacfwd, finite differences, by hand."""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import exact, metagrad, mixing, problems, stats
from course_lib.problems import MetaProblem

# Every test in float64 (the oracles compare to 1e-10): the fixture is in conftest.py.
pytestmark = pytest.mark.usefixtures("float64")


class WalkState(NamedTuple):
    theta: jax.Array  # [2]
    steps: jax.Array  # int32: an env counter with no tangent, as in real env states


def random_walk_problem(theta0=(1.0, -0.5)) -> MetaProblem:
    """Unlike the bandit: a pytree state with an integer leaf, Gaussian data, a squared loss.

    θ' = θ − α (θ − c·x),  α = exp(η_0), c = η_1,  L_out(θ; x) = ‖θ − x‖² on the next batch x.
    """

    def sample(state, key):
        x = (
            jax.random.normal(key, (2,))
            + 0.1 * state.steps
            + 0.0 * jax.lax.stop_gradient(state.theta)
        )
        return x, WalkState(state.theta, state.steps + 1)

    def inner_update(state, x, eta):
        return WalkState(state.theta - jnp.exp(eta[0]) * (state.theta - eta[1] * x), state.steps)

    return MetaProblem(
        name="random_walk",
        meta_names=("log_step", "scale"),
        eta0=jnp.asarray([np.log(0.5), 0.8]),
        init_state=WalkState(jnp.asarray(theta0), jnp.asarray(0, jnp.int32)),
        sample=sample,
        inner_update=inner_update,
        outer_loss=lambda state, x: jnp.sum((state.theta - x) ** 2),
        hyper_parameters=lambda eta: jnp.stack([jnp.exp(eta[0]), eta[1]]),
        settings={},
    )


@functools.cache
def _random_walk():  # one object, so its compiled estimators are reused across tests
    return random_walk_problem()


def get_problem(name):
    if name == "random_walk":
        return _random_walk()
    if name == "snake":  # small enough to compile fast; the default Snake is tested further down
        return problems.make_problem(
            "snake", n_envs=2, rollout_len=3, hidden=(8,), warmup_updates=0
        )
    return problems.make_problem(name)


@pytest.mark.parametrize("name", ["bandit", "random_walk", "snake"])
def test_forward_mode_matches_reverse_mode_and_jacfwd(name):
    problem = get_problem(name)
    key = jax.random.key(3)
    eta = problem.eta0 + 0.1
    k_max = 3 if name == "snake" else 6
    forward = metagrad.k_step_meta_gradients(problem, eta, key, k_max, mode="forward")
    reverse = metagrad.k_step_meta_gradients(problem, eta, key, k_max, mode="reverse")
    jacobian = jax.jacfwd(lambda e: metagrad.prefix_outer_losses(problem, e, key, k_max))(eta)
    assert forward.shape == (k_max, problem.n_eta) and forward.dtype == jnp.float64
    assert np.all(np.abs(np.asarray(forward)) > 0)  # every component is exercised
    np.testing.assert_allclose(forward, reverse, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(forward, jacobian, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["bandit", "random_walk", "snake"])
def test_central_finite_differences_match_k_step_meta_gradients(name):
    # Same key on both sides: the sampled actions stay put under a small change of eta (their
    # Gumbel-argmax margins are far larger), so L_k(eta) is smooth along the probe.
    # Snake's losses read the critic under stop_gradient (the usual semi-gradient convention),
    # which finite differences cannot do. With value_cost = 0 the critic (its own network) never
    # moves, so the values it gives are the same whatever eta is and the convention changes
    # nothing: every component is comparable. Round-off in float64 Snake rollouts needs eps=1e-4.
    if name == "snake":
        problem = problems.make_problem(
            "snake", n_envs=2, rollout_len=3, hidden=(8,), warmup_updates=0, value_cost=0.0
        )
        k_max, eps = 3, 1e-4
    else:
        problem, k_max, eps = get_problem(name), 5, 1e-6
    key = jax.random.key(11)
    eta = np.asarray(problem.eta0)

    def losses(eta):
        return np.asarray(metagrad.prefix_outer_losses(problem, eta, key, k_max))

    basis = np.eye(len(eta))
    finite = np.stack([(losses(eta + eps * e) - losses(eta - eps * e)) / (2 * eps) for e in basis])
    meta_grads = np.asarray(metagrad.k_step_meta_gradients(problem, eta, key, k_max))
    assert np.all(np.abs(meta_grads) > 0)  # every component is exercised
    np.testing.assert_allclose(meta_grads, finite.T, rtol=1e-6, atol=1e-12)


def test_random_walk_meta_gradient_matches_a_hand_derivation():
    # θ_1 = θ_0 − α(θ_0 − c x_0) and L_1 = ‖θ_1 − x_1‖²: dL_1/dη by the chain rule, by hand.
    problem = random_walk_problem()
    key = jax.random.key(5)
    eta = np.asarray(problem.eta0)
    alpha, c = np.exp(eta[0]), eta[1]
    x0 = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (2,)))
    x1 = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (2,))) + 0.1
    theta0 = np.asarray(problem.init_state.theta)
    theta1 = theta0 - alpha * (theta0 - c * x0)
    dtheta1 = np.stack([-alpha * (theta0 - c * x0), alpha * x0], axis=-1)  # [2 (θ), 2 (η)]
    expected = 2 * (theta1 - x1) @ dtheta1
    np.testing.assert_allclose(
        metagrad.k_step_meta_gradients(problem, eta, key, 1)[0], expected, rtol=1e-12
    )


@pytest.mark.parametrize("mode", metagrad.AUTODIFF_MODES)
def test_shorter_runs_are_prefixes_of_longer_runs(mode):
    problem = problems.make_problem("bandit")
    key = jax.random.key(0)
    # k_max = 6 and 5 are compiled by the tests above already
    long_losses = metagrad.prefix_outer_losses(problem, problem.eta0, key, 6)
    long_grads = metagrad.k_step_meta_gradients(problem, problem.eta0, key, 6, mode=mode)
    for k in (2, 5):
        np.testing.assert_array_equal(
            long_losses[:k], metagrad.prefix_outer_losses(problem, problem.eta0, key, k)
        )
        np.testing.assert_allclose(
            long_grads[:k],
            metagrad.k_step_meta_gradients(problem, problem.eta0, key, k, mode=mode),
            rtol=1e-12,
        )


def test_sampled_seeds_are_single_runs_with_folded_keys():
    problem = problems.make_problem("bandit")
    key = jax.random.key(42)
    samples = metagrad.sample_meta_gradients(problem, problem.eta0, key, 4, n_seeds=5)
    assert samples.shape == (5, 4, 2)
    for seed in (0, 4):
        single = metagrad.k_step_meta_gradients(
            problem, problem.eta0, jax.random.fold_in(key, seed), 4
        )
        np.testing.assert_allclose(samples[seed], single, rtol=1e-12)
    assert np.ptp(np.asarray(samples[:, -1, 0])) > 0  # seeds differ


def test_one_hot_mixing_reproduces_each_k_step_meta_gradient():
    problem = problems.make_problem("bandit")
    samples = np.asarray(
        metagrad.sample_meta_gradients(problem, problem.eta0, jax.random.key(1), 6, 8)
    )
    for k in range(1, 7):
        np.testing.assert_array_equal(
            mixing.mix(samples, mixing.one_hot_weights(k, 6)), samples[:, k - 1]
        )
    # A short weight vector mixes only the first rows; a jax cache gives the same numbers.
    w = mixing.uniform_weights(3)
    expected = samples[:, :3].mean(axis=1)
    np.testing.assert_allclose(mixing.mix(samples, w), expected, rtol=1e-12)
    np.testing.assert_allclose(mixing.mix(jnp.asarray(samples), w), expected, rtol=1e-12)


def test_mixing_inside_jit_with_traced_padded_weights():
    samples = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5, 2)))
    mix = jax.jit(mixing.mix)
    for w in (mixing.geometric_weights(3, 0.5), mixing.lambda_return_weights(5, 0.7)):
        padded = np.zeros(5)
        padded[: len(w)] = w
        np.testing.assert_allclose(
            mix(samples, padded), np.einsum("k,ske->se", padded, samples), rtol=1e-12
        )
    assert mix._cache_size() == 1  # new weights, no recompilation


def test_weight_families_hit_their_special_cases():
    k = 5
    np.testing.assert_array_equal(mixing.one_hot_weights(2, k), [0, 1, 0, 0, 0])
    np.testing.assert_allclose(mixing.uniform_weights(k), np.full(k, 0.2))
    np.testing.assert_allclose(mixing.geometric_weights(k, 0.0), np.eye(k)[0])
    np.testing.assert_allclose(mixing.geometric_weights(k, 1.0), np.full(k, 0.2))
    np.testing.assert_allclose(mixing.geometric_weights(3, 0.5), np.array([4, 2, 1]) / 7)
    np.testing.assert_allclose(mixing.lambda_return_weights(k, 0.0), np.eye(k)[0])
    np.testing.assert_allclose(mixing.lambda_return_weights(k, 1.0), np.eye(k)[-1])
    np.testing.assert_allclose(mixing.lambda_return_weights(3, 0.5), [0.5, 0.25, 0.25])
    for rho in np.linspace(0, 1, 11):
        assert abs(mixing.lambda_return_weights(7, rho).sum() - 1) < 1e-12
        assert abs(mixing.geometric_weights(7, rho).sum() - 1) < 1e-12


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p, key: metagrad.k_step_meta_gradients(p, p.eta0, key, 0), "k_max"),
        (lambda p, key: metagrad.k_step_meta_gradients(p, p.eta0, key, 2.5), "k_max"),
        (lambda p, key: metagrad.k_step_meta_gradients(p, p.eta0, key, 2, mode="sideways"), "mode"),
        (
            lambda p, key: metagrad.k_step_meta_gradients(p, jnp.array([0.0, jnp.nan]), key, 2),
            "eta",
        ),
        (lambda p, key: metagrad.k_step_meta_gradients(p, jnp.zeros(3), key, 2), "eta"),
        (lambda p, key: metagrad.prefix_outer_losses(p, p.eta0, key, -1), "k_max"),
        (lambda p, key: metagrad.sample_meta_gradients(p, p.eta0, key, 2, n_seeds=1), "n_seeds"),
        (lambda p, key: mixing.one_hot_weights(4, 3), "k must be <= k_max"),
        (lambda p, key: mixing.one_hot_weights(0, 3), "k "),
        (lambda p, key: mixing.uniform_weights(0), "k "),
        (lambda p, key: mixing.geometric_weights(3, 1.5), "lam"),
        (lambda p, key: mixing.geometric_weights(3, -0.1), "lam"),
        (lambda p, key: mixing.lambda_return_weights(3, 2.0), "rho"),
        (
            lambda p, key: mixing.mix(np.zeros((2, 3, 2)), np.full(4, 0.25)),
            "weights",
        ),
        (lambda p, key: mixing.mix(np.zeros((2, 3, 2)), [1.5, -0.5]), "weights"),
        (lambda p, key: mixing.mix(np.zeros((2, 3, 2)), [0.5, 0.4]), "weights"),
        (lambda p, key: mixing.mix(np.zeros((2, 3, 2)), []), "weights"),
        (lambda p, key: mixing.mix(np.zeros(3), [1.0]), "per_step"),
        (lambda p, key: exact.true_meta_gradient(p, p.eta0, 0), "k "),
        (lambda p, key: exact.exact_meta_gradient_moments(p, p.eta0, 40), "k_max"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    problem = problems.make_problem("bandit")
    with pytest.raises(ValueError, match=match):
        call(problem, jax.random.key(0))


def test_weights_within_tolerance_are_accepted():
    w = np.array([0.5, 0.5 + 5e-7])
    assert mixing.mix(np.ones((3, 2, 2)), w).shape == (3, 2)


def test_non_finite_meta_gradient_names_the_step_where_it_diverged():
    def inner_update(state, x, eta):  # θ_k = e^(200 k) θ_0: L_k ∝ θ_k² overflows float64 at k = 2
        return WalkState(state.theta * jnp.exp(eta[0]), state.steps)

    problem = dataclasses.replace(random_walk_problem(), inner_update=inner_update)
    eta = jnp.array([200.0, 0.0])
    with pytest.raises(ValueError, match="k=2"):
        metagrad.k_step_meta_gradients(problem, eta, jax.random.key(0), 4)
    with pytest.raises(ValueError, match="k=2"):
        metagrad.sample_meta_gradients(problem, eta, jax.random.key(0), 4, n_seeds=3)


def test_make_problem_lists_valid_names_and_settings_and_caches():
    with pytest.raises(ValueError, match="valid names.*bandit"):
        problems.make_problem("pong")
    with pytest.raises(ValueError, match="valid settings.*learning_rate"):
        problems.make_problem("bandit", step_size=0.1)
    assert problems.make_problem("bandit", p=[0.2, 0.9]) is problems.make_problem(
        "bandit", p=(0.2, 0.9)
    )
    assert problems.make_problem("bandit") is not problems.make_problem("bandit", entropy_cost=0.5)
    # a default given explicitly is the same setting (the capstone's seed 0 is the default seed)
    assert problems.make_problem("bandit", batch_size=1) is problems.make_problem("bandit")
    problem = problems.make_problem("bandit", learning_rate=0.5, entropy_cost=0.2)
    np.testing.assert_allclose(problem.hyper_parameters(problem.eta0), [0.5, 0.2], rtol=1e-12)
    assert problem.meta_names == ("log_learning_rate", "entropy_cost")
    assert problem.eta0.dtype == jnp.float64
    snake = get_problem("snake")
    assert snake is get_problem("snake")
    assert snake.meta_names == ("discount", "lambda", "entropy_cost")
    np.testing.assert_allclose(snake.hyper_parameters(snake.eta0), [0.95, 0.9, 0.01], rtol=1e-12)
    with pytest.raises(ValueError, match="optimizer"):
        problems.make_problem("snake", optimizer="adam")
    with pytest.raises(ValueError, match="gamma"):
        problems.make_problem("snake", gamma=1.0)


def test_snake_variance_grows_with_k_and_a_geometric_mix_cuts_it():
    """The paper's point at the default Snake settings (float32, as the lessons run them).

    Measured there with 128 seeds: Var(g_8)/Var(g_1) is 20-60 and the mix has 1-5% of Var(g_8),
    so 64 seeds and the thresholds 3 and 1/2 leave a wide margin; the bootstrap bound checks it.
    """
    with jax.enable_x64(False):
        problem = problems.make_problem("snake")
        samples = metagrad.sample_meta_gradients(problem, problem.eta0, jax.random.key(0), 8, 64)
    samples = np.asarray(samples)
    assert samples.shape == (64, 8, 3)
    mix_weights = mixing.geometric_weights(8, 0.5)

    def ratios(s):  # s: [n_seeds, *batch, k_max, n_eta]
        variance = stats.meta_gradient_stats(s).variance
        mixed = stats.meta_gradient_stats(mixing.mix(s, mix_weights)).variance
        return np.stack([variance[..., 7] / variance[..., 0], mixed / variance[..., 7]], axis=-1)

    growth, cut = ratios(samples)
    assert growth > 3, growth
    assert cut <= 0.5, cut
    low, high = stats.bootstrap_ci(samples, ratios, jax.random.key(1), n_boot=500)
    assert low[0] > 3 and high[1] <= 0.5, (low, high)
