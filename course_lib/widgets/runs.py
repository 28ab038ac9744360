"""Lesson 06: choose runs of a capstone experiment and a band; the panels of their curves."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
from matplotlib.lines import Line2D

from course_lib import plots
from course_lib.checks import check_choice
from course_lib.experiments.analysis import STEPS_LABEL, run_panels
from course_lib.experiments.results import Results
from course_lib.widgets.base import SliderExplorer
from course_lib.widgets.figure import padded

BAND_LABELS = {"sem": "± standard error", "std": "± standard deviation", "minmax": "min – max"}


class RunsExplorer(SliderExplorer):
    """A list of runs (estimators) to choose from and a band over the panels of
    ``experiments.plot_runs`` (``experiments.run_panels``): the return, the variance and SNR of
    each run's own meta-gradient, and the hyper-parameters, each a mean over seeds in its band.

    Every run's mean line and its three bands (``plots.mean_and_band``) are drawn up front as
    hidden animated artists. Choosing runs only shows theirs and blits; the y-limits hold every run
    in the chosen band, so only another band draws the figure in full. No Output widget is
    involved: the figure is one image (or ipympl canvas), so an execution without a browser never
    waits on it.

    Display ``explorer.widget`` (or the explorer itself, last in a cell). Drive it from code with
    ``explorer.set(runs=..., band=...)``; ``explorer.readout`` holds the runs and band shown and
    ``explorer.plot_data`` what is drawn. Choosing no run in the list is rejected: the message says
    so and the figure keeps the previous runs.

    Args:
      results: ``experiments.Results``.
      runs: the estimators shown at the start; default all of them.
      band: "sem", "std" or "minmax" (``plots.mean_and_band``).
    """

    FIGSIZE = (14.0, 6.5)

    def __init__(self, results, runs=None, band="sem"):
        if not isinstance(results, Results):
            raise ValueError(f"results must be an experiments.Results, got {type(results)!r}")
        self.results = results
        self.run_list = widgets.SelectMultiple(
            options=results.estimators,
            value=self._checked_runs(results.estimators if runs is None else runs),
            rows=len(results.estimators),
            description="runs",
        )
        self.band_dropdown = widgets.Dropdown(
            options=[(label, name) for name, label in BAND_LABELS.items()],
            value=check_choice("band", band, plots.BANDS),
            description="band",
        )
        self._build_figure()
        controls = [self.run_list, self.band_dropdown]
        self._connect(controls, rows=[widgets.HBox(controls)])

    def _checked_runs(self, runs) -> tuple:
        runs = (runs,) if isinstance(runs, str) else tuple(runs)
        if not runs or not set(runs) <= set(self.results.estimators):
            raise ValueError(
                f"runs must list one or more of {list(self.results.estimators)}, got {runs!r}"
            )
        return runs

    def _build_figure(self):
        figure, animate = self._start_figure()
        figure.set_layout_engine("constrained")
        self._panels = run_panels(self.results)
        self._axes = list(figure.subplots(2, 3).flat)
        # Per panel, {run: (mean line, {band: area})}, and per band the y-limits holding every run.
        self._artists = [{} for _ in self._panels]
        self._ylim = {band: [] for band in plots.BANDS}
        self._drawn_band = None
        for ax, panel, artists in zip(self._axes, self._panels, self._artists, strict=True):
            spans = {band: [] for band in plots.BANDS}
            for run, curves in panel.curves.items():
                color = f"C{self.results.index(run)}"
                areas = {}
                for band in plots.BANDS:
                    mean, low, high = plots.mean_and_band(curves, band)
                    area = ax.fill_between(panel.x, low, high, color=color, alpha=0.25, lw=0)
                    areas[band] = animate(area)
                    spans[band] += [low, high, mean]
                # Animated after the areas, so each line lies on its band.
                artists[run] = (animate(ax.plot(panel.x, mean, color=color)[0]), areas)
            if panel.noise is not None:
                ax.axhline(panel.noise, color="grey", linestyle="--", label="pure noise (1/n)")
                ax.legend(fontsize="small")
            for band, values in spans.items():
                values = np.concatenate([*values, [] if panel.noise is None else [panel.noise]])
                self._ylim[band].append(padded(np.nanmin(values), np.nanmax(values), log=False))
            ax.set(title=panel.title, xlabel=STEPS_LABEL, ylabel=panel.y_label)
            ax.set_xlim(padded(panel.x[0], panel.x[-1], log=False))
        # Stand-ins for the legend: the lines themselves are hidden until chosen.
        keys = [
            Line2D([], [], color=f"C{self.results.index(run)}", label=run)
            for run in self.results.estimators
        ]
        self._axes[0].legend(handles=keys, fontsize="small")

    def set(self, runs=None, band=None) -> None:
        """Choose runs and the band from code (both checked before either changes), then redraw.

        Args:
          runs: one or more of ``results.estimators`` (a name or a sequence of names).
          band: "sem", "std" or "minmax".
        """
        moves = []
        if runs is not None:
            moves.append((self.run_list, self._checked_runs(runs)))
        if band is not None:
            moves.append((self.band_dropdown, check_choice("band", band, plots.BANDS)))
        self._move(moves)

    @property
    def plot_data(self) -> dict:
        """What is drawn: per panel title, per visible run, its mean line's y [n_points] and its
        visible band's polygon vertices [n_vertices, 2]; the ``ylim`` of every panel."""
        panels = {}
        for panel, artists in zip(self._panels, self._artists, strict=True):
            panels[panel.title] = {
                run: {
                    "mean": np.asarray(line.get_ydata(), dtype=float),
                    "band": [
                        np.concatenate([path.vertices for path in area.get_paths()])
                        for area in areas.values()
                        if area.get_visible()
                    ],
                }
                for run, (line, areas) in artists.items()
                if line.get_visible()
            }
        return {"panels": panels, "ylim": [ax.get_ylim() for ax in self._axes]}

    def _show(self) -> dict:
        runs, band = self.run_list.value, self.band_dropdown.value
        if not runs:
            raise ValueError("no run chosen: choose one or more (ctrl/cmd-click for several)")
        if band != self._drawn_band:
            for ax, limits in zip(self._axes, self._ylim[band], strict=True):
                ax.set_ylim(limits)
            self._drawn_band = band
            self._canvas.invalidate()
        for artists in self._artists:
            for run, (line, areas) in artists.items():
                line.set_visible(run in runs)
                for name, area in areas.items():
                    area.set_visible(run in runs and name == band)
        return {"runs": runs, "band": band}

    def _readout_html(self) -> str:
        runs = ", ".join(self.readout["runs"])
        band = BAND_LABELS[self.readout["band"]]
        return html.escape(f"{runs}: mean over {self.results.episode_return.shape[1]} seeds {band}")
