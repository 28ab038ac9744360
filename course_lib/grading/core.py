"""The comparison every check makes: a learner's function against a reference on many inputs.

``compare_functions`` calls both on fixed edge cases, then on fresh random inputs, compares shapes,
then values, and either returns or raises ``ExerciseFailed`` with one plain sentence: the input,
the expected answer, what came back and a hint (the hint of a known mistake when the learner's
answer reproduces one). Errors raised by the learner's code are reported the same way: their type,
message and line, not a wall of JAX internals.

``graded`` turns a lesson's description of an exercise (``Comparison``: reference, inputs, hint,
edge cases, known mistakes) into the ``check_*`` function its notebook calls.
"""

from __future__ import annotations

import functools
import inspect
import os
import sysconfig
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

Inputs = dict[str, Any]
InputSampler = Callable[[np.random.Generator], Inputs]
# (a known wrong answer, with the learner's signature; the hint that names that mistake)
Mistake = tuple[Callable[..., Any], str]

_NOT_DONE = "Exercise {} is not done yet: replace `raise NotImplementedError()` with your code."
# Frames from these folders are not the learner's code: Python, installed packages, course_lib.
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
)
_PRINT_OPTIONS = dict(
    separator=", ", max_line_width=10**6, formatter={"float_kind": lambda x: f"{x:.4g}"}
)


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
    mistakes: Sequence[Mistake] = (),
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
      mistakes: known wrong answers ``(wrong_fn, its hint)``. When the check fails and the
        learner's function returns what ``wrong_fn`` returns on every edge case, the message is
        the first edge case that fails, with that mistake's hint. Each wrong answer must differ
        from the reference on at least one edge case.
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
    if mistakes and not edge_cases:
        raise ValueError("mistakes are recognised on the edge cases: give edge_cases too")
    rng = np.random.default_rng() if rng is None else rng
    first_problem = functools.partial(
        _first_problem, exercise=exercise, rtol=rtol, atol=atol, output_name=output_name
    )
    cases = [*edge_cases, *(input_sampler(rng) for _ in range(n_trials))]
    problem = first_problem(learner_fn, reference_fn, cases)
    if problem is None:
        if announce:
            print(f"Exercise {exercise} passed")
        return
    for wrong_fn, mistake_hint in mistakes:
        if first_problem(learner_fn, wrong_fn, edge_cases) is None:
            on_edge_cases = first_problem(learner_fn, reference_fn, edge_cases)
            if on_edge_cases is not None:
                problem, hint = on_edge_cases, mistake_hint
                break
    message = f"{problem.sentence}; hint: {hint}" if problem.add_hint else problem.sentence
    raise ExerciseFailed(message) from None


class Comparison(NamedTuple):
    """One comparison a check makes: ``compare_functions``' arguments, less the exercise number.

    ``adapt`` turns the learner's function into what is compared (by default the function itself;
    e.g. its gradient, to check a loss's gradient after its value).
    """

    reference: Callable[..., Any]
    sampler: InputSampler
    hint: str
    edge_cases: Sequence[Inputs] = ()
    mistakes: Sequence[Mistake] = ()
    n_trials: int = 5
    output_name: str = "answer"
    adapt: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None


def graded(exercise: str) -> Callable[..., Callable[[Callable[..., Any]], None]]:
    """Decorator: ``define(rng) -> Comparison`` (or a tuple of them) becomes the check
    ``check(learner_fn) -> None`` of ``exercise``, with ``define``'s name and docstring.

    Each call of the check draws a new ``rng``, gives it to ``define`` (which may draw the
    shapes used throughout that call, so that it compiles once) and to every comparison, runs the
    comparisons in order, and prints ``Exercise <n> passed`` once, after the last one passed.
    """

    def decorate(define: Callable[[np.random.Generator], Any]) -> Callable[..., None]:
        def check(learner_fn: Callable[..., Any]) -> None:
            __tracebackhide__ = True
            rng = np.random.default_rng()
            comparisons = define(rng)
            if isinstance(comparisons, Comparison):
                comparisons = (comparisons,)
            for index, comparison in enumerate(comparisons):
                adapt = comparison.adapt or (lambda fn: fn)
                compare_functions(
                    adapt(learner_fn),
                    comparison.reference,
                    comparison.sampler,
                    exercise=exercise,
                    hint=comparison.hint,
                    n_trials=comparison.n_trials,
                    edge_cases=comparison.edge_cases,
                    mistakes=comparison.mistakes,
                    output_name=comparison.output_name,
                    announce=index == len(comparisons) - 1,
                    rng=rng,
                )

        # define's name and docstring, not its signature: the check takes the learner's function.
        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(check, attribute, getattr(define, attribute))
        return check

    return decorate


class _Problem(NamedTuple):
    sentence: str  # the failure message, less its hint
    add_hint: bool = True


def _first_problem(
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Sequence[Inputs],
    *,
    exercise: str,
    rtol: float,
    atol: float,
    output_name: str,
) -> _Problem | None:
    """What went wrong on the first of ``cases`` where the answers differ, or None."""
    for inputs in cases:
        problem = _check_one(learner_fn, reference_fn, inputs, exercise, rtol, atol, output_name)
        if problem is not None:
            return problem
    return None


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
            f"{where} the expected {output_name} is {format_value(expected)} "
            f"but your function returned {format_value(got)}"
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


def format_value(value: Any) -> str:
    """A number or array as messages show it: 5 significant digits, one line."""
    array = np.asarray(value)
    if array.ndim == 0:
        return f"{array.item():.5g}" if array.dtype.kind == "f" else str(array.item())
    return np.array2string(array, **_PRINT_OPTIONS).replace("\n", "")


def _describe_inputs(inputs: Inputs) -> str:
    return ", ".join(f"{name}={format_value(value)}" for name, value in inputs.items())


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
