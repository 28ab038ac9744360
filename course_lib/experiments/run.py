"""Running the capstone: one compiled chunk of meta-updates per group of estimators sharing K, the
variance samples drawn from the frozen agents, ``run_experiment``, which saves after each step,
and ``run_experiments``, several meta-learning rates as rows of the same compiled chunk.

One meta-update is one block of K inner updates from the agent's current state (docs/notation.md
§2 for the block, §6 for the η update):

    τ_0 ~ π_{θ_0};  θ_k = U(θ_{k−1}, τ_{k−1}; η),  τ_k ~ π_{θ_k},  L_k = L_out(θ_k; τ_k),  k = 1..K
    g_k = dL_k/dη   (all k from one forward-mode pass)
    ĝ   = Σ_k w_k g_k,          η ← η + Adam(clip_by_global_norm(ĝ, 0.1)),   next block from θ_K

The whole run is one compiled ``lax.scan`` per checkpoint chunk, vmapped over seeds (and over
estimators that share K, and meta-optimisers): ``make_chunk`` follows PureJaxRL's
``make_train(config)``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from course_lib import metagrad, mixing, problems, self_tuning
from course_lib.experiments.results import (
    Logs,
    Results,
    RunProgress,
    discard_partial,
    load_partial,
    partial_path,
    save_partial,
    save_results,
    with_measurements,
    write_sidecar,
)
from course_lib.experiments.settings import ExperimentConfig, Plan, make_plan
from course_lib.problems import MetaProblem

Array = jax.Array


# --------------------------------------------------------------------------------------------------
# One block: K inner updates from the current state, every prefix meta-gradient, the final state


def _episode_totals(batch) -> Array:
    """[sum of returns of the episodes that ended in ``batch``, how many ended] (a Trajectory)."""
    return jnp.stack([batch.finished_returns.sum(), batch.dones.sum().astype(jnp.float32)])


def meta_gradient_block(
    problem: MetaProblem, state, eta: Array, key: Array, k: int, outer_batches: int = 1
):
    """One meta-gradient block from ``state``: ``metagrad.meta_gradient_pass`` plus episode totals.

    Returns:
      per_step [k, n_eta] (row j−1 is g_j; g_k scored on ``outer_batches`` outer batches), the
      state after k inner updates and the outer rollouts, episode totals [2] (sum of
      finished-episode returns, their number) over all k + ``outer_batches`` rollouts.
    """
    per_step, final_state, totals = metagrad.meta_gradient_pass(
        problem, state, eta, key, k, summarize=_episode_totals, outer_batches=outer_batches
    )
    return per_step, final_state, totals.sum(axis=0)


# --------------------------------------------------------------------------------------------------
# A checkpoint chunk of meta-updates, and the variance samples drawn from the frozen agents


class RunState(NamedTuple):
    """The carry of one run (one estimator, one seed); vmapped runs stack every leaf."""

    problem_state: Any
    eta: Array  # [n_eta]
    meta_opt_state: Any
    key: Array  # the run's root key
    update: Array  # meta-updates done so far (int32 scalar)
    mix_moments: self_tuning.MixMoments  # running moments of g_1..g_K (used by auto<K> only)


class ChunkLog(NamedTuple):
    """What one chunk logs for one run."""

    episode_totals: Array  # [2] sum of finished-episode returns and their number, over the chunk
    eta: Array  # [n_eta] at the checkpoint
    skipped: Array  # meta-updates skipped because ĝ was non-finite
    weights: Array  # [k] the mixing weights of the chunk's last meta-update


def _clipped_adam(learning_rate, clip) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(learning_rate))


def make_meta_optimizer(learning_rate: float, clip: float) -> optax.GradientTransformation:
    """η's optimiser: global-norm clip then Adam (the follow-up code's 0.1 and 3e-3).

    Both numbers live in the optimiser's state (``optax.inject_hyperparams``), not in the compiled
    update, so runs at different meta-learning rates share one compiled chunk.
    """
    return optax.inject_hyperparams(_clipped_adam)(learning_rate=learning_rate, clip=clip)


@functools.lru_cache(maxsize=16)
def make_chunk(
    problem: MetaProblem,
    k: int,
    n_updates: int,
    outer_batches: int = 1,
    self_tuning_decay: float = 0.95,
    self_tuning_prior: float = 10.0,
) -> Callable:
    """Compile ``chunk(runs, weights, tuned) -> (runs, logs)``: ``n_updates`` meta-updates of
    block k (g_k scored on ``outer_batches`` outer batches, ``meta_gradient_block``).

    ``runs``: a ``RunState`` with a leading [n_runs] axis; ``weights`` [n_runs, k] (one-hot for the
    K-step estimator, geometric for mixing, zeros for the fixed control: arrays, so estimators of
    the same K share one compiled function); ``tuned`` [n_runs] bool: the runs whose weights tune
    themselves (``self_tuning.self_tuning_weights`` from the moments before each update, with
    ``weights`` as the prior). ``logs``: a ``ChunkLog`` with leading [n_runs]. The
    function is a ``lax.scan`` over meta-updates, vmapped over runs; update u of a run uses
    ``fold_in(fold_in(run key, 0), u)``, so how a run is cut into chunks never changes its numbers.
    Each run's meta-learning rate and clip are read from its optimiser state.
    """
    # update() takes the learning rate and clip from the state, never these placeholders.
    meta_optimizer = make_meta_optimizer(learning_rate=0.0, clip=0.0)

    def meta_update(prior: Array, tuned: Array, carry, _):
        run, totals, skipped, _ = carry
        key = jax.random.fold_in(jax.random.fold_in(run.key, 0), run.update)
        per_step, problem_state, block_totals = meta_gradient_block(
            problem, run.problem_state, run.eta, key, k, outer_batches
        )
        # The weights come from the moments before this draw, so they do not depend on it.
        own = self_tuning.self_tuning_weights(run.mix_moments, prior, self_tuning_prior)
        weights = jnp.where(tuned, own, prior)
        moments = self_tuning.update_moments(run.mix_moments, per_step, self_tuning_decay)
        meta_grad = mixing.mix(per_step, weights)
        updates, meta_opt_state = meta_optimizer.update(meta_grad, run.meta_opt_state, run.eta)
        finite = jnp.all(jnp.isfinite(meta_grad))
        # A non-finite ĝ would poison Adam's moments for good: keep η and its optimiser unchanged.
        eta, meta_opt_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(finite, new, old),
            (optax.apply_updates(run.eta, updates), meta_opt_state),
            (run.eta, run.meta_opt_state),
        )
        run = RunState(problem_state, eta, meta_opt_state, run.key, run.update + 1, moments)
        skipped = skipped + (~finite).astype(jnp.int32)
        return (run, totals + block_totals, skipped, weights), None

    def chunk(run: RunState, weights: Array, tuned: Array):
        (run, totals, skipped, last), _ = jax.lax.scan(
            functools.partial(meta_update, weights, tuned),
            (run, jnp.zeros(2), jnp.int32(0), weights),
            None,
            length=n_updates,
        )
        return run, ChunkLog(totals, run.eta, skipped, last)

    return jax.jit(jax.vmap(chunk))


@functools.lru_cache(maxsize=16)
def make_sampler(problem: MetaProblem, k_var: int, n_variance_samples: int) -> Callable:
    """Compile ``sampler(runs) -> [n_runs, n_variance_samples, k_var, n_eta]``.

    Independent replicas of a ``k_var``-step block from each run's current state and η (same θ,
    optimiser state and boards; fresh keys for actions, hence for everything downstream): the
    samples from which every estimator's variance and SNR are measured. Replica i of a run uses
    ``fold_in(fold_in(fold_in(run key, 1), update), i)``; sampling does not change the run.
    """

    def sample(run: RunState) -> Array:
        root = jax.random.fold_in(jax.random.fold_in(run.key, 1), run.update)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, jnp.arange(n_variance_samples))
        return jax.vmap(
            lambda key: meta_gradient_block(problem, run.problem_state, run.eta, key, k_var)[0]
        )(keys)

    return jax.jit(jax.vmap(sample))


# --------------------------------------------------------------------------------------------------
# Running: chunks between checkpoints, saved after each so an interrupted run resumes


def _initial_runs(plans: Sequence[Plan], indices: Sequence[int], states: Sequence) -> RunState:
    """Runs of the estimators ``indices`` for every plan (estimator-major, then plan, then seed),
    stacked on a leading axis.

    The plans differ only in their meta-optimiser (``run_experiments``): each run's rate and clip
    live in its optimiser state. Seed s starts from the same θ_0, boards and run key for every
    estimator and plan: common random numbers. η starts at each estimator's ``plan.eta0`` (its
    start, or the problem's defaults); ``states`` are the seeds' problem states
    (``_seed_problem_state``).
    """
    plan = plans[0]
    runs = [
        RunState(
            states[s],
            plan.eta0[i],
            make_meta_optimizer(p.config.meta_learning_rate, p.config.meta_clip).init(plan.eta0[i]),
            jax.random.fold_in(jax.random.PRNGKey(plan.config.seed), s),
            jnp.int32(0),
            self_tuning.init_moments(plan.estimators[i].k, plan.problem.n_eta),
        )
        for i in indices
        for p in plans
        for s in range(plan.config.n_seeds)
    ]
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *runs)


def _seed_problem_state(plan: Plan, seed: int):
    """θ_0, optimiser state and boards of seed ``seed``: the snake problem built with that seed."""
    settings = {**plan.config.problem, "seed": plan.config.seed * 1_000_003 + seed}
    return problems.make_problem("snake", **settings).init_state


def _steps_per_rollout(plan: Plan) -> int:
    batch, _ = jax.eval_shape(plan.problem.sample, plan.problem.init_state, jax.random.PRNGKey(0))
    return int(np.prod(batch.rewards.shape))


def _empty_logs(plan: Plan, n_plans: int) -> Logs:
    """NaN-filled logs [E, n_plans x S, C, ...] (plan-major, then seed, along the second axis)."""
    c = plan.config
    lead = (len(plan.estimators), n_plans * c.n_seeds, c.n_checkpoints)
    n_eta = plan.problem.n_eta
    return Logs(
        np.full((*lead, 2), np.nan, np.float32),
        np.full((*lead, n_eta), np.nan, np.float32),
        np.full((*lead, c.n_variance_samples, plan.k_var, n_eta), np.nan, np.float32),
        np.zeros(lead, np.int32),
        np.full((*lead, plan.k_var), np.nan, np.float32),
    )


def _store(log: np.ndarray, index_groups, checkpoint: int, values) -> None:
    """Write ``values`` [n_runs, ...] (runs ordered group by group, estimator-major, then plan and
    seed) into ``log[estimator, plan x seed, checkpoint]``."""
    indices = [i for group in index_groups for i in group]
    values = np.asarray(values)
    log[indices, :, checkpoint] = values.reshape(len(indices), log.shape[1], *values.shape[1:])


def _train(
    plans: Sequence[Plan], progress: bool, partial: Path | None = None, overwrite: bool = False
) -> tuple[Logs, float]:
    """Every plan's runs, as rows of one compiled chunk per group of K and checkpoint.

    Returns the logs [E, len(plans) x S, C, ...] (``_empty_logs``) and the compute seconds. With
    ``partial`` (one plan only), the state is saved there after every step, and a partial run with
    the same settings is resumed from it (``load_partial``, ``overwrite``).
    """
    plan, config = plans[0], plans[0].config
    # Per checkpoint: one chunk per group of estimators sharing K and M, then one measuring step.
    steps_per_checkpoint = len(plan.groups) + (config.n_variance_samples > 0)
    n_steps = config.n_checkpoints * steps_per_checkpoint
    # The seeds' warm-ups (and their compiling) come before the first chunk: a bar of their own.
    seeds = tqdm(range(config.n_seeds), desc="warming up seeds", disable=not progress)
    states = [_seed_problem_state(plan, s) for s in seeds]
    fresh = [_initial_runs(plans, indices, states) for *_, indices in plan.groups]
    state = RunProgress(0, fresh, _empty_logs(plan, len(plans)), 0.0)
    if partial is not None:
        state = load_partial(partial, config, state, n_steps, overwrite)
    rows = len(plans) * config.n_seeds  # the runs of one estimator
    per_run = [
        (
            np.repeat(
                [plan.estimators[i].weights(k, config.mix_lambda) for i in indices], rows, axis=0
            ).astype(np.float32),
            np.repeat([plan.estimators[i].self_tuning for i in indices], rows),
        )
        for k, _, indices in plan.groups
    ]
    runs, logs, seconds = state.runs, state.logs, state.seconds
    bar = tqdm(total=n_steps, initial=state.done, disable=not progress, desc="checkpoint chunks")
    for step in range(state.done, n_steps):
        checkpoint, g = divmod(step, steps_per_checkpoint)
        start = time.perf_counter()
        if g < len(plan.groups):
            k, m, indices = plan.groups[g]
            chunk = make_chunk(
                plan.problem,
                k,
                plan.rollouts_per_checkpoint // (k + m),
                m,
                config.self_tuning_decay,
                config.self_tuning_prior,
            )
            runs[g], chunk_log = chunk(runs[g], *per_run[g])
            # Weights over g_1..g_K, zero-padded to the k_var the samples and measures use.
            padded = np.pad(chunk_log.weights, ((0, 0), (0, plan.k_var - k)))
            for name, value in chunk_log._replace(weights=padded)._asdict().items():
                _store(getattr(logs, name), [indices], checkpoint, value)
            bar.set_postfix(checkpoint=checkpoint + 1, K=k, M=m)
        else:
            sampler = make_sampler(plan.problem, plan.k_var, config.n_variance_samples)
            # The moments' shapes differ between groups of K, and sampling does not need them.
            unmixed = [group._replace(mix_moments=None) for group in runs]
            all_runs = jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *unmixed)
            _store(logs.samples, [i for *_, i in plan.groups], checkpoint, sampler(all_runs))
            bar.set_postfix(checkpoint=checkpoint + 1, measured="variance")
        seconds += time.perf_counter() - start
        if partial is not None:
            save_partial(partial, config, RunProgress(step + 1, runs, logs, seconds))
        bar.update(1)
    bar.close()
    return logs, seconds


def run_experiment(
    config: ExperimentConfig,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> Results:
    """Train one agent per (estimator, seed) and log them at every checkpoint.

    Args:
      config: the settings (checked before anything runs or is written).
      out: a ``.npz`` path to save the results to, with a JSON sidecar (``write_sidecar``). After
        every step (a chunk of one group of K, or a measuring step) the run's state is kept in
        ``partial_path(out)``; if that file holds a run with the same settings, the run resumes
        from it, ``overwrite`` or not.
      overwrite: allow replacing an existing ``out``, and a partial run with other settings or
        one that cannot be read (it is started afresh).
      progress: show tqdm bars: the seeds' warm-ups, then one tick per step, with the time left.
      command: the command line to record in the sidecar (``python -m course_lib.experiments``
        passes it; relative to the repository).
    Returns:
      ``Results``. The same config gives identical numbers, interrupted or not, on the same machine
      and JAX build; on another machine, the same conclusions (see the package docstring).
    Raises:
      ValueError: bad settings, an existing ``out`` without ``overwrite``, or a partial run that
        cannot be resumed without ``overwrite``; nothing is written.
    """
    out_path = partial = None
    if out is not None:
        out_path = Path(out)
        if out_path.suffix != ".npz":
            raise ValueError(f"out must end in .npz, got {str(out)!r}")
        if out_path.exists() and not overwrite:
            raise ValueError(f"{out_path} exists; pass --overwrite (overwrite=True) to replace it")
        if not out_path.parent.is_dir():
            raise ValueError(f"the folder of out does not exist: {out_path.parent}")
        partial = partial_path(out_path)
    plan = make_plan(config)
    logs, seconds = _train([plan], progress, partial, overwrite)
    results = _results(plan, logs)
    if out_path is not None:
        save_results(results, out_path)
        write_sidecar(out_path, plan, seconds, command)
        discard_partial(out_path)
    return results


def run_experiments(configs: Sequence[ExperimentConfig], *, progress: bool = True) -> list[Results]:
    """``[run_experiment(config) for config in configs]`` as one computation, for configs that
    differ only in their meta-optimiser (``meta_learning_rate``, ``meta_clip``; lesson 03's β).

    Every (config, estimator, seed) run is a row of the same vmapped chunk and reads its rate and
    clip from its own optimiser state, so one compiled program serves every rate, and the seeds
    warm up once for all configs. Each result equals its separate run up to float rounding;
    nothing is saved.

    Raises:
      ValueError: no configs, bad settings, or configs that differ in anything else.
    """
    plans = [make_plan(config) for config in configs]
    if not plans:
        raise ValueError("configs must hold at least one ExperimentConfig, got none")
    shared = [dataclasses.replace(p.config, meta_learning_rate=1.0, meta_clip=1.0) for p in plans]
    if any(other != shared[0] for other in shared):
        raise ValueError(
            "configs must differ only in meta_learning_rate and meta_clip, got "
            + "; ".join(p.config.to_json() for p in plans)
        )
    logs, _ = _train(plans, progress)
    n_seeds = plans[0].config.n_seeds
    return [
        _results(plan, Logs(*(log[:, j * n_seeds : (j + 1) * n_seeds] for log in logs)))
        for j, plan in enumerate(plans)
    ]


def _results(plan: Plan, logs: Logs) -> Results:
    config, problem = plan.config, plan.problem
    totals = logs.episode_totals
    with np.errstate(invalid="ignore", divide="ignore"):
        episode_return = np.where(totals[..., 1] > 0, totals[..., 0] / totals[..., 1], np.nan)
    eta0 = np.broadcast_to(
        np.asarray(plan.eta0, np.float32)[:, None, None], (*logs.eta.shape[:2], 1, problem.n_eta)
    )
    eta = np.concatenate([eta0, logs.eta], axis=2)
    hyper = np.asarray(jax.vmap(problem.hyper_parameters)(eta.reshape(-1, problem.n_eta)))
    rollout_steps = _steps_per_rollout(plan) * plan.rollouts_per_checkpoint
    return with_measurements(
        config,
        dict(
            env_steps=rollout_steps * np.arange(1, config.n_checkpoints + 1, dtype=np.int64),
            episode_return=episode_return.astype(np.float32),
            eta=eta,
            hyper=hyper.reshape(eta.shape).astype(np.float32),
            samples=logs.samples,
            skipped=logs.skipped,
            weights=logs.weights,
        ),
        problem.meta_names,
    )
