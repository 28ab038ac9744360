"""Lesson 03's meta-learning-rate explorer without a browser: the oracle is the runs it was
given."""

import numpy as np
import pytest

from course_lib import experiments, widgets

RATES, LABELS, N_CHECKPOINTS = (0.001, 0.01, 0.1), ("γ", "λ", "c_ent"), 8


def fake_result(rng, estimators=("k1",), n_seeds=3, n_checkpoints=N_CHECKPOINTS):
    """An ``experiments.Results``: random returns (one missing), hyper-parameters in (0, 1)."""
    returns = rng.normal(size=(len(estimators), n_seeds, n_checkpoints))
    returns[0, 0, 0] = np.nan  # no episode ended there: the mean and band skip it
    hyper = rng.uniform(0.01, 1.0, size=(len(estimators), n_seeds, n_checkpoints + 1, 3))
    return experiments.Results(
        config=None,
        estimators=estimators,
        meta_names=("discount", "lambda", "entropy_cost"),
        env_steps=100 * np.arange(1, n_checkpoints + 1),
        episode_return=returns,
        eta=np.log(hyper),
        hyper=hyper,
        samples=None,
        skipped=None,
        weights=None,
        variance=None,
        snr=None,
    )


@pytest.fixture(scope="module")
def rate_runs():
    rng = np.random.default_rng(3)
    return {rate: fake_result(rng) for rate in RATES}


@pytest.fixture
def rate_explorer(rate_runs):
    return widgets.MetaLearningRateExplorer(rate_runs, labels=LABELS, log_scale=("c_ent",))


def test_meta_lr_slider_shows_exactly_that_rates_runs_in_colour(rate_explorer, rate_runs):
    assert rate_explorer.plot_data["highlighted"] == [0.01]  # the middle rate to start with
    for rate in (0.1, 0.001, 0.01):
        rate_explorer.slider.value = rate
        data = rate_explorer.plot_data
        assert data["highlighted"] == [rate]
        result = rate_runs[rate]
        returns = result.episode_return[0]
        x, mean = data["return"]
        np.testing.assert_array_equal(x, result.env_steps)
        np.testing.assert_allclose(mean, np.nanmean(returns, axis=0), rtol=1e-12)
        # The band spans mean ± std (ddof 1) over the seeds at every checkpoint.
        std = np.nanstd(returns, axis=0, ddof=1)
        for step, middle, width in zip(result.env_steps, mean, std, strict=True):
            at_step = data["band"][data["band"][:, 0] == step, 1]
            assert at_step.min() == pytest.approx(middle - width, rel=1e-12)
            assert at_step.max() == pytest.approx(middle + width, rel=1e-12)
        for index, label in enumerate(LABELS):
            np.testing.assert_array_equal(data["hyper"][label], result.hyper[0, :, :, index])


def test_meta_lr_readout_is_that_rates_final_return_and_hyper_parameters(rate_explorer, rate_runs):
    rate_explorer.set(meta_lr=0.1)
    readout, result = rate_explorer.readout, rate_runs[0.1]
    assert readout["meta_lr"] == 0.1 and "β = 0.1" in rate_explorer.readout_html.value
    # final_returns: the mean over the last quarter of the 8 checkpoints, per seed.
    np.testing.assert_allclose(readout["final_return"], result.episode_return[0, :, -2:].mean(-1))
    for index, label in enumerate(LABELS):
        np.testing.assert_array_equal(readout["start"][label], result.hyper[0, :, 0, index])
        np.testing.assert_array_equal(readout["end"][label], result.hyper[0, :, -1, index])


BAD_RATE_INPUTS = [
    (dict(runs=[]), "runs must be a non-empty dict"),
    (dict(runs={}), "runs must be a non-empty dict"),
    (dict(runs={0.0: None}), "runs must be keyed by meta-learning rates β > 0, got 0.0"),
    (dict(runs={"fast": None}), "runs must be keyed by meta-learning rates"),
    (dict(runs={0.1: "a result"}), r"runs\[0.1\] must be an experiments.Results"),
    (dict(env_steps=np.arange(N_CHECKPOINTS)), "runs must share env_steps"),
    (dict(n_seeds=2), "runs must share seeds and checkpoints"),
    (dict(labels=("γ", "λ")), "labels must name the 3 hyper-parameters"),
    (dict(log_scale=("c",)), "log_scale must list some of"),
    (dict(log_scale=("λ",), negative=True), "log_scale: λ must be > 0"),
    (dict(meta_lr=0.5), r"meta_lr must be one of \[0.001, 0.01, 0.1\], got 0.5"),
    (dict(estimator="k5"), "unknown estimator 'k5'"),
]


@pytest.mark.parametrize("bad, words", BAD_RATE_INPUTS, ids=[str(b) for b, _ in BAD_RATE_INPUTS])
def test_meta_lr_explorer_rejects_bad_input_naming_the_argument(rate_runs, bad, words):
    bad = dict(bad)
    runs = dict(rate_runs)
    last = runs[RATES[-1]]
    if "env_steps" in bad:
        runs[RATES[-1]] = last._replace(env_steps=bad.pop("env_steps"))
    if "n_seeds" in bad:
        runs[RATES[-1]] = fake_result(np.random.default_rng(0), n_seeds=bad.pop("n_seeds"))
    if bad.pop("negative", False):
        runs[RATES[-1]] = last._replace(hyper=last.hyper - 2.0)
    arguments = dict(runs=runs, labels=LABELS) | bad
    with pytest.raises(ValueError, match=words):
        widgets.MetaLearningRateExplorer(**arguments)
