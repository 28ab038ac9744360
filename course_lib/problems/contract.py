"""The meta-problem contract: what ``course_lib.metagrad``'s estimators run on, and what it can do.

A meta-problem bundles pure functions and data (docs/notation.md §1):

    batch, state = sample(state, key)        τ ~ π_θ acting on stop_gradient(θ); env state advances
    state = inner_update(state, batch, η)    θ' = U(θ, τ; η), differentiable in state and η
    loss = outer_loss(state, batch)          L_out(θ; τ'), fixed reference settings, no η

The estimators never look inside ``state`` or ``batch``: any pytree works. One rule: sampling
changes only the environment's part of the state, the inner update only the agent's part
(weights, optimiser state); forward mode relies on it to keep sampling outside its jvp.

A problem is compared and hashed by identity, so it can be a static argument of ``jax.jit``;
``problems.make_problem`` returns the same object for the same settings, so compiled functions
are reused.

What a problem can do is answered here, before anything is traced: each ``*_refusal`` function
returns why a request cannot be served ("" where it can), and each ``check_*`` raises that reason
as a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

MAX_ENUMERATED_PATHS = 2**20
MAX_HESSIAN_ENTRIES = 2**25


class ExactHooks(NamedTuple):
    """What exact enumeration needs (toy problems with finitely many batches, docs/notation.md §5).

    ``enumerate_batches(n_steps)``: every sequence of inner batches, fields [n_paths, n_steps, ...];
    ``batch_log_prob(state, batch)``: log P(batch | state), differentiable in state;
    ``expected_outer_loss(state)``: E_τ'[L_out(state; τ')], exact.
    """

    enumerate_batches: Callable[[int], Any]
    batch_log_prob: Callable[[Any, Any], jax.Array]
    expected_outer_loss: Callable[[Any], jax.Array]


class GaussianHooks(NamedTuple):
    """What exact references need on a problem driven by Gaussian noise (docs/notation.md §5).

    The contract: ``sample`` returns a standard-normal batch ξ of shape ``noise_shape`` whatever
    the state, and leaves the state unchanged; and for a fixed η every g_k is a polynomial of
    degree at most 2 in the noise ξ_0..ξ_k (SGD on a quadratic: θ_k and dθ_k/dη are affine in the
    noise, g_k is their product). Then g_k's moments follow exactly from its value, gradient and
    Hessian at ξ = 0, and since the noise does not depend on η, E[g_k] = g*_k.

    ``noise_shape``: the shape of one batch;
    ``expected_losses(eta, horizon)``: E[L_out(θ_k; τ_k)] for k = 1..horizon, [horizon], exact and
    differentiable in η.
    """

    noise_shape: tuple[int, ...]
    expected_losses: Callable[[jax.Array, int], jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class MetaProblem:
    """A meta-learning problem: initial state, sampler, inner update, outer loss (see module doc).

    ``meta_names[i]`` names ``eta[i]``; ``eta0`` [n_eta] is the default starting point;
    ``hyper_parameters(eta)`` [n_eta] maps the unconstrained η to the values the inner update uses
    (e.g. exp for a learning rate, sigmoid for a discount). ``exact`` is set only on toy problems
    with exact references: ``ExactHooks`` where every trajectory can be enumerated,
    ``GaussianHooks`` where the data are Gaussian noise. ``settings`` records what built the
    problem (``records_settings``).

    Two optional facts serve the estimators that look at the outer loss's value, not only its
    gradient (``course_lib.estimators``, the sampling correction of ``metagrad``):
    ``outer_loss_is_cost`` says the value of L_out(θ; τ) is a sample of the cost being minimised
    (its mean is E[L_out(θ)]), not a surrogate built for its gradient (Snake's policy-gradient loss
    is one); ``batch_log_prob(state, batch)`` is log P(τ | θ) of a sampled batch under the policy
    that drew it, differentiable in the state (docs/notation.md §2).
    """

    name: str
    meta_names: tuple[str, ...]
    eta0: jax.Array
    init_state: Any
    sample: Callable[[Any, jax.Array], tuple[Any, Any]]
    inner_update: Callable[[Any, Any, jax.Array], Any]
    outer_loss: Callable[[Any, Any], jax.Array]
    hyper_parameters: Callable[[jax.Array], jax.Array]
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    exact: ExactHooks | GaussianHooks | None = None
    outer_loss_is_cost: bool = False
    batch_log_prob: Callable[[Any, Any], jax.Array] | None = None

    @property
    def n_eta(self) -> int:
        return len(self.meta_names)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"MetaProblem({self.name!r}, {shown})"


# --------------------------------------------------------------------------------------------------
# What a problem was built with


def bound_settings(builder: Callable[..., MetaProblem], **settings) -> dict[str, Any]:
    """``builder``'s arguments for ``settings``, defaults filled in, sequences frozen to tuples:
    one value per setting, whether a default was given explicitly or left out."""
    bound = inspect.signature(builder).bind(**settings)
    bound.apply_defaults()
    return {name: _freeze(value) for name, value in bound.arguments.items()}


def _freeze(value):
    if isinstance(value, (list, tuple, np.ndarray, jax.Array)):
        value = np.asarray(value).tolist()
        return tuple(value) if isinstance(value, list) else value
    return value


def records_settings(builder: Callable[..., MetaProblem]) -> Callable[..., MetaProblem]:
    """``builder``, its problem's ``settings`` being the arguments it was called with
    (``bound_settings``): a problem's signature is written once, in its builder."""

    @functools.wraps(builder)
    def build(**settings) -> MetaProblem:
        settings = bound_settings(builder, **settings)
        return dataclasses.replace(builder(**settings), settings=settings)

    return build


