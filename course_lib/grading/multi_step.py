"""Lesson 04's checks: meta-gradients through K inner updates (reverse and forward mode), and
their variance and signal-to-noise ratio from samples.

Besides the general hint, these checks name the usual wrong answers (``Comparison.mistakes``):
when a learner's function agrees with one of them on the edge cases, the failure says which
mistake it is. The notation is ``docs/notation.md`` §2 and §4.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import problems
from course_lib.envs import bandit
from course_lib.grading.core import Comparison, graded
from course_lib.grading.inputs import f32, numbers
from course_lib.grading.toy_problems import random_bandit, random_pulls, random_quadratic
from course_lib.stats import meta_gradient_stats


@functools.partial(jax.jit, static_argnums=0)
def reference_meta_gradient_through_batches(problem, batches, outer_batch, eta):
    """Reverse mode through ``lax.scan`` over the K given inner batches, data held fixed
    (``docs/notation.md`` §2)."""

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


@graded("4.1")
def check_meta_gradient_through_batches(rng) -> Comparison:
    """Exercise 4.1: ``meta_gradient_through_batches(problem, batches, outer_batch, eta)
    -> [n_eta]``, g_K through K given batches.

    Unlike the library's ``metagrad.k_step_meta_gradients(problem, eta, key, k_max)``, which
    samples its own batches and returns every g_1..g_k_max, this takes the K inner batches and the
    outer batch as given and returns g_K alone (``docs/notation.md`` §2).

    Unroll the K inner updates ``θ_k = problem.inner_update(θ_{k−1}, batches[k−1], η)`` from
    ``θ_0 = problem.init_state`` with ``jax.lax.scan``, score ``problem.outer_loss(θ_K,
    outer_batch)`` and differentiate it with respect to η through all K updates (reverse mode),
    holding the batches fixed. K is the length of the batches' leading axis.

    Args (of the learner's function):
      problem: a ``problems.make_problem(...)`` problem (the check uses bandits).
      batches: the K inner batches, a pytree with leading axis K (for the bandit a
        ``BanditBatch`` of ``actions`` and ``rewards``, each ``[K, B]``; shown in messages as
        [actions, rewards]).
      outer_batch: the batch the outer loss is scored on (the bandit's exact outer loss ignores it).
      eta: ``[n_eta]`` float32.

    Returns: ``[n_eta]``, g_K.
    """
    n_arms, batch_size, k = (
        int(rng.integers(2, 4)),
        int(rng.integers(1, 3)),
        int(rng.integers(2, 6)),
    )
    problem = random_bandit(rng, n_arms, batch_size)

    def inputs(problem, actions, rewards, eta):
        actions, rewards = jnp.asarray(actions, jnp.int32), jnp.asarray(rewards, jnp.float32)
        return {
            "problem": problem,
            "batches": bandit.BanditBatch(actions, rewards),
            "outer_batch": bandit.BanditBatch(actions[-1], rewards[-1]),
            "eta": f32(eta),
        }

    default = problems.make_problem("bandit")
    edge_cases = [
        inputs(default, [[1], [1], [0]], [[1.0], [1.0], [0.0]], [-0.5, -1.0]),
        inputs(default, [[0], [1], [1], [0]], [[1.0], [0.0], [1.0], [1.0]], [0.0, -0.5]),
    ]
    mistakes = [
        (
            lambda *args: -reference_meta_gradient_through_batches(*args),
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
                lambda pr, b, o, e, index=index: reference_meta_gradient_through_batches(
                    pr, _drop_batch(b, index), o, e
                ),
                "your answer makes K − 1 updates: scan over all K batches",
            )
            for index in (0, -1)
        ),
        (
            lambda pr, b, o, e: reference_meta_gradient_through_batches(
                pr, _append_batch(b, o), o, e
            ),
            "your answer makes K + 1 updates: the outer batch only scores θ_K, it is not an "
            "inner batch",
        ),
    ]
    return Comparison(
        reference_meta_gradient_through_batches,
        lambda rng: inputs(problem, *random_pulls(rng, n_arms, (k, batch_size))),
        hint="inside a function of η, lax.scan problem.inner_update(state, batch, eta) over the "
        "batches from problem.init_state, return problem.outer_loss(θ_K, outer_batch), and "
        "take jax.grad of that function",
        edge_cases=edge_cases,
        mistakes=mistakes,
        n_trials=3,
        output_name="meta-gradient",
    )


def _prefix_batches(batches):
    """(inner, outer): τ_0..τ_{K−1}, which the K updates train on, and τ_1..τ_K, which score
    them."""
    inner = jax.tree_util.tree_map(lambda x: x[:-1], batches)
    outer = jax.tree_util.tree_map(lambda x: x[1:], batches)
    return inner, outer


@functools.partial(jax.jit, static_argnums=0)
def reference_forward_meta_gradients(problem, batches, eta):
    """g_1..g_K through the K + 1 given batches, by reverse mode: ``jax.jacrev`` of the prefix
    losses L_k = L_out(θ_k; τ_k), θ_k = U(θ_{k−1}, τ_{k−1}; η) (``docs/notation.md`` §2)."""

    def prefix_losses(eta):
        def step(state, pair):
            state = problem.inner_update(state, pair[0], eta)
            return state, problem.outer_loss(state, pair[1])

        return jax.lax.scan(step, problem.init_state, _prefix_batches(batches))[1]

    return jax.jacrev(prefix_losses)(eta)


def forward_carry(problem, batches, eta, *, jacobian=True, carry=True, eta_term=True, lag=0):
    """The forward-mode carry of exercise 4.2, and its usual mistakes: without ``jacobian`` Z is
    not pushed through ∂U/∂θ (Z_k = Z_{k−1} + ∂U/∂η), without ``carry`` Z_k = ∂U/∂η alone,
    without ``eta_term`` η's tangent is zero; ``lag=1`` scores θ_k on τ_{k−1}, its own batch."""
    inner, outer = _prefix_batches(batches)
    if lag:
        outer = inner
    basis = jnp.eye(eta.shape[0], dtype=eta.dtype) * (1.0 if eta_term else 0.0)

    def step(state, pair):
        theta, z = state  # z [n_eta, d]: row e is dθ/dη_e

        def push(z_e, e_e):
            z_in = z_e if jacobian else jnp.zeros_like(z_e)
            theta_new, tangent = jax.jvp(
                lambda th, et: problem.inner_update(th, pair[0], et), (theta, eta), (z_in, e_e)
            )
            return theta_new, tangent + (z_e if carry and not jacobian else 0.0)

        theta, z = jax.vmap(push, out_axes=(None, 0))(z, basis)
        return (theta, z), z @ jax.grad(problem.outer_loss)(theta, pair[1])

    theta0 = problem.init_state
    zeros = jnp.zeros((eta.shape[0], *theta0.shape), theta0.dtype)
    return jax.lax.scan(step, (theta0, zeros), (inner, outer))[1]


@graded("4.2")
def check_forward_meta_gradients_through_batches(rng) -> Comparison:
    """Exercise 4.2: ``forward_meta_gradients_through_batches(problem, batches, eta)
    -> [K, n_eta]``, every g_1..g_K in forward mode.

    ``metagrad.k_step_meta_gradients(..., mode="forward")``'s carry, on given batches
    (``docs/notation.md`` §2). The K + 1 batches τ_0..τ_K have a leading axis K + 1. Carry
    (θ_k, Z_k), Z_k = dθ_k/dη, through ``jax.lax.scan`` from (``problem.init_state``, 0): each step
    pushes (Z_{k−1}, a unit vector of η) through ``θ_k = problem.inner_update(θ_{k−1}, τ_{k−1}, η)``
    with ``jax.jvp`` (one push per meta-parameter), giving
    ``Z_k = ∂U/∂θ Z_{k−1} + ∂U/∂η``, and emits ``g_k = ∇_θ problem.outer_loss(θ_k, τ_k) · Z_k``.
    The reference is reverse mode (``jax.jacrev`` of the prefix losses); the checks try random
    noisy quadratics and bandits, whose state θ is one array.

    Args (of the learner's function):
      problem: a ``problems.make_problem(...)`` problem whose state is one array θ [d].
      batches: τ_0..τ_K, a pytree with leading axis K + 1 (the quadratic's noise ξ [K + 1, d];
        the bandit's ``BanditBatch`` of ``actions`` and ``rewards`` [K + 1, B], shown in messages
        as [actions, rewards]).
      eta: ``[n_eta]`` float32.

    Returns: ``[K, n_eta]``; row k − 1 is g_k.
    """
    k = int(rng.integers(2, 6))
    if rng.random() < 0.5:
        problem = random_quadratic(rng)
        dim = len(problem.settings["curvatures"])

        def sample(rng):
            return {
                "problem": problem,
                "batches": numbers(rng, (k + 1, dim)),
                "eta": f32(np.asarray(problem.eta0) + numbers(rng, dim) / 4),
            }
    else:
        n_arms, batch_size = int(rng.integers(2, 4)), int(rng.integers(1, 3))
        problem = random_bandit(rng, n_arms, batch_size)

        def sample(rng):
            actions, rewards, eta = random_pulls(rng, n_arms, (k + 1, batch_size))
            return {
                "problem": problem,
                "batches": bandit.BanditBatch(jnp.asarray(actions), jnp.asarray(rewards)),
                "eta": eta,
            }

    default = problems.make_problem("quadratic")
    edge_cases = [
        {
            "problem": default,
            "batches": f32([[0.5, -1.0], [1.0, 0.5], [-1.5, 1.0], [0.0, 2.0]]),
            "eta": f32(default.eta0),
        },
        {"problem": default, "batches": f32([[1.0, 1.0], [-1.0, 0.5]]), "eta": f32([-1.0, -2.0])},
    ]
    mistakes = [
        (
            lambda *args: -reference_forward_meta_gradients(*args),
            "the sign is flipped: return the gradients of the outer losses themselves",
        ),
        (
            functools.partial(forward_carry, eta_term=False),
            "your meta-gradients are all zero: the ∂U/∂η term is missing; push η's tangent "
            "(a unit vector e_i) through the update together with θ's tangent Z_{k−1}",
        ),
        (
            functools.partial(forward_carry, jacobian=False),
            "your Z_k adds up every update's ∂U/∂η but drops the Jacobian term: push Z_{k−1} "
            "through the update as θ's tangent, so that ∂U/∂θ = I − α∇²L_in multiplies it",
        ),
        (
            functools.partial(forward_carry, jacobian=False, carry=False),
            "your Z_k is the last update's ∂U/∂η alone: carry Z from step to step and push it "
            "through each update as θ's tangent (the Jacobian term ∂U/∂θ · Z_{k−1})",
        ),
        (
            functools.partial(forward_carry, lag=1),
            "score θ_k on the next batch τ_k = batches[k], not on τ_{k−1}, the batch it was "
            "trained on",
        ),
    ]
    return Comparison(
        reference_forward_meta_gradients,
        sample,
        hint="scan over the pairs (τ_{k−1}, τ_k) = (batches[:-1], batches[1:]) carrying (θ, Z); "
        "per meta-parameter e, jax.jvp of θ, η ↦ problem.inner_update(θ, τ_{k−1}, η) at (θ, η) "
        "along (Z_e, unit vector e) gives θ_k and row e of Z_k; emit Z_k @ ∇_θ L_out(θ_k, τ_k)",
        edge_cases=edge_cases,
        mistakes=mistakes,
        n_trials=3,
        output_name="array g_1..g_K",
    )


def _reference_variance_and_snr(samples):
    """[2, k_max]: ``stats.meta_gradient_stats``' variance and SNR."""
    measured = meta_gradient_stats(np.asarray(samples))
    return np.stack([measured.variance, measured.snr])


@graded("4.3")
def check_variance_and_snr(rng) -> Comparison:
    """Exercise 4.3: ``variance_and_snr(samples) -> (variance [k_max], snr [k_max])``.

    Over the seeds (axis 0) of ``samples [n_seeds, k_max, n_eta]``, for each k: the variance
    ``tr Cov(g_k) = Σ_e 1/(N−1) Σ_i (g_k^(i)_e − ḡ_k,e)²`` (unbiased, summed over the
    meta-parameters) and the signal-to-noise ratio ``‖ḡ_k‖² / tr Cov(g_k)``
    (``docs/notation.md`` §4). The reference is ``stats.meta_gradient_stats``.

    Args (of the learner's function):
      samples: ``[n_seeds, k_max, n_eta]`` float32, one row of estimates g_1..g_k_max per seed.

    Returns: a pair ``(variance, snr)``, each ``[k_max]``.
    """
    shape = (int(rng.integers(3, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 4)))
    edge = f32([[[1.0, 0.0], [2.0, 1.0]], [[3.0, 0.0], [0.0, 1.0]], [[2.0, 3.0], [1.0, 1.0]]])

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
    return Comparison(
        _reference_variance_and_snr,
        lambda rng: {"samples": numbers(rng, shape)},
        hint="along axis 0 (the seeds): mean ḡ [k_max, n_eta] and unbiased variance (ddof=1) "
        "summed over the last axis; snr = sum(ḡ², axis=-1) / variance",
        edge_cases=[{"samples": edge}, {"samples": edge[:, :1, :1]}],
        mistakes=mistakes,
        output_name="(variance, snr) pair",
    )
