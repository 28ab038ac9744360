"""The tiny capstone configuration the experiment tests run (seconds on a CPU)."""

from course_lib.experiments import ExperimentConfig

TINY = ExperimentConfig(
    estimators=("k2", "mix2", "fixed2"),
    n_seeds=2,
    n_checkpoints=2,
    rollouts_per_checkpoint=3,
    n_variance_samples=3,
    # time_limit 5: every board ends an episode within each chunk, so every return is defined.
    problem=dict(n_envs=2, rollout_len=3, time_limit=5, hidden=(8,)),
)