# --------------------------------------------------------------------------------------------------
# What a problem can do


def exact_refusal(problem: MetaProblem) -> str:
    """Why ``problem`` has no exact references, or "" where it has them."""
    if problem.exact is None:
        return (
            f"problem {problem.name!r} has no exact references (the bandit and the quadratic have)"
        )
    return ""


def paths_refusal(problem: MetaProblem, k: int) -> str:
    """Why the k-step paths of ``problem`` cannot be listed, or "" where they can."""
    if reason := exact_refusal(problem):
        return reason
    if isinstance(problem.exact, GaussianHooks):
        return (
            f"problem {problem.name!r} has Gaussian noise, no paths to list: "
            "use exact_meta_gradient_moments"
        )
    batches = problem.exact.enumerate_batches(1)
    per_step = jax.tree_util.tree_leaves(batches)[0].shape[0]
    if per_step**k > MAX_ENUMERATED_PATHS:
        return (
            f"k_max={k} needs {per_step}^{k} paths, more than {MAX_ENUMERATED_PATHS}: "
            "use a smaller k_max"
        )
    return ""


def noise_size_refusal(problem: MetaProblem, k_max: int) -> str:
    """Why the Gaussian moments of g_1..g_k_max need too large Hessians, or "" where they fit
    (a Gaussian problem only)."""
    noise_dim = (k_max + 1) * math.prod(problem.exact.noise_shape)
    if k_max * problem.n_eta * noise_dim**2 > MAX_HESSIAN_ENTRIES:
        return (
            f"k_max={k_max} needs Hessians over {noise_dim} noise values, more than "
            f"{MAX_HESSIAN_ENTRIES} entries in all: use a smaller k_max"
        )
    return ""


def moments_refusal(problem: MetaProblem, k_max: int) -> str:
    """Why the exact moments of g_1..g_k_max cannot be computed, or "" where they can."""
    if reason := exact_refusal(problem):
        return reason
    if isinstance(problem.exact, GaussianHooks):
        return noise_size_refusal(problem, k_max)
    return paths_refusal(problem, k_max)


def target_refusal(problem: MetaProblem, horizon: int) -> str:
    """Why g*_1..g*_horizon cannot be computed exactly, or "" where they can (a Gaussian problem's
    expected losses are a scan of any length)."""
    if reason := exact_refusal(problem):
        return reason
    if isinstance(problem.exact, GaussianHooks):
        return ""
    return paths_refusal(problem, horizon)


def sampling_correction_refusal(problem: MetaProblem) -> str:
    """Why ``problem`` cannot take the sampling correction, or "" where it can."""
    lacks = [
        name for name in ("batch_log_prob", "outer_loss_is_cost") if not getattr(problem, name)
    ]
    if lacks:
        return (
            f"problem {problem.name!r} lacks {' and '.join(lacks)}, which sampling_correction "
            "needs (log P(τ | θ) of each sampled batch, and an outer loss whose value is the cost, "
            "not a surrogate; the bandit and the quadratic have both)"
        )
    return ""


def _raise_if(reason: str) -> None:
    if reason:
        raise ValueError(reason)


def require_exact(problem: MetaProblem) -> ExactHooks | GaussianHooks:
    """The problem's exact hooks, or a ``ValueError`` saying it has none."""
    _raise_if(exact_refusal(problem))
    return problem.exact


def check_path_count(problem: MetaProblem, k: int) -> ExactHooks:
    """The enumerable problem's hooks, if its k-step paths are few enough to list."""
    _raise_if(paths_refusal(problem, k))
    return problem.exact


def check_noise_size(problem: MetaProblem, k_max: int) -> None:
    """Raise if the Gaussian moments over k_max steps need too large Hessians."""
    _raise_if(noise_size_refusal(problem, k_max))


def check_sampling_correction(problem: MetaProblem, sampling_correction) -> bool:
    """``sampling_correction`` if it is a bool the problem can serve, else a ``ValueError``."""
    if not isinstance(sampling_correction, bool):
        raise ValueError(f"sampling_correction must be True or False, got {sampling_correction!r}")
    if sampling_correction:
        _raise_if(sampling_correction_refusal(problem))
    return sampling_correction
