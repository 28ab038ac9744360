"""The capstone: self-tuning actor-critic agents on Snake, one per meta-gradient estimator.

Each agent learns θ with the inner update while its meta-parameters η (γ, λ, entropy cost) are
tuned online. One meta-update is one block of K inner updates from the agent's current state
(non-overlapping blocks; docs/notation.md §2 for the block, §6 for the η update), whose
meta-gradients g_1..g_K are mixed with weights w (docs/notation.md §3): one-hot at K for the K-step
estimator ("k5"), geometric ∝ λ_mix^(k−1) for the mixing estimator ("mix5"), zero for the
``fixed`` control whose η never moves, tuned online from running moments for "auto5"
(``course_lib.self_tuning``, docs/notation.md §8); "k1" is the one-step meta-gradient of Xu et al.
2018.
Every block draws K + 1 rollouts (K inner batches and one outer batch; K + M for ``k<K>x<M>``, the
K-step estimator scored on M outer batches); all of them count as environment steps. Controls
start from named points (``k1@poor``: ``ExperimentConfig.starts``), and ``full_config`` asks
whether self-tuning replaces lesson 02's sweep (``sweep``).

At each checkpoint the agent is frozen and ``n_variance_samples`` independent replicas of a
``k_var``-step block (``k_var`` = the largest K of the experiment) are drawn from its current state,
giving per-k samples ``[n_variance_samples, k_var, n_eta]``. Every estimator's variance and SNR is
measured on the same samples, so estimators are compared on the same agent state
(docs/notation.md §4 and §7).

Modules, one job each:

- ``settings``: estimator names, ``ExperimentConfig``, ``quick_config``/``full_config``, ``Plan``.
- ``run``: the compiled chunk of meta-updates, the variance sampler, ``run_experiment``, and
  ``run_experiments``, runs that differ only in their meta-learning rate as one computation.
- ``results``: ``Results``, the results file, the partial file a run resumes from, the sidecar.
- ``measures``: every estimator's variance and SNR on a run's per-k samples (``results`` computes
  them on loading).
- ``analysis``: what lessons 06 and 07 read from results (NumPy only): returns, variance and SNR,
  the trial decision, the runs' panels;
- ``intervals``: statistics over seeds with bootstrap intervals, the scale-free measures of every
  run and checkpoint, and ``agreement``, which compares a regenerated run with the stored one
  within those intervals.
- ``sweep``: lesson 02's sweep of γ, λ and the entropy cost, stored as data (its best setting is
  the capstone's "swept" control).
- ``__main__``: the command line, ``python -m course_lib.experiments snake --help``::

    python -m course_lib.experiments snake --estimators k1,k5,mix5,fixed5 --seeds 4 \\
        --out results/snake.npz

Importing this package, ``analysis``, ``intervals`` or ``results`` loads neither the engine nor the
environments; the runner's names (``run_experiment``, ``main``, ...) load them when first used.

Results are a compressed ``.npz`` holding the settings (a JSON string) and every logged series;
``load_results`` reads them back. After every step the run's state is saved next to ``--out``
(``<out>.partial.npz``); re-running the same command resumes from it.

What is reproducible: the same settings give identical numbers, interrupted or not, on the same
machine with the same JAX build. Across machines they do not: a compiled RL run's floating-point
results depend on the CPU (vector instructions, fused multiply-adds) and on the JAX/XLA version,
and the small differences grow through sampling (another action, another episode). What carries
across machines are the conclusions, statistics over seeds with their intervals. The sidecar
``<out>.json`` records the machine (CPU model and flags), the JAX and jaxlib versions and the
backend, so a reader can tell which case they are in.
"""

from course_lib import lazy
from course_lib.experiments.analysis import (
    Decision,
    Headline,
    choose_estimator,
    debiased_snr,
    final_returns,
    headline,
    own_snr,
    paired_difference,
    plot_runs,
    steps_per_rollout,
    trial_decision,
    variance_by_k,
    variance_ratio,
)
from course_lib.experiments.intervals import (
    Agreement,
    Interval,
    OverTraining,
    Recovery,
    agreement,
    measure_ratio,
    over_training,
    paired_interval,
    recovery,
    return_gap,
    scale_free_measures,
    seed_interval,
    snr_over_training,
    student_interval,
)
from course_lib.experiments.measures import measure_estimators, mix_samples
from course_lib.experiments.results import (
    PARTIAL_SUFFIX,
    STORED_RESULTS,
    Results,
    load_results,
    partial_path,
    save_results,
)
from course_lib.experiments.settings import (
    ESTIMATOR_PATTERN,
    FULL_ESTIMATORS,
    FULL_STARTS,
    Estimator,
    ExperimentConfig,
    Plan,
    full_config,
    make_plan,
    parse_estimator,
    quick_config,
)

# Names that need the engine (and so the environments): imported on first use (PEP 562).
_LAZY = {
    "ChunkLog": "run",
    "RunState": "run",
    "make_chunk": "run",
    "make_meta_optimizer": "run",
    "make_sampler": "run",
    "meta_gradient_block": "run",
    "run_experiment": "run",
    "run_experiments": "run",
    "main": "__main__",
}

__all__ = [
    "Agreement",
    "Decision",
    "ESTIMATOR_PATTERN",
    "Estimator",
    "ExperimentConfig",
    "FULL_ESTIMATORS",
    "FULL_STARTS",
    "Headline",
    "Interval",
    "OverTraining",
    "Recovery",
    "PARTIAL_SUFFIX",
    "Plan",
    "Results",
    "STORED_RESULTS",
    "agreement",
    "choose_estimator",
    "debiased_snr",
    "final_returns",
    "full_config",
    "headline",
    "load_results",
    "make_plan",
    "measure_estimators",
    "mix_samples",
    "measure_ratio",
    "over_training",
    "own_snr",
    "paired_difference",
    "paired_interval",
    "parse_estimator",
    "partial_path",
    "plot_runs",
    "quick_config",
    "recovery",
    "return_gap",
    "save_results",
    "scale_free_measures",
    "seed_interval",
    "snr_over_training",
    "student_interval",
    "steps_per_rollout",
    "trial_decision",
    "variance_by_k",
    "variance_ratio",
    *_LAZY,
]


__getattr__, __dir__ = lazy.attributes(__name__, _LAZY)
