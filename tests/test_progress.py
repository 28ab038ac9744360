"""Progress reports from compiled loops: what listeners get; listening never recompiles."""

import jax
import jax.numpy as jnp
import pytest

from course_lib import agents, progress
from course_lib.envs.snake import make_snake


def counting_loop(total: int):
    def run(x):
        def body(carry, step):
            progress.report(step, total)
            return carry + x, None

        return jax.lax.scan(body, 0.0, jnp.arange(total))[0]

    return run


@pytest.mark.parametrize("total", [1, 7, 50, 51, 1000])
def test_a_vmapped_loop_reports_each_tick_once_and_ends_at_its_length(total):
    seen = []
    run = jax.jit(jax.vmap(jax.vmap(counting_loop(total)), in_axes=1))  # 3 x 4 lanes
    with progress.listening(lambda done, of: seen.append((done, of))):
        run(jnp.ones((4, 3)))
    every = -(-total // progress.N_REPORTS)
    expected = sorted((done, total) for done in {*range(every, total + 1, every), total})
    assert sorted(seen) == expected  # one report per tick, whatever the number of lanes
    assert len(seen) <= progress.N_REPORTS + 1


def test_reports_reach_only_current_listeners_and_listening_never_recompiles():
    compilations = []

    def on_event(event, _duration, **_kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compilations.append(event)

    run = jax.jit(counting_loop(10))
    run(1.0)  # compiled here, with nobody listening
    first, second = [], []
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        with progress.listening(lambda done, _total: first.append(done)):
            run(2.0)
        with progress.listening(lambda done, _total: second.append(done)):
            run(3.0)
        run(4.0)
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    assert compilations == []
    assert sorted(first) == sorted(second) == list(range(1, 11))


def test_make_train_reports_its_updates():
    env = make_snake(grid=6, n_envs=2)
    config = agents.TrainConfig(n_updates=3, rollout_len=2, hidden=(8,))
    train = jax.jit(jax.vmap(agents.make_train(env, config), in_axes=(0, None)))
    seen = []
    with progress.listening(lambda done, total: seen.append((done, total))):
        train(jax.random.split(jax.random.key(0), 2), agents.default_hyper())
    assert sorted(seen) == [(1, 3), (2, 3), (3, 3)]


def test_progress_bar_follows_each_loop_in_its_block_and_stops_listening_after():
    first, second = jax.jit(counting_loop(10)), jax.jit(counting_loop(7))
    with progress.progress_bar("two loops") as bar:
        first(1.0).block_until_ready()
        assert (bar.n, bar.total) == (10, 10)
        second(1.0).block_until_ready()
        assert (bar.n, bar.total) == (7, 7)  # a loop of another length restarts the bar
    first(1.0).block_until_ready()
    assert (bar.n, bar.total) == (7, 7)
    with progress.progress_bar("hidden", disable=True) as hidden:
        second(1.0)
    assert hidden.disable
