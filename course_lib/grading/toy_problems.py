"""Random toy problems and pulls for the meta-gradient checks (lessons 03–05).

The library's own bandit and noisy quadratic with random settings, so a check compares the
learner's function with the reference on problems it has not seen. Kept apart from ``inputs``
because these import the engine, which lesson 00's checks do not need.
"""

from __future__ import annotations

import numpy as np

from course_lib import problems
from course_lib.grading.inputs import numbers


def random_bandit(rng: np.random.Generator, n_arms: int, batch_size: int):
    """The library's bandit with random arm probabilities, θ_0 and default hyper-parameters."""
    return problems.make_problem(
        "bandit",
        p=tuple(float(x) for x in rng.integers(1, 10, size=n_arms) / 10),
        batch_size=batch_size,
        theta0=tuple(float(x) for x in numbers(rng, n_arms)),
        learning_rate=float(rng.choice([0.3, 0.5, 1.0])),
        entropy_cost=float(rng.choice([0.1, 0.3, 0.5])),
    )


def random_pulls(rng: np.random.Generator, n_arms: int, shape: tuple[int, ...]):
    """Actions (int32) and rewards in {0, 1} (float32) of ``shape``, and an η [2] near 0."""
    actions = rng.integers(n_arms, size=shape).astype(np.int32)
    rewards = rng.integers(2, size=shape).astype(np.float32)
    return actions, rewards, (rng.integers(-15, 6, size=2) / 10).astype(np.float32)


def random_quadratic(rng: np.random.Generator):
    """The library's noisy quadratic with 1–3 coordinates and random settings."""
    dim = int(rng.integers(1, 4))
    return problems.make_problem(
        "quadratic",
        curvatures=tuple(float(x) for x in rng.choice([0.1, 0.5, 1.0, 2.0], size=dim)),
        learning_rate=float(rng.choice([0.05, 0.1, 0.2, 0.4])),
        noise=float(rng.choice([0.1, 0.4, 1.0])),
        theta0=tuple(float(x) for x in numbers(rng, dim)),
    )
