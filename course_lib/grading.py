"""Graded exercises: compare a learner's function with the reference on fresh random inputs.

Every exercise in the course is a function the learner writes in a notebook cell, followed by a
check cell::

    course_lib.grading.check_discounted_returns(discounted_returns)

A check draws fresh random inputs on every call (plus a few fixed edge cases), calls the learner's
function and the reference, compares shapes, then values. It prints one line, ``Exercise 2.1
passed``, or raises ``AssertionError`` with one plain sentence naming the input, the expected
answer, what came back and a hint. Errors raised by the learner's code are reported the same way
(their type and message, not a wall of JAX internals).

Writing a lesson with these checks:

- Each ``check_*`` docstring gives the exact signature the learner's function must have: keep the
  exercise cell's ``def`` line identical to it, and put only the body between the nbgrader markers.
- Exercise cells only *define* functions. Cells after an exercise must not call the learner's
  function (call the ``course_lib`` version instead): a learner who has not solved it yet should
  see only the check cell fail.
- Exercise numbers are ``"<lesson>.<n>"``, e.g. lesson 02's first check is ``"2.1"``.

The references are the library's own functions (``course_lib.agents``, ``course_lib.envs``) or
JAX itself, so an exercise and the library always mean the same thing.
"""

from __future__ import annotations

import functools
import inspect
import os
import sysconfig
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import agents, experiments, metagrad, reinforce
from course_lib.envs import bandit
from course_lib.stats import meta_gradient_stats

Inputs = dict[str, Any]
InputSampler = Callable[[np.random.Generator], Inputs]

_NOT_DONE = "Exercise {} is not done yet: replace `raise NotImplementedError()` with your code."
# Frames from these folders are not the learner's code: Python, installed packages, course_lib.
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {os.path.dirname(os.path.abspath(__file__))}
)
_PRINT_OPTIONS = dict(
    separator=", ", max_line_width=10**6, formatter={"float_kind": lambda x: f"{x:.4g}"}
)


# --------------------------------------------------------------------------------------------
# The generic core
# --------------------------------------------------------------------------------------------


class ExerciseFailed(AssertionError):
    """A check failed. Jupyter shows only its sentence: the traceback is all course internals."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this hook instead of formatting the traceback.
        return [f"{type(self).__name__}: {self}"]


def compare_functions(
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    input_sampler: InputSampler,
    *,
    exercise: str,
    hint: str,
    n_trials: int = 5,
    edge_cases: Sequence[Inputs] = (),
    rtol: float = 1e-4,
    atol: float = 1e-5,
    output_name: str = "answer",
    announce: bool = True,
    rng: np.random.Generator | None = None,
) -> None:
    """Check ``learner_fn`` against ``reference_fn`` on ``edge_cases``, then on random inputs.

    Both functions are called positionally with the values of one input dict (its keys only name
    the arguments in messages, so learners may name their parameters as they like). Shapes are
    compared before values; values with ``np.allclose(got, expected, rtol, atol)``.

    Args:
      learner_fn: the learner's function.
      reference_fn: the reference, same signature.
      input_sampler: ``rng -> {argument name: value}``; called once per random trial.
      exercise: the exercise number shown in messages, e.g. ``"2.1"``.
      hint: one short clause ending the failure message, e.g. ``"G_t = r_t + γ d_t G_{t+1}"``.
      n_trials: number of random inputs after the edge cases.
      edge_cases: fixed inputs tried first (γ = 0, an episode end, length 1, ...).
      rtol, atol: tolerances for the value comparison.
      output_name: what the function returns, in messages ("the expected {output_name} is ...").
      announce: print ``Exercise <n> passed`` on success.
      rng: the generator given to ``input_sampler``; by default a new one seeded by the operating
        system, so that every call of a check sees new inputs.

    Raises:
      ExerciseFailed: (an AssertionError) one sentence naming the failing input, the expected
        and the returned values, and the hint.
      ValueError: bad arguments (before any call).
    """
    __tracebackhide__ = True  # pytest and IPython hide this frame: learners see the message only
    if n_trials < 0:
        raise ValueError(f"n_trials must be >= 0, got {n_trials}")
    if n_trials == 0 and not edge_cases:
        raise ValueError("need at least one input: n_trials is 0 and there are no edge_cases")
    rng = np.random.default_rng() if rng is None else rng
    cases = [*edge_cases, *(input_sampler(rng) for _ in range(n_trials))]
    for inputs in cases:
        problem = _check_one(learner_fn, reference_fn, inputs, exercise, rtol, atol, output_name)
        if problem is not None:
            message = f"{problem.sentence}; hint: {hint}" if problem.add_hint else problem.sentence
            raise ExerciseFailed(message) from None
    if announce:
        print(f"Exercise {exercise} passed")


class _Problem(NamedTuple):
    sentence: str  # the failure message, less its hint
    add_hint: bool = True


def _check_one(
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    inputs: Inputs,
    exercise: str,
    rtol: float,
    atol: float,
    output_name: str,
) -> _Problem | None:
    """What went wrong on one input, or None when the answers agree."""
    args = [_as_jax(value) for value in inputs.values()]
    where = f"Exercise {exercise}: for {_describe_inputs(inputs)},"
    expected = np.asarray(reference_fn(*args))
    try:
        got = learner_fn(*args)
    except NotImplementedError as error:
        unfinished = _unfinished_exercise(exercise, learner_fn, error)
        if unfinished is not None:  # the hint would only distract: this sentence goes out alone
            return _Problem(unfinished, add_hint=False)
        return _Problem(f"{where} your function raised {_describe_error(error)}")
    except Exception as error:  # noqa: BLE001 - any learner error becomes a plain message
        return _Problem(f"{where} your function raised {_describe_error(error)}")
    if got is None:
        return _Problem(f"{where} your function returned None (is a `return` missing?)")
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        kind = type(got).__name__
        return _Problem(f"{where} your function returned {kind} {got!r:.80}, not an array")
    if got.shape != expected.shape:
        return _Problem(
            f"{where} the expected {output_name} has shape {_describe_shape(expected.shape)} "
            f"but your function returned shape {_describe_shape(got.shape)}"
        )
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        return _Problem(
            f"{where} the expected {output_name} is {_format(expected)} "
            f"but your function returned {_format(got)}"
        )
    return None


def _unfinished_exercise(
    exercise: str, learner_fn: Callable[..., Any], error: NotImplementedError
) -> str | None:
    """The message for a learner's stub that still raises, or None if a library raised it.

    The stub may be this exercise's function or an earlier exercise's that it calls.
    """
    *_, (frame, _) = traceback.walk_tb(error.__traceback__)
    if frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        return None
    own_code = getattr(inspect.unwrap(learner_fn), "__code__", None)
    if own_code is None or frame.f_code is own_code:
        return _NOT_DONE.format(exercise)
    return (
        f"Exercise {exercise}: your function calls `{frame.f_code.co_name}`, which still raises "
        "NotImplementedError: finish that exercise first."
    )


def _as_jax(value: Any) -> Any:
    """Arrays become jax arrays (what learner code meets in the course); Python scalars stay."""
    return jnp.asarray(value) if isinstance(value, np.ndarray) else value


def _format(value: Any) -> str:
    array = np.asarray(value)
    if array.ndim == 0:
        return f"{array.item():.5g}" if array.dtype.kind == "f" else str(array.item())
    return np.array2string(array, **_PRINT_OPTIONS).replace("\n", "")


def _describe_inputs(inputs: Inputs) -> str:
    return ", ".join(f"{name}={_format(value)}" for name, value in inputs.items())


def _describe_shape(shape: tuple[int, ...]) -> str:
    return "() (a scalar)" if shape == () else str(shape)


def _describe_error(error: BaseException) -> str:
    """``TypeError: <first line of its message> (at `<the learner's line>`)``, no JAX internals."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    if len(message) > 300:
        message = message[:297] + "..."
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    line = _learner_line(error)
    return f"{text} (at `{line}`)" if line else text


