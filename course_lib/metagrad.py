"""K-step and mixing meta-gradients, all prefixes from one pass (docs/notation.md §2–§3).

Prefix structure: from θ_0, with τ_0 ~ π_{θ_0},

    θ_k = U(θ_{k−1}, τ_{k−1}; η),   τ_k ~ π_{θ_k},   L_k(η) = L_out(θ_k; τ_k),    k = 1..k_max

so τ_k scores θ_k and is then the inner batch of the next update ("reuse inner batches for outer"):
one rollout per step, and only the k_max-th outer batch is extra. Step k draws its rollout with
``jax.random.fold_in(key, k)``, so a shorter run is a prefix of a longer one.

The K-step meta-gradient holds every sampled trajectory fixed (no score-function term, unless
``sampling_correction=True``):

    g_k = dL_k/dη,    dθ_k/dη = (∂U/∂θ) dθ_{k−1}/dη + ∂U/∂η,    dθ_0/dη = 0,

and the mixing meta-gradient is g_mix = Σ_k w_k g_k with w_k ≥ 0, Σ_k w_k = 1.

The estimators know nothing about the problem they run on: see ``course_lib.problems.MetaProblem``.
"""

from __future__ import annotations

import functools
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import exact, unroll
from course_lib.checks import check_choice, check_finite_per_step, check_int
from course_lib.mixing import (  # noqa: F401  (the engine's public names include the weights)
    check_weights,
    estimator_weights,
    geometric_weights,
    lambda_return_weights,
    mix_meta_gradients,
    mix_moments,
    one_hot_weights,
    optimal_mixing_weights,
    optimal_mixing_weights_from_samples,
    uniform_weights,
)
from course_lib.problems import PROBLEM_BUILDERS, GaussianHooks, MetaProblem

AUTODIFF_MODES = ("forward", "reverse")


# --------------------------------------------------------------------------------------------------
# Problems


def make_problem(name: str, **settings) -> MetaProblem:
    """The named meta-problem ("bandit", "quadratic" or "snake"), ``settings`` overriding defaults.

    The same name and settings return the same object (per float precision), a default given
    explicitly or left out alike, so compiled estimators and warm-ups are reused. Unknown names or
    settings raise ``ValueError`` listing the valid ones.
    """
    if name not in PROBLEM_BUILDERS:
        raise ValueError(f"unknown problem {name!r}; valid names: {sorted(PROBLEM_BUILDERS)}")
    signature = inspect.signature(PROBLEM_BUILDERS[name])
    valid = list(signature.parameters)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown settings {unknown} for problem {name!r}; valid settings: {valid}"
        )
    bound = signature.bind(**settings)
    bound.apply_defaults()
    frozen = tuple(sorted((k, _freeze(v)) for k, v in bound.arguments.items()))
    return _cached_problem(name, frozen, bool(jax.config.jax_enable_x64))


def _freeze(value):
    if isinstance(value, (list, tuple, np.ndarray, jax.Array)):
        return tuple(np.asarray(value).tolist())
    return value


@functools.lru_cache(maxsize=32)
def _cached_problem(name: str, settings: tuple, x64: bool) -> MetaProblem:
    del x64  # part of the cache key only: the problem's arrays take the precision in force
    return PROBLEM_BUILDERS[name](**dict(settings))


# --------------------------------------------------------------------------------------------------
# One pass over the inner updates


def _start(problem: MetaProblem, key: jax.Array, state=None):
    """τ_0 ~ π_{θ_0} and the state after drawing it (from ``problem.init_state`` by default)."""
    state = problem.init_state if state is None else state
    return problem.sample(state, jax.random.fold_in(key, 0))


