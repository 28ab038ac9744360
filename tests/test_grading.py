"""The exercise checks accept a correct answer and reject plausible wrong ones with a plain message.

Correct answers here are written the way a learner would (lax.scan, log_softmax), independently of
``course_lib.agents``, which the checks use as their reference.
"""

import importlib
import json
import logging
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from grading_harness import harness_tests

from conftest import ROOT
from course_lib import grading

# --------------------------------------------------------------------------------------------
# Correct answers, written as a learner would


def discounted_sum(rewards, gamma):
    def step(carry, reward):
        total, weight = carry
        return (total + weight * reward, weight * gamma), None

    (total, _), _ = jax.lax.scan(step, (0.0, 1.0), rewards)
    return total


def gamma_gradients(rewards, gamma):
    return jax.vmap(jax.grad(discounted_sum, argnums=1), in_axes=(0, None))(rewards, gamma)


def log_prob_gradient(logits, action):
    return jax.nn.one_hot(action, logits.shape[0]) - jax.nn.softmax(logits)


def _backward(step, init, xs):
    _, out = jax.lax.scan(lambda g, x: (step(g, x),) * 2, init, xs, reverse=True)
    return out


def reward_to_go(rewards, gamma):
    return _backward(lambda g, r: r + gamma * g, 0.0, rewards)


def _log_prob_taken(logits, actions):
    return jnp.take_along_axis(jax.nn.log_softmax(logits), actions[:, None], axis=1)[:, 0]


def reinforce_loss(logits, actions, returns, baseline):
    return -jnp.mean(_log_prob_taken(logits, actions) * (returns - baseline))


def discounted_returns(rewards, discounts, bootstrap_value, gamma):
    return _backward(lambda g, x: x[0] + gamma * x[1] * g, bootstrap_value, (rewards, discounts))


def lambda_returns(rewards, discounts, next_values, bootstrap_value, gamma, lam):
    def step(g, x):
        r, d, v = x
        return r + gamma * d * ((1 - lam) * v + lam * g)

    return _backward(step, bootstrap_value, (rewards, discounts, next_values))


def _entropy(logits):
    probs = jax.nn.softmax(logits)
    return -jnp.sum(probs * jax.nn.log_softmax(logits), axis=-1)


def actor_critic_loss(logits, actions, values, returns, value_cost, entropy_cost):
    advantages = jax.lax.stop_gradient(returns - values)
    policy = -jnp.mean(_log_prob_taken(logits, actions) * advantages)
    return (
        policy
        + value_cost * jnp.mean((returns - values) ** 2)
        - entropy_cost * jnp.mean(_entropy(logits))
    )


CORRECT = {
    "0.1": (grading.check_discounted_sum, discounted_sum),
    "0.2": (grading.check_gamma_gradients, gamma_gradients),
    "1.1": (grading.check_log_prob_gradient, log_prob_gradient),
    "1.2": (grading.check_reward_to_go, reward_to_go),
    "1.3": (grading.check_reinforce_loss, reinforce_loss),
    "2.1": (grading.check_discounted_returns, discounted_returns),
    "2.2": (grading.check_lambda_returns, lambda_returns),
    "2.3": (grading.check_actor_critic_loss, actor_critic_loss),
}

# --------------------------------------------------------------------------------------------
# Plausible wrong answers: (exercise, wrong function, what the message must say)

VALUE = "the expected answer is"
SHAPE = "the expected answer has shape"


def _shift_left(x, fill):
    return jnp.concatenate([x[1:], jnp.full((1,), fill, x.dtype)])


