"""Lesson 06's run chooser without a browser: the oracle is the stored runs' arrays, averaged here
with NumPy."""

import copy

import numpy as np
import pytest

from course_lib import widgets


@pytest.fixture
def runs_explorer(stored_results):
    return widgets.RunsExplorer(stored_results, runs=("k1", "mix5"), band="std")


def test_runs_explorer_draws_each_chosen_runs_mean_and_band(runs_explorer, stored_results):
    panels = runs_explorer.plot_data["panels"]
    assert all(list(runs) == ["k1", "mix5"] for runs in panels.values())
    steps = stored_results.env_steps / 1e3
    for name in ("k1", "mix5"):
        e = stored_results.index(name)
        returns = stored_results.episode_return[e].astype(float)  # stored as float32
        drawn = panels["mean episode return"][name]
        mean, std = np.nanmean(returns, axis=0), np.nanstd(returns, axis=0, ddof=1)
        np.testing.assert_allclose(drawn["mean"], mean, rtol=1e-12)
        (band,) = drawn["band"]  # the chosen band only
        for step, middle, width in zip(steps, mean, std, strict=True):
            at_step = band[np.isclose(band[:, 0], step), 1]
            assert at_step.min() == pytest.approx(middle - width, rel=1e-9)
            assert at_step.max() == pytest.approx(middle + width, rel=1e-9)
        own = np.log10(stored_results.variance[e, :, :, e].astype(float)).mean(axis=0)
        np.testing.assert_allclose(panels["variance of own meta-gradient"][name]["mean"], own)
    runs_explorer.set(runs="fixed5")  # the control: no meta-gradient of its own to draw
    panels = runs_explorer.plot_data["panels"]
    assert list(panels["mean episode return"]) == ["fixed5"]
    assert panels["variance of own meta-gradient"] == {}


def test_runs_choices_keep_the_limits_and_only_another_band_draws_in_full(
    runs_explorer, stored_results
):
    # That run choices only blit: tests/test_widgets_contract.py.
    full_draws = []
    runs_explorer.figure.canvas.mpl_connect("draw_event", full_draws.append)
    limits = runs_explorer.plot_data["ylim"]
    runs_explorer.run_list.value = ("k5",)
    runs_explorer.set(runs=stored_results.estimators)
    assert full_draws == [] and runs_explorer.plot_data["ylim"] == limits
    runs_explorer.band_dropdown.value = "minmax"
    assert len(full_draws) == 1
    # The new limits hold every run's range over seeds, chosen or not.
    low, high = runs_explorer.plot_data["ylim"][0]
    returns = stored_results.episode_return
    assert low <= np.nanmin(returns) and np.nanmax(returns) <= high
    assert runs_explorer.readout == {"runs": stored_results.estimators, "band": "minmax"}


def test_runs_list_emptied_in_the_notebook_keeps_the_picture_until_a_run_is_chosen(
    runs_explorer,
):
    before = copy.deepcopy(runs_explorer.plot_data)
    runs_explorer.run_list.value = ()
    assert "no run chosen" in runs_explorer.message
    assert "no run chosen" in runs_explorer.message_html.value
    assert runs_explorer.readout["runs"] == ("k1", "mix5")
    assert runs_explorer.plot_data["panels"].keys() == before["panels"].keys()
    for title, runs in runs_explorer.plot_data["panels"].items():
        assert list(runs) == list(before["panels"][title])
    runs_explorer.run_list.value = ("k5",)
    assert runs_explorer.message == "" and runs_explorer.readout["runs"] == ("k5",)


BAD_RUNS = "runs must list one or more of"
BAD_RUNS_INPUTS = [  # set's rejections: tests/test_widgets_contract.py
    (dict(runs=()), BAD_RUNS),
    (dict(runs=("k1", "k7")), BAD_RUNS),
    (dict(runs="fixed"), BAD_RUNS),
    (dict(band="iqr"), "band must be one of"),
    (dict(runs=("k5",), band="iqr"), "band must be one of"),
]


@pytest.mark.parametrize("bad, words", BAD_RUNS_INPUTS)
def test_runs_explorer_rejects_bad_input_naming_the_argument(stored_results, bad, words):
    with pytest.raises(ValueError, match=words):
        widgets.RunsExplorer(stored_results, **bad)


def test_runs_explorer_needs_results():
    with pytest.raises(ValueError, match="results must be an experiments.Results"):
        widgets.RunsExplorer({"k1": None})