def meta_gradient_pass(
    problem: MetaProblem, state, eta, key, k_max: int, summarize=None, outer_batches: int = 1
):
    """All prefix meta-gradients from ``state``, in forward mode, plus where the pass ends.

    Traceable (no argument checks), for callers that keep training from the returned state, such
    as ``course_lib.experiments``: the same prefix structure and key schedule as
    ``k_step_meta_gradients``, which is this pass from ``problem.init_state``.

    Args:
      state: the state to start from (None: ``problem.init_state``).
      summarize: optional ``batch -> pytree``, applied to every sampled batch τ_0..τ_{k_max}
        (and the extra outer batches).
      outer_batches: M >= 1 (a Python int). With M > 1, g_{k_max} is scored on M outer batches:
        τ_{k_max} and M − 1 more rollouts of π_{θ_k_max} continuing the boards (keys
        ``fold_in(key, k_max + j)``), g_{k_max} = (1/M) Σ_j dL_out(θ_k_max; τ^(j))/dη; the rows
        g_1..g_{k_max−1} are unchanged.
    Returns:
      (per_step [k_max, n_eta], the state after k_max updates and the last rollout,
       summaries stacked [k_max + outer_batches, ...] or None).

    Carry the state and its tangents dstate/dη through a scan; emit g_k = dL_k/dη each step.

    Per step: push the tangents through U with one jvp per meta-parameter (vmapped over the identity
    basis; the primal is computed once), sample τ_k outside the jvp (acting sees stop_gradient(θ),
    and sampling changes only the environment, so the tangents carry over), then push them through
    L_out. Integer leaves (env counters, actions, PRNG keys) carry no tangent.
    """
    batch, state = _start(problem, key, state)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    mask = [unroll.is_differentiable(leaf) for leaf in leaves]

    def split(state):
        leaves = jax.tree_util.tree_leaves(state)
        diff = [leaf for leaf, m in zip(leaves, mask, strict=True) if m]
        rest = [leaf for leaf, m in zip(leaves, mask, strict=True) if not m]
        return diff, rest

    def merge(diff, rest):
        diff_iter, rest_iter = iter(diff), iter(rest)
        return treedef.unflatten([next(diff_iter) if m else next(rest_iter) for m in mask])

    basis = jnp.eye(eta.shape[0], dtype=eta.dtype)

    def step(carry, k):
        state, batch, tangents = carry
        diff, rest = split(state)

        def update(diff, eta):
            return split(problem.inner_update(merge(diff, rest), batch, eta))

        def push_update(diff_tangent, eta_tangent):
            return jax.jvp(update, (diff, eta), (diff_tangent, eta_tangent), has_aux=True)

        diff, tangents, rest = jax.vmap(push_update, out_axes=(None, 0, None))(tangents, basis)
        batch, state = problem.sample(merge(diff, rest), jax.random.fold_in(key, k))
        diff, rest = split(state)

        summary = None if summarize is None else summarize(batch)
        return (state, batch, tangents), (push_outer(state, batch, tangents), summary)

    def push_outer(state, batch, tangents):
        diff, rest = split(state)
        outer = lambda diff: problem.outer_loss(merge(diff, rest), batch)
        return jax.vmap(lambda tangent: jax.jvp(outer, (diff,), (tangent,))[1])(tangents)

    def extra_outer(carry, j):
        state, tangents = carry
        batch, state = problem.sample(state, jax.random.fold_in(key, k_max + j))
        summary = None if summarize is None else summarize(batch)
        return (state, tangents), (push_outer(state, batch, tangents), summary)

    first = None if summarize is None else summarize(batch)
    tangents = [jnp.zeros((eta.shape[0], *leaf.shape), leaf.dtype) for leaf in split(state)[0]]
    (state, _, tangents), (meta_grads, summaries) = jax.lax.scan(
        step, (state, batch, tangents), jnp.arange(1, k_max + 1)
    )
    parts = [summaries]
    if outer_batches > 1:
        (state, _), (extra, extra_summaries) = jax.lax.scan(
            extra_outer, (state, tangents), jnp.arange(1, outer_batches)
        )
        meta_grads = meta_grads.at[-1].set((meta_grads[-1] + extra.sum(0)) / outer_batches)
        parts.append(extra_summaries)
    if summarize is not None:
        summaries = jax.tree.map(lambda f, *rest: jnp.concatenate([f[None], *rest]), first, *parts)
    return meta_grads, state, summaries


def _meta_gradients(
    problem: MetaProblem, eta, key, k_max: int, mode: str, sampling_correction: bool = False
) -> jax.Array:
    if sampling_correction:
        losses = lambda eta: unroll.sampled_outer_losses(problem, eta, key, k_max, True)
        return unroll.score_corrected(losses, eta, jax.jacfwd if mode == "forward" else jax.jacrev)
    if mode == "forward":
        return meta_gradient_pass(problem, None, eta, key, k_max)[0]
    return jax.jacrev(lambda eta: unroll.sampled_outer_losses(problem, eta, key, k_max))(eta)


