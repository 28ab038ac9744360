"""Snake's meta-gradient with the critic learning, against two A2C/RMSProp updates by hand.

The oracle below shares no code with ``agents`` or ``problems.snake_problem``: its own MLP, its
own λ-returns, its own clipping and RMSProp, all in float64, on the batches the engine sampled
(held fixed, as the engine holds them). Where the critic's values enter as constants is written
out by the caller (``inner_critic``, ``outer_critic``), so each convention is a choice of those
two functions:

    semi: every critic value is stop_gradient(·): the λ-return targets and the advantage's
          baseline of the inner loss, the bootstrap and the baseline of the outer surrogate;
    full: the inner loss's critic values are the critic's weights themselves (constants for the
          inner ∇_θ only); the outer surrogate's stay stop_gradient(·).

Finite differences cannot see a stop-gradient, so they check the oracle with the critic values
pinned to the arrays one unroll recorded instead: same value, same derivative.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import metagrad, problems

SETTINGS = dict(n_envs=2, rollout_len=3, hidden=(8,), warmup_updates=0, value_cost=2.8)
LEARNING_RATE, DECAY, EPS, MAX_NORM = 3e-3, 0.9, 1e-8, 1.0  # snake_problem's RMSProp defaults
OUTER_GAMMA = 0.99  # the outer surrogate's reference γ'; its λ' = 1


# Every test in float64 (the oracles compare to 1e-10): the fixture is in conftest.py.
pytestmark = pytest.mark.usefixtures("float64")


def _net(layers, x):
    for w, b in layers[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def _critic(layers, x):
    return _net(layers, x)[..., 0]


def _returns(rewards, discounts, next_values, gamma, lam):
    """G_t = r_t + γ d_t ((1 − λ) v_{t+1} + λ G_{t+1}), G_T = v_T; next_values [T, B]: v_1..v_T."""
    g = next_values[-1]
    out = []
    for t in reversed(range(rewards.shape[0])):
        g = rewards[t] + gamma * discounts[t] * ((1 - lam) * next_values[t] + lam * g)
        out.append(g)
    return jnp.stack(out[::-1])


def _log_prob_taken(policy, batch):
    log_probs = jax.nn.log_softmax(_net(policy, batch.obs))
    return jnp.take_along_axis(log_probs, batch.actions[..., None], -1)[..., 0], log_probs


def _coefficients(critic, batch, gamma, lam):
    """λ-returns and baseline from the critic ``critic`` (whatever the caller made of it)."""
    values = _critic(critic, batch.obs)
    next_values = jnp.concatenate([values[1:], _critic(critic, batch.last_obs)[None]])
    return _returns(batch.rewards, batch.discounts, next_values, gamma, lam), values


def _inner_loss(weights, critic, batch, gamma, lam, entropy_cost, value_cost):
    policy, value = weights
    returns, baseline = _coefficients(critic, batch, gamma, lam)
    log_prob, log_probs = _log_prob_taken(policy, batch)
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, -1)
    return (
        -jnp.mean((returns - baseline) * log_prob)
        + value_cost * jnp.mean((returns - _critic(value, batch.obs)) ** 2)
        - entropy_cost * jnp.mean(entropy)
    )


def _outer_loss(policy, critic, batch):
    returns, baseline = _coefficients(critic, batch, OUTER_GAMMA, 1.0)
    return -jnp.mean((returns - baseline) * _log_prob_taken(policy, batch)[0])


def _rmsprop_step(weights, nu, grads):
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
    scale = jnp.where(norm < MAX_NORM, 1.0, MAX_NORM / norm)
    grads = jax.tree.map(lambda g: scale * g, grads)
    nu = jax.tree.map(lambda n, g: DECAY * n + (1 - DECAY) * g**2, nu, grads)
    step = lambda w, n, g: w - LEARNING_RATE * g / jnp.sqrt(n + EPS)
    return jax.tree.map(step, weights, nu, grads), nu, norm


def _unroll(eta, start, batches, inner_critic, outer_critic, value_cost):
    """L_1, L_2 after two updates on batches τ_0, τ_1, scored on τ_1, τ_2; plus what it read.

    ``inner_critic(k, value_weights)``, ``outer_critic(k, value_weights)``: the critic the k-th
    inner loss (k = 0, 1) and the k-th outer loss read their values from.
    """
    gamma, lam, entropy_cost = jax.nn.sigmoid(eta[0]), jax.nn.sigmoid(eta[1]), jnp.exp(eta[2])
    weights, nu = start
    losses, critics, norms = [], [], []
    for k in range(2):
        batch = jax.tree.map(lambda x, k=k: x[k], batches)
        critics.append(weights[1])
        grads = jax.grad(_inner_loss)(
            weights, inner_critic(k, weights[1]), batch, gamma, lam, entropy_cost, value_cost
        )
        weights, nu, norm = _rmsprop_step(weights, nu, grads)
        norms.append(norm)
        next_batch = jax.tree.map(lambda x, k=k: x[k + 1], batches)
        critics.append(weights[1])
        losses.append(_outer_loss(weights[0], outer_critic(k, weights[1]), next_batch))
    return jnp.stack(losses), (critics, jnp.stack(norms))


def _constant(k, value):
    return jax.lax.stop_gradient(value)


def _live(k, value):
    return value


@functools.cache
def _engine_run(critic_targets):
    """The engine's g_1, g_2 on a start with a warm RMSProp state, and the batches it sampled."""
    problem = problems.make_problem("snake", critic_targets=critic_targets, **SETTINGS)
    state = problem.init_state
    # nu = 0 makes the first RMSProp step g/|g|, whose derivative in g all but vanishes
    nu_key = iter(jax.random.split(jax.random.key(7), 64))
    opt_state = jax.tree.map(
        lambda leaf: 1e-4 * jnp.exp(jax.random.normal(next(nu_key), leaf.shape)),
        state.opt_state,
    )
    state = state._replace(opt_state=opt_state)
    eta = problem.eta0 + jnp.asarray([0.3, -0.2, 1.0])  # c_ent ≈ 0.03: the entropy term counts
    key = jax.random.key(5)
    per_step, _, batches = metagrad.meta_gradient_pass(
        problem, state, eta, key, 2, summarize=lambda batch: batch
    )
    (nu,) = [
        leaf.nu
        for leaf in jax.tree.leaves(opt_state, is_leaf=lambda leaf: hasattr(leaf, "nu"))
        if hasattr(leaf, "nu")
    ]
    start = ((state.params.policy, state.params.value), (nu.policy, nu.value))
    return np.asarray(per_step), eta, start, batches


