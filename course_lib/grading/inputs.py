"""Random inputs for the checks: "nice" numbers (one decimal) so that messages show them exactly.

Samplers that a check builds from these draw their shapes once per call of the check (with the
call's ``rng``), so that one call compiles the reference once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from course_lib.grading.core import Inputs, InputSampler


def numbers(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Rewards, values or logits in [-2, 2]."""
    return (rng.integers(-20, 21, size=shape) / 10).astype(np.float32)


def discount_factor(rng: np.random.Generator) -> float:
    """γ, one of 0.5, 0.8, 0.9 and 0.95."""
    return float(rng.choice([0.5, 0.8, 0.9, 0.95]))


def discounts(rng: np.random.Generator, length: int) -> np.ndarray:
    """Mostly 1, with episode ends (0) about one step in four."""
    return (rng.random(length) > 0.25).astype(np.float32)


def rewards_and_gamma(rng: np.random.Generator) -> InputSampler:
    """``{rewards [T], gamma}`` with T drawn once, so that one call of a check compiles once."""
    length = int(rng.integers(2, 7))
    return lambda rng: {"rewards": numbers(rng, length), "gamma": discount_factor(rng)}


def logits_and_actions(rng: np.random.Generator, length: int, n_actions: int) -> Inputs:
    """``{logits [length, n_actions], actions [length]}``."""
    return {
        "logits": numbers(rng, (length, n_actions)),
        "actions": rng.integers(n_actions, size=length).astype(np.int32),
    }


def f32(values: Sequence[float]) -> np.ndarray:
    """An edge case's array, float32 like the random ones."""
    return np.asarray(values, dtype=np.float32)
