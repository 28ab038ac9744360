"""Lesson 03: a slider over the meta-learning rate β of stored self-tuning runs."""

from __future__ import annotations

import html
from collections.abc import Mapping

import ipywidgets as widgets
import numpy as np

from course_lib import plots
from course_lib.experiments.analysis import final_returns
from course_lib.experiments.results import Results
from course_lib.widgets.base import SliderExplorer, format_value, html_table


class MetaLearningRateExplorer(SliderExplorer):
    """A slider over the meta-learning rate β of stored self-tuning runs: the return of the chosen
    β's runs as mean ± std over seeds with the other β's mean returns in grey, and beside it each
    hyper-parameter's per-seed trajectory, the chosen β's in colour over every other β's in grey.

    Every run is drawn up front twice: in grey into the background, and in colour as hidden
    animated artists. A move only shows the chosen β's coloured artists, hides the others and
    blits: the axes hold every run from the start, so no limit ever changes and the figure is drawn
    in full only once.

    The readout gives, for the chosen β, each seed's final return (``experiments.final_returns``:
    the mean over the last quarter of checkpoints) and each hyper-parameter per seed at the start
    and at the end of the run.

    Display ``explorer.widget`` (or the explorer itself, last in a cell). Drive it from code with
    ``explorer.set(meta_lr=β)``; ``explorer.readout`` holds the numbers shown and
    ``explorer.plot_data`` what is drawn in colour.

    Args:
      runs: {β: experiments.Results}, one result per meta-learning rate β > 0, all with the same
        ``env_steps`` [C], seeds S and hyper-parameters n: ``episode_return`` [E, S, C] and
        ``hyper`` [E, S, C + 1, n] (index 0: the start).
      estimator: whose runs to show; default each result's first estimator.
      labels: names of the n hyper-parameters, ``hyper[..., i]``.
      log_scale: the labels whose axis is logarithmic (their values must be > 0).
      meta_lr: the slider's starting β, one of ``runs``; default the middle of the sorted rates.
    """

    FIGSIZE = (14.0, 3.2)

    def __init__(
        self, runs, estimator=None, labels=("γ", "λ", "c_ent"), log_scale=("c_ent",), meta_lr=None
    ):
        if not isinstance(runs, Mapping) or not runs:
            raise ValueError(
                f"runs must be a non-empty dict β -> experiments.Results, got {runs!r}"
            )
        for rate, result in runs.items():
            if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)) or rate <= 0:
                raise ValueError(f"runs must be keyed by meta-learning rates β > 0, got {rate!r}")
            if not isinstance(result, Results):
                raise ValueError(f"runs[{rate}] must be an experiments.Results, got {result!r}")
        self.rates = sorted(runs)
        self.env_steps = np.asarray(runs[self.rates[0]].env_steps, dtype=float)
        self.returns, self.hyper, self.final_returns = {}, {}, {}
        for rate in self.rates:
            result = runs[rate]
            e = result.index(result.estimators[0] if estimator is None else estimator)
            self.returns[rate] = np.asarray(result.episode_return[e], dtype=float)  # [S, C]
            self.hyper[rate] = np.asarray(result.hyper[e], dtype=float)  # [S, C + 1, n]
            self.final_returns[rate] = final_returns(result)[e]  # [S]
            if not np.array_equal(result.env_steps, self.env_steps):
                raise ValueError(
                    f"runs must share env_steps: β = {rate} differs from β = {self.rates[0]}"
                )
        first = self.rates[0]
        n_seeds, n_hyper = len(self.returns[first]), self.hyper[first].shape[-1]
        for rate in self.rates:
            if self.returns[rate].shape != (n_seeds, len(self.env_steps)) or self.hyper[
                rate
            ].shape != (n_seeds, len(self.env_steps) + 1, n_hyper):
                raise ValueError(
                    f"runs must share seeds and checkpoints: β = {rate} has episode_return "
                    f"{self.returns[rate].shape} and hyper {self.hyper[rate].shape}, "
                    f"β = {first} {self.returns[first].shape} and {self.hyper[first].shape}"
                )
        self.labels = tuple(labels)
        if len(self.labels) != n_hyper:
            raise ValueError(f"labels must name the {n_hyper} hyper-parameters, got {labels!r}")
        log_scale = tuple(log_scale)
        if not set(log_scale) <= set(self.labels):
            raise ValueError(f"log_scale must list some of {self.labels}, got {log_scale!r}")
        for label in log_scale:
            if not all(np.all(h[..., self.labels.index(label)] > 0) for h in self.hyper.values()):
                raise ValueError(
                    f"log_scale: {label} must be > 0 in every run to be drawn on a log axis"
                )
        meta_lr = self.rates[len(self.rates) // 2] if meta_lr is None else meta_lr
        self.slider = widgets.SelectionSlider(
            options=[(f"{rate:g}", rate) for rate in self.rates],
            value=self._checked_meta_lr(meta_lr),
            description="meta-lr β",
            continuous_update=True,  # a move costs a blit, so the drag can follow the mouse
            layout=widgets.Layout(width="420px"),
        )
        self._build_figure(log_scale)
        self._connect([self.slider])

    def _checked_meta_lr(self, meta_lr):
        if isinstance(meta_lr, bool) or meta_lr not in self.rates:
            raise ValueError(f"meta_lr must be one of {self.rates}, got {meta_lr!r}")
        return self.rates[self.rates.index(meta_lr)]

    def _build_figure(self, log_scale):
        figure, animate = self._start_figure()
        axes = figure.subplots(
            1,
            1 + len(self.labels),
            gridspec_kw=dict(left=0.05, right=0.99, bottom=0.17, top=0.88, wspace=0.3),
        )
        return_ax, hyper_axes = axes[0], axes[1:]
        hyper_steps = np.concatenate([[0.0], self.env_steps])  # hyper holds the start, at step 0
        self._coloured = {}
        for rate in self.rates:
            returns = self.returns[rate]
            return_ax.plot(self.env_steps, plots.mean_and_band(returns)[0], color="0.8", lw=1)
            line = plots.plot_mean_band(return_ax, returns, self.env_steps, band="std", color="C0")
            # Animated in this order, so the band lies under its mean line.
            artists = {"band": return_ax.collections[-1], "line": line, "hyper": []}
            for index, ax in enumerate(hyper_axes):
                seeds = self.hyper[rate][:, :, index].T  # [C + 1, S]: one line per seed
                ax.plot(hyper_steps, seeds, color="0.8", lw=1)
                artists["hyper"].append(ax.plot(hyper_steps, seeds, color="C0", lw=2))
            self._coloured[rate] = artists
            for artist in self._coloured_artists(rate):
                animate(artist).set_visible(False)
        # Every run is on the axes now, coloured ones included, so the limits cover any choice.
        return_ax.set(
            ylabel="mean episode return", title="return, mean ± std over seeds (grey: other β)"
        )
        for ax, label in zip(hyper_axes, self.labels, strict=True):
            ax.set_title(f"{label} per seed (grey: other β)")
            if label in log_scale:
                ax.set_yscale("log")
        for ax in axes:
            ax.set_xlabel("environment steps")
            # Steps run into the hundreds of thousands: a shared ×10ⁿ keeps the labels apart.
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)

    def _coloured_artists(self, rate) -> list:
        """β's coloured artists, in drawing order: band, mean line, then the per-seed lines."""
        artists = self._coloured[rate]
        return [
            artists["band"],
            artists["line"],
            *(line for lines in artists["hyper"] for line in lines),
        ]

    def set(self, meta_lr) -> None:
        """Move the slider to ``meta_lr`` (one of the runs' β) from code and redraw (ValueError
        if it is not one of them)."""
        self._move([(self.slider, self._checked_meta_lr(meta_lr))])

    @property
    def plot_data(self) -> dict:
        """What is drawn in colour: ``highlighted``, the β whose coloured artists are visible (one
        after any move); for the first of them its mean ``return`` line (x, y) [2, C], its ``band``
        polygon's vertices [n_vertices, 2] and ``hyper`` {label: [S, C + 1]} per-seed lines' y."""
        highlighted = [
            rate
            for rate in self.rates
            if any(artist.get_visible() for artist in self._coloured_artists(rate))
        ]
        if not highlighted:
            return {"highlighted": []}
        artists = self._coloured[highlighted[0]]
        return {
            "highlighted": highlighted,
            "return": np.array(artists["line"].get_data(), dtype=float),
            "band": np.concatenate([path.vertices for path in artists["band"].get_paths()]),
            "hyper": {
                label: np.array([line.get_ydata() for line in lines], dtype=float)
                for label, lines in zip(self.labels, artists["hyper"], strict=True)
            },
        }

    def _show(self) -> dict:
        chosen = self.slider.value
        for rate in self.rates:
            for artist in self._coloured_artists(rate):
                artist.set_visible(rate == chosen)
        hyper = self.hyper[chosen]
        return {
            "meta_lr": chosen,
            "final_return": self.final_returns[chosen],
            "start": {label: hyper[:, 0, i] for i, label in enumerate(self.labels)},
            "end": {label: hyper[:, -1, i] for i, label in enumerate(self.labels)},
        }

    def _readout_html(self) -> str:
        r = self.readout
        rows = [
            (label, format_value(r["start"][label]), format_value(r["end"][label]))
            for label in self.labels
        ]
        return (
            f"<b>β = {r['meta_lr']:g}</b>: final return per seed (mean of the last quarter of "
            f"checkpoints) {html.escape(format_value(r['final_return']))}"
            + html_table(("per seed", "at the start", "at the end"), rows)
        )
