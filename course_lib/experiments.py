"""The capstone: self-tuning actor-critic agents on Snake, one per meta-gradient estimator.

Each agent learns θ with the inner update while its meta-parameters η (γ, λ, entropy cost) are
tuned online. One meta-update is one block of K inner updates (non-overlapping blocks,
PAPER_NOTES.md §2.1), starting from the agent's current state:

    τ_0 ~ π_{θ_0};  θ_k = U(θ_{k−1}, τ_{k−1}; η),  τ_k ~ π_{θ_k},  L_k = L_out(θ_k; τ_k),  k = 1..K
    g_k = dL_k/dη   (all k from one forward-mode pass)
    ĝ   = Σ_k w_k g_k,          η ← η + Adam(clip_by_global_norm(ĝ, 0.1)),   next block from θ_K

with weights w = one-hot at K for the K-step estimator ("k5"), geometric ∝ λ_mix^(k−1) for the
mixing estimator ("mix5"); "k1" is the one-step meta-gradient of Xu et al. 2018. Every block draws
K + 1 rollouts (K inner batches and one outer batch); all of them count as environment steps.

At each checkpoint the agent is frozen and ``n_variance_samples`` independent replicas of a
``k_var``-step block (``k_var`` = the largest K of the experiment) are drawn from its current state,
giving per-k samples ``[n_variance_samples, k_var, n_eta]``. Every estimator's variance and SNR is
measured on the same samples (mixing and K-step share them), so estimators are compared on the same
agent state. The whole run is one compiled ``lax.scan`` per checkpoint chunk, vmapped over seeds
(and over estimators that share K): ``make_chunk`` follows PureJaxRL's ``make_train(config)``.

Command line (see ``python -m course_lib.experiments snake --help``)::

    python -m course_lib.experiments snake --estimators k1,k5,mix5,fixed5 --seeds 4 \\
        --out results/snake.npz

Results are a compressed ``.npz`` holding the settings (a JSON string) and every logged series;
``load_results`` reads them back. After every chunk the run's state is saved next to ``--out``
(``<out>.partial.npz``); re-running the same command resumes from it, and gives the same numbers as
an uninterrupted run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from tqdm.auto import tqdm

from course_lib import metagrad, mixing, plots, stats
from course_lib.problems import MetaProblem

Array = jax.Array
ESTIMATOR_PATTERN = re.compile(r"^(k|mix|fixed)(-?\d+)$")
PARTIAL_SUFFIX = ".partial.npz"


# --------------------------------------------------------------------------------------------------
# Settings


class Estimator(NamedTuple):
    """A meta-gradient estimator by name: ``k<K>`` (K-step), ``mix<K>`` (geometric mix of g_1..g_K)
    or ``fixed<K>``, the control: the same blocks of K inner updates with η never updated."""

    name: str
    k: int
    kind: str  # "k", "mix" or "fixed"

    @property
    def tunes(self) -> bool:
        """False for the ``fixed`` control, whose meta-gradient is never used."""
        return self.kind != "fixed"

    def weights(self, k_max: int, mix_lambda: float) -> np.ndarray:
        """Weights over g_1..g_{k_max}, zero beyond K: one-hot at K, ∝ λ_mix^(k−1), or all zero
        (fixed: ĝ = 0, so Adam leaves η where it is). [k_max]."""
        return mixing.estimator_weights(_KINDS[self.kind], self.k, k_max, lam=mix_lambda)


# The experiments' short names (k5, mix5, fixed5) and the estimator kinds they stand for.
_KINDS = {"k": "k-step", "mix": "geometric", "fixed": "fixed"}


def parse_estimator(name: str) -> Estimator:
    """``"k5"`` -> K-step with K = 5, ``"mix5"`` -> geometric mix of g_1..g_5, ``"fixed5"`` -> the
    control with η held fixed; K must be >= 1."""
    match = ESTIMATOR_PATTERN.match(str(name).strip())
    if match is None:
        raise ValueError(
            f"unknown estimator {name!r}: use k<K> (K-step, e.g. k1, k5), mix<K> (mixing, e.g. "
            "mix5) or fixed<K> (η never updated, e.g. fixed5)"
        )
    k = int(match.group(2))
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k} in estimator {name!r}")
    return Estimator(f"{match.group(1)}{k}", k, match.group(1))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines the numbers of a run (saved with the results as JSON).

    Attributes:
      estimators: names such as ``("k1", "k5", "mix5")``.
      n_seeds: independent agents per estimator (seed i starts from the same θ_0 and boards for
        every estimator, so estimators are compared on common random numbers).
      n_checkpoints: how many times the run is logged (and saved).
      rollouts_per_checkpoint: rollouts of ``rollout_len x n_envs`` steps between checkpoints,
        rounded up to a multiple of every estimator's K + 1, so that all estimators are logged at
        the same environment-step counts.
      n_variance_samples: independent meta-gradient replicas per checkpoint (variance and SNR).
      mix_lambda: λ_mix of the geometric mixing weights, in [0, 1].
      meta_learning_rate, meta_clip: Adam step and global-norm clip of the η update.
      seed: the root PRNG seed.
      problem: settings for ``metagrad.make_problem("snake", **problem)``.
    """

    estimators: tuple[str, ...] = ("k1", "k5", "mix5", "fixed5")
    n_seeds: int = 4
    n_checkpoints: int = 16
    rollouts_per_checkpoint: int = 120
    n_variance_samples: int = 24
    mix_lambda: float = 0.5
    meta_learning_rate: float = 3e-3
    meta_clip: float = 0.1
    seed: int = 0
    problem: dict = dataclasses.field(default_factory=lambda: {"n_envs": 32})

    def __post_init__(self):
        # Canonical form: what JSON gives back (tuples in the problem settings become lists), so a
        # config read from a results file compares equal to the one that produced it.
        if isinstance(self.estimators, str):
            raise ValueError(
                f"estimators must be a list of names, got the string {self.estimators!r}"
            )
        object.__setattr__(self, "estimators", tuple(self.estimators))
        object.__setattr__(self, "problem", json.loads(json.dumps(dict(self.problem))))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExperimentConfig:
        return cls(**json.loads(text))


