"""Mixing that tunes itself: weights over g_1..g_K chosen online from running moments.

``mixing.optimal_mixing_weights`` needs the exact means and covariances of g_1..g_K and the
target g*. An agent that tunes η online has neither; it sees one draw of (g_1, ..., g_K) per
meta-update. This module estimates what the optimum needs from those draws (docs/notation.md §8):

    m_k  = EMA of g_k                 [K, n_eta]   (the per-step means)
    S_kj = EMA of g_k·g_j             [K, K]       (second moments: E g_k·E g_j + tr Cov[g_k, g_j])
    b_k  = m_k · m_K                               (g* stood in for by the mean of g_K, the least
                                                    biased horizon the agent sees)

and mixes with the weights that minimise the scale-free error the moments imply,

    u = argmin_{u >= 0} uᵀ S u − 2 bᵀ u,     w_opt = u / Σ_k u_k,

regularised toward a geometric mix w_geo by a prior worth ``prior_strength`` meta-updates:

    w = (n w_opt + p w_geo) / (n + p),      n = Σ_{i<t} decay^i  (the window's effective size).

Early on (n small) the estimator is the geometric mix; as moments accumulate it moves toward the
weights the recent window favours. The EMAs are bias-corrected as Adam's are. Everything is
``jnp`` and jit-able, so the rule runs inside the experiments' compiled scan.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from course_lib.checks import check_int, check_number

Array = jax.Array

# The non-negative quadratic minimum below enumerates the 2^K − 1 free sets: exact and jit-able,
# and cheap for the horizons the course uses.
MAX_HORIZON = 10


class MixMoments(NamedTuple):
    """Running moments of the prefix meta-gradients (EMAs before bias correction)."""

    mean: Array  # [K, n_eta] EMA of g_k
    gram: Array  # [K, K] EMA of g_k·g_j
    weight: Array  # scalar, 1 − decay^t: divides the EMAs to remove their bias toward 0
    count: Array  # scalar, Σ_{i<t} decay^i: the effective number of meta-updates in the window


def init_moments(k: int, n_eta: int) -> MixMoments:
    """Moments before any meta-update: all zero."""
    k = check_int("k", k, maximum=MAX_HORIZON)
    n_eta = check_int("n_eta", n_eta)
    zero = jnp.zeros((), jnp.float32)
    return MixMoments(
        jnp.zeros((k, n_eta), jnp.float32), jnp.zeros((k, k), jnp.float32), zero, zero
    )


def update_moments(moments: MixMoments, per_step: Array, decay: float) -> MixMoments:
    """Fold one draw ``per_step`` [K, n_eta] (row k−1 is g_k) into the moments, with ``decay``
    in [0, 1) (a window of about 1 / (1 − decay) meta-updates)."""
    keep = jnp.asarray(decay, moments.mean.dtype)
    per_step = per_step.astype(moments.mean.dtype)
    return MixMoments(
        keep * moments.mean + (1 - keep) * per_step,
        keep * moments.gram + (1 - keep) * per_step @ per_step.T,
        keep * moments.weight + (1 - keep),
        keep * moments.count + 1,
    )


def nonnegative_quadratic_minimum(gram: Array, linear: Array) -> Array:
    """argmin over u >= 0 of uᵀ S u − 2 bᵀ u for S = ``gram`` [K, K] positive semi-definite and
    b = ``linear`` [K]; 0 when no u >= 0 makes the objective negative.

    At the optimum, the free coordinates F (u_F > 0) solve S_FF u_F = b_F. So solve that system
    for every one of the 2^K − 1 sets F, keep the solutions that are >= 0, and take the one with
    the lowest objective: exact, branch-free and jit-able, where scipy's non-negative least
    squares (behind ``mixing.optimal_mixing_weights``, on the host) cannot run inside the
    compiled scan; tested against scipy's.
    """
    k = linear.shape[0]
    if k > MAX_HORIZON:
        raise ValueError(f"K must be <= {MAX_HORIZON} for the enumerated minimum, got {k}")
    masks = (jnp.arange(1, 2**k)[:, None] >> jnp.arange(k)) & 1 == 1  # [2^K − 1, K]
    # A relative ridge keeps S_FF solvable when g_k's are collinear (S singular on F).
    finfo = jnp.finfo(gram.dtype)
    ridge = 10 * finfo.eps * jnp.maximum(jnp.trace(gram) / k, finfo.tiny)
    eye = jnp.eye(k, dtype=gram.dtype)

    def solve(mask):
        square = jnp.where(mask[:, None] & mask[None, :], gram, eye) + ridge * eye
        u = jnp.where(mask, jnp.linalg.solve(square, jnp.where(mask, linear, 0.0)), 0.0)
        value = u @ gram @ u - 2 * linear @ u
        return u, jnp.where(jnp.all(u >= 0) & jnp.isfinite(value), value, jnp.inf)

    candidates, values = jax.vmap(solve)(masks)
    best = jnp.argmin(values)
    return jnp.where(values[best] < 0, candidates[best], jnp.zeros(k, gram.dtype))


def self_tuning_weights(moments: MixMoments, prior: Array, prior_strength: float) -> Array:
    """The weights w [K] of the module docstring: the moments' optimum, pulled toward ``prior``
    [K] (e.g. geometric weights, summing to 1) by ``prior_strength`` >= 0 meta-updates' worth.
    With no moments yet (or none that favour any mix), w = ``prior``."""
    scale = jnp.where(moments.weight > 0, 1 / jnp.maximum(moments.weight, 1e-30), 0.0)
    mean, gram = moments.mean * scale, moments.gram * scale
    u = nonnegative_quadratic_minimum((gram + gram.T) / 2, mean @ mean[-1])
    total = u.sum()
    count = jnp.where(total > 0, moments.count, 0.0)
    optimum = jnp.where(total > 0, u / jnp.where(total > 0, total, 1.0), prior)
    total_weight = count + prior_strength
    mixed = (count * optimum + prior_strength * prior) / jnp.where(
        total_weight > 0, total_weight, 1
    )
    return jnp.where(total_weight > 0, mixed, prior)


def check_settings(decay: float, prior_strength: float) -> tuple[float, float]:
    """``decay`` in [0, 1) and ``prior_strength`` >= 0 (> 0 where ``decay`` is 0), as floats,
    else a ``ValueError`` naming the argument."""
    decay = check_number("decay", decay, 0.0, 1.0)
    if decay == 1.0:
        raise ValueError("decay must be below 1 (a window of 1 / (1 − decay) meta-updates), got 1")
    prior_strength = check_number("prior_strength", prior_strength, 0.0, math.inf)
    if decay == 0.0 and prior_strength == 0.0:
        raise ValueError("prior_strength must be > 0 when decay is 0 (a window of one draw)")
    return decay, prior_strength
