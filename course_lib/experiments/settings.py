"""What a capstone run is: estimator names, the settings that set its numbers, the checked plan.

Nothing here runs an agent: ``make_plan`` is the one function that builds the Snake problem, and it
imports the engine only when called, so reading stored results never loads the environments.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from course_lib import mixing, self_tuning
from course_lib.checks import check_int, check_unit_interval

if TYPE_CHECKING:
    from course_lib.problems import MetaProblem

ESTIMATOR_PATTERN = re.compile(r"^(k|mix|auto|fixed)(-?\d+)(?:x(-?\d+))?(?:@(\w+))?$")

# The experiments' short names (k5, mix5, auto5, fixed5) and the estimator kinds they stand for
# (auto: the geometric mix is its prior, ``course_lib.self_tuning``).
_KINDS = {"k": "k-step", "mix": "geometric", "auto": "geometric", "fixed": "fixed"}
# The hyper-parameters a start may set (``ExperimentConfig.starts``), named as ``snake_problem``.
START_FIELDS = ("gamma", "lam", "entropy_cost")


class Estimator(NamedTuple):
    """A meta-gradient estimator by name: ``k<K>`` (K-step), ``mix<K>`` (geometric mix of g_1..g_K),
    ``auto<K>`` (mixing that tunes itself: weights from running moments of g_1..g_K,
    ``course_lib.self_tuning``, with the geometric mix as its prior) or ``fixed<K>``, the control:
    the same blocks of K inner updates with η never updated.

    Two optional suffixes, in this order:

    - ``x<M>`` (K-step only): g_K scored on M outer batches instead of one, L = (1/M) Σ_j
      L_out(θ_K; τ^(j)) over τ_K and M − 1 more rollouts of π_{θ_K} that continue the boards
      (``metagrad.meta_gradient_pass``). ``k5x5`` is the fair comparison with ``mix5``: both use
      the outer loss on 5 outer batches per meta-update, and both pay for them in environment
      steps (a block of ``k5x5`` draws K + M = 10 rollouts, ``mix5``'s 6).
    - ``@<start>``: the run starts from the hyper-parameters ``ExperimentConfig.starts[start]``
      (e.g. ``fixed5@swept``, ``k1@poor``) instead of the problem's defaults.
    """

    name: str
    k: int
    kind: str  # "k", "mix", "auto" or "fixed"
    outer_batches: int = 1
    start: str | None = None

    @property
    def tunes(self) -> bool:
        """False for the ``fixed`` control, whose meta-gradient is never used."""
        return self.kind != "fixed"

    @property
    def self_tuning(self) -> bool:
        """True for ``auto<K>``, whose weights change with every meta-update."""
        return self.kind == "auto"

    @property
    def measured(self) -> bool:
        """Whether the variance samples (one outer batch per block) measure this estimator's own
        meta-gradient: not for the fixed control, nor for one scored on several outer batches."""
        return self.tunes and self.outer_batches == 1

    @property
    def rollouts_per_block(self) -> int:
        """K inner batches and M outer batches: every one counts as environment steps."""
        return self.k + self.outer_batches

    def weights(self, k_max: int, mix_lambda: float) -> np.ndarray:
        """Weights over g_1..g_{k_max}, zero beyond K: one-hot at K, ∝ λ_mix^(k−1) (mix, and
        auto's prior and first weights), or all zero (fixed: ĝ = 0, so Adam leaves η where it
        is), docs/notation.md §3. [k_max]."""
        return mixing.estimator_weights(_KINDS[self.kind], self.k, k_max, lam=mix_lambda)


def parse_estimator(name: str) -> Estimator:
    """``"k5"`` -> K-step with K = 5, ``"mix5"`` -> geometric mix of g_1..g_5, ``"fixed5"`` -> the
    control with η held fixed; ``"k5x5"`` scores g_5 on 5 outer batches; ``"k1@poor"`` starts from
    the start named ``poor``. K and M must be >= 1."""
    match = ESTIMATOR_PATTERN.match(str(name).strip())
    if match is None:
        raise ValueError(
            f"unknown estimator {name!r}: use k<K> (K-step, e.g. k1, k5), mix<K> (mixing, e.g. "
            "mix5), auto<K> (self-tuning mixing, e.g. auto5) or fixed<K> (η never updated, e.g. "
            "fixed5), optionally followed by x<M> "
            "(K-step on M outer batches, e.g. k5x5) and @<start> (e.g. k1@poor)"
        )
    kind, k, m, start = match.groups()
    k = int(k)
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k} in estimator {name!r}")
    outer_batches = 1 if m is None else int(m)
    if m is not None and kind != "k":
        raise ValueError(f"only a K-step estimator takes x<M> outer batches, got {name!r}")
    if outer_batches < 1:
        raise ValueError(f"M must be >= 1, got {outer_batches} in estimator {name!r}")
    canonical = f"{kind}{k}" + ("" if m is None else f"x{outer_batches}")
    canonical += "" if start is None else f"@{start}"
    return Estimator(canonical, k, kind, outer_batches, start)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines the numbers of a run (saved with the results as JSON).

    Attributes:
      estimators: names such as ``("k1", "k5", "mix5")``.
      n_seeds: independent agents per estimator (seed i starts from the same θ_0 and boards for
        every estimator, so estimators are compared on common random numbers).
      n_checkpoints: how many times the run is logged (and saved).
      rollouts_per_checkpoint: rollouts of ``rollout_len x n_envs`` steps between checkpoints,
        rounded up to a multiple of every estimator's K + M (``checkpoint_rollouts``), so that
        all estimators are logged at the same environment-step counts.
      n_variance_samples: independent meta-gradient replicas per checkpoint (variance and SNR);
        0 measures nothing (no sampler is compiled; variance and SNR are NaN).
      mix_lambda: λ_mix of the geometric mixing weights, in [0, 1].
      self_tuning_decay, self_tuning_prior: the window (EMA decay in [0, 1)) and the prior's
        strength in meta-updates (>= 0) of ``auto<K>`` (``course_lib.self_tuning``).
      meta_learning_rate, meta_clip: Adam step and global-norm clip of the η update
        (docs/notation.md §6).
      seed: the root PRNG seed.
      problem: settings for ``problems.make_problem("snake", **problem)``.
      starts: named starting points, {name: {hyper-parameter: value}} with hyper-parameters among
        ``START_FIELDS``; an estimator ``<name>@<start>`` starts its η there (the others at the
        problem's defaults). Every run warms up the same way (the problem's ``warmup_updates`` at
        its defaults), so seed s still starts from the same θ_0 in every run.
    """

    estimators: tuple[str, ...] = ("k1", "k5", "mix5", "fixed5")
    n_seeds: int = 4
    n_checkpoints: int = 16
    rollouts_per_checkpoint: int = 120
    n_variance_samples: int = 24
    mix_lambda: float = 0.5
    self_tuning_decay: float = 0.95
    self_tuning_prior: float = 10.0
    meta_learning_rate: float = 3e-3
    meta_clip: float = 0.1
    seed: int = 0
    problem: dict = dataclasses.field(default_factory=lambda: {"n_envs": 32})
    starts: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        # Canonical form: what JSON gives back (tuples in the problem settings become lists), so a
        # config read from a results file compares equal to the one that produced it.
        if isinstance(self.estimators, str):
            raise ValueError(
                f"estimators must be a list of names, got the string {self.estimators!r}"
            )
        object.__setattr__(self, "estimators", tuple(self.estimators))
        object.__setattr__(self, "problem", json.loads(json.dumps(dict(self.problem))))
        object.__setattr__(self, "starts", json.loads(json.dumps(dict(self.starts))))

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


# The capstone's question, "does self-tuning replace a sweep?", needs its controls: the best setting
# of lesson 02's sweep held fixed (``sweep.best_setting`` of the stored sweep; a test checks these
# numbers against it) and a deliberately poor start, γ = 0.8 as in the follow-up code's settings,
# held fixed and self-tuned. ``auto5`` (lesson 08) asks whether mixing weights that tune
# themselves beat the fixed geometric mix at the same cost.
FULL_STARTS = {"swept": {"gamma": 0.99, "lam": 0.5, "entropy_cost": 0.01}, "poor": {"gamma": 0.8}}
FULL_ESTIMATORS = (
    "k1",
    "k5",
    "mix5",
    "auto5",
    "fixed5",
    "k5x5",
    "fixed5@swept",
    "fixed5@poor",
    "k1@poor",
    "k5@poor",
    "mix5@poor",
)


def full_config(**overrides) -> ExperimentConfig:
    """The course's full run: ``FULL_ESTIMATORS`` x 8 seeds from the defaults of
    ``ExperimentConfig`` (6x6 boards, 32 per agent, 614,400 environment steps per agent), with
    ``FULL_STARTS``. ``benchmarks/experiments.py`` times it; ``make results`` runs it."""
    base = ExperimentConfig(estimators=FULL_ESTIMATORS, n_seeds=8, starts=FULL_STARTS)
    return dataclasses.replace(base, **overrides)


class Plan(NamedTuple):
    """A validated config, resolved: estimators grouped by K and M (one compiled chunk per group:
    estimators, starts and seeds of the same K and M share it)."""

    config: ExperimentConfig
    estimators: tuple[Estimator, ...]
    groups: tuple[tuple[int, int, tuple[int, ...]], ...]  # (K, M, indices into estimators)
    k_var: int
    rollouts_per_checkpoint: int
    problem: MetaProblem
    eta0: tuple  # per estimator, its starting η [n_eta]


def make_plan(config: ExperimentConfig) -> Plan:
    """Check every setting (raising ``ValueError`` with a clear message) before anything runs."""
    if len(config.estimators) == 0:
        raise ValueError("estimators must name at least one estimator, got none")
    estimators = tuple(parse_estimator(name) for name in config.estimators)
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"estimators must not repeat, got {names}")
    check_int("n_seeds (--seeds)", config.n_seeds)
    check_int("n_checkpoints (--checkpoints)", config.n_checkpoints)
    check_int("rollouts_per_checkpoint", config.rollouts_per_checkpoint)
    if check_int("n_variance_samples", config.n_variance_samples, minimum=0) == 1:
        raise ValueError("n_variance_samples must be 0 (no variance measured) or >= 2, got 1")
    check_int("seed (--seed)", config.seed, minimum=0)
    check_unit_interval("mix_lambda", config.mix_lambda)
    self_tuning.check_settings(config.self_tuning_decay, config.self_tuning_prior)
    if not config.meta_learning_rate > 0 or not config.meta_clip > 0:
        raise ValueError(
            f"meta_learning_rate and meta_clip must be > 0, got {config.meta_learning_rate!r}, "
            f"{config.meta_clip!r}"
        )
    # Here, not at the top: the problems import the environments, which reading results never needs.
    from course_lib import problems

    _check_starts(config.starts, estimators)
    problem = problems.make_problem("snake", **config.problem)
    # Only η is needed from a start: its problem is built without the warm-up.
    start_eta = {
        name: problems.make_problem(
            "snake", **{**config.problem, **start, "warmup_updates": 0}
        ).eta0
        for name, start in config.starts.items()
    }
    eta0 = tuple(problem.eta0 if e.start is None else start_eta[e.start] for e in estimators)
    shapes = sorted({(e.k, e.outer_batches) for e in estimators})
    groups = tuple(
        (k, m, tuple(i for i, e in enumerate(estimators) if (e.k, e.outer_batches) == (k, m)))
        for k, m in shapes
    )
    k_var = max(e.k for e in estimators)
    return Plan(config, estimators, groups, k_var, checkpoint_rollouts(config), problem, eta0)


def _check_starts(starts: dict, estimators: tuple[Estimator, ...]) -> None:
    for name, start in starts.items():
        if not isinstance(start, dict) or not start or not set(start) <= set(START_FIELDS):
            raise ValueError(
                f"start {name!r} must set some of {START_FIELDS} (e.g. {{'gamma': 0.8}}), "
                f"got {start!r}"
            )
    for e in estimators:
        if e.start is not None and e.start not in starts:
            raise ValueError(
                f"estimator {e.name!r} names the start {e.start!r}, which starts does not define "
                f"(it defines {sorted(starts)})"
            )


def checkpoint_rollouts(config: ExperimentConfig) -> int:
    """``config.rollouts_per_checkpoint`` rounded up to a multiple of every estimator's rollouts
    per block (K + M), so that all estimators are logged at the same environment-step counts."""
    block = math.lcm(*(parse_estimator(name).rollouts_per_block for name in config.estimators))
    return block * math.ceil(config.rollouts_per_checkpoint / block)