def quick_config(**overrides) -> ExperimentConfig:
    """``--quick``: a few minutes on 2 CPU cores (mostly compilation): 8 boards, 4 short chunks."""
    base = ExperimentConfig(
        n_seeds=2,
        n_checkpoints=4,
        rollouts_per_checkpoint=24,
        n_variance_samples=8,
        problem={"n_envs": 8},
    )
    return dataclasses.replace(base, **overrides)


def full_config(**overrides) -> ExperimentConfig:
    """The course's stored run: the defaults of ``ExperimentConfig`` (6x6 boards, 32 per agent,
    614,400 environment steps per agent; 8.4 minutes on 2 CPU cores, see
    ``results/snake_full.json``)."""
    return ExperimentConfig(**overrides)


def _check_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class Plan(NamedTuple):
    """A validated config, resolved: estimators grouped by K (one compiled chunk per group)."""

    config: ExperimentConfig
    estimators: tuple[Estimator, ...]
    groups: tuple[tuple[int, tuple[int, ...]], ...]  # (K, indices into estimators)
    k_var: int
    rollouts_per_checkpoint: int
    problem: MetaProblem


def make_plan(config: ExperimentConfig) -> Plan:
    """Check every setting (raising ``ValueError`` with a clear message) before anything runs."""
    if len(config.estimators) == 0:
        raise ValueError("estimators must name at least one estimator, got none")
    estimators = tuple(parse_estimator(name) for name in config.estimators)
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"estimators must not repeat, got {names}")
    _check_int("n_seeds (--seeds)", config.n_seeds)
    _check_int("n_checkpoints (--checkpoints)", config.n_checkpoints)
    _check_int("rollouts_per_checkpoint", config.rollouts_per_checkpoint)
    _check_int("n_variance_samples", config.n_variance_samples, minimum=2)
    _check_int("seed (--seed)", config.seed, minimum=0)
    if not 0.0 <= config.mix_lambda <= 1.0:
        raise ValueError(f"mix_lambda must be in [0, 1], got {config.mix_lambda!r}")
    if not config.meta_learning_rate > 0 or not config.meta_clip > 0:
        raise ValueError(
            f"meta_learning_rate and meta_clip must be > 0, got {config.meta_learning_rate!r}, "
            f"{config.meta_clip!r}"
        )
    problem = metagrad.make_problem("snake", **config.problem)
    ks = sorted({e.k for e in estimators})
    groups = tuple((k, tuple(i for i, e in enumerate(estimators) if e.k == k)) for k in ks)
    return Plan(config, estimators, groups, max(ks), _rollouts_per_checkpoint(config), problem)


def _rollouts_per_checkpoint(config: ExperimentConfig) -> int:
    """``config.rollouts_per_checkpoint`` rounded up to a multiple of every estimator's K + 1."""
    block = math.lcm(*(parse_estimator(name).k + 1 for name in config.estimators))
    return block * math.ceil(config.rollouts_per_checkpoint / block)


# --------------------------------------------------------------------------------------------------
# One block: K inner updates from the current state, every prefix meta-gradient, the final state


def _episode_totals(batch) -> Array:
    """[sum of returns of the episodes that ended in ``batch``, how many ended] (a Trajectory)."""
    return jnp.stack([batch.finished_returns.sum(), batch.dones.sum().astype(jnp.float32)])


