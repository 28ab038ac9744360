"""Lesson 07's trial-decision explorer without a browser: the oracle is
experiments.trial_decision on the stored runs."""

import numpy as np
import pytest

from course_lib import experiments, widgets

# (threshold, trial) reaching each outcome on lesson 07's runs: mix5, and none accepted (the
# rule never picks k5 or auto5 there: mix5's SNR wins every tie in K).
DECISION_SETTINGS = [(0.001, 2), (0.01, 4), (0.3, 16), (0.03, 3), (0.001, 1), (0.2, 2)]
CANDIDATES = ["k1", "k5", "mix5", "auto5", "fixed5"]  # lesson 07's runs, from the defaults


@pytest.fixture(scope="module")
def candidate_results(stored_results):
    return stored_results.select(CANDIDATES)


@pytest.fixture
def decision_explorer(candidate_results):
    return widgets.TrialDecisionExplorer(candidate_results, threshold=0.01, trial=4)


def test_decision_explorer_shows_exactly_the_trial_decision(decision_explorer, candidate_results):
    stored_results = candidate_results
    chosen = set()
    for threshold, trial in DECISION_SETTINGS:
        decision_explorer.set(threshold=threshold, trial=trial)
        expected = experiments.trial_decision(stored_results, threshold, trial)
        assert decision_explorer.readout["decision"] == expected
        data = decision_explorer.plot_data
        assert data["span"] == (0.0, pytest.approx(stored_results.env_steps[trial - 1] / 1e3))
        assert data["threshold"] == threshold
        assert data["outlined"] == [expected.chosen or "fixed5"]  # none accepted: the control
        text = decision_explorer.readout_html.value
        assert f"{stored_results.env_steps[trial - 1]:,} steps per agent" in text
        assert (expected.chosen or "none, keep the hand-set values") in text
        chosen.add(expected.chosen)
    assert chosen == {"mix5", None}  # the settings reach every outcome


def test_decision_sliders_themselves_update_the_view(decision_explorer, candidate_results):
    decision_explorer.trial_slider.value = 2
    decision_explorer.threshold_slider.value = 0.001
    assert decision_explorer.plot_data["outlined"] == ["mix5"]
    assert decision_explorer.readout["decision"] == experiments.trial_decision(
        candidate_results, 0.001, 2
    )
    decision_explorer.threshold_slider.value = 0.2
    assert decision_explorer.plot_data["outlined"] == ["fixed5"]
    assert decision_explorer.plot_data["threshold"] == pytest.approx(0.2)


def test_decision_explorer_draws_each_runs_snr_and_final_return(
    decision_explorer, candidate_results
):
    stored_results = candidate_results
    data = decision_explorer.plot_data
    own = experiments.own_snr(stored_results)
    assert list(data["snr"]) == ["k1", "k5", "mix5", "auto5"]  # the control has no meta-gradient
    for name, curve in data["snr"].items():
        np.testing.assert_allclose(curve, own[name].mean(axis=0), rtol=1e-12)
    # Final return: the mean over the last quarter (4 of 16) of checkpoints, then over seeds.
    finals = np.nanmean(stored_results.episode_return[..., -4:], axis=-1).mean(axis=1)
    assert data["bars"] == pytest.approx(dict(zip(stored_results.estimators, finals, strict=True)))


def only_fixed(results):
    """The stored results cut down to the hand-set control alone."""
    return results.select(["fixed5"])


BAD_THRESHOLD = "threshold must be a number from 0.001 to 0.3162"
BAD_TRIAL = "trial must be an integer from 1 to n_checkpoints=16"
BAD_DECISION_INPUTS = [
    (dict(threshold=0.0), BAD_THRESHOLD),
    (dict(threshold=0.5), BAD_THRESHOLD),
    (dict(threshold=float("nan")), BAD_THRESHOLD),
    (dict(threshold="0.01"), BAD_THRESHOLD),
    (dict(threshold=True), BAD_THRESHOLD),
    (dict(trial=0), BAD_TRIAL),
    (dict(trial=17), BAD_TRIAL),
    (dict(trial=2.0), BAD_TRIAL),
    (dict(trial=True), BAD_TRIAL),
]


@pytest.mark.parametrize(
    "bad, words", BAD_DECISION_INPUTS, ids=[str(b) for b, _ in BAD_DECISION_INPUTS]
)
def test_decision_explorer_rejects_bad_input_naming_the_argument(stored_results, bad, words):
    with pytest.raises(ValueError, match=words):
        widgets.TrialDecisionExplorer(stored_results, **bad)


@pytest.mark.parametrize(
    "results, words",
    [("runs", "results must be an experiments.Results"), (None, "self-tuning estimator")],
)
def test_decision_explorer_needs_results_with_a_self_tuning_run(stored_results, results, words):
    with pytest.raises(ValueError, match=words):
        widgets.TrialDecisionExplorer(only_fixed(stored_results) if results is None else results)