_prefix_outer_losses_jit = jax.jit(
    unroll.sampled_outer_losses, static_argnames=("problem", "k_max")
)
_meta_gradients_jit = jax.jit(
    _meta_gradients, static_argnames=("problem", "k_max", "mode", "sampling_correction")
)


def seed_keys(key: jax.Array, n_seeds: int) -> jax.Array:
    """Seed i gets ``jax.random.fold_in(key, i)``: more seeds extend the list. Returns [n_seeds]."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(n_seeds))


@functools.partial(
    jax.jit, static_argnames=("problem", "k_max", "n_seeds", "mode", "sampling_correction")
)
def _sample_meta_gradients_jit(problem, eta, key, k_max, n_seeds, mode, sampling_correction):
    keys = seed_keys(key, n_seeds)
    return jax.vmap(_meta_gradients, in_axes=(None, None, 0, None, None, None))(
        problem, eta, keys, k_max, mode, sampling_correction
    )


def _check_sampling_correction(problem: MetaProblem, sampling_correction) -> bool:
    if not isinstance(sampling_correction, bool):
        raise ValueError(f"sampling_correction must be True or False, got {sampling_correction!r}")
    lacks = [
        name for name in ("batch_log_prob", "outer_loss_is_cost") if not getattr(problem, name)
    ]
    if sampling_correction and lacks:
        raise ValueError(
            f"problem {problem.name!r} lacks {' and '.join(lacks)}, which sampling_correction "
            "needs (log P(τ | θ) of each sampled batch, and an outer loss whose value is the cost, "
            "not a surrogate; the bandit and the quadratic have both)"
        )
    return sampling_correction


def prefix_outer_losses(problem: MetaProblem, eta, key: jax.Array, k_max: int) -> jax.Array:
    """L_k = L_out(θ_k(η); τ_k) for k = 1..k_max, one rollout per step from π_{θ_k} (acting on
    stop_gradient(θ)). Differentiable in ``eta``; ``[:k]`` of a longer run equals a run of length k.

    Returns: [k_max].
    """
    check_int("k_max", k_max)
    eta = unroll.check_eta(problem, eta)
    return _prefix_outer_losses_jit(problem, eta, key, int(k_max))


def k_step_meta_gradients(
    problem: MetaProblem,
    eta,
    key: jax.Array,
    k_max: int,
    mode: str = "forward",
    sampling_correction: bool = False,
) -> jax.Array:
    """Every prefix meta-gradient g_k = dL_k/dη, k = 1..k_max, from one pass over the inner updates.

    ``mode="forward"``: a scan carries the state and dstate/dη (one jvp per meta-parameter); memory
    does not grow with k_max. ``mode="reverse"``: ``jax.jacrev`` of ``prefix_outer_losses``, which
    stores every step for the backward pass. Both equal ``jax.jacfwd(prefix_outer_losses)``.

    ``sampling_correction=True`` adds the score-function term for the batches' dependence on η
    (DiCE, Foerster et al. 2018; docs/notation.md §2):

        g̃_k = g_k + L_k Σ_{j=1}^{k−1} ∇_η log P(τ_j | θ_j(η)),    E[g̃_k] = g*_k,

    the derivative DiCE's surrogate gives, here from one ``jax.jacfwd`` (``mode="forward"``) or
    ``jax.jacrev`` of the scan's losses and log-probabilities. τ_k, which L_k scores, needs no
    term: its cost already is L_k's value. Problems with ``batch_log_prob`` and
    ``outer_loss_is_cost`` only (the bandit; the quadratic's noise has no θ in it: the term is 0).

    Returns: [k_max, n_eta]; row k−1 is g_k. Raises ``ValueError`` naming the first k where it is
    non-finite.
    """
    check_int("k_max", k_max)
    check_choice("mode", mode, AUTODIFF_MODES)
    sampling_correction = _check_sampling_correction(problem, sampling_correction)
    eta = unroll.check_eta(problem, eta)
    per_step = _meta_gradients_jit(problem, eta, key, int(k_max), mode, sampling_correction)
    return check_finite_per_step("meta-gradient", per_step)


def sample_meta_gradients(
    problem: MetaProblem,
    eta,
    key: jax.Array,
    k_max: int,
    n_seeds: int,
    mode: str = "forward",
    sampling_correction: bool = False,
) -> jax.Array:
    """``k_step_meta_gradients`` for ``n_seeds`` independent seeds (seed i uses
    ``fold_in(key, i)``), same θ_0 and η: the cache from which any K and any mixing weights are
    recombined for free.

    One compiled function per (problem, k_max, n_seeds, mode, sampling_correction), vmapped over
    seeds; ``sampling_correction`` as in ``k_step_meta_gradients``.
    Returns: [n_seeds, k_max, n_eta].
    """
    check_int("k_max", k_max)
    check_choice("mode", mode, AUTODIFF_MODES)
    check_int("n_seeds", n_seeds, minimum=2)
    sampling_correction = _check_sampling_correction(problem, sampling_correction)
    eta = unroll.check_eta(problem, eta)
    samples = _sample_meta_gradients_jit(
        problem, eta, key, int(k_max), int(n_seeds), mode, sampling_correction
    )
    return check_finite_per_step("meta-gradient", samples)


# --------------------------------------------------------------------------------------------------
# Exact references (toy problems with ``problem.exact``): enumeration or Gaussian quadratic forms


def _path_losses(problem: MetaProblem, eta, batches):
    """Along one enumerated path (batches [k, ...]): E[L_out(θ_j)] and log P(τ_{j−1} | θ_{j−1}),
    j = 1..k."""
    hooks = problem.exact

    def step(state, batch):
        log_p = hooks.batch_log_prob(state, batch)
        state = problem.inner_update(state, batch, eta)
        return state, (hooks.expected_outer_loss(state), log_p)

    return jax.lax.scan(step, problem.init_state, batches)[1]


@functools.partial(jax.jit, static_argnames=("problem", "k_max", "sampling_correction"))
def _exact_paths_jit(problem, eta, k_max, sampling_correction=False):
    def per_path(batches):
        losses = lambda e: _path_losses(problem, e, batches)
        log_p = jnp.sum(losses(eta)[1])
        if sampling_correction:
            return jnp.exp(log_p), unroll.score_corrected(losses, eta)
        return jnp.exp(log_p), jax.jacfwd(lambda e: losses(e)[0])(eta)

    return jax.vmap(per_path)(problem.exact.enumerate_batches(k_max))


@functools.partial(jax.jit, static_argnames=("problem", "k_max", "sampling_correction"))
def _gaussian_moments_jit(problem, eta, k_max, sampling_correction=False):
    shape = (k_max + 1, *problem.exact.noise_shape)

    def per_step(noise):  # g_1..g_k_max along the noise ξ_0..ξ_k_max: [k_max, n_eta]
        draw = lambda state, k: (noise.reshape(shape)[k], state)
        losses = lambda e: unroll.outer_losses_along(problem, e, draw, k_max, sampling_correction)
        if sampling_correction:
            return unroll.score_corrected(losses, eta)
        return jax.jacfwd(losses)(eta)

    return exact.quadratic_form_moments(per_step, math.prod(shape), eta.dtype)


@functools.partial(jax.jit, static_argnames=("problem", "k_max"))
def _true_meta_gradients_jit(problem, eta, k_max):
    if isinstance(problem.exact, GaussianHooks):
        # The noise does not depend on η, so the exact expected losses are all there is to derive.
        return jax.jacfwd(lambda eta: problem.exact.expected_losses(eta, k_max))(eta)
    batches = problem.exact.enumerate_batches(k_max)

    def expected_losses(eta):
        # Weighting L_out(θ_k) by the whole path's probability gives E[L_out(θ_k)] for every k at
        # once: the factors of the batches after step k sum to one over their continuations, so
        # they change neither the value nor (their sum being constant) the derivative.
        losses, log_p = jax.vmap(lambda b: _path_losses(problem, eta, b))(batches)
        return jnp.exp(jnp.sum(log_p, axis=1)) @ losses

    return jax.jacfwd(expected_losses)(eta)


def exact_meta_gradient_paths(
    problem: MetaProblem, eta, k_max: int, sampling_correction: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Every sequence ω of k_max inner batches with its probability and its estimates g_1..g_k_max.

    P(ω; η) = Π_k P(τ_k | θ_k(η; ω)); g_k(ω) holds ω fixed, as the sampled estimator does. Any
    mix or statistic is then exact, e.g.
    ``stats.meta_gradient_stats(mix_meta_gradients(g, w), probabilities=P)``. Enumerable problems
    only (the bandit). ``sampling_correction``: the corrected g̃_k(ω) of
    ``k_step_meta_gradients``, whose mean over ω is ``true_meta_gradients``.

    Returns: probabilities [n_paths] (summing to 1), per_step [n_paths, k_max, n_eta], with
    n_paths = (2·n_arms)^(batch_size·k_max) for the bandit.
    """
    check_int("k_max", k_max)
    unroll.check_path_count(problem, k_max)
    sampling_correction = _check_sampling_correction(problem, sampling_correction)
    eta = unroll.check_eta(problem, eta)
    prob, per_step = _exact_paths_jit(problem, eta, int(k_max), sampling_correction)
    return prob, check_finite_per_step("exact meta-gradient", per_step)


def exact_meta_gradient_moments(
    problem: MetaProblem, eta, k_max: int, joint: bool = False, sampling_correction: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Exact mean and covariance of g_1..g_k_max (docs/notation.md §5).

    Enumerable problems (the bandit), over every sequence ω of inner batches:

        E[g_k] = Σ_ω P(ω; η) g_k(ω),  Cov[g_k, g_j] = Σ_ω P(ω; η) (g_k(ω) − E g_k)(g_j(ω) − E g_j)ᵀ.

    Gaussian problems (the quadratic): each component of g_k is a quadratic form in the noise
    ξ = (ξ_0..ξ_k_max), whose moments follow from its value, gradient and Hessian at ξ = 0
    (``exact.quadratic_form_moments``). One compiled function per (problem, k_max).

    Args:
      joint: also the covariances across steps, so that the moments of any mix are exact
        (``mixing.mix_moments``, ``mixing.optimal_mixing_weights``).
      sampling_correction: the moments of the corrected g̃_k of ``k_step_meta_gradients`` (mean
        g*_k); on Gaussian problems the correction is zero.
    Returns: mean [k_max, n_eta] and cov [k_max, n_eta, n_eta] (Cov[g_k]), or with ``joint`` the
    cov [k_max, n_eta, k_max, n_eta] with Cov[g_k, g_j] at [k−1, :, j−1, :].
    """
    check_int("k_max", k_max)
    sampling_correction = _check_sampling_correction(problem, sampling_correction)
    if isinstance(unroll.require_exact(problem), GaussianHooks):
        unroll.check_noise_size(problem, k_max)
        eta = unroll.check_eta(problem, eta)
        mean, cov = _gaussian_moments_jit(problem, eta, int(k_max), sampling_correction)
        check_finite_per_step("exact meta-gradient", mean)
        return mean, cov if joint else jnp.einsum("kekf->kef", cov)
    prob, per_step = exact_meta_gradient_paths(problem, eta, k_max, sampling_correction)
    mean = jnp.einsum("p,pke->ke", prob, per_step)
    centred = per_step - mean
    spec = "p,pke,pjf->kejf" if joint else "p,pke,pkf->kef"
    return mean, jnp.einsum(spec, prob, centred, centred)


def true_meta_gradients(problem: MetaProblem, eta, k_max: int) -> jax.Array:
    """g*_k = ∇_η E_ω[L_out(θ_k(η; ω))] for k = 1..k_max: the gradients the k-step estimators
    approximate, and g*_H for a long horizon H the fixed target they are scored against.

    Enumerable problems differentiate Σ_ω P(ω; η) E[L_out(θ_k(η; ω))], P too, so g*_k equals
    E[g_k] only for k = 1; one enumeration of the k_max-step paths serves every k. Gaussian
    problems differentiate the exact expected losses (the noise does not depend on η, so
    g*_k = E[g_k] for every k): a scan over k_max steps, fast for horizons in the thousands.

    Returns: [k_max, n_eta].
    """
    check_int("k_max", k_max)
    if not isinstance(unroll.require_exact(problem), GaussianHooks):
        unroll.check_path_count(problem, k_max)
    eta = unroll.check_eta(problem, eta)
    return _true_meta_gradients_jit(problem, eta, int(k_max))


def true_meta_gradient(problem: MetaProblem, eta, k: int) -> jax.Array:
    """g*_k alone, for any horizon k (see ``true_meta_gradients``). Returns: [n_eta]."""
    check_int("k", k)
    return true_meta_gradients(problem, eta, k)[-1]