def meta_gradient_block(problem: MetaProblem, state, eta: Array, key: Array, k: int):
    """One meta-gradient block from ``state``: ``metagrad.meta_gradient_pass`` plus episode totals.

    Returns:
      per_step [k, n_eta] (row j−1 is g_j), the state after k inner updates and the outer rollout,
      episode totals [2] (sum of finished-episode returns, their number) over the k + 1 rollouts.
    """
    per_step, final_state, totals = metagrad.meta_gradient_pass(
        problem, state, eta, key, k, summarize=_episode_totals
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


class ChunkLog(NamedTuple):
    """What one chunk logs for one run."""

    episode_totals: Array  # [2] sum of finished-episode returns and their number, over the chunk
    eta: Array  # [n_eta] at the checkpoint
    skipped: Array  # meta-updates skipped because ĝ was non-finite


def _clipped_adam(learning_rate, clip) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(learning_rate))


def make_meta_optimizer(learning_rate: float, clip: float) -> optax.GradientTransformation:
    """η's optimiser: global-norm clip then Adam (the follow-up code's 0.1 and 3e-3).

    Both numbers live in the optimiser's state (``optax.inject_hyperparams``), not in the compiled
    update, so runs at different meta-learning rates share one compiled chunk.
    """
    return optax.inject_hyperparams(_clipped_adam)(learning_rate=learning_rate, clip=clip)


@functools.lru_cache(maxsize=16)
def make_chunk(problem: MetaProblem, k: int, n_updates: int) -> Callable:
    """Compile ``chunk(runs, weights) -> (runs, logs)``: ``n_updates`` meta-updates of block k.

    ``runs``: a ``RunState`` with a leading [n_runs] axis; ``weights`` [n_runs, k] (one-hot for the
    K-step estimator, geometric for mixing, zeros for the fixed control: arrays, so estimators of
    the same K share one compiled function). ``logs``: a ``ChunkLog`` with leading [n_runs]. The
    function is a ``lax.scan`` over meta-updates, vmapped over runs; update u of a run uses
    ``fold_in(fold_in(run key, 0), u)``, so how a run is cut into chunks never changes its numbers.
    Each run's meta-learning rate and clip are read from its optimiser state.
    """
    # update() takes the learning rate and clip from the state, never these placeholders.
    meta_optimizer = make_meta_optimizer(learning_rate=0.0, clip=0.0)

    def meta_update(weights: Array, carry, _):
        run, totals, skipped = carry
        key = jax.random.fold_in(jax.random.fold_in(run.key, 0), run.update)
        per_step, problem_state, block_totals = meta_gradient_block(
            problem, run.problem_state, run.eta, key, k
        )
        meta_grad = weights @ per_step
        updates, meta_opt_state = meta_optimizer.update(meta_grad, run.meta_opt_state, run.eta)
        finite = jnp.all(jnp.isfinite(meta_grad))
        # A non-finite ĝ would poison Adam's moments for good: keep η and its optimiser unchanged.
        eta, meta_opt_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(finite, new, old),
            (optax.apply_updates(run.eta, updates), meta_opt_state),
            (run.eta, run.meta_opt_state),
        )
        run = RunState(problem_state, eta, meta_opt_state, run.key, run.update + 1)
        return (run, totals + block_totals, skipped + (~finite).astype(jnp.int32)), None

    def chunk(run: RunState, weights: Array):
        (run, totals, skipped), _ = jax.lax.scan(
            functools.partial(meta_update, weights),
            (run, jnp.zeros(2), jnp.int32(0)),
            None,
            length=n_updates,
        )
        return run, ChunkLog(totals, run.eta, skipped)

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


def _initial_runs(plan: Plan, indices: Sequence[int]) -> RunState:
    """Runs of the estimators ``indices`` (estimator-major, then seed), stacked on a leading axis.

    Seed s starts from the same θ_0, boards and run key for every estimator: common random numbers.
    """
    config, problem = plan.config, plan.problem
    states = [_seed_problem_state(plan, s) for s in range(config.n_seeds)]
    meta_optimizer = make_meta_optimizer(config.meta_learning_rate, config.meta_clip)
    runs = [
        RunState(
            states[s],
            problem.eta0,
            meta_optimizer.init(problem.eta0),
            jax.random.fold_in(jax.random.PRNGKey(config.seed), s),
            jnp.int32(0),
        )
        for _ in indices
        for s in range(config.n_seeds)
    ]
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *runs)


def _seed_problem_state(plan: Plan, seed: int):
    """θ_0, optimiser state and boards of seed ``seed``: the snake problem built with that seed."""
    settings = {**plan.config.problem, "seed": plan.config.seed * 1_000_003 + seed}
    return metagrad.make_problem("snake", **settings).init_state


def _steps_per_rollout(plan: Plan) -> int:
    batch, _ = jax.eval_shape(plan.problem.sample, plan.problem.init_state, jax.random.PRNGKey(0))
    return int(np.prod(batch.rewards.shape))


class _Logs(NamedTuple):
    """Logged series being filled in, all [n_estimators, n_seeds, n_checkpoints, ...]."""

    episode_totals: np.ndarray  # [..., 2]
    eta: np.ndarray  # [..., n_eta]
    samples: np.ndarray  # [..., n_variance_samples, k_var, n_eta]
    skipped: np.ndarray  # [...]


