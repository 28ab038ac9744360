"""Estimator names (outer batches, starts), the starts' checks, and the full configuration."""

import dataclasses

import pytest
from tiny_experiment import TINY

from course_lib import experiments
from course_lib.experiments import sweep as sweep_module


@pytest.mark.parametrize(
    "name, k, kind, outer_batches, start",
    [("k5", 5, "k", 1, None), ("k5x5", 5, "k", 5, None), ("mix5@poor", 5, "mix", 1, "poor")],
)
def test_estimator_names_carry_outer_batches_and_a_start(name, k, kind, outer_batches, start):
    estimator = experiments.parse_estimator(name)
    assert estimator == (name, k, kind, outer_batches, start)
    assert estimator.rollouts_per_block == k + outer_batches
    assert estimator.measured == (outer_batches == 1)


@pytest.mark.parametrize(
    "name, message",
    [("mix5x5", "only a K-step estimator"), ("k5x0", "M must be >= 1"), ("k5@", "unknown")],
)
def test_bad_suffixes_fail_clearly(name, message):
    with pytest.raises(ValueError, match=message):
        experiments.parse_estimator(name)


def test_a_start_must_be_defined_and_set_known_hyper_parameters():
    with pytest.raises(ValueError, match="names the start 'poor', which starts does not define"):
        experiments.make_plan(dataclasses.replace(TINY, estimators=("k2@poor",)))
    with pytest.raises(ValueError, match="start 'poor' must set some of"):
        experiments.make_plan(
            dataclasses.replace(TINY, estimators=("k2@poor",), starts={"poor": {"alpha": 1}})
        )


def test_full_config_asks_the_capstone_question_with_the_sweeps_best_setting():
    config = experiments.full_config()
    assert config.n_seeds >= 8
    controls = {"fixed5@swept", "fixed5@poor", "k1@poor", "k5@poor", "mix5@poor", "k5x5"}
    assert controls | {"auto5"} <= set(config.estimators)
    assert config.starts["swept"] == sweep_module.load_sweep().best_setting()
    assert config.starts["poor"] == {"gamma": 0.8}
    # k5x5 uses as many outer batches per meta-update as mix5 mixes meta-gradients
    assert experiments.parse_estimator("k5x5").outer_batches == 5
