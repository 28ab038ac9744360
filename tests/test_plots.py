"""Shared plotting helpers: NaN-aware smoothing and bands, checked against plain NumPy loops."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib.plots import mean_and_band, plot_learning_curves, plot_mean_band, smooth


def with_gaps(rng, shape, fraction=0.3):
    values = rng.normal(size=shape)
    values[rng.random(shape) < fraction] = np.nan
    return values


@pytest.mark.parametrize("window", [1, 3, 50])
def test_smooth_is_the_trailing_nanmean_of_each_window(window):
    values = with_gaps(np.random.default_rng(window), (3, 40))
    expected = np.full_like(values, np.nan)
    for row in range(values.shape[0]):
        for i in range(values.shape[1]):
            chunk = values[row, max(0, i - window + 1) : i + 1]
            if not np.isnan(chunk).all():
                expected[row, i] = np.nanmean(chunk)
    np.testing.assert_allclose(smooth(values, window), expected, rtol=1e-12)


def test_smooth_rejects_a_window_below_one():
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        smooth(np.zeros(5), 0)


@pytest.mark.parametrize("band", ["sem", "std", "minmax"])
def test_mean_and_band_match_numpy_where_seeds_have_values(band):
    curves = with_gaps(np.random.default_rng(0), (5, 30))
    curves[:, 7] = np.nan  # a point where no seed has a value
    curves[1:, 8] = np.nan  # a point with one seed only
    mean, low, high = mean_and_band(curves, band)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        n = (~np.isnan(curves)).sum(axis=0)
        std = np.nan_to_num(np.nanstd(curves, axis=0, ddof=1))
        expected = {
            "sem": (std / np.sqrt(n), std / np.sqrt(n)),
            "std": (std, std),
            "minmax": (
                np.nanmean(curves, axis=0) - np.nanmin(curves, axis=0),
                np.nanmax(curves, axis=0) - np.nanmean(curves, axis=0),
            ),
        }[band]
        expected_mean = np.nanmean(curves, axis=0)
    some = n > 0
    np.testing.assert_allclose(mean[some], expected_mean[some], rtol=1e-12)
    np.testing.assert_allclose((mean - low)[some], expected[0][some], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((high - mean)[some], expected[1][some], rtol=1e-12, atol=1e-12)
    assert np.isnan(mean[7]) and np.isnan(low[7]) and np.isnan(high[7])
    if band != "minmax":
        assert low[8] == mean[8] == high[8]


@pytest.mark.parametrize(
    "curves, band, message",
    [
        (np.zeros((2, 3)), "ci", "band must be one of"),
        (np.zeros(3), "sem", r"\[n_seeds, n_points\]"),
    ],
)
def test_mean_and_band_rejects_bad_arguments(curves, band, message):
    with pytest.raises(ValueError, match=message):
        mean_and_band(curves, band)


def test_plot_learning_curves_draws_one_line_and_band_per_run_plus_the_baseline():
    rng = np.random.default_rng(1)
    runs = {"a": rng.normal(size=(3, 20)), "b": rng.normal(size=(2, 20))}
    ax = plot_learning_curves(runs, np.arange(20) * 640, baseline=0.15, cmap="viridis")
    try:
        assert [line.get_label() for line in ax.get_lines()] == ["a", "b", "baseline"]
        assert len(ax.collections) == 2
        np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), np.arange(20) * 640)
        np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), runs["b"].mean(axis=0))
    finally:
        plt.close(ax.figure)


def test_plot_mean_band_rejects_x_of_the_wrong_length():
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match=r"x must have shape \(4,\)"):
            plot_mean_band(ax, np.zeros((2, 4)), np.arange(5))
    finally:
        plt.close(fig)


def test_plot_learning_curves_needs_at_least_one_run():
    with pytest.raises(ValueError, match="at least one"):
        plot_learning_curves({})