def _empty_logs(plan: Plan) -> _Logs:
    c = plan.config
    lead = (len(plan.estimators), c.n_seeds, c.n_checkpoints)
    n_eta = plan.problem.n_eta
    return _Logs(
        np.full((*lead, 2), np.nan, np.float32),
        np.full((*lead, n_eta), np.nan, np.float32),
        np.full((*lead, c.n_variance_samples, plan.k_var, n_eta), np.nan, np.float32),
        np.zeros(lead, np.int32),
    )


def _to_host(leaf) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def _from_host(value: np.ndarray, template):
    if jnp.issubdtype(template.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(value, impl=jax.random.key_impl(template))
    if value.shape != template.shape or value.dtype != template.dtype:
        raise ValueError(
            f"saved state has a leaf {value.dtype}{list(value.shape)}, expected "
            f"{template.dtype}{list(template.shape)}: the partial file does not match this code"
        )
    return jnp.asarray(value)


def _write_npz(path: Path, arrays: dict) -> None:
    """Write atomically (temporary file, then rename): an interruption never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def _save_partial(path: Path, plan: Plan, done: int, runs: list, logs: _Logs, seconds: float):
    arrays = {
        "settings": np.array(plan.config.to_json()),
        "done": np.array(done),
        "seconds": np.array(seconds),
    }
    arrays.update({f"log_{name}": value for name, value in logs._asdict().items()})
    for g, group_runs in enumerate(runs):
        for i, leaf in enumerate(jax.tree_util.tree_leaves(group_runs)):
            arrays[f"group{g}_leaf{i}"] = _to_host(leaf)
    _write_npz(path, arrays)


def _resumable(path: Path, plan: Plan, overwrite: bool) -> bool:
    """True if the partial run at ``path`` has these settings; with other settings, False when
    ``overwrite`` (it will be replaced) and a ``ValueError`` otherwise."""
    with np.load(path, allow_pickle=False) as data:
        settings = str(data["settings"])
    if settings == plan.config.to_json():
        return True
    if overwrite:
        return False
    raise ValueError(
        f"{path} holds a partial run with other settings ({settings}); delete it, or pass "
        "--overwrite to start afresh"
    )


def _load_partial(path: Path, runs: list) -> tuple[int, list, _Logs, float]:
    """The partial run's progress, run states (shaped like ``runs``), logs and compute seconds."""
    with np.load(path, allow_pickle=False) as data:
        logs = _Logs(*(data[f"log_{name}"] for name in _Logs._fields))
        restored = []
        for g, group_runs in enumerate(runs):
            leaves, treedef = jax.tree_util.tree_flatten(group_runs)
            restored.append(
                treedef.unflatten(
                    [_from_host(data[f"group{g}_leaf{i}"], leaf) for i, leaf in enumerate(leaves)]
                )
            )
        return int(data["done"]), restored, logs, float(data["seconds"])


def _store(log: np.ndarray, index_groups, checkpoint: int, values) -> None:
    """Write ``values`` [n_runs, ...] (runs ordered group by group, estimator-major then seed) into
    ``log[estimator, seed, checkpoint]``."""
    indices = [i for group in index_groups for i in group]
    values = np.asarray(values)
    log[indices, :, checkpoint] = values.reshape(len(indices), log.shape[1], *values.shape[1:])


def partial_path(out: str | os.PathLike) -> Path:
    """Where a run writing ``out`` keeps its state between checkpoints."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def run_experiment(
    config: ExperimentConfig,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Results:
    """Train one agent per (estimator, seed) and log them at every checkpoint.

    Args:
      config: the settings (checked before anything runs or is written).
      out: a ``.npz`` path to save the results to (with a JSON sidecar: settings, time, machine).
        While running, the state after every checkpoint chunk is kept in ``partial_path(out)``; if
        that file exists with the same settings, the run resumes from it.
      overwrite: allow replacing an existing ``out`` (and a partial run with other settings).
      progress: show a tqdm bar, one tick per checkpoint chunk.
    Returns:
      ``Results``. Same config (same seed) -> identical numbers, interrupted or not.
    Raises:
      ValueError: bad settings or an existing ``out`` without ``overwrite``; nothing is written.
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
    resume = partial is not None and partial.exists() and _resumable(partial, plan, overwrite)
    runs = [_initial_runs(plan, indices) for _, indices in plan.groups]
    logs, done, seconds = _empty_logs(plan), 0, 0.0
    if resume:
        done, runs, logs, seconds = _load_partial(partial, runs)
    weights = [
        jnp.asarray(
            np.repeat(
                [plan.estimators[i].weights(k, config.mix_lambda) for i in indices],
                config.n_seeds,
                axis=0,
            ),
            jnp.float32,
        )
        for k, indices in plan.groups
    ]
    # Per checkpoint: one chunk per group of estimators sharing K, then one measuring step.
    steps_per_checkpoint = len(plan.groups) + 1
    n_steps = config.n_checkpoints * steps_per_checkpoint
    bar = tqdm(total=n_steps, initial=done, disable=not progress, desc="checkpoint chunks")
    for step in range(done, n_steps):
        checkpoint, g = divmod(step, steps_per_checkpoint)
        start = time.perf_counter()
        if g < len(plan.groups):
            k, indices = plan.groups[g]
            chunk = make_chunk(plan.problem, k, plan.rollouts_per_checkpoint // (k + 1))
            runs[g], chunk_log = chunk(runs[g], weights[g])
            for name, value in chunk_log._asdict().items():
                _store(getattr(logs, name), [indices], checkpoint, value)
            bar.set_postfix(checkpoint=checkpoint + 1, K=k)
        else:
            sampler = make_sampler(plan.problem, plan.k_var, config.n_variance_samples)
            all_runs = jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *runs)
            _store(logs.samples, [i for _, i in plan.groups], checkpoint, sampler(all_runs))
            bar.set_postfix(checkpoint=checkpoint + 1, measured="variance")
        seconds += time.perf_counter() - start
        if partial is not None:
            _save_partial(partial, plan, step + 1, runs, logs, seconds)
        bar.update(1)
    bar.close()
    results = _results(plan, logs)
    if out_path is not None:
        save_results(results, out_path)
        _write_sidecar(out_path, plan, seconds)
        partial.unlink(missing_ok=True)
    return results


# --------------------------------------------------------------------------------------------------
# Results


class Results(NamedTuple):
    """Everything a run logged. E estimators, S seeds, C checkpoints, n_eta meta-parameters.

    ``variance[e, s, c, f]`` / ``snr[e, s, c, f]``: tr Cov and ‖E ĝ‖² / tr Cov of estimator f,
    measured on the ``n_variance_samples`` replicas drawn from run (e, s) at checkpoint c; the
    diagonal f = e is each run's own estimator. Both are derived from ``samples`` on loading.
    """

    config: ExperimentConfig
    estimators: tuple[str, ...]
    meta_names: tuple[str, ...]
    env_steps: np.ndarray  # [C] environment steps per agent, outer rollouts included
    episode_return: np.ndarray  # [E, S, C] mean return of the episodes that ended in the chunk
    eta: np.ndarray  # [E, S, C + 1, n_eta] (index 0: η_0)
    hyper: np.ndarray  # [E, S, C + 1, n_eta] the hyper-parameter values η maps to (γ, λ, c_ent)
    samples: np.ndarray  # [E, S, C, n_variance_samples, k_var, n_eta] per-k meta-gradients
    skipped: np.ndarray  # [E, S, C] meta-updates skipped (non-finite ĝ)
    variance: np.ndarray  # [E, S, C, E]
    snr: np.ndarray  # [E, S, C, E]

    def index(self, estimator: str) -> int:
        """Position of ``estimator`` in ``estimators`` (ValueError listing them if absent)."""
        if estimator not in self.estimators:
            raise ValueError(
                f"unknown estimator {estimator!r}; these results hold {self.estimators}"
            )
        return self.estimators.index(estimator)


STORED_RESULTS = Path(__file__).resolve().parents[1] / "results" / "snake_full.npz"
"""The full run shipped with the course (``python -m course_lib.experiments snake --estimators
k1,k5,mix5,fixed5 --seeds 4 --out results/snake_full.npz`` regenerates it)."""

_SAVED = ("env_steps", "episode_return", "eta", "hyper", "samples", "skipped")


def measure_estimators(samples: np.ndarray, estimators: Sequence[str], mix_lambda: float):
    """Variance and SNR of each estimator on per-k samples.

    Args:
      samples: [..., n_variance_samples, k_var, n_eta].
      estimators: names with K <= k_var.
      mix_lambda: λ_mix of the mixing weights.
    Returns:
      (variance, snr), each [..., len(estimators)] (``stats.meta_gradient_stats``); NaN for a
      ``fixed`` control, which has no meta-gradient.
    """
    samples = np.asarray(samples, dtype=np.float64)
    k_var = samples.shape[-2]
    parsed = [parse_estimator(e) for e in estimators]
    weights = np.stack([e.weights(k_var, mix_lambda) for e in parsed])
    mixed = np.einsum("fk,...nke->n...fe", weights, samples)  # replicas first, as stats wants
    measured = stats.meta_gradient_stats(mixed)
    tunes = np.array([e.tunes for e in parsed])
    return np.where(tunes, measured.variance, np.nan), np.where(tunes, measured.snr, np.nan)


def _results(plan: Plan, logs: _Logs) -> Results:
    config, problem = plan.config, plan.problem
    totals = logs.episode_totals
    with np.errstate(invalid="ignore", divide="ignore"):
        episode_return = np.where(totals[..., 1] > 0, totals[..., 0] / totals[..., 1], np.nan)
    eta0 = np.broadcast_to(
        np.asarray(problem.eta0, np.float32), (*logs.eta.shape[:2], 1, problem.n_eta)
    )
    eta = np.concatenate([eta0, logs.eta], axis=2)
    hyper = np.asarray(jax.vmap(problem.hyper_parameters)(eta.reshape(-1, problem.n_eta)))
    rollout_steps = _steps_per_rollout(plan) * plan.rollouts_per_checkpoint
    return _with_measurements(
        config,
        dict(
            env_steps=rollout_steps * np.arange(1, config.n_checkpoints + 1, dtype=np.int64),
            episode_return=episode_return.astype(np.float32),
            eta=eta,
            hyper=hyper.reshape(eta.shape).astype(np.float32),
            samples=logs.samples,
            skipped=logs.skipped,
        ),
        problem.meta_names,
    )


def _with_measurements(config: ExperimentConfig, saved: dict, meta_names) -> Results:
    estimators = tuple(parse_estimator(e).name for e in config.estimators)
    variance, snr = measure_estimators(saved["samples"], estimators, config.mix_lambda)
    return Results(config, estimators, tuple(meta_names), **saved, variance=variance, snr=snr)


def save_results(results: Results, path: str | os.PathLike) -> None:
    """A compressed ``.npz``: the settings as a JSON string and the logged series."""
    arrays = {name: getattr(results, name) for name in _SAVED}
    arrays["settings"] = np.array(results.config.to_json())
    arrays["meta_names"] = np.array(results.meta_names)
    _write_npz(Path(path), arrays)


def load_results(path: str | os.PathLike) -> Results:
    """Read a results file written by ``run_experiment``; variance and SNR are recomputed."""
    with np.load(path, allow_pickle=False) as data:
        config = ExperimentConfig.from_json(str(data["settings"]))
        saved = {name: data[name] for name in _SAVED}
        meta_names = tuple(str(x) for x in data["meta_names"])
    return _with_measurements(config, saved, meta_names)


def _write_sidecar(out: Path, plan: Plan, seconds: float) -> None:
    """``<out>.json``: the settings, how long the run computed (compilation included) and where."""
    info = {
        "settings": json.loads(plan.config.to_json()),
        "rollouts_per_checkpoint": plan.rollouts_per_checkpoint,
        "compute_seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "devices": [d.device_kind for d in jax.devices()],
        },
        "argv": sys.argv,
    }
    out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