WRONG = {
    "0.1 discount starts at gamma": (
        "0.1",
        lambda r, g: discounted_sum(r, g) * g,
        VALUE,
    ),
    "0.1 no discount": ("0.1", lambda r, g: jnp.sum(r), VALUE),
    "0.1 per-step terms instead of their sum": (
        "0.1",
        lambda r, g: r * g ** jnp.arange(r.shape[0]),
        SHAPE,
    ),
    "0.1 discount applied from the end": (
        "0.1",
        lambda r, g: discounted_sum(r[::-1], g),
        VALUE,
    ),
    "0.2 gradient of the batch total": (
        "0.2",
        jax.grad(lambda r, g: jnp.sum(jax.vmap(discounted_sum, (0, None))(r, g)), argnums=1),
        "has shape (",
    ),
    "0.2 gradient with respect to the rewards": (
        "0.2",
        jax.vmap(jax.grad(discounted_sum), in_axes=(0, None)),
        "has shape (",
    ),
    "0.2 discounted sums instead of their derivatives": (
        "0.2",
        jax.vmap(discounted_sum, in_axes=(0, None)),
        VALUE,
    ),
    "1.1 sign error": ("1.1", lambda z, a: -log_prob_gradient(z, a), VALUE),
    "1.1 gradient of the probability, not its log": (
        "1.1",
        lambda z, a: jax.grad(lambda x: jax.nn.softmax(x)[a])(z),
        VALUE,
    ),
    "1.1 one-hot only": ("1.1", lambda z, a: jax.nn.one_hot(a, z.shape[0]), VALUE),
    "1.2 total return at every step": (
        "1.2",
        lambda r, g: jnp.full_like(r, discounted_sum(r, g)),
        VALUE,
    ),
    "1.2 off by one: starts at the next reward": (
        "1.2",
        lambda r, g: reward_to_go(r, g) - r,
        VALUE,
    ),
    "1.2 no discount": ("1.2", lambda r, g: reward_to_go(r, 1.0), VALUE),
    "1.2 cumulative sum from the start": ("1.2", lambda r, g: jnp.cumsum(r), VALUE),
    "1.3 sign error": ("1.3", lambda *a: -reinforce_loss(*a), VALUE),
    "1.3 missing baseline": (
        "1.3",
        lambda z, a, ret, b: reinforce_loss(z, a, ret, 0.0),
        VALUE,
    ),
    "1.3 sum instead of mean": (
        "1.3",
        lambda z, a, ret, b: reinforce_loss(z, a, ret, b) * a.shape[0],
        VALUE,
    ),
    "1.3 probabilities instead of log-probabilities": (
        "1.3",
        lambda z, a, ret, b: -jnp.mean(jnp.exp(_log_prob_taken(z, a)) * (ret - b)),
        VALUE,
    ),
    "1.3 per-sample losses": (
        "1.3",
        lambda z, a, ret, b: -_log_prob_taken(z, a) * (ret - b),
        SHAPE,
    ),
    "2.1 ignores episode ends": (
        "2.1",
        lambda r, d, v, g: discounted_returns(r, jnp.ones_like(d), v, g),
        VALUE,
    ),
    "2.1 no discount on the last step": (
        "2.1",
        lambda r, d, v, g: discounted_returns(r, d, v / g if g else v, g),
        VALUE,
    ),
    "2.1 no bootstrap": (
        "2.1",
        lambda r, d, v, g: discounted_returns(r, d, jnp.zeros_like(v), g),
        VALUE,
    ),
    "2.1 off by one in the discounts": (
        "2.1",
        lambda r, d, v, g: discounted_returns(r, _shift_left(d, 1.0), v, g),
        VALUE,
    ),
    "2.1 only the first return": (
        "2.1",
        lambda r, d, v, g: discounted_returns(r, d, v, g)[0],
        SHAPE,
    ),
    "2.2 lambda and 1 - lambda swapped": (
        "2.2",
        lambda r, d, nv, v, g, lam: lambda_returns(r, d, nv, v, g, 1.0 - lam),
        VALUE,
    ),
    "2.2 off by one: value of the current state": (
        "2.2",
        lambda r, d, nv, v, g, lam: lambda_returns(r, d, jnp.roll(nv, 1), v, g, lam),
        VALUE,
    ),
    "2.2 ignores episode ends": (
        "2.2",
        lambda r, d, nv, v, g, lam: lambda_returns(r, jnp.ones_like(d), nv, v, g, lam),
        VALUE,
    ),
    "2.2 no bootstrap": (
        "2.2",
        lambda r, d, nv, v, g, lam: lambda_returns(r, d, nv, 0.0 * v, g, lam),
        VALUE,
    ),
    "2.3 no stop_gradient on the advantage": (
        "2.3",
        lambda z, a, v, ret, cv, ce: (
            -jnp.mean(_log_prob_taken(z, a) * (ret - v))
            + cv * jnp.mean((ret - v) ** 2)
            - ce * jnp.mean(_entropy(z))
        ),
        "stop_gradient",
    ),
    "2.3 entropy sign flipped": (
        "2.3",
        lambda z, a, v, ret, cv, ce: actor_critic_loss(z, a, v, ret, cv, -ce),
        "the expected loss is",
    ),
    "2.3 value cost ignored": (
        "2.3",
        lambda z, a, v, ret, cv, ce: actor_critic_loss(z, a, v, ret, 1.0, ce),
        "the expected loss is",
    ),
    "2.3 missing baseline in the policy term": (
        "2.3",
        lambda z, a, v, ret, cv, ce: (
            actor_critic_loss(z, a, v, ret, cv, ce) - jnp.mean(_log_prob_taken(z, a) * v)
        ),
        "the expected loss is",
    ),
}