@pytest.mark.parametrize("critic_targets", ["semi", "full"])
def test_meta_gradients_match_two_updates_unrolled_by_hand(critic_targets):
    engine, eta, start, batches = _engine_run(critic_targets)
    inner = _constant if critic_targets == "semi" else _live
    value_cost = SETTINGS["value_cost"]

    def losses(eta):
        return _unroll(eta, start, batches, inner, _constant, value_cost)[0]

    oracle = np.asarray(jax.jacrev(losses)(eta))
    assert np.all(np.abs(oracle) > 1e-8)  # every component is exercised
    np.testing.assert_allclose(engine, oracle, rtol=1e-9, atol=1e-13)

    # central differences with the stop-gradients' arrays pinned to the values they held
    _, (critics, norms) = _unroll(eta, start, batches, inner, _constant, value_cost)
    pinned = lambda k, value, at=0: critics[2 * k + at]
    pinned_inner = pinned if critic_targets == "semi" else _live
    pinned_outer = functools.partial(pinned, at=1)
    eps = 1e-5
    for i in range(3):
        step = eps * np.eye(3)[i]
        plus, minus = (
            _unroll(eta + s, start, batches, pinned_inner, pinned_outer, value_cost)[0]
            for s in (step, -step)
        )
        finite = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(finite, oracle[:, i], rtol=1e-6, atol=1e-10)
    # value_cost 2.8 puts the first update under the clipping threshold, the second over it
    assert norms[0] < MAX_NORM < norms[1], norms


def test_the_conventions_differ_from_g_2_on():
    semi, full = _engine_run("semi")[0], _engine_run("full")[0]
    # g_1: θ_0's critic does not depend on η, so nothing differs; g_2 reads θ_1's critic
    np.testing.assert_allclose(semi[0], full[0], rtol=1e-12)
    assert np.linalg.norm(semi[1] - full[1]) > 1e-3 * np.linalg.norm(full[1])


def test_an_unknown_convention_is_refused_by_name():
    with pytest.raises(ValueError, match=r"critic_targets must be one of \['semi', 'full'\]"):
        problems.make_problem("snake", critic_targets="half")


def test_full_path_forward_mode_matches_reverse_mode():
    problem = problems.make_problem("snake", critic_targets="full", **SETTINGS)
    key, eta = jax.random.key(2), problem.eta0 + 0.2
    forward = metagrad.k_step_meta_gradients(problem, eta, key, 3, mode="forward")
    reverse = metagrad.k_step_meta_gradients(problem, eta, key, 3, mode="reverse")
    np.testing.assert_allclose(forward, reverse, rtol=1e-10, atol=1e-14)
