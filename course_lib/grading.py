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

import inspect
import os
import sysconfig
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import agents
from course_lib.envs import cartpole

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


_reference_reward_to_go = jax.jit(cartpole.reward_to_go)


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
    # The terms of agents.a2c_loss, on given logits, values and returns instead of (params, batch).
    advantages = returns - jax.lax.stop_gradient(values)
    policy_loss = agents.policy_gradient_loss(logits, actions, advantages)
    value_loss = jnp.mean((returns - values) ** 2)
    return policy_loss + value_cost * value_loss - entropy_cost * jnp.mean(agents.entropy(logits))


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

    The same signature as ``course_lib.envs.cartpole.reward_to_go`` (its reference).

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
