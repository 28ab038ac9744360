"""Figures shared by the lessons: curves across seeds drawn as a mean line inside a band.

Everything here works on host (NumPy) arrays; JAX arrays are converted on entry. Curves are
``[n_seeds, n_points]``: one row per independent run, NaN where a run has no value at that point
(an update during which no episode ended, say). NaNs are skipped, never treated as zeros.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from course_lib.checks import check_int, check_shape

BANDS = ("sem", "std", "minmax")


def smooth(values, window: int) -> np.ndarray:
    """Trailing moving average along the last axis, skipping NaNs.

    ``out[..., i] = nanmean(values[..., max(0, i − window + 1) : i + 1])``; NaN where every value
    in the window is NaN. Trailing (not centred) so that a point never uses later data.

    Args:
      values: ``[..., n]``.
      window: number of points averaged, >= 1 (1 returns the values unchanged, as floats).
    Returns:
      ``[..., n]`` float64.
    """
    check_int("window", window)
    values = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(values)
    pad = [(0, 0)] * (values.ndim - 1) + [(1, 0)]
    # Window sums as differences of cumulative sums: O(n) for any window.
    total = np.pad(np.cumsum(np.where(present, values, 0.0), axis=-1), pad)
    count = np.pad(np.cumsum(present, axis=-1), pad)
    end = np.arange(1, values.shape[-1] + 1)
    start = np.maximum(end - window, 0)
    window_total = total[..., end] - total[..., start]
    window_count = count[..., end] - count[..., start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(window_count > 0, window_total / window_count, np.nan)


def mean_and_band(curves, band: str = "sem") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean across seeds and a band around it, skipping NaNs.

    Args:
      curves: ``[n_seeds, n_points]``.
      band: ``"sem"`` mean ± standard error of the mean (std / √n, n = seeds with a value),
        ``"std"`` mean ± standard deviation across seeds, ``"minmax"`` the range across seeds.
        With one seed (at a point) "sem" and "std" have zero width.
    Returns:
      ``(mean, low, high)``, each ``[n_points]``; NaN where no seed has a value.
    """
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    curves = check_shape("curves", curves, (None, None), "[n_seeds, n_points]")
    present = ~np.isnan(curves)
    n = present.sum(axis=0)
    zeroed = np.where(present, curves, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, zeroed.sum(axis=0) / n, np.nan)
        if band == "minmax":
            low = np.where(n > 0, np.where(present, curves, np.inf).min(axis=0), np.nan)
            high = np.where(n > 0, np.where(present, curves, -np.inf).max(axis=0), np.nan)
            return mean, low, high
        squares = np.where(present, (curves - mean) ** 2, 0.0).sum(axis=0)
        std = np.where(n > 1, np.sqrt(squares / np.maximum(n - 1, 1)), 0.0)
        half_width = std / np.sqrt(n) if band == "sem" else std
    return mean, mean - half_width, mean + half_width


def plot_mean_band(
    ax: plt.Axes,
    curves,
    x=None,
    *,
    band: str = "sem",
    smooth_window: int = 1,
    label: str | None = None,
    color=None,
    alpha: float = 0.25,
):
    """Draw the mean of ``curves`` across seeds as a line and the band as a shaded area.

    Each seed's curve is smoothed first (``smooth``), then averaged (``mean_and_band``).

    Args:
      ax: the matplotlib axes to draw on.
      curves: ``[n_seeds, n_points]`` (a single run ``[n_points]`` is treated as one seed).
      x: ``[n_points]`` positions on the x axis; default ``0 .. n_points − 1``.
      band, smooth_window: as in ``mean_and_band`` and ``smooth``.
      label, color: of the line (the band takes the line's color).
      alpha: opacity of the band.
    Returns:
      The ``Line2D`` of the mean.
    """
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim == 1:
        curves = curves[None]
    n_points = curves.shape[-1]
    x = np.arange(n_points) if x is None else np.asarray(x)
    if x.shape != (n_points,):
        raise ValueError(f"x must have shape ({n_points},) to match curves, got {x.shape}")
    mean, low, high = mean_and_band(smooth(curves, smooth_window), band)
    (line,) = ax.plot(x, mean, label=label, color=color)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=alpha, linewidth=0)
    return line


def plot_learning_curves(
    runs: Mapping[str, object],
    x=None,
    *,
    ax: plt.Axes | None = None,
    band: str = "sem",
    smooth_window: int = 1,
    cmap: str | None = None,
    baseline: float | None = None,
    baseline_label: str = "baseline",
    xlabel: str = "update",
    ylabel: str = "mean episode return",
    title: str | None = None,
) -> plt.Axes:
    """Several labelled runs on one axes, each as a mean line with a band across its seeds.

    Args:
      runs: ``{label: curves}`` with curves ``[n_seeds, n_points]`` (the same n_points for all).
      x: ``[n_points]`` shared x positions (e.g. environment steps); default the point index.
      ax: axes to draw on; a new figure is made when None.
      band, smooth_window: as in ``plot_mean_band``.
      cmap: name of a matplotlib colormap to colour ordered runs (a sweep over γ, say) from light
        to dark; None uses the default colour cycle.
      baseline: draw a dashed horizontal reference line at this height (e.g. a random policy).
      baseline_label, xlabel, ylabel, title: text.
    Returns:
      The axes.
    """
    if not runs:
        raise ValueError("runs must hold at least one labelled set of curves, got none")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    colors = [None] * len(runs)
    if cmap is not None:
        colors = plt.get_cmap(cmap)(np.linspace(0.35, 0.95, len(runs)))
    for (label, curves), color in zip(runs.items(), colors, strict=True):
        plot_mean_band(
            ax, curves, x, band=band, smooth_window=smooth_window, label=label, color=color
        )
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label=baseline_label)
    # Environment steps run into the hundreds of thousands: a shared ×10ⁿ keeps tick labels apart.
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