(
    test_correct_answer_passes_with_one_line,
    test_plausible_wrong_answer_fails_with_a_plain_sentence,
    test_unstarted_exercise_says_what_to_do,
) = harness_tests(CORRECT, WRONG, wrong_phrases=("but your function returned", "; hint: "))


def test_exercise_calling_an_unfinished_one_names_it():
    def discounted_sum_stub(rewards, gamma):
        raise NotImplementedError()

    def uses_it(rewards, gamma):
        return jax.vmap(jax.grad(discounted_sum_stub, argnums=1), in_axes=(0, None))(rewards, gamma)

    with pytest.raises(AssertionError) as info:
        grading.check_gamma_gradients(uses_it)
    assert str(info.value) == (
        "Exercise 0.2: your function calls `discounted_sum_stub`, which still raises "
        "NotImplementedError: finish that exercise first."
    )


def test_not_implemented_inside_a_library_is_an_ordinary_error():
    def calls_an_abstract_method(rewards, gamma):
        logging.Handler().emit(None)

    with pytest.raises(AssertionError) as info:
        grading.check_discounted_sum(calls_an_abstract_method)
    assert "your function raised NotImplementedError: emit must be implemented" in str(info.value)
    assert "(at `logging.Handler().emit(None)`)" in str(info.value)


def test_learner_error_shows_its_type_message_and_line_not_a_traceback():
    def broken(rewards, gamma):
        weights = jnp.ones(rewards.shape[0] + 1)
        return jnp.dot(rewards, weights)

    with pytest.raises(AssertionError) as info:
        grading.check_discounted_sum(broken)
    message = str(info.value)
    assert re.match(
        r"Exercise 0\.1: for rewards=\[.*\], gamma=.*, your function raised TypeError: ", message
    )
    assert "(at `return jnp.dot(rewards, weights)`)" in message
    assert "; hint: " in message and "\n" not in message
    assert info.value.__suppress_context__ and info.value.__cause__ is None


@pytest.mark.parametrize(
    ("returned", "says"),
    [(None, "returned None (is a `return` missing?)"), ("a string", "returned str 'a string'")],
)
def test_non_array_results_are_named(returned, says):
    with pytest.raises(AssertionError, match=re.escape(says)):
        grading.check_reward_to_go(lambda rewards, gamma: returned)


def _integer_sampler(rng):
    return {"x": np.float32(rng.integers(1, 1000))}


def test_message_names_the_random_input_that_failed():
    seen = []

    def wrong_above_500(x):
        seen.append(float(x))
        return 2 * x + (x > 500)

    with pytest.raises(AssertionError) as info:
        grading.compare_functions(
            wrong_above_500,
            lambda x: 2 * x,
            _integer_sampler,
            exercise="9.9",
            hint="h",
            n_trials=50,
        )
    failing = seen[-1]
    assert failing > 500
    assert str(info.value) == (
        f"Exercise 9.9: for x={failing:.4g}, the expected answer is {2 * failing:.5g} "
        f"but your function returned {2 * failing + 1:.5g}; hint: h"
    )