# --------------------------------------------------------------------------------------------------
# Reading the results (lessons 06 and 07)


def final_returns(results: Results, fraction: float = 0.25) -> np.ndarray:
    """Mean episode return over the last ``fraction`` of checkpoints, per run. [E, S]."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    n_last = max(1, round(fraction * results.episode_return.shape[-1]))
    return np.nanmean(results.episode_return[..., -n_last:], axis=-1)


def steps_per_rollout(results: Results) -> int:
    """Environment steps in one rollout (``rollout_len x n_envs``) of the run behind ``results``."""
    return int(results.env_steps[0]) // _rollouts_per_checkpoint(results.config)


def variance_ratio(variance_a, variance_b) -> float:
    """How many times larger ``variance_a`` is than ``variance_b``, paired entry by entry.

    ``exp(mean(log a − log b))``: the geometric mean of the paired ratios. Variances measured on the
    same agent state (same samples) are paired; the geometric mean suits ratios that span orders of
    magnitude over training, and ``variance_ratio(b, a) == 1 / variance_ratio(a, b)``. Entries that
    are NaN or not positive are skipped.
    """
    a, b = np.broadcast_arrays(np.asarray(variance_a, float), np.asarray(variance_b, float))
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if not ok.any():
        raise ValueError("variance_a and variance_b share no finite positive entries")
    return float(np.exp(np.mean(np.log(a[ok]) - np.log(b[ok]))))


def variance_by_k(results: Results) -> np.ndarray:
    """tr Cov of each g_k, k = 1..k_var, on every run's samples. [E, S, C, k_var]."""
    names = [f"k{k}" for k in range(1, results.samples.shape[-2] + 1)]
    return measure_estimators(results.samples, names, results.config.mix_lambda)[0]


