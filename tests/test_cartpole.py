"""The CartPole path of lesson 01: episode arrays against gymnasium replays, REINFORCE pieces
against hand-written NumPy oracles, and a short training run that must learn."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import reinforce
from course_lib.agents import mlp
from course_lib.envs.cartpole import Episodes, make_episode_sampler
from course_lib.reinforce import ReinforceConfig


@pytest.fixture(scope="module")
def episodes():
    params = reinforce.init_policy(jax.random.PRNGKey(0))
    return make_episode_sampler(n_envs=6, max_steps=100, policy_logits=mlp)(
        params, jax.random.PRNGKey(1)
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_envs=0), "n_envs must be an integer >= 1, got 0"),
        (dict(n_envs=2.0), "n_envs must be an integer >= 1"),
        (dict(n_envs=2, max_steps=0), "max_steps must be an integer from 1 to 500, got 0"),
        (dict(n_envs=2, max_steps=501), "max_steps must be an integer from 1 to 500, got 501"),
    ],
)
def test_sampler_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_episode_sampler(policy_logits=mlp, **kwargs)


def test_episode_arrays_have_time_major_shapes(episodes):
    T, B = 100, 6
    assert episodes.obs.shape == (T, B, 4) and episodes.obs.dtype == jnp.float32
    assert episodes.actions.shape == (T, B) and episodes.actions.dtype == jnp.int32
    for field in (episodes.rewards, episodes.dones, episodes.mask):
        assert field.shape == (T, B)
    assert episodes.episode_returns.shape == (B,)


def test_same_key_gives_same_episodes_and_other_keys_differ():
    params = reinforce.init_policy(jax.random.PRNGKey(0))
    sample = make_episode_sampler(n_envs=4, max_steps=60, policy_logits=mlp)
    # b starts where a left the vector env (some copies waiting for gymnasium's auto-reset), so the
    # reset at the start of each sample must leave nothing of the previous one behind.
    a, b = sample(params, jax.random.PRNGKey(7)), sample(params, jax.random.PRNGKey(7))
    # A second sampler (a fresh gymnasium env) must reproduce them too.
    c = make_episode_sampler(n_envs=4, max_steps=60, policy_logits=mlp)(
        params, jax.random.PRNGKey(7)
    )
    d = sample(params, jax.random.PRNGKey(8))
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(a.obs, d.obs)


def test_each_episode_is_a_prefix_ending_in_one_done(episodes):
    mask, dones = np.asarray(episodes.mask), np.asarray(episodes.dones)
    lengths = mask.sum(axis=0).astype(int)
    for b, length in enumerate(lengths):
        assert mask[:length, b].all() and not mask[length:, b].any()
        np.testing.assert_array_equal(np.flatnonzero(dones[:, b]), [length - 1])
    # CartPole pays 1 per step survived, nothing in the padding.
    np.testing.assert_array_equal(episodes.rewards, mask)
    np.testing.assert_array_equal(episodes.episode_returns, lengths)
    np.testing.assert_array_equal(np.asarray(episodes.obs)[mask == 0], 0.0)


def test_observations_and_actions_replay_in_a_plain_gymnasium_env(episodes):
    """The vectorised rollout agrees with stepping one plain env at a time: obs[t] is the state a_t
    was taken in, so replaying each episode's actions from its obs[0] reproduces obs[t + 1]."""
    obs, actions = np.asarray(episodes.obs), np.asarray(episodes.actions)
    for b, length in enumerate(np.asarray(episodes.episode_returns).astype(int)):
        env = gymnasium.make("CartPole-v1")
        env.reset(seed=0)
        env.unwrapped.state = obs[0, b].astype(np.float64)
        for t in range(length):
            next_obs, reward, terminated, truncated, _ = env.step(int(actions[t, b]))
            assert reward == 1.0
            if t + 1 < length:
                np.testing.assert_allclose(next_obs, obs[t + 1, b], rtol=1e-5, atol=1e-6)
                assert not terminated
        # Every episode here ended by falling (the random policy never lasts 100 steps).
        assert terminated


def test_time_limit_truncates_every_episode():
    params = reinforce.init_policy(jax.random.PRNGKey(0))
    # No episode of CartPole can fail within its first 5 steps, so all are cut by the limit.
    out = make_episode_sampler(n_envs=3, max_steps=5, policy_logits=mlp)(
        params, jax.random.PRNGKey(0)
    )
    np.testing.assert_array_equal(out.episode_returns, [5, 5, 5])
    np.testing.assert_array_equal(out.dones[-1], [True, True, True])


def test_the_policy_chooses_the_actions():
    def always_right(params, obs):
        return jnp.broadcast_to(jnp.array([-30.0, 30.0]), (*obs.shape[:-1], 2))

    out = make_episode_sampler(n_envs=3, max_steps=50, policy_logits=always_right)(
        None, jax.random.PRNGKey(0)
    )
    np.testing.assert_array_equal(np.asarray(out.actions)[np.asarray(out.mask) == 1], 1)
    # Pushing one way only drops the pole within a dozen steps.
    assert int(out.episode_returns.max()) < 15


def test_reward_to_go_matches_a_numpy_loop(float64):
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(7, 3))
    expected = np.zeros_like(rewards)
    for t in range(7):
        expected[t] = sum(0.9 ** (k - t) * rewards[k] for k in range(t, 7))
    np.testing.assert_allclose(reinforce.reward_to_go(jnp.asarray(rewards), 0.9), expected)