def _learner_line(error: BaseException) -> str | None:
    """The last source line of the traceback that is the learner's code (not a library, not us)."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if not frame.filename.startswith(_LIBRARY_DIRS) and frame.line:
            return frame.line.strip()
    return None


def _with_gradient(loss_fn: Callable[..., Any], argnums: tuple[int, ...]) -> Callable[..., Any]:
    """``args -> the gradient of loss_fn w.r.t. args[argnums]``, flattened into one vector."""

    def gradient(*args):
        grads = jax.grad(loss_fn, argnums=argnums)(*args)
        return jnp.concatenate([jnp.ravel(g) for g in grads])

    return gradient


# --------------------------------------------------------------------------------------------
# Random inputs: "nice" numbers (one decimal) so the message shows them exactly
# --------------------------------------------------------------------------------------------


def _numbers(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Rewards, values or logits in [-2, 2]."""
    return (rng.integers(-20, 21, size=shape) / 10).astype(np.float32)


def _gamma(rng: np.random.Generator) -> float:
    return float(rng.choice([0.5, 0.8, 0.9, 0.95]))


def _discounts(rng: np.random.Generator, length: int) -> np.ndarray:
    """Mostly 1, with episode ends (0) about one step in four."""
    return (rng.random(length) > 0.25).astype(np.float32)


def _rewards_and_gamma(rng: np.random.Generator) -> InputSampler:
    """``{rewards [T], gamma}`` with T drawn once, so that one call of a check compiles once."""
    length = int(rng.integers(2, 7))
    return lambda rng: {"rewards": _numbers(rng, length), "gamma": _gamma(rng)}


def _logits_and_actions(rng: np.random.Generator, length: int, n_actions: int) -> Inputs:
    """``{logits [length, n_actions], actions [length]}``."""
    return {
        "logits": _numbers(rng, (length, n_actions)),
        "actions": rng.integers(n_actions, size=length).astype(np.int32),
    }


