"""Agent building blocks against independent oracles: rlax, hand-worked cases, finite diffs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from course_lib import agents
from course_lib.envs.snake import make_snake

# Every test in float64 (the oracles compare to 1e-10): the fixture is in conftest.py.
pytestmark = pytest.mark.usefixtures("float64")


def random_batch(seed, T=7, B=3):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, B))
    discounts = (rng.random((T, B)) > 0.25).astype(float)  # some episode ends
    values = rng.normal(size=(T + 1, B))
    return jnp.asarray(rewards), jnp.asarray(discounts), jnp.asarray(values)


@pytest.mark.parametrize("gamma, lam", [(0.9, 0.8), (0.99, 1.0), (0.5, 0.0), (1.0, 0.95)])
def test_lambda_returns_match_rlax(gamma, lam):
    rewards, discounts, values = random_batch(0)
    ours = agents.lambda_returns(rewards, discounts, values[1:], values[-1], gamma, lam)
    theirs = jax.vmap(rlax.lambda_returns, in_axes=(1, 1, 1, None), out_axes=1)(
        rewards, gamma * discounts, values[1:], lam
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_discounted_returns_match_rlax_and_a_hand_worked_case():
    rewards, discounts, values = random_batch(1)
    ours = agents.discounted_returns(rewards, discounts, values[-1], 0.9)
    v_t = jnp.zeros_like(rewards).at[-1].set(values[-1])
    theirs = jax.vmap(rlax.lambda_returns, in_axes=(1, 1, 1, None), out_axes=1)(
        rewards, 0.9 * discounts, v_t, 1.0
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    # r = (1, 0, 2), episode ends after step 1 (d_1 = 0), bootstrap 10, γ = 0.5:
    # G_2 = 2 + 0.5·10 = 7, G_1 = 0 + 0 = 0, G_0 = 1 + 0.5·0 = 1.
    g = agents.discounted_returns(
        jnp.array([1.0, 0.0, 2.0]), jnp.array([1.0, 0.0, 1.0]), jnp.array(10.0), 0.5
    )
    np.testing.assert_allclose(g, [1.0, 0.0, 7.0])


def test_policy_gradient_loss_and_entropy_match_rlax():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(5, 4)))
    actions = jnp.asarray(rng.integers(0, 4, size=5))
    adv = jnp.asarray(rng.normal(size=5))
    ours = agents.policy_gradient_loss(logits, actions, adv)
    theirs = rlax.policy_gradient_loss(logits, actions, adv, jnp.ones(5))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    ent = jnp.mean(agents.entropy(logits))
    np.testing.assert_allclose(-ent, rlax.entropy_loss(logits, jnp.ones(5)), rtol=1e-12)


def snake_batch(seed=0):
    env = make_snake(grid=6, time_limit=50, n_envs=4)
    key = jax.random.PRNGKey(seed)
    params = agents.init_actor_critic(key, env.obs_dim, env.n_actions, hidden=(8,))
    _, traj = agents.rollout(env, params, env.reset(key), key, 12)
    return params, traj


def test_a2c_loss_gradient_in_hyper_parameters_matches_finite_differences():
    params, traj = snake_batch()
    hyper = agents.default_hyper()
    hyper = agents.Hyper(*(jnp.asarray(h, jnp.float64) for h in hyper))

    def loss_of(h):
        return agents.a2c_loss(params, traj, agents.Hyper(*h))[0]

    h0 = jnp.stack(hyper)
    grad = jax.grad(loss_of)(h0)
    eps = 1e-6
    for i in range(4):
        e = jnp.zeros(4).at[i].set(eps)
        fd = (loss_of(h0 + e) - loss_of(h0 - e)) / (2 * eps)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-5, atol=1e-9)


def test_a2c_loss_gradient_in_params_matches_finite_differences_along_a_direction():
    params, traj = snake_batch(1)
    hyper = agents.default_hyper()
    direction = jax.tree_util.tree_map(
        lambda x: jax.random.normal(jax.random.PRNGKey(3), x.shape, x.dtype), params
    )
    grad = jax.grad(lambda p: agents.a2c_loss(p, traj, hyper)[0])(params)
    analytic = sum(
        jnp.vdot(g, d)
        for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction), strict=True)
    )

    # Targets hold values as constants: freeze them at θ so the difference sees the same loss.
    np.testing.assert_allclose(
        analytic, _frozen_fd(params, traj, hyper, direction, 1e-6), rtol=1e-4
    )


def _frozen_fd(params, traj, hyper, direction, eps):
    """Central difference of the A2C loss with its λ-return targets evaluated once, at θ."""
    returns, _ = agents._targets(params, traj, hyper.gamma, hyper.lam)

    def loss(p):
        values = agents.state_value(p, traj.obs)
        logits = agents.policy_logits(p, traj.obs)
        pg = agents.policy_gradient_loss(
            logits, traj.actions, returns - agents.state_value(params, traj.obs)
        )
        return (
            pg
            + hyper.value_cost * jnp.mean((returns - values) ** 2)
            - hyper.entropy_cost * jnp.mean(agents.entropy(logits))
        )

    plus = jax.tree_util.tree_map(lambda p, d: p + eps * d, params, direction)
    minus = jax.tree_util.tree_map(lambda p, d: p - eps * d, params, direction)
    return (loss(plus) - loss(minus)) / (2 * eps)


def test_rollout_shapes_and_no_gradient_through_acting():
    params, traj = snake_batch()
    assert traj.obs.shape == (12, 4, 6 * 6 * 5 + 5)
    assert traj.actions.shape == traj.rewards.shape == traj.discounts.shape == (12, 4)
    assert traj.last_obs.shape == (4, traj.obs.shape[-1])
    env = make_snake(grid=6, time_limit=50, n_envs=4)

    def reward_sum(p):
        return agents.rollout(env, p, env.reset(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 5)[
            1
        ].rewards.sum()

    grads = jax.grad(reward_sum)(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gamma=-0.1), "gamma must be in \\[0, 1\\]"),
        (dict(gamma=1.5), "gamma must be in \\[0, 1\\]"),
        (dict(lam=2.0), "lam must be in \\[0, 1\\]"),
    ],
)
def test_returns_reject_out_of_range_hyper_parameters(kwargs, message):
    rewards, discounts, values = random_batch(3)
    args = dict(gamma=0.9, lam=0.9) | kwargs
    with pytest.raises(ValueError, match=message):
        agents.lambda_returns(rewards, discounts, values[1:], values[-1], **args)


def test_returns_reject_mismatched_shapes():
    rewards, discounts, values = random_batch(4)
    with pytest.raises(ValueError, match="rewards and discounts must have the same shape"):
        agents.discounted_returns(rewards, discounts[:-1], values[-1], 0.9)
    with pytest.raises(ValueError, match="bootstrap_value must have shape"):
        agents.discounted_returns(rewards, discounts, values, 0.9)


def test_actor_critic_learns_snake_quickly():
    """A short run (seconds on CPU) must already beat a random policy by a wide margin."""
    env = make_snake(grid=6, time_limit=500, n_envs=32)
    train = jax.jit(agents.make_train(env, agents.TrainConfig(n_updates=300, rollout_len=10)))
    with jax.enable_x64(False):
        _, metrics = train(jax.random.PRNGKey(0), agents.default_hyper())
        random_policy = random_policy_return(env)
    late = float(jnp.nanmean(metrics["episode_return"][-50:]))
    assert late > 5 * random_policy, (late, random_policy)


def random_policy_return(env):
    state = env.reset(jax.random.PRNGKey(7))

    def body(s, k):
        s, out = env.step(s, jax.random.randint(k, (env.n_envs,), 0, env.n_actions))
        return s, out

    _, out = jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(8), 300))
    return float(out.finished_return.sum() / out.done.sum())