def test_every_call_draws_fresh_inputs():
    seen = []

    def record(x):
        seen.append(float(x))
        return x**2

    for _ in range(2):
        grading.compare_functions(
            record, lambda x: x**2, _integer_sampler, exercise="9.9", hint="h", n_trials=20
        )
    assert seen[:20] != seen[20:]


def test_edge_cases_come_first_and_shapes_are_checked_before_values():
    with pytest.raises(AssertionError) as info:
        grading.compare_functions(
            lambda x: jnp.stack([x, x]),
            lambda x: x,
            _integer_sampler,
            exercise="9.9",
            hint="h",
            edge_cases=[{"x": np.float32(0.5)}],
        )
    assert str(info.value) == (
        "Exercise 9.9: for x=0.5, the expected answer has shape () (a scalar) "
        "but your function returned shape (2,); hint: h"
    )


@pytest.mark.parametrize(
    ("n_trials", "says"), [(-1, "n_trials must be >= 0, got -1"), (0, "need at least one input")]
)
def test_bad_arguments_raise_value_error(n_trials, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        grading.compare_functions(
            lambda x: x, lambda x: x, _integer_sampler, exercise="9.9", hint="h", n_trials=n_trials
        )


def test_mistake_seen_on_the_edge_cases_gets_its_hint():
    with pytest.raises(AssertionError) as info:
        grading.compare_functions(
            lambda x: 3 * x,
            lambda x: 2 * x,
            _integer_sampler,
            exercise="9.9",
            hint="h",
            edge_cases=[{"x": np.float32(1.0)}],
            mistakes=[(lambda x: x, "not this one"), (lambda x: 3 * x, "tripled")],
        )
    assert str(info.value) == (
        "Exercise 9.9: for x=1, the expected answer is 2 but your function returned 3; "
        "hint: tripled"
    )


def test_failure_prints_no_passed_line_when_a_mistake_agrees_on_the_edge_cases(capsys):
    """A wrong answer right on every edge case, like a known mistake that the edge cases do not
    tell from the reference, fails on a random input with the general hint and prints nothing."""

    def wrong_above_500(x):
        return 2 * x + (x > 500)

    with pytest.raises(AssertionError) as info:
        grading.compare_functions(
            wrong_above_500,
            lambda x: 2 * x,
            lambda rng: {"x": np.float32(600.0)},
            exercise="9.9",
            hint="h",
            edge_cases=[{"x": np.float32(1.0)}],
            mistakes=[(lambda x: 2 * x, "a mistake the edge cases miss")],
        )
    assert str(info.value).startswith("Exercise 9.9: for x=600,")
    assert str(info.value).endswith("; hint: h")
    assert capsys.readouterr().out == ""


def test_mistakes_need_edge_cases():
    with pytest.raises(ValueError, match="give edge_cases too"):
        grading.compare_functions(
            lambda x: x, abs, _integer_sampler, exercise="9.9", hint="h", mistakes=[(abs, "")]
        )


def test_every_check_is_exported_from_its_lesson_module():
    checks = {name for name in grading.__all__ if name.startswith("check_")}
    # Exactly the checks the lessons call: none missing, none left over.
    called = set()
    for lesson in (ROOT / "solutions").glob("*.ipynb"):
        for cell in json.loads(lesson.read_text())["cells"]:
            if cell["cell_type"] == "code":
                called |= set(re.findall(r"\b(check_\w+)\(", "".join(cell["source"])))
    assert checks == called
    for module_name in grading._CHECKS:
        module = importlib.import_module(f"course_lib.grading.{module_name}")
        defined = {name for name in vars(module) if name.startswith("check_")}
        assert defined == set(grading._CHECKS[module_name]), module_name
    assert all(callable(getattr(grading, name)) for name in checks)
    assert checks <= set(dir(grading))


def test_lesson_00_loads_no_environment():
    """Lesson 00's checks load no environment (jumanji, gymnasium): the other lesson groups'
    checks are imported when first used."""
    code = """if True:
        import sys
        import jax.numpy as jnp
        from course_lib import grading

        grading.check_discounted_sum(lambda r, g: jnp.sum(g ** jnp.arange(r.shape[0]) * r))
        grading.check_gamma_gradients
        assert not {"jumanji", "gymnasium"} & set(sys.modules), sorted(sys.modules)
    """
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
