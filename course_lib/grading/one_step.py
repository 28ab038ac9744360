"""Lesson 03's checks: the meta-gradient through one inner update, and checking it by differences.

Besides the general hint, these checks name the usual wrong answers (``Comparison.mistakes``):
when a learner's function agrees with one of them on the edge cases, the failure says which
mistake it is. The notation is ``docs/notation.md`` §1–§2.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import problems
from course_lib.envs import bandit
from course_lib.grading.core import Comparison, format_value, graded
from course_lib.grading.inputs import f32, numbers
from course_lib.grading.toy_problems import random_bandit, random_pulls


def _bandit_for(p, batch_size: int):
    """The library's bandit with these arm probabilities and batch size (θ_0 and η unused here)."""
    return problems.make_problem(
        "bandit", p=tuple(float(x) for x in np.asarray(p)), batch_size=int(batch_size)
    )


def reference_one_step_meta_gradient(theta, actions, rewards, eta, p):
    """jax.grad of L_out(θ_1) through ``course_lib.problems``' bandit inner update."""
    problem = _bandit_for(p, actions.shape[0])
    return _one_step_gradient(problem, theta, bandit.BanditBatch(actions, rewards), eta)


@functools.partial(jax.jit, static_argnums=0)
def _one_step_gradient(problem, theta, batch, eta):
    """dL_out(U(θ, batch; η); batch)/dη, compiled: one program per bandit, not one per operation."""
    return jax.grad(lambda e: problem.outer_loss(problem.inner_update(theta, batch, e), batch))(eta)


def _one_step_at_theta0(theta, actions, rewards, eta, p):
    """Wrong: the outer gradient taken at θ_0 instead of at the updated θ_1."""
    problem = _bandit_for(p, actions.shape[0])
    batch = bandit.BanditBatch(actions, rewards)
    jacobian = jax.jacobian(problem.inner_update, argnums=2)(theta, batch, eta)  # [A, 2]
    return jax.grad(problem.outer_loss)(theta, batch) @ jacobian


@graded("3.1")
def check_one_step_meta_gradient(rng) -> Comparison:
    """Exercise 3.1: ``one_step_meta_gradient(theta, actions, rewards, eta, p) -> [2]``, by hand.

    The bandit of ``problems.make_problem("bandit")``: one inner update on a batch of B pulls,
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
    n_arms, batch_size = int(rng.integers(2, 5)), int(rng.integers(1, 5))
    p = np.asarray(random_bandit(rng, n_arms, batch_size).settings["p"], np.float32)

    def sample(rng):
        actions, rewards, eta = random_pulls(rng, n_arms, (batch_size,))
        return {
            "theta": numbers(rng, n_arms),
            "actions": actions,
            "rewards": rewards,
            "eta": eta,
            "p": p,
        }

    edge_cases = [
        {
            "theta": f32([1.0, -1.0]),
            "actions": np.asarray([0], np.int32),
            "rewards": f32([1.0]),
            "eta": f32([-1.0, -1.0]),
            "p": f32([0.3, 0.7]),
        },
        {
            "theta": f32([0.5, 0.0, -0.5]),
            "actions": np.asarray([2, 0], np.int32),
            "rewards": f32([0.0, 1.0]),
            "eta": f32([0.0, 0.5]),
            "p": f32([0.2, 0.5, 0.8]),
        },
        {
            "theta": f32([0.0, 0.0]),
            "actions": np.asarray([1], np.int32),
            "rewards": f32([1.0]),
            "eta": f32([-0.5, 0.0]),
            "p": f32([0.3, 0.7]),
        },
    ]
    mistakes = [
        (
            lambda *args: -reference_one_step_meta_gradient(*args),
            "the sign is flipped: the outer loss is −J(θ_1), minus the expected reward",
        ),
        (
            _one_step_at_theta0,
            "take ∇_θ L_out at the updated logits θ_1, not at θ_0: the meta-gradient asks how the "
            "loss *after* the update changes",
        ),
        (
            lambda th, a, r, e, p: (
                reference_one_step_meta_gradient(th, a, r, e, p)
                / jnp.stack([jnp.exp(e[0]), jax.nn.sigmoid(e[1])])
            ),
            "that is the derivative with respect to (α, c); η is (log α, softplus⁻¹ c), so "
            "multiply by dα/dη_0 = α and dc/dη_1 = sigmoid(η_1)",
        ),
    ]
    return Comparison(
        reference_one_step_meta_gradient,
        sample,
        hint="dθ_1/dη_0 = α·(policy-gradient term + c·∇H) = θ_1 − θ_0, "
        "dθ_1/dη_1 = α·sigmoid(η_1)·∇H, and ∇_θ L_out(θ_1) = −π_θ1 ⊙ (p − J(θ_1)); "
        "g_1 is their product",
        edge_cases=edge_cases,
        mistakes=mistakes,
        output_name="meta-gradient",
    )


class _TestFunction:
    """A smooth function of η for the finite-difference check, shown by its formula."""

    def __init__(self, cubic, linear, coupling):
        self.cubic, self.linear, self.coupling = (jnp.asarray(x) for x in (cubic, linear, coupling))
        self.text = (
            f"f(η) = Σ {format_value(cubic)}·η³ + Σ {format_value(linear)}·η "
            f"+ sin({format_value(coupling)}·η)"
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


@graded("3.2")
def check_central_differences(rng) -> Comparison:
    """Exercise 3.2: ``central_differences(f, eta, eps) -> [n]``, a finite-difference gradient.

    ``∂f/∂η_i ≈ (f(η + ε e_i) − f(η − ε e_i)) / (2ε)`` for each i, ``e_i`` the i-th unit vector:
    error O(ε²), against O(ε) for the one-sided ``(f(η + ε e_i) − f(η)) / ε``.

    Args (of the learner's function):
      f: a scalar function of ``[n]`` float32 (written with ``jnp``).
      eta: ``[n]`` float32, the point.
      eps: Python float, the step ε.

    Returns: ``[n]``.
    """
    size = int(rng.integers(1, 5))
    edge_cases = [
        {
            "f": _TestFunction(f32([1.0, -0.5]), f32([0.2, 0.3]), f32([1.0, 1.0])),
            "eta": f32([0.5, -1.0]),
            "eps": 0.1,
        },
        {"f": _TestFunction(f32([2.0]), f32([0.0]), f32([0.0])), "eta": f32([1.0]), "eps": 0.2},
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
    return Comparison(
        _reference_central_differences,
        lambda rng: {
            "f": _TestFunction(*(numbers(rng, size) for _ in range(3))),
            "eta": numbers(rng, size),
            "eps": float(rng.choice([0.05, 0.1, 0.2])),
        },
        hint="for each i, (f(η + ε e_i) − f(η − ε e_i)) / (2ε) with e_i the i-th unit vector "
        "(jnp.eye gives all of them)",
        edge_cases=edge_cases,
        mistakes=mistakes,
        output_name="finite-difference gradient",
    )
