"""How far Adam moves a meta-parameter: drift against random walk (docs/notation.md §6).

Adam divides each step by a running root-mean-square of its inputs, so the *size* of a
meta-gradient estimate hardly matters; what sets how fast and how reliably η moves is its
signal-to-noise ratio. For one coordinate whose estimates ĝ have mean μ and standard deviation
σ, SNR s = μ²/σ², once Adam's averages have settled (its second-moment window, 1/(1−b₂) = 1,000
updates, much longer than its momentum's, 1/(1−b₁) = 10), each update moves η by

    mean step    |E Δη| = β·|μ|/√(μ² + σ²) = β·√(s/(1+s))
    jitter       sd Δη  = β·√((1−b₁)/(1+b₁))/√(1+s)          (0.23β at b₁ = 0.9 when s ≪ 1)

with β the meta-learning rate. The momentum passes every draw on, whole, over the next ~10
updates, so over N updates the jitters add up like independent draws:

    drift        N·β·√(s/(1+s))
    random walk  β·√(N/(1+s))              (the standard deviation of η_N − η_0)
    drift / random walk = √(N·s)

The signal shows once N·s ≳ 1: an estimator with 4x the SNR needs 4x fewer updates, and β sets
how far η can go in the updates a run has. s is the SNR of what Adam is given, here the clipped
estimate. ``simulate_adam`` runs optax's Adam on Gaussian draws, the check of every formula.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from course_lib.checks import check_int, check_positive

ADAM_B1 = 0.9  # optax.adam's default momentum decay, the course's


def _check_snr(snr) -> np.ndarray:
    snr = np.asarray(snr, float)
    if not np.all(np.isfinite(snr)) or np.any(snr < 0):
        raise ValueError(f"snr must be finite and >= 0 (mu^2 / sigma^2), got {snr}")
    return snr


def mean_step(snr, learning_rate: float) -> np.ndarray:
    """β·√(s/(1+s)): how far one settled Adam update moves η on average, per coordinate."""
    snr = _check_snr(snr)
    return check_positive("learning_rate", learning_rate) * np.sqrt(snr / (1 + snr))


def step_jitter(snr, learning_rate: float, b1: float = ADAM_B1) -> np.ndarray:
    """β·√((1−b₁)/(1+b₁))/√(1+s): the standard deviation of one settled update, per coordinate."""
    snr = _check_snr(snr)
    if not 0 <= b1 < 1:
        raise ValueError(f"b1 must be in [0, 1), got {b1}")
    return (
        check_positive("learning_rate", learning_rate)
        * math.sqrt((1 - b1) / (1 + b1))
        / np.sqrt(1 + snr)
    )


def drift(snr, learning_rate: float, n_updates: int) -> np.ndarray:
    """N·β·√(s/(1+s)): how far η travels on average in ``n_updates`` updates."""
    return check_int("n_updates", n_updates, 1) * mean_step(snr, learning_rate)


def random_walk(snr, learning_rate: float, n_updates: int) -> np.ndarray:
    """β·√(N/(1+s)): the standard deviation of η's travel in ``n_updates`` updates."""
    n_updates = check_int("n_updates", n_updates, 1)
    return check_positive("learning_rate", learning_rate) * np.sqrt(
        n_updates / (1 + _check_snr(snr))
    )


def updates_to_resolve(snr, ratio: float = 1.0) -> np.ndarray:
    """N = ratio²/s: the updates after which the drift is ``ratio`` times the random walk."""
    snr = _check_snr(snr)
    check_positive("ratio", ratio)
    with np.errstate(divide="ignore"):
        return ratio**2 / snr  # inf for s = 0: pure noise never resolves


def learning_rate_to_travel(distance: float, snr, n_updates: int) -> np.ndarray:
    """β = d/(N·√(s/(1+s))): the meta-learning rate whose drift covers ``distance`` in
    ``n_updates`` updates at SNR s."""
    check_positive("distance", distance)
    snr = _check_snr(snr)
    n_updates = check_int("n_updates", n_updates, 1)
    with np.errstate(divide="ignore"):
        return distance / (n_updates * np.sqrt(snr / (1 + snr)))


def simulate_adam(
    key: jax.Array, mean: float, std: float, learning_rate: float, n_updates: int, n_runs: int
) -> jax.Array:
    """η along ``n_runs`` runs of ``optax.adam(learning_rate)`` fed i.i.d. estimates
    ĝ ~ N(mean, std²) of the gradient of a loss (η ← η + Adam's update, which goes downhill),
    from η_0 = 0. Returns ``[n_runs, n_updates + 1]``, float32."""
    n_updates = check_int("n_updates", n_updates, 1)
    n_runs = check_int("n_runs", n_runs, 1)
    if not std >= 0 or not math.isfinite(mean):
        raise ValueError(f"mean must be finite and std >= 0, got mean={mean}, std={std}")
    learning_rate = jnp.float32(check_positive("learning_rate", learning_rate))
    return _simulate(key, jnp.float32(mean), jnp.float32(std), learning_rate, n_updates, n_runs)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _simulate(key, mean, std, learning_rate, n_updates, n_runs):
    optimizer = optax.adam(learning_rate)  # traced: a new rate compiles nothing

    def one_run(run_key):
        def step(carry, step_key):
            eta, state = carry
            estimate = mean + std * jax.random.normal(step_key, ())
            update, state = optimizer.update(estimate, state, eta)
            eta = optax.apply_updates(eta, update)
            return (eta, state), eta

        eta0 = jnp.float32(0.0)
        keys = jax.random.split(run_key, n_updates)
        _, etas = jax.lax.scan(step, (eta0, optimizer.init(eta0)), keys)
        return jnp.concatenate([eta0[None], etas])

    return jax.vmap(one_run)(jax.random.split(key, n_runs))


def predicted_travel(samples, learning_rate: float, n_updates: int) -> np.ndarray:
    """The drift law's travel of η over a run, per coordinate, from the estimates Adam was given.

    ``samples [n_checkpoints, n, n_eta]``: n fresh estimates at each of the run's checkpoints,
    as Adam receives them (clipped). Pooled over the run: m the mean of all C·n, v the mean of the
    checkpoints' variances (ddof=1), and s = max(0, (m² − v/(C·n)) / v), the SNR with its noise
    floor removed (docs/notation.md §4). Then

        travel = −sign(m) · N · β · √(s/(1+s))        (downhill: against the mean)

    Returns ``[n_eta]``.
    """
    samples = np.asarray(samples, float)
    if samples.ndim != 3 or samples.shape[1] < 2:
        raise ValueError(
            f"samples must be [n_checkpoints, n >= 2, n_eta], got shape {samples.shape}"
        )
    n_updates = check_int("n_updates", n_updates, 1)
    n_checkpoints, n, _ = samples.shape
    mean = samples.mean(axis=(0, 1))
    variance = samples.var(axis=1, ddof=1).mean(axis=0)
    noisy = variance > 0
    snr = np.maximum(mean**2 - variance / (n_checkpoints * n), 0.0) / np.where(noisy, variance, 1)
    step = np.where(noisy, mean_step(np.where(noisy, snr, 0.0), learning_rate), learning_rate)
    return (
        -np.sign(mean) * n_updates * step + 0.0
    )  # without noise, every step is a full β (+0: no -0)
