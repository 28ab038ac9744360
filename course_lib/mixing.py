"""Mixing weights: the one vocabulary for every estimator the course builds from g_1..g_K.

A mixing estimator is g_mix = Σ_{k=1}^{K} w_k g_k, w_k ≥ 0, Σ_k w_k = 1 (docs/notation.md, §3).
Every estimator of the course is such a weight vector over the prefix meta-gradients g_1..g_K:

    kind             w_j, j = 1..K                                   knob
    "k-step"         1 if j = K else 0                               —
    "uniform"        1/K                                             —
    "geometric"      ∝ λ^(j−1), normalised (λ = 0: g_1; λ = 1: uniform)   lam = λ
    "lambda-return"  (1−ρ) ρ^(j−1) for j < K,  ρ^(K−1) for j = K      lam = ρ
    "free"           your own non-negative numbers, normalised        free_weights
    "fixed"          0 (the control: η is never updated)              —

``estimator_weights`` gives any of them, ``mix`` applies them to samples and ``mix_moments`` to
exact moments; the engine (``metagrad``), the explorers (``widgets``) and the experiments all call
them. NumPy throughout: cheap enough to call on every slider move.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from course_lib.checks import check_choice, check_int, check_unit_interval

WEIGHT_TOLERANCE = 1e-6
ESTIMATOR_KINDS = {
    "k-step": "K-step only",
    "geometric": "geometric, w ∝ λ^(k−1)",
    "lambda-return": "λ-return style, ρ",
    "free": "free weights",
    "uniform": "uniform, w = 1/K",
    "fixed": "fixed: η never moves",
}


def one_hot_weights(k: int, k_max: int) -> np.ndarray:
    """w_j = 1 if j = k else 0, j = 1..k_max: mixing with these gives g_k. [k_max]."""
    k_max = check_int("k_max", k_max)
    check_int("k", k)
    if k > k_max:
        raise ValueError(f"k must be <= k_max ({k_max}), got {k}")
    return np.eye(k_max)[k - 1]


def uniform_weights(k: int) -> np.ndarray:
    """w_j = 1/k, j = 1..k. [k]."""
    return _uniform(check_int("k", k))


def _uniform(k: int) -> np.ndarray:
    return np.full(k, 1.0 / k)


def geometric_weights(k: int, lam: float) -> np.ndarray:
    """w_j ∝ lam^(j−1), j = 1..k, normalised. lam = 0 gives g_1, lam = 1 the uniform mix. [k]."""
    return _geometric(check_int("k", k), check_unit_interval("lam", lam))


def _geometric(k: int, lam: float) -> np.ndarray:
    raw = lam ** np.arange(k, dtype=float)  # 0.0 ** 0 == 1: lam = 0 puts all weight on g_1
    return raw / raw.sum()


def lambda_return_weights(k: int, rho: float) -> np.ndarray:
    """λ-return-shaped weights: w_j = (1−rho) rho^(j−1) for j < k, w_k = rho^(k−1).

    rho = 0 gives g_1, rho = 1 gives g_k; they sum to 1 by construction. [k].
    """
    return _lambda_return(check_int("k", k), check_unit_interval("rho", rho))


def _lambda_return(k: int, rho: float) -> np.ndarray:
    powers = rho ** np.arange(k, dtype=float)
    weights = (1.0 - rho) * powers
    weights[-1] = powers[-1]
    return weights


def free_weights_normalised(k: int, free_weights) -> np.ndarray:
    """The first k of ``free_weights`` (finite, >= 0, not all zero), divided by their sum. [k]."""
    return _free_normalised(check_int("k", k), free_weights)


def _free_normalised(k: int, free_weights) -> np.ndarray:
    """``free_weights_normalised`` for a checked k; the free weights are checked here."""
    raw = np.asarray(free_weights, dtype=float)
    if raw.ndim != 1 or raw.size < k:
        raise ValueError(f"free_weights must be a 1-D array of at least k={k} entries, got {raw}")
    raw = raw[:k]
    if not np.all(np.isfinite(raw)) or np.any(raw < 0):
        raise ValueError(f"free weights must be finite and >= 0, got {raw}")
    if raw.sum() <= 0:
        raise ValueError(f"the free weights w1..w{k} are all zero: raise at least one above 0")
    return raw / raw.sum()


def estimator_weights(
    kind: str, k: int, k_max: int | None = None, lam: float = 0.0, free_weights=None
) -> np.ndarray:
    """The weights w_1..w_k of any estimator (table above), zero-padded to ``k_max``.

    Args:
      kind: a key of ``ESTIMATOR_KINDS``.
      k: the horizon K the estimator looks ahead (>= 1).
      k_max: the length to pad to (>= k); default k.
      lam: λ for "geometric", ρ for "lambda-return" (in [0, 1]); ignored otherwise.
      free_weights: [>= k] for "free"; ignored otherwise.
    Returns: [k_max]; sums to 1, except for "fixed" (all zero).
    """
    check_choice("kind", kind, ESTIMATOR_KINDS)
    k = check_int("k", k)
    k_max = k if k_max is None else check_int("k_max", k_max, minimum=k)
    return _estimator_weights(kind, k, k_max, _checked_lam(kind, lam), free_weights)


def _checked_lam(kind: str, lam):
    """λ (ρ for "lambda-return") checked where ``kind`` uses it, else passed through."""
    if kind in ("geometric", "lambda-return"):
        return check_unit_interval("rho" if kind == "lambda-return" else "lam", lam)
    return lam


def _estimator_weights(kind: str, k: int, k_max: int, lam, free_weights) -> np.ndarray:
    """``estimator_weights`` for checked kind, k, k_max and λ; the free weights are checked here."""
    if kind == "k-step":
        weights = np.eye(k)[k - 1]
    elif kind == "uniform":
        weights = _uniform(k)
    elif kind == "geometric":
        weights = _geometric(k, lam)
    elif kind == "lambda-return":
        weights = _lambda_return(k, lam)
    elif kind == "free":
        weights = _free_normalised(k, free_weights)
    else:
        weights = np.zeros(k)
    return np.pad(weights, (0, k_max - k))


def weight_matrix(kind: str, k_max: int, lam: float = 0.0, free_weights=None) -> np.ndarray:
    """Row K−1 holds ``estimator_weights(kind, K, k_max, ...)``, for every horizon K = 1..k_max.

    Rows where the weights are undefined (free weights all zero up to K) are NaN, so curves drawn
    from them leave a gap there. Returns: [k_max, k_max].
    """
    check_choice("kind", kind, ESTIMATOR_KINDS)
    k_max = check_int("k_max", k_max)
    lam = _checked_lam(kind, lam)
    matrix = np.zeros((k_max, k_max))
    for k in range(1, k_max + 1):
        try:
            matrix[k - 1] = _estimator_weights(kind, k, k_max, lam, free_weights)
        except ValueError:  # no mix at K: the free weights w_1..w_K are all zero, or too few
            matrix[k - 1] = np.nan
    return matrix


def check_weights(weights, k_max: int | None = None) -> np.ndarray:
    """Validate mixing weights: 1-D, 1 <= len <= k_max, finite, >= 0, summing to 1 within 1e-6.

    Returns them as a float numpy array; raises ``ValueError`` naming ``weights`` otherwise.
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
    if k_max is not None and w.size > k_max:
        raise ValueError(f"weights must have at most k_max={k_max} entries, got {w.size}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be finite and >= 0, got {w}")
    if abs(w.sum() - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights must sum to 1 (within {WEIGHT_TOLERANCE}), got sum {w.sum()!r}")
    return w


def mix(per_step, weights):
    """g_mix = Σ_{j=1}^{K} w_j g_j, mixing the first K prefix meta-gradients: for one weight
    vector, or for the rows of a weight matrix at once.

    Args:
      per_step: [..., k_max, n_eta] (e.g. [k_max, n_eta] or a seed cache [n_seeds, k_max, n_eta]).
      weights: [K] with K <= k_max, >= 0, summing to 1 (checked when concrete; pad with zeros to
        k_max to keep one shape); or [..., M, K], M weight vectors as rows (e.g. ``weight_matrix``,
        one per horizon), their leading axes broadcasting against per_step's (weights per seed).
        Rows are not checked: ``weight_matrix`` marks a mix that does not exist by a NaN row.
    Returns: [..., n_eta] for a vector, [..., M, n_eta] for rows. Numpy in, numpy out (fast: no
    dispatch); jax arrays or tracers go through ``jnp`` so the function can sit inside ``jit``
    with traced weights.
    """
    if np.ndim(per_step) < 2:
        raise ValueError(f"per_step must have shape [..., k_max, n_eta], got {np.shape(per_step)}")
    k_max = np.shape(per_step)[-2]
    traced = isinstance(weights, jax.core.Tracer) or isinstance(per_step, jax.core.Tracer)
    xp = jnp if traced or isinstance(per_step, jax.Array) else np
    if np.ndim(weights) < 2 and not isinstance(weights, jax.core.Tracer):
        weights = check_weights(weights, k_max)
    k = np.shape(weights)[-1]
    if k > k_max:
        raise ValueError(f"weights must have at most k_max={k_max} entries, got {k}")
    weights = xp.asarray(weights, dtype=per_step.dtype)
    spec = "k,...ke->...e" if weights.ndim == 1 else "...mk,...ke->...me"
    return xp.einsum(spec, weights, per_step[..., :k, :])


# --------------------------------------------------------------------------------------------------
# Optimal mixing weights (docs/notation.md §3–§4)


def _check_joint_moments(mean, joint_cov, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, joint_cov = np.asarray(mean, dtype=float), np.asarray(joint_cov, dtype=float)
    if mean.ndim != 2:
        raise ValueError(f"mean must have shape [k_max, n_eta], got {mean.shape}")
    if joint_cov.shape != mean.shape * 2:
        raise ValueError(
            f"joint_cov must have shape [k_max, n_eta, k_max, n_eta] = {mean.shape * 2}, "
            f"got {joint_cov.shape}"
        )
    if target is None:
        return mean, joint_cov, None
    target = np.asarray(target, dtype=float)
    if target.shape != mean.shape[1:] or not np.any(target):
        raise ValueError(f"target must be a non-zero [n_eta] = {mean.shape[1:]}, got {target}")
    return mean, joint_cov, target


def mix_moments(mean, joint_cov, weights) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of g_mix = Σ_k w_k g_k from the joint moments of g_1..g_k_max:

        E g_mix = Σ_k w_k E g_k,     Cov g_mix = Σ_k Σ_j w_k w_j Cov[g_k, g_j].

    Args:
      mean: [k_max, n_eta]; joint_cov: [k_max, n_eta, k_max, n_eta] (e.g.
        ``exact.exact_meta_gradient_moments(..., joint=True)``).
      weights: [<= k_max], checked as in ``mix``; or [M, <= k_max], one mix per row, unchecked.
    Returns: mean [n_eta] and cov [n_eta, n_eta], or per row [M, n_eta] and [M, n_eta, n_eta].
    """
    mean, joint_cov, _ = _check_joint_moments(mean, joint_cov, None)
    w = np.asarray(weights, dtype=float)
    if w.ndim < 2:
        w = check_weights(weights, len(mean))
    elif w.ndim != 2 or w.shape[1] > len(mean):
        raise ValueError(f"weights must be [<= {len(mean)}] or [M, <= {len(mean)}], got {w.shape}")
    w = np.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, len(mean) - w.shape[-1])])
    return w @ mean, np.einsum("...k,kejf,...j->...ef", w, joint_cov, w)


def _nonnegative_quadratic_minimum(gram: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """argmin over u >= 0 of uᵀSu − 2bᵀu, S = ``gram`` [K, K] positive semi-definite and
    b = ``linear`` [K] in the range of S, by scipy's non-negative least squares.

    The eigen factor S = V Λ Vᵀ (eigenvalues λ > 0 kept) gives A = Λ^½ Vᵀ and y = Λ^−½ Vᵀ b with

        ‖Au − y‖² = uᵀSu − 2bᵀu + bᵀS⁺b,

    the same minimiser when b lies in the range of S (true of ``optimal_mixing_weights``: there
    b = E[G] g* and S ⪰ E[G] E[G]ᵀ, G = [g_1..g_K]). Returns [K], 0 when S is 0.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    kept = eigenvalues > 1e-12 * max(eigenvalues.max(), np.finfo(float).tiny)
    if not kept.any():
        return np.zeros(len(linear))
    root, basis = np.sqrt(eigenvalues[kept]), eigenvectors[:, kept]
    return scipy.optimize.nnls(root[:, None] * basis.T, (basis.T @ linear) / root)[0]


def optimal_mixing_weights(mean, joint_cov, target) -> np.ndarray:
    """The weights w >= 0, Σ_k w_k = 1, whose mix has the smallest scale-free error to ``target``.

    The scale-free error of g_w = Σ_k w_k g_k (``stats.scale_free_mse``) is
    min over c >= 0 of E‖c g_w − g*‖² / ‖g*‖². With b_k = g*·E g_k and
    S_kj = E[g_k·g_j] = E g_k·E g_j + tr Cov[g_k, g_j],

        E‖c g_w − g*‖² = c² wᵀSw − 2c bᵀw + ‖g*‖²,

    and (c, w) enter only through u = c w, which ranges over all of u >= 0. So the optimum is one
    convex problem, a non-negative least squares in Gram form,

        u* = argmin_{u >= 0} uᵀSu − 2 bᵀu,     w = u* / Σ_k u*_k,     error = 1 − bᵀu* / ‖g*‖²,

    the same as maximising (bᵀw)² / (wᵀSw) = cos²·SNR/(1 + SNR)·‖g*‖² over w >= 0 with bᵀw > 0.
    When no mix has a mean with a positive component along g* (every b_k <= 0), every mix scores
    1; the uniform weights are returned.

    Args:
      mean: [k_max, n_eta] E g_k; joint_cov: [k_max, n_eta, k_max, n_eta] Cov[g_k, g_j] (e.g.
        ``exact.exact_meta_gradient_moments(..., joint=True)``); target: [n_eta] g*, non-zero.
    Returns: [k_max], >= 0, summing to 1.
    """
    mean, joint_cov, target = _check_joint_moments(mean, joint_cov, target)
    gram = mean @ mean.T + np.einsum("keje->kj", joint_cov)
    u = _nonnegative_quadratic_minimum((gram + gram.T) / 2, mean @ target)
    if u.sum() <= 0:
        return np.full(len(mean), 1.0 / len(mean))
    return u / u.sum()


def optimal_mixing_weights_from_samples(samples, target) -> np.ndarray:
    """``optimal_mixing_weights`` from estimates over seeds: the sample mean and the unbiased joint
    covariance (N − 1) of the rows, the moments ``stats.meta_gradient_stats`` uses, so the weights
    minimise its ``scale_free_mse`` field over every mix of these samples.

    Args:
      samples: [n_seeds, k_max, n_eta] (``metagrad.sample_meta_gradients``); target: [n_eta].
    Returns: [k_max], >= 0, summing to 1.
    """
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 3 or samples.shape[0] < 2:
        raise ValueError(
            f"samples must have shape [n_seeds >= 2, k_max, n_eta], got {samples.shape}"
        )
    flat = samples.reshape(samples.shape[0], -1)
    joint_cov = np.cov(flat, rowvar=False, ddof=1).reshape(samples.shape[1:] * 2)
    return optimal_mixing_weights(samples.mean(axis=0), joint_cov, target)