class Headline(NamedTuple):
    """What the capstone measures, pooled over every run, seed and checkpoint (see ``headline``)."""

    k: int  # the horizon compared: estimators k<k> and mix<k>
    variance_by_k: np.ndarray  # [k_var] geometric mean of tr Cov(g_k) on every agent state
    variance_growth: float  # Var(g_K) / Var(g_1), paired on the same samples
    mixing_cut: float  # Var(k<K>) / Var(mix<K>), paired on the same samples
    final_return: dict  # estimator -> (mean over seeds, standard error)
    return_gap: tuple[float, float]  # final return of mix<K> minus k<K>: mean of seed pairs, s.e.


def headline(results: Results, k: int | None = None) -> Headline:
    """The capstone's numbers: does variance grow with K, how much does mixing cut it, and what
    happens to the return.

    Variances are compared on the same samples (same agent state, same replicas) and summarised by
    ``variance_ratio`` over every run, seed and checkpoint. Final returns (``final_returns``) of the
    two estimators are compared seed by seed: seed s of every estimator starts from the same θ_0.

    Args:
      k: the horizon to compare; default the largest K with both ``k<K>`` and ``mix<K>`` present.
    """
    if k is None:
        both = [parse_estimator(e).k for e in results.estimators if e.startswith("mix")]
        both = [j for j in both if f"k{j}" in results.estimators]
        if not both:
            raise ValueError(f"need k<K> and mix<K> for the same K, got {results.estimators}")
        k = max(both)
    k_step, mix = results.index(f"k{k}"), results.index(f"mix{k}")
    by_k = variance_by_k(results)
    finals = final_returns(results)
    return Headline(
        k=k,
        variance_by_k=np.exp(np.log(by_k).reshape(-1, by_k.shape[-1]).mean(axis=0)),
        variance_growth=variance_ratio(by_k[..., k - 1], by_k[..., 0]),
        mixing_cut=variance_ratio(results.variance[..., k_step], results.variance[..., mix]),
        final_return={
            name: paired_difference(np.zeros_like(f), f)
            for name, f in zip(results.estimators, finals, strict=True)
        },
        return_gap=paired_difference(finals[k_step], finals[mix]),
    )