def _f32(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# References: course_lib.agents or JAX, jitted (each new input shape compiles once per session)
# --------------------------------------------------------------------------------------------


_reference_reward_to_go = jax.jit(reinforce.reward_to_go)


@jax.jit
def _reference_discounted_sum(rewards, gamma):
    return _reference_reward_to_go(rewards, gamma)[0]


_reference_gamma_gradients = jax.jit(
    jax.vmap(jax.grad(_reference_discounted_sum, argnums=1), in_axes=(0, None))
)


@jax.jit
def _reference_log_prob_gradient(logits, action):
    return jax.grad(lambda z: jax.nn.log_softmax(z)[action])(logits)


@jax.jit
def _reference_reinforce_loss(logits, actions, returns, baseline):
    return agents.policy_gradient_loss(logits, actions, returns - baseline)


_reference_discounted_returns = jax.jit(agents.discounted_returns)
_reference_lambda_returns = jax.jit(agents.lambda_returns)


@jax.jit
def _reference_actor_critic_loss(logits, actions, values, returns, value_cost, entropy_cost):
    return agents.actor_critic_loss(logits, actions, values, returns, value_cost, entropy_cost)[0]


_reference_actor_critic_gradient = jax.jit(
    _with_gradient(_reference_actor_critic_loss, argnums=(0, 2))
)


# --------------------------------------------------------------------------------------------
# Lesson 00: JAX for RL
# --------------------------------------------------------------------------------------------


def check_discounted_sum(learner_fn: Callable[..., Any]) -> None:
    """Exercise 0.1: ``discounted_sum(rewards, gamma) -> scalar``, written with ``jax.lax.scan``.

    ``Σ_t γ^t r_t = r_0 + γ r_1 + γ² r_2 + ...``

    Args (of the learner's function):
      rewards: ``[T]`` float32.
      gamma: Python float in [0, 1].

    Returns: a scalar (shape ``()``).
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    compare_functions(
        learner_fn,
        _reference_discounted_sum,
        _rewards_and_gamma(rng),
        exercise="0.1",
        hint="the first reward is not discounted (γ⁰ = 1), the next one is multiplied by γ, "
        "and the function returns one number",
        edge_cases=[
            {"rewards": _f32([1.0, 2.0, 3.0]), "gamma": 0.5},
            {"rewards": _f32([2.0]), "gamma": 0.9},
            {"rewards": _f32([1.0, -1.0, 1.0]), "gamma": 1.0},
        ],
        rng=rng,
    )


def check_gamma_gradients(learner_fn: Callable[..., Any]) -> None:
    """Exercise 0.2: ``gamma_gradients(rewards, gamma) -> [B]`` with ``jax.grad`` and ``jax.vmap``.

    For each of B reward sequences, the derivative of its discounted sum with respect to γ:
    ``d/dγ Σ_t γ^t r_t = Σ_t t γ^(t-1) r_t`` (how much more return a slightly longer horizon buys;
    lesson 03 tunes γ with exactly this kind of derivative).

    Args (of the learner's function):
      rewards: ``[B, T]`` float32, one reward sequence per row.
      gamma: Python float in (0, 1].

    Returns: ``[B]``, one derivative per row.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    shape = (int(rng.integers(1, 5)), int(rng.integers(2, 6)))

    def sample(rng):
        return {"rewards": _numbers(rng, shape), "gamma": _gamma(rng)}

    compare_functions(
        learner_fn,
        _reference_gamma_gradients,
        sample,
        exercise="0.2",
        hint="differentiate one sequence's discounted sum with jax.grad(..., argnums=1), "
        "then jax.vmap it over rows (in_axes=(0, None)): one derivative per row",
        edge_cases=[{"rewards": _f32([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]]), "gamma": 0.5}],
        rng=rng,
    )


# --------------------------------------------------------------------------------------------
# Lesson 01: policy gradients
# --------------------------------------------------------------------------------------------


def check_log_prob_gradient(learner_fn: Callable[..., Any]) -> None:
    """Exercise 1.1: ``log_prob_gradient(logits, action) -> [A]``, the score function of a softmax.

    ``∇_logits log π(a) = onehot(a) − softmax(logits)`` where ``π = softmax(logits)``; derive it by
    hand (the check compares with ``jax.grad``).

    Args (of the learner's function):
      logits: ``[A]`` float32.
      action: int32 scalar array in ``[0, A)``.

    Returns: ``[A]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    n_actions = int(rng.integers(2, 6))

    def sample(rng):
        return {
            "logits": _numbers(rng, (n_actions,)),
            "action": np.int32(rng.integers(n_actions)),
        }

    compare_functions(
        learner_fn,
        _reference_log_prob_gradient,
        sample,
        exercise="1.1",
        hint="log π(a) = logits[a] − log Σ_b exp(logits[b]), so its gradient is onehot(a) − π "
        "(it sums to zero)",
        edge_cases=[
            {"logits": _f32([0.0, 0.0]), "action": np.int32(1)},
            {"logits": _f32([1.0, 2.0, 3.0]), "action": np.int32(0)},
        ],
        rng=rng,
    )


def check_reward_to_go(learner_fn: Callable[..., Any]) -> None:
    """Exercise 1.2: ``reward_to_go(rewards, gamma) -> [T]`` for one whole episode.

    The same signature as ``course_lib.envs.reinforce.reward_to_go`` (its reference).

    ``G_t = Σ_{t' ≥ t} γ^(t'−t) r_t'``: the discounted rewards from step t on (an action cannot
    change rewards that came before it). Recursively ``G_t = r_t + γ G_{t+1}``, ``G_T = 0``.

    Args (of the learner's function):
      rewards: ``[T]`` float32, ``r_t`` is the reward received after the action at step t.
      gamma: Python float in [0, 1].

    Returns: ``[T]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    compare_functions(
        learner_fn,
        _reference_reward_to_go,
        _rewards_and_gamma(rng),
        exercise="1.2",
        hint="G_t starts with r_t itself (undiscounted) and only adds later rewards: "
        "G_t = r_t + γ G_(t+1), with nothing after the last step",
        edge_cases=[
            {"rewards": _f32([1.0, 2.0, 3.0]), "gamma": 0.5},
            {"rewards": _f32([1.0, 1.0]), "gamma": 0.0},
            {"rewards": _f32([2.0]), "gamma": 0.9},
        ],
        rng=rng,
    )


def check_reinforce_loss(learner_fn: Callable[..., Any]) -> None:
    """Exercise 1.3: ``reinforce_loss(logits, actions, returns, baseline) -> scalar``.

    The REINFORCE surrogate loss with a baseline, whose gradient is the policy-gradient estimate
    (with a minus sign, so that gradient *descent* improves the policy):
    ``L = −(1/B) Σ_i log π(a_i | s_i) · (G_i − b_i)``, with ``log π = log_softmax(logits)``.

    Args (of the learner's function):
      logits: ``[B, A]`` float32, the policy's logits for B samples.
      actions: ``[B]`` int32, the actions taken.
      returns: ``[B]`` float32, the return that followed each action.
      baseline: ``[B]`` float32, the baseline subtracted from each return.

    Returns: a scalar.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    batch, n_actions = int(rng.integers(2, 6)), int(rng.integers(2, 5))

    def sample(rng):
        return {
            **_logits_and_actions(rng, batch, n_actions),
            "returns": _numbers(rng, batch),
            "baseline": _numbers(rng, batch),
        }

    compare_functions(
        learner_fn,
        _reference_reinforce_loss,
        sample,
        exercise="1.3",
        hint="take log_softmax(logits) at each action taken, weight it by (return − baseline), "
        "average over the batch and put a minus sign in front",
        edge_cases=[
            {
                "logits": _f32([[0.0, 0.0], [1.0, -1.0]]),
                "actions": np.asarray([0, 1], np.int32),
                "returns": _f32([1.0, 2.0]),
                "baseline": _f32([0.5, 0.5]),
            }
        ],
        rng=rng,
    )


# --------------------------------------------------------------------------------------------
# Lesson 02: actor-critic and returns
# --------------------------------------------------------------------------------------------


def check_discounted_returns(learner_fn: Callable[..., Any]) -> None:
    """Exercise 2.1: ``discounted_returns(rewards, discounts, bootstrap_value, gamma) -> [T]``.

    The same signature as ``course_lib.agents.discounted_returns`` (its reference).

    Returns of a truncated rollout that may cross episode ends, bootstrapped from a value estimate:
    ``G_t = r_t + γ d_t G_{t+1}``, ``G_T = bootstrap_value``. ``d_t = 0`` when the episode ended
    with step t (then nothing after it counts), 1 otherwise.

    Args (of the learner's function):
      rewards: ``[T]`` float32, ``r_t`` received after the action at step t.
      discounts: ``[T]`` float32 in {0, 1}, ``d_t``.
      bootstrap_value: float32 scalar array, ``v(s_T)``, the value of the state after the rollout.
      gamma: Python float in [0, 1].

    Returns: ``[T]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    length = int(rng.integers(2, 7))

    def sample(rng):
        return {
            "rewards": _numbers(rng, length),
            "discounts": _discounts(rng, length),
            "bootstrap_value": _numbers(rng, ()),
            "gamma": _gamma(rng),
        }

    compare_functions(
        learner_fn,
        _reference_discounted_returns,
        sample,
        exercise="2.1",
        hint="work backwards from G = bootstrap_value with G = r_t + gamma * d_t * G, so the "
        "bootstrap is discounted too and an episode end (d_t = 0) cuts everything after step t",
        edge_cases=[
            {
                "rewards": _f32([1.0, 1.0, 1.0]),
                "discounts": _f32([1.0, 1.0, 1.0]),
                "bootstrap_value": np.float32(10.0),
                "gamma": 0.5,
            },
            {
                "rewards": _f32([1.0, 2.0, 3.0, 4.0]),
                "discounts": _f32([1.0, 0.0, 1.0, 1.0]),
                "bootstrap_value": np.float32(-2.0),
                "gamma": 0.9,
            },
            {
                "rewards": _f32([1.0]),
                "discounts": _f32([0.0]),
                "bootstrap_value": np.float32(5.0),
                "gamma": 0.9,
            },
        ],
        rng=rng,
    )


def check_lambda_returns(learner_fn: Callable[..., Any]) -> None:
    """Exercise 2.2: ``lambda_returns(rewards, discounts, next_values, bootstrap_value, gamma, lam)
    -> [T]``, the same signature as ``course_lib.agents.lambda_returns`` (its reference).

    The λ-return mixes n-step returns with weights (1−λ)λ^(n−1):
    ``G_t = r_t + γ d_t [(1 − λ) v(s_{t+1}) + λ G_{t+1}]``, ``G_T = v(s_T)``.
    λ = 0 gives the one-step target ``r_t + γ d_t v(s_{t+1})``; λ = 1 gives the discounted return
    of exercise 2.1.

    Args (of the learner's function):
      rewards: ``[T]`` float32, ``r_t`` received after the action at step t.
      discounts: ``[T]`` float32 in {0, 1}, ``d_t`` (0 when the episode ended with step t).
      next_values: ``[T]`` float32, ``next_values[t] = v(s_{t+1})``, the value of the state each
        step led to (in a rollout ``next_values[-1]`` is usually ``bootstrap_value``).
      bootstrap_value: float32 scalar array, ``v(s_T)``, where the recursion starts.
      gamma: Python float in [0, 1].
      lam: Python float in [0, 1], λ.

    Returns: ``[T]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    length = int(rng.integers(2, 7))

    def sample(rng):
        return {
            "rewards": _numbers(rng, length),
            "discounts": _discounts(rng, length),
            "next_values": _numbers(rng, length),
            "bootstrap_value": _numbers(rng, ()),
            "gamma": _gamma(rng),
            "lam": float(rng.choice([0.5, 0.8, 0.95])),
        }

    trajectory = {
        "rewards": _f32([1.0, 0.0, 2.0]),
        "discounts": _f32([1.0, 1.0, 1.0]),
        "next_values": _f32([2.0, 3.0, 4.0]),
        "bootstrap_value": np.float32(4.0),
    }
    compare_functions(
        learner_fn,
        _reference_lambda_returns,
        sample,
        exercise="2.2",
        hint="work backwards from G = bootstrap_value with "
        "G = r_t + gamma * d_t * ((1 - lam) * next_values[t] + lam * G)",
        edge_cases=[
            {**trajectory, "gamma": 0.9, "lam": 0.0},
            {**trajectory, "gamma": 0.9, "lam": 1.0},
            {**trajectory, "discounts": _f32([1.0, 0.0, 1.0]), "gamma": 0.5, "lam": 0.5},
        ],
        rng=rng,
    )


def check_actor_critic_loss(learner_fn: Callable[..., Any]) -> None:
    """Exercise 2.3: ``actor_critic_loss(logits, actions, values, returns, value_cost,
    entropy_cost) -> scalar``, the loss an actor-critic agent minimises.

    ``L = −mean_t[log π(a_t|s_t) · sg(G_t − v_t)] + c_v · mean_t[(G_t − v_t)²]
    − c_ent · mean_t[H(π(·|s_t))]``, where ``sg`` is ``jax.lax.stop_gradient`` (the advantage
    weights the policy gradient; it is not something the policy term should change) and
    ``H(π) = −Σ_a π(a) log π(a)``. The check compares the loss and its gradient with respect to
    ``logits`` and ``values``.

    Args (of the learner's function):
      logits: ``[T, A]`` float32, policy logits at each step.
      actions: ``[T]`` int32, actions taken.
      values: ``[T]`` float32, the critic's ``v(s_t)``.
      returns: ``[T]`` float32, the targets ``G_t`` (e.g. λ-returns; constants here).
      value_cost: Python float ``c_v``.
      entropy_cost: Python float ``c_ent``.

    Returns: a scalar.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    length, n_actions = int(rng.integers(2, 6)), int(rng.integers(2, 5))

    def sample(rng):
        return {
            **_logits_and_actions(rng, length, n_actions),
            "values": _numbers(rng, length),
            "returns": _numbers(rng, length),
            "value_cost": float(rng.choice([0.25, 0.5, 1.0])),
            "entropy_cost": float(rng.choice([0.01, 0.1, 0.5])),
        }

    edge = {
        "logits": _f32([[0.0, 1.0], [2.0, 0.0]]),
        "actions": np.asarray([1, 0], np.int32),
        "values": _f32([0.5, 1.0]),
        "returns": _f32([1.0, 2.0]),
        "value_cost": 0.5,
        "entropy_cost": 0.1,
    }
    hint = (
        "policy term −mean(log π(a_t) · stop_gradient(G_t − v_t)), plus value_cost · mean((G_t − "
        "v_t)²), minus entropy_cost · mean entropy (a bonus for exploring lowers the loss)"
    )
    compare_functions(
        learner_fn,
        _reference_actor_critic_loss,
        sample,
        exercise="2.3",
        hint=hint,
        edge_cases=[edge],
        output_name="loss",
        announce=False,
        rng=rng,
    )
    compare_functions(
        _with_gradient(learner_fn, argnums=(0, 2)),
        _reference_actor_critic_gradient,
        sample,
        exercise="2.3",
        hint="the loss value is right but not its gradient: wrap the advantage G_t − v_t of the "
        "policy term in jax.lax.stop_gradient, so only the value term trains the critic",
        edge_cases=[edge],
        output_name="gradient with respect to (logits, values), flattened,",
        rng=rng,
    )


__all__ = [
    "compare_functions",
    "check_discounted_sum",
    "check_gamma_gradients",
    "check_log_prob_gradient",
    "check_reward_to_go",
    "check_reinforce_loss",
    "check_discounted_returns",
    "check_lambda_returns",
    "check_actor_critic_loss",
]


# ============================================================================================
# Lessons 03–05: meta-gradients (one step, K steps, mixing)
# ============================================================================================
#
# These checks also recognise the usual wrong answers: when a learner's function agrees with
# one of them on the edge cases, the failure's hint names that mistake instead of the general
# hint (``_compare_naming_mistakes``).


def _agrees(
    learner_fn: Callable[..., Any],
    other_fn: Callable[..., Any],
    cases: Sequence[Inputs],
    rtol: float,
    atol: float,
) -> bool:
    """True when ``learner_fn`` returns what ``other_fn`` returns on every one of ``cases``."""
    try:
        compare_functions(
            learner_fn,
            other_fn,
            lambda rng: {},
            exercise="",
            hint="",
            n_trials=0,
            edge_cases=cases,
            rtol=rtol,
            atol=atol,
            announce=False,
        )
    except AssertionError:
        return False
    return True


def _compare_naming_mistakes(
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    input_sampler: InputSampler,
    *,
    exercise: str,
    hint: str,
    mistakes: Sequence[tuple[Callable[..., Any], str]],
    edge_cases: Sequence[Inputs],
    n_trials: int = 5,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    output_name: str = "answer",
    rng: np.random.Generator,
) -> None:
    """``compare_functions``; on failure, if the learner's function reproduces a known wrong
    answer (``mistakes``: ``(wrong_fn, its hint)``) on every edge case, fail on the edge cases
    again with that mistake's hint. Each wrong answer must differ from the reference on at least
    one edge case."""
    __tracebackhide__ = True
    options = dict(
        exercise=exercise, edge_cases=edge_cases, rtol=rtol, atol=atol, output_name=output_name
    )
    try:
        compare_functions(
            learner_fn,
            reference_fn,
            input_sampler,
            hint=hint,
            n_trials=n_trials,
            rng=rng,
            announce=False,
            **options,
        )
    except AssertionError:
        for wrong_fn, mistake_hint in mistakes:
            if _agrees(learner_fn, wrong_fn, edge_cases, rtol, atol):
                compare_functions(
                    learner_fn,
                    reference_fn,
                    input_sampler,
                    hint=mistake_hint,
                    n_trials=0,
                    **options,
                )
        raise
    print(f"Exercise {exercise} passed")


def _random_bandit(rng: np.random.Generator, n_arms: int, batch_size: int):
    """The library's bandit with random arm probabilities, θ_0 and default hyper-parameters."""
    return metagrad.make_problem(
        "bandit",
        p=tuple(float(x) for x in rng.integers(1, 10, size=n_arms) / 10),
        batch_size=batch_size,
        theta0=tuple(float(x) for x in _numbers(rng, n_arms)),
        learning_rate=float(rng.choice([0.3, 0.5, 1.0])),
        entropy_cost=float(rng.choice([0.1, 0.3, 0.5])),
    )


def _random_pulls(rng: np.random.Generator, n_arms: int, shape: tuple[int, ...]):
    """Actions (int32) and rewards in {0, 1} (float32) of ``shape``, and an η [2] near 0."""
    actions = rng.integers(n_arms, size=shape).astype(np.int32)
    rewards = rng.integers(2, size=shape).astype(np.float32)
    return actions, rewards, (rng.integers(-15, 6, size=2) / 10).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Lesson 03: single-step meta-gradients


def _bandit_for(p, batch_size: int):
    """The library's bandit with these arm probabilities and batch size (θ_0 and η unused here)."""
    return metagrad.make_problem(
        "bandit", p=tuple(float(x) for x in np.asarray(p)), batch_size=int(batch_size)
    )


def _reference_one_step_meta_gradient(theta, actions, rewards, eta, p):
    """jax.grad of L_out(θ_1) through ``course_lib.problems``' bandit inner update."""
    problem = _bandit_for(p, actions.shape[0])
    batch = bandit.BanditBatch(actions, rewards)
    return jax.grad(lambda e: problem.outer_loss(problem.inner_update(theta, batch, e), batch))(eta)


def _one_step_at_theta0(theta, actions, rewards, eta, p):
    """Wrong: the outer gradient taken at θ_0 instead of at the updated θ_1."""
    problem = _bandit_for(p, actions.shape[0])
    batch = bandit.BanditBatch(actions, rewards)
    jacobian = jax.jacobian(problem.inner_update, argnums=2)(theta, batch, eta)  # [A, 2]
    return jax.grad(problem.outer_loss)(theta, batch) @ jacobian


def check_one_step_meta_gradient(learner_fn: Callable[..., Any]) -> None:
    """Exercise 3.1: ``one_step_meta_gradient(theta, actions, rewards, eta, p) -> [2]``, by hand.

    The bandit of ``metagrad.make_problem("bandit")``: one inner update on a batch of B pulls,
    ``θ_1 = θ + α [ (1/B) Σ_b r_b ∇_θ log π_θ(a_b) + c ∇_θ H(π_θ) ]`` with ``α = exp(η_0)`` and
    ``c = softplus(η_1)``, scored by the exact outer loss
    ``L_out(θ_1) = −J(θ_1) = −Σ_a π_θ1(a) p_a``.
    Returns ``g_1 = dL_out(θ_1)/dη = ∇_θ L_out(θ_1) · dθ_1/dη`` (the reference is ``jax.grad``).

    Args (of the learner's function):
      theta: ``[A]`` float32, the logits θ_0.
      actions: ``[B]`` int32, the arms pulled; rewards: ``[B]`` float32 in {0, 1}.
      eta: ``[2]`` float32, (log α, softplus⁻¹ c).
      p: ``[A]`` float32, each arm's success probability.

    Returns: ``[2]``, (∂L_out/∂η_0, ∂L_out/∂η_1).
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    n_arms, batch_size = int(rng.integers(2, 5)), int(rng.integers(1, 5))

    p = np.asarray(_random_bandit(rng, n_arms, batch_size).settings["p"], np.float32)

    def sample(rng):
        actions, rewards, eta = _random_pulls(rng, n_arms, (batch_size,))
        return {
            "theta": _numbers(rng, n_arms),
            "actions": actions,
            "rewards": rewards,
            "eta": eta,
            "p": p,
        }

    edge_cases = [
        {
            "theta": _f32([1.0, -1.0]),
            "actions": np.asarray([0], np.int32),
            "rewards": _f32([1.0]),
            "eta": _f32([-1.0, -1.0]),
            "p": _f32([0.3, 0.7]),
        },
        {
            "theta": _f32([0.5, 0.0, -0.5]),
            "actions": np.asarray([2, 0], np.int32),
            "rewards": _f32([0.0, 1.0]),
            "eta": _f32([0.0, 0.5]),
            "p": _f32([0.2, 0.5, 0.8]),
        },
        {
            "theta": _f32([0.0, 0.0]),
            "actions": np.asarray([1], np.int32),
            "rewards": _f32([1.0]),
            "eta": _f32([-0.5, 0.0]),
            "p": _f32([0.3, 0.7]),
        },
    ]
    mistakes = [
        (
            lambda *args: -_reference_one_step_meta_gradient(*args),
            "the sign is flipped: the outer loss is −J(θ_1), minus the expected reward",
        ),
        (
            _one_step_at_theta0,
            "take ∇_θ L_out at the updated logits θ_1, not at θ_0: the meta-gradient asks how the "
            "loss *after* the update changes",
        ),
        (
            lambda th, a, r, e, p: (
                _reference_one_step_meta_gradient(th, a, r, e, p)
                / jnp.stack([jnp.exp(e[0]), jax.nn.sigmoid(e[1])])
            ),
            "that is the derivative with respect to (α, c); η is (log α, softplus⁻¹ c), so "
            "multiply by dα/dη_0 = α and dc/dη_1 = sigmoid(η_1)",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        _reference_one_step_meta_gradient,
        sample,
        exercise="3.1",
        hint="dθ_1/dη_0 = α·(policy-gradient term + c·∇H) = θ_1 − θ_0, "
        "dθ_1/dη_1 = α·sigmoid(η_1)·∇H, and ∇_θ L_out(θ_1) = −π_θ1 ⊙ (p − J(θ_1)); "
        "g_1 is their product",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="meta-gradient",
        rng=rng,
    )


class _TestFunction:
    """A smooth function of η for the finite-difference check, shown by its formula."""

    def __init__(self, cubic, linear, coupling):
        self.cubic, self.linear, self.coupling = (jnp.asarray(x) for x in (cubic, linear, coupling))
        self.text = (
            f"f(η) = Σ {_format(cubic)}·η³ + Σ {_format(linear)}·η + sin({_format(coupling)}·η)"
        )

    def __call__(self, eta):
        return (
            jnp.sum(self.cubic * eta**3)
            + jnp.sum(self.linear * eta)
            + jnp.sin(jnp.dot(self.coupling, eta))
        )

    def __repr__(self) -> str:
        return self.text


def _reference_central_differences(f, eta, eps):
    steps = eps * jnp.eye(eta.shape[0], dtype=eta.dtype)
    return jnp.stack([(f(eta + step) - f(eta - step)) / (2 * eps) for step in steps])


def _forward_differences(f, eta, eps):
    steps = eps * jnp.eye(eta.shape[0], dtype=eta.dtype)
    return jnp.stack([(f(eta + step) - f(eta)) / eps for step in steps])


def check_central_differences(learner_fn: Callable[..., Any]) -> None:
    """Exercise 3.2: ``central_differences(f, eta, eps) -> [n]``, a finite-difference gradient.

    ``∂f/∂η_i ≈ (f(η + ε e_i) − f(η − ε e_i)) / (2ε)`` for each i, ``e_i`` the i-th unit vector:
    error O(ε²), against O(ε) for the one-sided ``(f(η + ε e_i) − f(η)) / ε``.

    Args (of the learner's function):
      f: a scalar function of ``[n]`` float32 (written with ``jnp``).
      eta: ``[n]`` float32, the point.
      eps: Python float, the step ε.

    Returns: ``[n]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    size = int(rng.integers(1, 5))

    def sample(rng):
        return {
            "f": _TestFunction(*(_numbers(rng, size) for _ in range(3))),
            "eta": _numbers(rng, size),
            "eps": float(rng.choice([0.05, 0.1, 0.2])),
        }

    edge_cases = [
        {
            "f": _TestFunction(_f32([1.0, -0.5]), _f32([0.2, 0.3]), _f32([1.0, 1.0])),
            "eta": _f32([0.5, -1.0]),
            "eps": 0.1,
        },
        {"f": _TestFunction(_f32([2.0]), _f32([0.0]), _f32([0.0])), "eta": _f32([1.0]), "eps": 0.2},
    ]
    mistakes = [
        (
            _forward_differences,
            "that is the one-sided difference (f(η + ε e_i) − f(η)) / ε; step both ways and divide "
            "by 2ε",
        ),
        (
            lambda f, eta, eps: 2 * _reference_central_differences(f, eta, eps),
            "the two evaluations are 2ε apart: divide by 2ε, not ε",
        ),
        (
            lambda f, eta, eps: jnp.full(eta.shape, (f(eta + eps) - f(eta - eps)) / (2 * eps)),
            "move one component at a time (η ± ε e_i with e_i a unit vector), not all of them "
            "at once",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        _reference_central_differences,
        sample,
        exercise="3.2",
        hint="for each i, (f(η + ε e_i) − f(η − ε e_i)) / (2ε) with e_i the i-th unit vector "
        "(jnp.eye gives all of them)",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="finite-difference gradient",
        rng=rng,
    )


# --------------------------------------------------------------------------------------------
# Lesson 04: multi-step meta-gradients


@functools.partial(jax.jit, static_argnums=0)
def _reference_k_step_meta_gradient(problem, batches, outer_batch, eta):
    """Reverse mode through ``lax.scan`` over the K given inner batches, data held fixed."""

    def final_outer_loss(eta):
        def step(state, batch):
            return problem.inner_update(state, batch, eta), None

        state, _ = jax.lax.scan(step, problem.init_state, batches)
        return problem.outer_loss(state, outer_batch)

    return jax.grad(final_outer_loss)(eta)


def _k_step_theta_held_fixed(problem, batches, outer_batch, eta):
    """Wrong: the carried state cut from η, so only the last update's ∂U/∂η survives."""

    def final_outer_loss(eta):
        def step(state, batch):
            return problem.inner_update(jax.lax.stop_gradient(state), batch, eta), None

        state, _ = jax.lax.scan(step, problem.init_state, batches)
        return problem.outer_loss(state, outer_batch)

    return jax.grad(final_outer_loss)(eta)


def _k_step_without_hessian(problem, batches, outer_batch, eta):
    """Wrong: dθ_K/dη ≈ Σ_k ∂U/∂η(θ_k) (Xu et al.'s trace with μ = 1), the (I − αH) factors gone.

    Each step's value is U(θ_k); its derivative is ∂U/∂η(θ_k) plus the carried dθ_k/dη.
    """

    def final_outer_loss(eta):
        def step(state, batch):
            fixed = jax.lax.stop_gradient(state)
            updated = problem.inner_update(fixed, batch, eta)
            return jax.tree_util.tree_map(lambda u, s, f: u + (s - f), updated, state, fixed), None

        state, _ = jax.lax.scan(step, problem.init_state, batches)
        return problem.outer_loss(state, outer_batch)

    return jax.grad(final_outer_loss)(eta)


def _drop_batch(batches, index: int):
    """The inner batches without the one at ``index`` (0: the first, -1: the last)."""
    return jax.tree_util.tree_map(lambda x: jnp.delete(x, index, axis=0), batches)


def _append_batch(batches, outer_batch):
    return jax.tree_util.tree_map(lambda x, o: jnp.concatenate([x, o[None]]), batches, outer_batch)


def check_k_step_meta_gradient(learner_fn: Callable[..., Any]) -> None:
    """Exercise 4.1: ``k_step_meta_gradient(problem, batches, outer_batch, eta) -> [n_eta]``.

    Unroll the K inner updates ``θ_k = problem.inner_update(θ_{k−1}, batches[k−1], η)`` from
    ``θ_0 = problem.init_state`` with ``jax.lax.scan``, score ``problem.outer_loss(θ_K,
    outer_batch)`` and differentiate it with respect to η through all K updates (reverse mode),
    holding the batches fixed. K is the length of the batches' leading axis.

    Args (of the learner's function):
      problem: a ``metagrad.make_problem(...)`` problem (the check uses bandits).
      batches: the K inner batches, a pytree with leading axis K (for the bandit a
        ``BanditBatch`` of ``actions`` and ``rewards``, each ``[K, B]``; shown in messages as
        [actions, rewards]).
      outer_batch: the batch the outer loss is scored on (the bandit's exact outer loss ignores it).
      eta: ``[n_eta]`` float32.

    Returns: ``[n_eta]``, g_K.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()

    n_arms, batch_size, k = (
        int(rng.integers(2, 4)),
        int(rng.integers(1, 3)),
        int(rng.integers(2, 6)),
    )
    problem = _random_bandit(rng, n_arms, batch_size)

    def inputs(problem, actions, rewards, eta):
        actions, rewards = jnp.asarray(actions, jnp.int32), jnp.asarray(rewards, jnp.float32)
        return {
            "problem": problem,
            "batches": bandit.BanditBatch(actions, rewards),
            "outer_batch": bandit.BanditBatch(actions[-1], rewards[-1]),
            "eta": _f32(eta),
        }

    def sample(rng):
        return inputs(problem, *_random_pulls(rng, n_arms, (k, batch_size)))

    default = metagrad.make_problem("bandit")
    edge_cases = [
        inputs(default, [[1], [1], [0]], [[1.0], [1.0], [0.0]], [-0.5, -1.0]),
        inputs(default, [[0], [1], [1], [0]], [[1.0], [0.0], [1.0], [1.0]], [0.0, -0.5]),
    ]
    mistakes = [
        (
            lambda *args: -_reference_k_step_meta_gradient(*args),
            "the sign is flipped: return the gradient of the outer loss itself",
        ),
        (
            _k_step_theta_held_fixed,
            "only the last update depends on η in your answer: let θ_k keep its dependence on η "
            "from one update to the next (no stop_gradient on the carried state), so that the "
            "chain rule multiplies in each update's Jacobian I − α∇²L_in",
        ),
        (
            _k_step_without_hessian,
            "your answer adds up every update's ∂U/∂η but drops how each update passes earlier "
            "changes on (the Hessian term I − α∇²L_in): differentiate through the whole scan",
        ),
        *(
            (
                lambda pr, b, o, e, index=index: _reference_k_step_meta_gradient(
                    pr, _drop_batch(b, index), o, e
                ),
                "your answer makes K − 1 updates: scan over all K batches",
            )
            for index in (0, -1)
        ),
        (
            lambda pr, b, o, e: _reference_k_step_meta_gradient(pr, _append_batch(b, o), o, e),
            "your answer makes K + 1 updates: the outer batch only scores θ_K, it is not an "
            "inner batch",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        _reference_k_step_meta_gradient,
        sample,
        exercise="4.1",
        hint="inside a function of η, lax.scan problem.inner_update(state, batch, eta) over the "
        "batches from problem.init_state, return problem.outer_loss(θ_K, outer_batch), and "
        "take jax.grad of that function",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="meta-gradient",
        n_trials=3,
        rng=rng,
    )


def _reference_variance_and_snr(samples):
    """[2, k_max]: ``stats.meta_gradient_stats``' variance and SNR."""
    measured = meta_gradient_stats(samples)
    return np.stack([measured.variance, measured.snr])


def check_variance_and_snr(learner_fn: Callable[..., Any]) -> None:
    """Exercise 4.2: ``variance_and_snr(samples) -> (variance [k_max], snr [k_max])``.

    Over the seeds (axis 0) of ``samples [n_seeds, k_max, n_eta]``, for each k: the variance
    ``tr Cov(g_k) = Σ_e 1/(N−1) Σ_i (g_k^(i)_e − ḡ_k,e)²`` (unbiased, summed over the
    meta-parameters) and the signal-to-noise ratio ``‖ḡ_k‖² / tr Cov(g_k)``. The reference is
    ``stats.meta_gradient_stats``.

    Args (of the learner's function):
      samples: ``[n_seeds, k_max, n_eta]`` float32, one row of estimates g_1..g_k_max per seed.

    Returns: a pair ``(variance, snr)``, each ``[k_max]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    shape = (int(rng.integers(3, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 4)))

    def sample(rng):
        return {"samples": _numbers(rng, shape)}

    edge = _f32([[[1.0, 0.0], [2.0, 1.0]], [[3.0, 0.0], [0.0, 1.0]], [[2.0, 3.0], [1.0, 1.0]]])

    def biased_variance(samples):  # divides by N
        variance = np.sum(np.var(samples, axis=0), axis=-1)
        return np.stack([variance, np.sum(np.mean(samples, axis=0) ** 2, axis=-1) / variance])

    def mean_squared_norm_signal(samples):
        variance = _reference_variance_and_snr(samples)[0]
        return np.stack([variance, np.mean(np.sum(samples**2, axis=-1), axis=0) / variance])

    mistakes = [
        (
            biased_variance,
            "use the unbiased variance over seeds, dividing by N − 1 (np.var(..., ddof=1))",
        ),
        (
            mean_squared_norm_signal,
            "the signal is the squared norm of the mean, ‖mean over seeds‖², not the mean of the "
            "squared norms",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        lambda samples: _reference_variance_and_snr(np.asarray(samples)),
        sample,
        exercise="4.2",
        hint="along axis 0 (the seeds): mean ḡ [k_max, n_eta] and unbiased variance (ddof=1) "
        "summed over the last axis; snr = sum(ḡ², axis=-1) / variance",
        mistakes=mistakes,
        edge_cases=[{"samples": edge}, {"samples": edge[:, :1, :1]}],
        output_name="(variance, snr) pair",
        rng=rng,
    )


# --------------------------------------------------------------------------------------------
# Lesson 05: the mixing estimator


def check_mix_meta_gradients(learner_fn: Callable[..., Any]) -> None:
    """Exercise 5.1: ``mix_meta_gradients(per_step, weights) -> [n_seeds, n_eta]``.

    ``g_mix = Σ_k w_k g_k`` for every seed: ``per_step [n_seeds, K, n_eta]`` holds g_1..g_K of
    each seed, ``weights [K]`` are >= 0 and sum to 1. The reference is
    ``metagrad.mix_meta_gradients``.

    Args (of the learner's function):
      per_step: ``[n_seeds, K, n_eta]`` float32.
      weights: ``[K]`` float32, w_1..w_K.

    Returns: ``[n_seeds, n_eta]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    shape = (int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(1, 4)))

    def sample(rng):
        raw = rng.integers(0, 5, size=shape[1]).astype(np.float32) + np.eye(shape[1])[0]
        return {"per_step": _numbers(rng, shape), "weights": (raw / raw.sum()).astype(np.float32)}

    per_step = _f32([[[1.0, 2.0], [3.0, -1.0], [0.0, 4.0]], [[-2.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    edge_cases = [
        {"per_step": per_step, "weights": _f32([0.5, 0.25, 0.25])},
        {"per_step": per_step, "weights": _f32([0.0, 0.0, 1.0])},
        {"per_step": per_step[:, :1], "weights": _f32([1.0])},
    ]
    mistakes = [
        (
            lambda g, w: jnp.mean(g, axis=1),
            "the weights are missing: an equal-weight average is only the uniform mix",
        ),
        (
            lambda g, w: jnp.einsum("k,ske->se", w[::-1], g),
            "the weights are reversed: w_1 belongs to g_1, the one-step estimate (per_step[:, 0])",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        metagrad.mix_meta_gradients,
        sample,
        exercise="5.1",
        hint="multiply each g_k (axis 1) by w_k and sum over k only: "
        "jnp.einsum('k,ske->se', weights, per_step), or (weights[:, None] * per_step).sum(1)",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="mixed meta-gradients",
        rng=rng,
    )


def check_geometric_weights(learner_fn: Callable[..., Any]) -> None:
    """Exercise 5.2: ``geometric_weights(k, lam) -> [k]``, normalised weights ``w_j ∝ lam^(j−1)``.

    ``w_j = lam^(j−1) / Σ_{i=1}^{k} lam^(i−1)``, j = 1..k: lam = 0 puts all weight on g_1 (take
    0⁰ = 1), lam = 1 gives the uniform mix 1/k. The reference is ``metagrad.geometric_weights``.

    Args (of the learner's function):
      k: Python int >= 1, the horizon K.
      lam: Python float in [0, 1].

    Returns: ``[k]``, summing to 1.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()

    def sample(rng):
        return {"k": int(rng.integers(2, 9)), "lam": float(rng.choice([0.2, 0.5, 0.7, 0.9]))}

    edge_cases = [
        {"k": 4, "lam": 0.5},
        {"k": 3, "lam": 0.0},
        {"k": 5, "lam": 1.0},
        {"k": 1, "lam": 0.5},
    ]
    mistakes = [
        (
            lambda k, lam: lam ** np.arange(k, dtype=float),
            "normalise: divide by the sum so that the weights add up to 1",
        ),
        (
            lambda k, lam: metagrad.geometric_weights(k, lam)[::-1],
            "the largest weight belongs to g_1 when lam < 1: w_j ∝ lam^(j−1) for j = 1..k",
        ),
        (
            lambda k, lam: metagrad.lambda_return_weights(k, lam),
            "those are the λ-return weights (the last one takes the rest); here every w_j is "
            "∝ lam^(j−1), normalised",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        metagrad.geometric_weights,
        sample,
        exercise="5.2",
        hint="raw = lam ** jnp.arange(k) (so w_1 ∝ lam⁰ = 1), then raw / raw.sum()",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="weights",
        rng=rng,
    )


__all__ += [
    "check_one_step_meta_gradient",
    "check_central_differences",
    "check_k_step_meta_gradient",
    "check_variance_and_snr",
    "check_mix_meta_gradients",
    "check_geometric_weights",
]


# ============================================================================================
# Lessons 06–07: reading experiments (NumPy exercises on measured numbers)
# ============================================================================================
#
# The references are ``course_lib.experiments``' own functions, so an exercise and the numbers
# the lessons print always mean the same thing. Like lessons 03–05, the checks name the usual
# wrong answers.


def _estimator_weights(kind: str, k: int, k_max: int, mix_lambda: float) -> np.ndarray:
    return experiments.parse_estimator(f"{kind}{k}").weights(k_max, mix_lambda)


def check_estimator_weights(learner_fn: Callable[..., Any]) -> None:
    """Exercise 6.1: ``estimator_weights(kind, k, k_max, mix_lambda) -> [k_max]``.

    The weights an estimator applies to g_1..g_{k_max}, zero beyond k: ``kind == "k"`` is one-hot
    at g_k; ``kind == "mix"`` is ``w_j = λ^(j−1) / Σ_{i=1}^{k} λ^(i−1)`` for j = 1..k (take
    0⁰ = 1); ``kind == "fixed"`` is all zeros. The reference is
    ``experiments.parse_estimator(f"{kind}{k}").weights(k_max, mix_lambda)``.

    Args (of the learner's function):
      kind: ``"k"``, ``"mix"`` or ``"fixed"``.
      k: Python int >= 1, the estimator's horizon K.
      k_max: Python int >= k, the length of the result.
      mix_lambda: Python float in [0, 1], λ_mix.

    Returns: ``[k_max]``.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()

    def sample(rng):
        k = int(rng.integers(1, 7))
        return {
            "kind": str(rng.choice(["k", "mix", "fixed"])),
            "k": k,
            "k_max": int(rng.integers(k, 9)),
            "mix_lambda": float(rng.choice([0.2, 0.5, 0.7, 0.9])),
        }

    edge_cases = [
        {"kind": "mix", "k": 3, "k_max": 5, "mix_lambda": 0.5},
        {"kind": "mix", "k": 3, "k_max": 5, "mix_lambda": 0.0},
        {"kind": "mix", "k": 4, "k_max": 4, "mix_lambda": 1.0},
        {"kind": "k", "k": 3, "k_max": 5, "mix_lambda": 0.5},
        {"kind": "fixed", "k": 2, "k_max": 3, "mix_lambda": 0.5},
    ]

    def with_mix(mix_fn):
        """The reference, but the mix weights of ``mix_fn(k, lam) -> [k]``."""

        def weights(kind, k, k_max, mix_lambda):
            if kind != "mix":
                return _estimator_weights(kind, k, k_max, mix_lambda)
            return np.pad(mix_fn(k, mix_lambda), (0, k_max - k))

        return weights

    mistakes = [
        (
            with_mix(lambda k, lam: lam ** np.arange(k, dtype=float)),
            "normalise the mix weights: divide λ^(j−1) by their sum so that they add up to 1",
        ),
        (
            with_mix(lambda k, lam: metagrad.geometric_weights(k, lam)[::-1]),
            "the mix weights are reversed: w_1 ∝ λ⁰ = 1 belongs to g_1 (index 0)",
        ),
        (
            lambda kind, k, k_max, mix_lambda: _estimator_weights(
                "k" if kind == "fixed" else kind, k, k_max, mix_lambda
            ),
            "the fixed control never uses its meta-gradient: its weights are all zero",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        _estimator_weights,
        sample,
        exercise="6.1",
        hint="start from np.zeros(k_max); k: weight 1 at index k − 1; mix: "
        "raw = mix_lambda ** np.arange(k), weights[:k] = raw / raw.sum(); fixed: leave the zeros",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="weights",
        rng=rng,
    )


def check_variance_ratio(learner_fn: Callable[..., Any]) -> None:
    """Exercise 6.2: ``variance_ratio(variance_a, variance_b) -> scalar``, a paired ratio.

    ``exp(mean_i(log a_i − log b_i))``: the geometric mean of the paired ratios a_i / b_i, over
    every entry. The reference is ``experiments.variance_ratio``.

    Args (of the learner's function):
      variance_a, variance_b: float32 arrays of the same shape (any), positive entries.

    Returns: a scalar.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()

    def sample(rng):
        shape = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(1, 4))))
        # Variances spanning orders of magnitude, as over a training run.
        scales = [0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0]
        return {
            "variance_a": rng.choice(scales, size=shape).astype(np.float32),
            "variance_b": rng.choice(scales, size=shape).astype(np.float32),
        }

    edge_cases = [
        {"variance_a": _f32([1.0, 8.0, 2.0]), "variance_b": _f32([2.0, 1.0, 1.0])},
        {
            "variance_a": _f32([[1.0, 4.0], [9.0, 1.0]]),
            "variance_b": _f32([[1.0, 1.0], [1.0, 4.0]]),
        },
        {"variance_a": _f32([3.0]), "variance_b": _f32([1.5])},
    ]
    mistakes = [
        (
            lambda a, b: np.mean(np.asarray(a) / np.asarray(b)),
            "that is the arithmetic mean of the ratios a_i / b_i, which one large ratio decides: "
            "average the log-ratios and exponentiate (the geometric mean)",
        ),
        (
            lambda a, b: np.mean(a) / np.mean(b),
            "that is mean(a) / mean(b), which pairs nothing: take the ratio entry by entry, "
            "a_i / b_i, then the geometric mean of those ratios",
        ),
        (
            lambda a, b: np.mean(np.log(a) - np.log(b)),
            "that is the mean log-ratio: exponentiate it",
        ),
        (
            lambda a, b: experiments.variance_ratio(b, a),
            "that is ratio(b, a) = 1 / ratio(a, b): use log a − log b",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        experiments.variance_ratio,
        sample,
        exercise="6.2",
        hint="np.exp(np.mean(np.log(variance_a) − np.log(variance_b))), the mean over every entry",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="ratio",
        rng=rng,
    )


def check_paired_difference(learner_fn: Callable[..., Any]) -> None:
    """Exercise 6.3: ``paired_difference(a, b) -> (mean, standard error)``.

    With ``d_s = b_s − a_s`` for the n >= 2 paired seeds: ``mean = (1/n) Σ_s d_s`` and
    ``standard error = std(d) / √n``, std the n − 1 ("ddof=1") standard deviation. The reference
    is ``experiments.paired_difference``.

    Args (of the learner's function):
      a, b: ``[n_seeds]`` float32, one value per seed for each of two runs.

    Returns: a pair ``(mean, standard_error)`` of scalars.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()

    def sample(rng):
        n = int(rng.integers(2, 9))
        a = rng.integers(50, 151, size=n) / 10  # returns around 10
        return {
            "a": a.astype(np.float32),
            "b": (a + rng.integers(-10, 21, size=n) / 10).astype(np.float32),
        }

    edge_cases = [
        {"a": _f32([1.0, 2.0]), "b": _f32([2.0, 5.0])},
        {"a": _f32([0.0, 0.0, 0.0, 0.0]), "b": _f32([1.0, 2.0, 3.0, 6.0])},
    ]

    def from_differences(statistic):
        """``statistic(d)`` with ``d = b − a`` as a float64 vector."""
        return lambda a, b: statistic(np.asarray(b, float) - np.asarray(a, float))

    mistakes = [
        (
            from_differences(lambda d: (d.mean(), d.std() / np.sqrt(d.size))),
            "use the n − 1 standard deviation, d.std(ddof=1)",
        ),
        (
            from_differences(lambda d: (d.mean(), d.std(ddof=1))),
            "that is the standard deviation of d; the standard error of its mean divides it by √n",
        ),
        (
            from_differences(lambda d: (-d.mean(), d.std(ddof=1) / np.sqrt(d.size))),
            "the sign is flipped: d = b − a",
        ),
        (
            lambda a, b: (
                np.mean(b) - np.mean(a),
                np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / len(a)),
            ),
            "pair the seeds: take the standard error of the differences d_s = b_s − a_s, not of "
            "a and b separately",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        experiments.paired_difference,
        sample,
        exercise="6.3",
        hint="d = b − a; return (d.mean(), d.std(ddof=1) / np.sqrt(len(d)))",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="(mean, standard error)",
        rng=rng,
    )


def check_debiased_snr(learner_fn: Callable[..., Any]) -> None:
    """Exercise 7.1: ``debiased_snr(samples) -> scalar``, the SNR less its noise floor 1/n.

    For ``samples [n, n_eta]`` (n estimates ``g^(i)``): ``(‖ḡ‖² − V/n) / V``, with ḡ the mean
    over the rows and ``V = Σ_e 1/(n−1) Σ_i (g^(i)_e − ḡ_e)²`` (unbiased, summed over the
    meta-parameters); equal to ``‖ḡ‖² / V − 1/n``. The reference is ``experiments.debiased_snr``.

    Args (of the learner's function):
      samples: ``[n, n_eta]`` float32, n >= 2 rows that are not all equal.

    Returns: a scalar (slightly negative when there is no signal).
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()
    shape = (int(rng.integers(3, 13)), int(rng.integers(1, 5)))

    def sample(rng):
        samples = _numbers(rng, shape)
        while np.all(samples == samples[0]):  # V = 0: no SNR to speak of
            samples = _numbers(rng, shape)
        return {"samples": samples}

    def snr_with(signal_fn, variance_fn, floor_fn):
        """``(signal_fn(g) − floor_fn(V, n)) / V`` with ``V = variance_fn(g)``."""

        def snr(samples):
            samples = np.asarray(samples, float)
            variance = variance_fn(samples)
            return (signal_fn(samples) - floor_fn(variance, len(samples))) / variance

        return snr

    def squared_norm_of_mean(g):
        return np.sum(g.mean(axis=0) ** 2)

    def unbiased_variance(g):
        return np.sum(g.var(axis=0, ddof=1))

    edge_cases = [
        {"samples": _f32([[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]])},
        {"samples": _f32([[1.0], [-1.0]])},
    ]
    mistakes = [
        (
            snr_with(squared_norm_of_mean, unbiased_variance, lambda v, n: 0.0),
            "that is the plain SNR: subtract the noise floor V/n from ‖ḡ‖² before dividing by V",
        ),
        (
            snr_with(squared_norm_of_mean, lambda g: np.sum(g.var(axis=0)), lambda v, n: v / n),
            "use the unbiased variance over the rows, dividing by n − 1 (ddof=1)",
        ),
        (
            snr_with(squared_norm_of_mean, unbiased_variance, lambda v, n: v),
            "the noise floor is V/n, not V: the mean of n estimates has variance V/n",
        ),
        (
            snr_with(
                lambda g: np.mean(np.sum(g**2, axis=-1)), unbiased_variance, lambda v, n: v / n
            ),
            "the signal is the squared norm of the mean, ‖ḡ‖², not the mean of the squared norms",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        experiments.debiased_snr,
        sample,
        exercise="7.1",
        hint="V = samples.var(axis=0, ddof=1).sum(); return "
        "(np.sum(samples.mean(axis=0) ** 2) − V / n) / V with n = samples.shape[0]",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="debiased SNR",
        rng=rng,
    )


def check_choose_estimator(learner_fn: Callable[..., Any]) -> None:
    """Exercise 7.2: ``choose_estimator(trial_snr, ks, threshold) -> int``, the decision rule.

    Of the estimators whose trial SNR reaches the threshold (``snr >= threshold``; NaN never
    does), the index of the one with the largest K, on a tie in K the higher SNR; −1 when none
    qualifies. The reference is ``experiments.choose_estimator``.

    Args (of the learner's function):
      trial_snr: ``[E]`` float32, each candidate's trial SNR.
      ks: ``[E]`` int32, each candidate's horizon K.
      threshold: Python float.

    Returns: a Python int (or integer scalar) in −1..E−1.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng()

    def sample(rng):
        n = int(rng.integers(1, 6))
        return {
            "trial_snr": (rng.integers(-2, 21, size=n) / 100).astype(np.float32),
            "ks": rng.integers(1, 9, size=n).astype(np.int32),
            # Between the SNRs' grid of 0.01, so float32 rounding never decides a comparison.
            "threshold": float(rng.choice([0.025, 0.045, 0.075, 0.105])),
        }

    def inputs(trial_snr, ks, threshold):
        return {
            "trial_snr": _f32(trial_snr),
            "ks": np.asarray(ks, np.int32),
            "threshold": threshold,
        }

    # Thresholds equal to an SNR are powers of two: the same number in float32 and float64.
    edge_cases = [
        inputs([0.1, 0.02, 0.05], [1, 5, 5], 0.03),
        inputs([0.1, 0.05, 0.06], [1, 5, 5], 0.03),
        inputs([0.05, 0.1, 0.06], [1, 3, 5], 0.03),
        inputs([0.5, 0.25, 0.125], [1, 3, 5], 0.25),
        inputs([0.01, np.nan], [1, 5], 0.03),
        inputs([0.01, 0.02], [3, 1], 0.03),
    ]

    def choose(key, accepts=lambda snr, threshold: snr >= threshold):
        """The rule with another ``key(snr, k)`` to maximise or another acceptance test."""

        def chosen(trial_snr, ks, threshold):
            snr, ks = np.asarray(trial_snr, float), np.asarray(ks)
            accepted = [e for e in range(len(ks)) if accepts(snr[e], threshold)]
            return max(accepted, key=lambda e: key(snr[e], ks[e])) if accepted else -1

        return chosen

    mistakes = [
        (
            choose(lambda snr, k: (-k, snr)),
            "scale the most far-sighted accepted estimator: the largest K, not the smallest",
        ),
        (
            choose(lambda snr, k: snr),
            "choose by K first (the largest among the accepted) and let the SNR only break ties",
        ),
        (
            choose(lambda snr, k: k),
            "on a tie in K take the higher SNR, not the first index",
        ),
        (
            choose(lambda snr, k: (k, snr), accepts=lambda snr, threshold: snr > threshold),
            "an SNR equal to the threshold reaches it: accept snr >= threshold",
        ),
    ]
    _compare_naming_mistakes(
        learner_fn,
        experiments.choose_estimator,
        sample,
        exercise="7.2",
        hint="keep the indices with trial_snr >= threshold; of them return the one with the "
        "largest (ks, trial_snr) pair, or -1 when none is kept",
        mistakes=mistakes,
        edge_cases=edge_cases,
        output_name="index",
        rng=rng,
    )


__all__ += [
    "check_estimator_weights",
    "check_variance_ratio",
    "check_paired_difference",
    "check_debiased_snr",
    "check_choose_estimator",
]