def test_leave_one_out_baseline_averages_the_other_running_episodes(float64):
    returns = jnp.array([[3.0, 5.0, 10.0], [2.0, 4.0, 0.0], [1.0, 0.0, 0.0]])
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    expected = [[7.5, 6.5, 4.0], [4.0, 2.0, 3.0], [0.0, 1.0, 1.0]]
    np.testing.assert_allclose(reinforce.leave_one_out_baseline(returns, mask), expected)
    with pytest.raises(ValueError, match="returns and mask must both be"):
        reinforce.leave_one_out_baseline(returns[0], mask[0])


def linear_logits(w, obs):
    return obs @ w


def test_reinforce_gradient_matches_the_score_function_formula(episodes, float64):
    """For logits = obs·W, ∇_W log π(a|s) = s ⊗ (onehot(a) − π(s)): an oracle without autodiff."""
    w = np.random.default_rng(1).normal(size=(4, 2))
    adv = np.asarray(reinforce.reinforce_advantages(episodes, 0.9), np.float64)
    obs, actions, mask = (np.asarray(x, np.float64) for x in episodes[:2] + (episodes.mask,))
    logits = obs @ w
    pi = np.exp(logits - logits.max(-1, keepdims=True))
    pi /= pi.sum(-1, keepdims=True)
    score = obs[..., :, None] * (np.eye(2)[actions.astype(int)] - pi)[..., None, :]  # [T, B, 4, 2]
    expected = -np.einsum("tb,tbij->ij", mask * adv, score) / obs.shape[1]
    episodes64 = Episodes(*(jnp.asarray(x, jnp.float64) for x in episodes))._replace(
        actions=episodes.actions
    )
    got = jax.grad(reinforce.reinforce_loss)(
        jnp.asarray(w), episodes64, jnp.asarray(adv), linear_logits
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    per_episode = reinforce.per_episode_gradients(
        jnp.asarray(w), episodes64, jnp.asarray(adv), linear_logits
    )
    assert per_episode.shape == (6, 8)
    np.testing.assert_allclose(per_episode.mean(axis=0), expected.ravel(), rtol=1e-10)


def test_advantages_are_zero_in_the_padding_and_baseline_changes_them(episodes):
    plain = reinforce.reinforce_advantages(episodes, 1.0, baseline=False)
    based = reinforce.reinforce_advantages(episodes, 1.0, baseline=True)
    padding = np.asarray(episodes.mask) == 0
    assert (np.asarray(plain)[padding] == 0).all() and (np.asarray(based)[padding] == 0).all()
    # With γ = 1 the first reward-to-go is the episode length.
    np.testing.assert_array_equal(plain[0], episodes.episode_returns)
    assert not np.allclose(plain, based)


def test_split_runs_gives_each_run_its_own_block_of_episodes(episodes):
    episodes = Episodes(*(np.asarray(x) for x in episodes))
    runs = reinforce.split_runs(episodes, 3)  # 6 episodes: runs of 2
    assert runs.obs.shape == (100, 3, 2, 4) and runs.episode_returns.shape == (3, 2)
    for r in range(3):
        own = slice(2 * r, 2 * r + 2)
        for got, field in zip(runs[:-1], episodes[:-1], strict=True):
            np.testing.assert_array_equal(got[:, r], field[:, own])
        np.testing.assert_array_equal(runs.episode_returns[r], episodes.episode_returns[own])


def test_runs_logits_applies_each_runs_policy_to_its_own_environments():
    rng = np.random.default_rng(1)
    shapes = [((4, 8), (8,)), ((8, 2), (2,))]  # 3 runs' MLPs 4 -> 8 -> 2
    params = [tuple(rng.normal(size=(3, *s)).astype(np.float32) for s in layer) for layer in shapes]
    obs = rng.normal(size=(3 * 5, 4)).astype(np.float32)
    logits = jax.jit(reinforce.runs_logits)(params, obs)
    assert logits.shape == (15, 2)
    one_policy = jax.jit(mlp)
    runs = [[tuple(x[r] for x in layer) for layer in params] for r in range(3)]
    for r in range(3):
        rows = slice(5 * r, 5 * r + 5)
        np.testing.assert_allclose(logits[rows], one_policy(runs[r], obs[rows]), rtol=1e-6)
    assert not np.allclose(logits[:5], one_policy(runs[1], obs[:5]))


@pytest.mark.parametrize(
    "config, message",
    [
        (ReinforceConfig(n_updates=0), "n_updates must be >= 1, got 0"),
        (ReinforceConfig(n_runs=0), "n_runs must be >= 1, got 0"),
    ],
)
def test_train_reinforce_rejects_bad_settings(config, message):
    with pytest.raises(ValueError, match=message):
        reinforce.train_reinforce(jax.random.PRNGKey(0), config)


def test_short_reinforce_runs_side_by_side_each_make_episodes_much_longer():
    config = ReinforceConfig(n_updates=12, n_envs=8, learning_rate=0.05, n_runs=2)
    params, returns = reinforce.train_reinforce(jax.random.PRNGKey(0), config)
    assert returns.shape == (2, 12, 8)
    assert jax.tree.leaves(params)[0].shape[0] == 2
    # Each run has its own initial policy and episodes.
    assert not np.array_equal(returns[0], returns[1])
    for run in np.asarray(returns):
        first, last = float(run[0].mean()), float(run[-4:].mean())
        # A random policy balances for about 20 steps.
        assert first < 40 and last > 3 * first, (first, last)