def paired_difference(a, b) -> tuple[float, float]:
    """Mean of ``b − a`` over paired seeds and its standard error, std(b − a, ddof=1) / √n.

    Seed s of every estimator starts from the same θ_0 and boards, so differences seed by seed
    cancel what the seeds share. The standard error is 0 with a single pair.

    Args:
      a, b: [n_seeds] one value per seed (e.g. final returns of two estimators).
    Returns:
      (mean, standard error).
    """
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diff.ndim != 1 or diff.size == 0:
        raise ValueError(f"a and b must be [n_seeds] with n_seeds >= 1, got shape {diff.shape}")
    sem = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else 0.0
    return float(diff.mean()), float(sem)


def debiased_snr(samples) -> np.ndarray:
    """The SNR with its noise floor removed: (‖ḡ‖² − V/n) / V = SNR − 1/n.

    With n samples, E‖ḡ‖² = ‖E g‖² + tr Cov / n, so the plain SNR ‖ḡ‖² / V of pure noise comes out
    near 1/n, not 0. Subtracting V/n from the numerator removes that floor (the result can be
    slightly negative when there is no signal).

    Args:
      samples: [n, *batch, n_eta] (n >= 2 independent estimates).
    Returns:
      [*batch].
    """
    samples = np.asarray(samples, dtype=float)
    return stats.meta_gradient_stats(samples).snr - 1.0 / samples.shape[0]


def choose_estimator(trial_snr, ks, threshold: float) -> int:
    """The practitioner's rule: among the estimators whose trial SNR reaches ``threshold``, scale up
    the most far-sighted one (largest K; on a tie, the higher SNR). −1 when none qualifies.

    Args:
      trial_snr: [E] SNR of each estimator measured in a small trial.
      ks: [E] each estimator's horizon K.
      threshold: the SNR an estimator must reach.
    Returns:
      The index of the chosen estimator, or −1.
    """
    trial_snr, ks = np.asarray(trial_snr, dtype=float), np.asarray(ks)
    if trial_snr.shape != ks.shape or trial_snr.ndim != 1:
        raise ValueError(f"trial_snr and ks must both be [E], got {trial_snr.shape} and {ks.shape}")
    accepted = np.flatnonzero(trial_snr >= threshold)
    if accepted.size == 0:
        return -1
    return int(max(accepted, key=lambda e: (ks[e], trial_snr[e])))


class Decision(NamedTuple):
    """The practitioner's rule applied to a trial of the first ``trial_checkpoints`` checkpoints."""

    trial_env_steps: int  # environment steps per agent spent in the trial
    trial_snr: dict  # estimator -> mean debiased SNR of its own runs over the trial (fixed: none)
    accepted: tuple[str, ...]  # estimators whose trial SNR reached the threshold
    chosen: str | None  # ``choose_estimator``'s pick; None: keep the hand-set hyper-parameters
    final_return: dict  # estimator -> mean final return over seeds, in the full run


def own_snr(results: Results) -> dict[str, np.ndarray]:
    """``debiased_snr`` of each self-tuning run's own meta-gradient, per seed and checkpoint.

    Returns:
      {estimator: [n_seeds, n_checkpoints]} for every estimator except the fixed controls.
    """
    snr = {}
    for e, estimator in enumerate(map(parse_estimator, results.estimators)):
        if estimator.tunes:
            weights = estimator.weights(results.samples.shape[-2], results.config.mix_lambda)
            own = np.einsum("k,...nke->n...e", weights, results.samples[e])
            snr[estimator.name] = debiased_snr(own)
    return snr


