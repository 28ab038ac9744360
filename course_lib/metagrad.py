"""K-step meta-gradients, all prefixes from one pass (docs/notation.md §2–§3).

Prefix structure: from θ_0, with τ_0 ~ π_{θ_0},

    θ_k = U(θ_{k−1}, τ_{k−1}; η),   τ_k ~ π_{θ_k},   L_k(η) = L_out(θ_k; τ_k),    k = 1..k_max

so τ_k scores θ_k and is then the inner batch of the next update ("reuse inner batches for outer"):
one rollout per step, and only the k_max-th outer batch is extra. Step k draws its rollout with
``jax.random.fold_in(key, k)``, so a shorter run is a prefix of a longer one.

The K-step meta-gradient holds every sampled trajectory fixed (no score-function term, unless
``sampling_correction=True``):

    g_k = dL_k/dη,    dθ_k/dη = (∂U/∂θ) dθ_{k−1}/dη + ∂U/∂η,    dθ_0/dη = 0,

and the mixing meta-gradient g_mix = Σ_k w_k g_k, w_k ≥ 0, Σ_k w_k = 1, recombines them
(``mixing.mix``). Their exact references, where a problem has them, are in ``exact``.

The estimators know nothing about the problem they run on: see ``course_lib.problems.MetaProblem``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from course_lib import unroll
from course_lib.checks import check_choice, check_finite_per_step, check_int
from course_lib.problems.contract import MetaProblem, check_sampling_correction

AUTODIFF_MODES = ("forward", "reverse")


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
    sampling_correction = check_sampling_correction(problem, sampling_correction)
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
    sampling_correction = check_sampling_correction(problem, sampling_correction)
    eta = unroll.check_eta(problem, eta)
    samples = _sample_meta_gradients_jit(
        problem, eta, key, int(k_max), int(n_seeds), mode, sampling_correction
    )
    return check_finite_per_step("meta-gradient", samples)
