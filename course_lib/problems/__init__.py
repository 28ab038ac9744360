"""Meta-problems: the contract the estimators run on (``contract``) and one module per problem.

``make_problem(name, **settings)`` builds one by name from ``PROBLEM_BUILDERS``: the enumerable
bandit (``bandit``), the noisy quadratic (``quadratic``) and actor-critic on Snake (``snake``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax

from course_lib.problems.bandit import bandit_problem
from course_lib.problems.contract import (
    ExactHooks,
    GaussianHooks,
    MetaProblem,
    bound_settings,
    check_noise_size,
    check_path_count,
    check_sampling_correction,
    exact_refusal,
    moments_refusal,
    noise_size_refusal,
    paths_refusal,
    require_exact,
    sampling_correction_refusal,
    target_refusal,
)
from course_lib.problems.quadratic import quadratic_problem
from course_lib.problems.snake import (
    CRITIC_TARGETS,
    SNAKE_OPTIMIZERS,
    SnakeAgentState,
    snake_problem,
)

__all__ = [
    "CRITIC_TARGETS",
    "PROBLEM_BUILDERS",
    "SNAKE_OPTIMIZERS",
    "ExactHooks",
    "GaussianHooks",
    "MetaProblem",
    "SnakeAgentState",
    "bandit_problem",
    "check_noise_size",
    "check_path_count",
    "check_sampling_correction",
    "exact_refusal",
    "make_problem",
    "moments_refusal",
    "noise_size_refusal",
    "paths_refusal",
    "quadratic_problem",
    "require_exact",
    "sampling_correction_refusal",
    "snake_problem",
    "target_refusal",
]

PROBLEM_BUILDERS: dict[str, Callable[..., MetaProblem]] = {
    "bandit": bandit_problem,
    "quadratic": quadratic_problem,
    "snake": snake_problem,
}


def make_problem(name: str, **settings) -> MetaProblem:
    """The named meta-problem ("bandit", "quadratic" or "snake"), ``settings`` overriding defaults.

    The same name and settings return the same object (per float precision), a default given
    explicitly or left out alike, so compiled estimators and warm-ups are reused. Unknown names or
    settings raise ``ValueError`` listing the valid ones.
    """
    if name not in PROBLEM_BUILDERS:
        raise ValueError(f"unknown problem {name!r}; valid names: {sorted(PROBLEM_BUILDERS)}")
    builder = PROBLEM_BUILDERS[name]
    valid = list(inspect.signature(builder).parameters)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown settings {unknown} for problem {name!r}; valid settings: {valid}"
        )
    frozen = tuple(sorted(bound_settings(builder, **settings).items()))
    return _cached_problem(name, frozen, bool(jax.config.jax_enable_x64))


@functools.lru_cache(maxsize=32)
def _cached_problem(name: str, settings: tuple, x64: bool) -> MetaProblem:
    del x64  # part of the cache key only: the problem's arrays take the precision in force
    return PROBLEM_BUILDERS[name](**dict(settings))
