"""The Snake wrapper: bad arguments, shapes, auto-reset and episode-return bookkeeping."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.envs.snake import make_snake


@pytest.mark.parametrize("grid", [3, 5, 13, 6.0])
def test_make_snake_rejects_grids_outside_the_supported_range(grid):
    with pytest.raises(ValueError, match="grid must be an integer from 6 to 12"):
        make_snake(grid=grid)


@pytest.mark.parametrize(
    "kwargs, name", [(dict(time_limit=0), "time_limit"), (dict(n_envs=0), "n_envs")]
)
def test_make_snake_rejects_non_positive_sizes(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_snake(**kwargs)


def random_run(env, n_steps, seed=0):
    def body(s, k):
        return env.step(s, jax.random.randint(k, (env.n_envs,), 0, env.n_actions))

    state = env.reset(jax.random.PRNGKey(seed))
    return jax.jit(
        lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(seed + 1), n_steps))
    )(state)


def test_observations_are_flat_and_episodes_reset_automatically():
    env = make_snake(grid=7, time_limit=20, n_envs=5)
    state, out = random_run(env, 60)
    assert env.obs_dim == 7 * 7 * 5 + 4 + 1
    assert out.obs.shape == (60, 5, env.obs_dim) and state.obs.shape == (5, env.obs_dim)
    # With a 20-step limit every board must finish at least two episodes in 60 steps.
    assert bool((out.done.sum(axis=0) >= 2).all())
    # Where an episode ended the discount is 0, elsewhere 1 (Snake has no other discounting).
    np.testing.assert_array_equal(np.asarray(out.discount), 1.0 - np.asarray(out.done, dtype=float))


def test_finished_returns_add_up_the_rewards_of_each_episode():
    env = make_snake(grid=6, time_limit=30, n_envs=8)
    _, out = random_run(env, 200, seed=3)
    rewards, done, finished = (np.asarray(x) for x in (out.reward, out.done, out.finished_return))
    for b in range(env.n_envs):
        running = 0.0
        for t in range(200):
            running += rewards[t, b]
            if done[t, b]:
                assert finished[t, b] == pytest.approx(running)
                running = 0.0
            else:
                assert finished[t, b] == 0.0


def test_reset_is_reproducible_and_key_dependent():
    env = make_snake(grid=6, n_envs=4)
    a, b, c = (env.reset(jax.random.PRNGKey(k)) for k in (0, 0, 1))
    assert jnp.array_equal(a.obs, b.obs) and not jnp.array_equal(a.obs, c.obs)


def test_jumanji_loads_only_when_a_snake_is_made():
    """Lesson 01 (CartPole) imports the agents: jumanji stays out until ``make_snake`` runs."""
    code = (
        "import sys\n"
        "from course_lib import agents, reinforce\n"
        "from course_lib.envs import snake\n"
        "from course_lib.experiments import sweep\n"
        "assert 'jumanji' not in sys.modules, 'imported'\n"
        "snake.make_snake(grid=6, n_envs=2)\n"
        "assert 'jumanji' in sys.modules, 'not imported by make_snake'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
