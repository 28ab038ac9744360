"""The library's argument checks: one module, name first, a clear message for each bad value."""

import jax
import numpy as np
import pytest

from course_lib import checks
from course_lib.envs import bandit, cartpole
from course_lib.plots import smooth
from course_lib.problems import bandit_problem, snake_problem


def test_check_int_accepts_integers_in_range_and_rejects_the_rest():
    assert checks.check_int("k", np.int64(3)) == 3
    assert checks.check_int("k", 3, maximum=5, maximum_name="k_max") == 3
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            checks.check_int("k", bad)
    with pytest.raises(ValueError, match="trial must be an integer from 1 to n=4, got 5"):
        checks.check_int("trial", 5, maximum=4, maximum_name="n")


def test_check_unit_interval_passes_traced_scalars_and_rejects_concrete_outsiders():
    assert checks.check_unit_interval("gamma", 0.5) == 0.5
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
            checks.check_unit_interval("gamma", bad)
    with pytest.raises(ValueError, match="gamma must be a scalar"):
        checks.check_unit_interval("gamma", np.ones(2))
    for bad in (True, "0.5", None):  # as check_number: never coerced into some number
        with pytest.raises(ValueError, match=r"gamma must be a number in \[0, 1\]"):
            checks.check_unit_interval("gamma", bad)
    assert checks.check_unit_interval("gamma", np.float32(1.0)) == 1.0
    assert checks.check_unit_interval("gamma", np.array(0)) == 0.0
    assert jax.jit(lambda g: checks.check_unit_interval("gamma", g) * 2)(0.25) == 0.5


def test_check_finite_per_step_names_the_first_bad_horizon():
    values = np.ones((3, 4, 2))
    assert checks.check_finite_per_step("meta-gradient", values) is values
    values[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="meta-gradient diverged .* at k=3"):
        checks.check_finite_per_step("meta-gradient", values)


def test_check_choice_lists_the_choices():
    with pytest.raises(ValueError, match=r"mode must be one of \['forward', 'reverse'\]"):
        checks.check_choice("mode", "sideways", ("forward", "reverse"))


def test_check_number_accepts_a_range_and_rejects_bools_strings_and_nan():
    assert checks.check_number("lam", 0.25, 0.0, 1.0) == 0.25
    assert checks.check_number("lam", np.float32(1.0), 0.0, 1.0) == 1.0
    for bad in (True, "0.5", float("nan"), -0.01, 1.5):
        with pytest.raises(ValueError, match="lam must be a number from 0 to 1"):
            checks.check_number("lam", bad, 0.0, 1.0)


def test_check_positive_accepts_finite_numbers_above_zero_and_passes_tracers():
    assert checks.check_positive("beta", np.float32(0.5)) == 0.5
    assert checks.check_positive("beta", np.array(2)) == 2.0
    assert jax.jit(lambda b: checks.check_positive("beta", b))(-1.0) == -1.0
    for bad in (0, -0.1, np.nan, np.inf, True, "1", np.ones(2)):
        with pytest.raises(ValueError, match="beta must be > 0, got"):
            checks.check_positive("beta", bad)
    with pytest.raises(ValueError, match=r"c must be > 0 \(learnt via exp\), got 0"):
        checks.check_positive("c", 0, " (learnt via exp)")


def test_check_shape_matches_each_axis_and_any_length_where_none():
    assert checks.check_shape("x", [[1, 2]], (None, 2)).dtype == np.float64
    with pytest.raises(ValueError, match=r"x must have shape \(3,\), got shape \(2,\)"):
        checks.check_shape("x", np.ones(2), (3,))
    with pytest.raises(ValueError, match=r"x must have shape \[n_seeds, n\], got shape \(2,\)"):
        checks.check_shape("x", np.ones(2), (None, None), "[n_seeds, n]")


def test_check_count_needs_the_leading_axis_to_hold_enough():
    assert checks.check_count("samples", np.ones((2, 3)), 2, "seeds").shape == (2, 3)
    with pytest.raises(ValueError, match="samples must hold at least 2 seeds, got 1"):
        checks.check_count("samples", np.ones((1, 3)), 2, "seeds")


BOOL_REFUSALS = {
    "window": lambda: smooth(np.ones(3), window=True),
    "n_arms": lambda: bandit.enumerate_batches(True, 1, 1),
    "batch_size": lambda: bandit.enumerate_batches(2, True, 1),
    "n_steps": lambda: bandit.enumerate_batches(2, 1, True),
    "n_envs": lambda: cartpole.make_episode_sampler(True, policy_logits=None),
    "max_steps": lambda: cartpole.make_episode_sampler(2, True, policy_logits=None),
    "batch_size (bandit_problem)": lambda: bandit_problem(batch_size=True),
    "rollout_len": lambda: snake_problem(rollout_len=True),
    "warmup_updates": lambda: snake_problem(warmup_updates=True),
    "seed": lambda: snake_problem(seed=True),
}


@pytest.mark.parametrize("argument", BOOL_REFUSALS)
def test_integer_arguments_refuse_true_naming_the_argument(argument):
    name = argument.split()[0]
    with pytest.raises(ValueError, match=f"{name} must be an integer .*, got True"):
        BOOL_REFUSALS[argument]()
