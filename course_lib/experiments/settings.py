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

from course_lib import mixing
from course_lib.checks import check_int, check_unit_interval

if TYPE_CHECKING:
    from course_lib.problems import MetaProblem

ESTIMATOR_PATTERN = re.compile(r"^(k|mix|fixed)(-?\d+)$")

# The experiments' short names (k5, mix5, fixed5) and the estimator kinds they stand for.
_KINDS = {"k": "k-step", "mix": "geometric", "fixed": "fixed"}


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
        (fixed: ĝ = 0, so Adam leaves η where it is), docs/notation.md §3. [k_max]."""
        return mixing.estimator_weights(_KINDS[self.kind], self.k, k_max, lam=mix_lambda)


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
      meta_learning_rate, meta_clip: Adam step and global-norm clip of the η update
        (docs/notation.md §6).
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
    check_int("n_seeds (--seeds)", config.n_seeds)
    check_int("n_checkpoints (--checkpoints)", config.n_checkpoints)
    check_int("rollouts_per_checkpoint", config.rollouts_per_checkpoint)
    check_int("n_variance_samples", config.n_variance_samples, minimum=2)
    check_int("seed (--seed)", config.seed, minimum=0)
    check_unit_interval("mix_lambda", config.mix_lambda)
    if not config.meta_learning_rate > 0 or not config.meta_clip > 0:
        raise ValueError(
            f"meta_learning_rate and meta_clip must be > 0, got {config.meta_learning_rate!r}, "
            f"{config.meta_clip!r}"
        )
    # Here, not at the top: the engine imports the environments, which reading results never needs.
    from course_lib import metagrad

    problem = metagrad.make_problem("snake", **config.problem)
    ks = sorted({e.k for e in estimators})
    groups = tuple((k, tuple(i for i, e in enumerate(estimators) if e.k == k)) for k in ks)
    return Plan(config, estimators, groups, max(ks), checkpoint_rollouts(config), problem)


def checkpoint_rollouts(config: ExperimentConfig) -> int:
    """``config.rollouts_per_checkpoint`` rounded up to a multiple of every estimator's K + 1."""
    block = math.lcm(*(parse_estimator(name).k + 1 for name in config.estimators))
    return block * math.ceil(config.rollouts_per_checkpoint / block)