def trial_decision(results: Results, snr_threshold: float, trial_checkpoints: int) -> Decision:
    """Decide from the first ``trial_checkpoints`` checkpoints which estimator to scale up.

    Each estimator's trial SNR is ``own_snr`` averaged over seeds and the trial's checkpoints;
    ``choose_estimator`` picks among those reaching ``snr_threshold``. ``final_return`` tells how
    each choice turned out by the end of the stored run.
    """
    n_checkpoints = results.snr.shape[2]
    if isinstance(trial_checkpoints, bool) or not 1 <= int(trial_checkpoints) <= n_checkpoints:
        raise ValueError(
            f"trial_checkpoints must be in 1..{n_checkpoints}, got {trial_checkpoints!r}"
        )
    trial = int(trial_checkpoints)
    snr = {name: float(np.mean(v[:, :trial])) for name, v in own_snr(results).items()}
    ks = [parse_estimator(name).k for name in snr]
    chosen = choose_estimator(list(snr.values()), ks, snr_threshold)
    finals = final_returns(results).mean(axis=1)
    return Decision(
        trial_env_steps=int(results.env_steps[trial - 1]),
        trial_snr=snr,
        accepted=tuple(name for name, value in snr.items() if value >= snr_threshold),
        chosen=None if chosen < 0 else list(snr)[chosen],
        final_return=dict(zip(results.estimators, finals.tolist(), strict=True)),
    )


def plot_runs(results: Results, estimators: Sequence[str] | None = None, band: str = "sem"):
    """Six panels over environment steps, mean ± ``band`` across seeds for each estimator: return;
    the variance (log₁₀ tr Cov) and SNR of each run's own meta-gradient, with the SNR that pure
    noise would show (1/n for n replicas) dashed; and the three hyper-parameters η maps to.

    Returns the matplotlib figure.
    """
    names = list(results.estimators if estimators is None else estimators)
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.5), layout="constrained")
    steps = results.env_steps / 1e3
    x_label = "environment steps (thousands)"
    for name in names:
        e = results.index(name)
        color = f"C{e}"
        plots.plot_mean_band(
            axes[0, 0], results.episode_return[e], steps, band=band, label=name, color=color
        )
        if parse_estimator(name).tunes:
            plots.plot_mean_band(
                axes[0, 1],
                np.log10(results.variance[e, :, :, e]),
                steps,
                band=band,
                label=name,
                color=color,
            )
            plots.plot_mean_band(
                axes[0, 2], results.snr[e, :, :, e], steps, band=band, label=name, color=color
            )
        for i, ax in enumerate(axes[1]):
            plots.plot_mean_band(
                ax,
                results.hyper[e, :, :, i],
                np.concatenate([[0], steps]),
                band=band,
                label=name,
                color=color,
            )
    axes[0, 2].axhline(
        1 / results.samples.shape[3], color="grey", linestyle="--", label="pure noise (1/n)"
    )
    titles = ["mean episode return", "variance of own meta-gradient", "SNR of own meta-gradient"]
    y_labels = ["return", "log₁₀ tr Cov(ĝ)", "‖E ĝ‖² / tr Cov(ĝ)"]
    titles += [f"{name} (hyper-parameter)" for name in results.meta_names]
    y_labels += ["γ", "λ", "entropy cost"][: len(results.meta_names)]
    for ax, title, y_label in zip(axes.flat, titles, y_labels, strict=True):
        ax.set(title=title, xlabel=x_label, ylabel=y_label)
    axes[0, 0].legend(fontsize="small")
    axes[0, 2].legend(fontsize="small")
    return fig


# --------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.experiments",
        description="Run the capstone experiment and save its results.",
    )
    sub = parser.add_subparsers(dest="problem", required=True)
    snake = sub.add_parser("snake", help="self-tuning actor-critic agents on Snake")
    snake.add_argument(
        "--estimators",
        default="k1,k5,mix5,fixed5",
        help="comma-separated k<K> (K-step), mix<K> (mixing) and fixed<K> (η never updated) "
        "names (default k1,k5,mix5,fixed5)",
    )
    snake.add_argument("--seeds", type=int, default=None, help="agents per estimator")
    snake.add_argument("--checkpoints", type=int, default=None, help="how many times to log")
    snake.add_argument("--mix-lambda", type=float, default=None, help="λ_mix of the mixing weights")
    snake.add_argument("--seed", type=int, default=None, help="root PRNG seed (default 0)")
    snake.add_argument("--out", required=True, help="results file (.npz)")
    snake.add_argument(
        "--quick", action="store_true", help="the small CI-sized run (minutes on a CPU)"
    )
    snake.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)

    overrides = {"estimators": tuple(e for e in args.estimators.split(",") if e.strip())}
    for field, value in (
        ("n_seeds", args.seeds),
        ("n_checkpoints", args.checkpoints),
        ("mix_lambda", args.mix_lambda),
        ("seed", args.seed),
    ):
        if value is not None:
            overrides[field] = value
    config = (quick_config if args.quick else full_config)(**overrides)
    try:
        run_experiment(config, args.out, overwrite=args.overwrite)
    except ValueError as error:
        parser.error(str(error))
    print(f"saved {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
