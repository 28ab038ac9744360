"""Lesson 07: sliders over the practitioner's rule (``experiments.trial_decision``), stored runs."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
from matplotlib.patches import Rectangle

from course_lib.checks import check_int, check_number
from course_lib.experiments.analysis import final_returns, own_snr, trial_decision
from course_lib.experiments.results import Results
from course_lib.experiments.settings import parse_estimator
from course_lib.widgets.base import SliderExplorer, html_table


class TrialDecisionExplorer(SliderExplorer):
    """Sliders for the SNR threshold and the trial length of the practitioner's rule
    (``experiments.trial_decision``) on stored runs, and what the rule decides.

    Left: each self-tuning run's debiased SNR (``experiments.own_snr``, mean over seeds) at every
    checkpoint, the trial window shaded and the threshold dashed, on a symlog axis (linear below
    10⁻³: the SNR can dip below 0). Right: every estimator's final return over the full run
    (``experiments.final_returns``, mean ± standard error over seeds), the estimator the rule
    would scale up outlined; when none is accepted, the hand-set control (the first estimator that
    does not tune) is outlined instead.

    The curves and bars never change. A move calls ``experiments.trial_decision`` (NumPy over the
    stored replicas, under a millisecond), moves the shaded span and the threshold line, shows the
    chosen bar's outline and blits them: the axes' limits cover every slider setting from the
    start, so the figure is drawn in full only once.

    Display ``explorer.widget`` (or the explorer itself, last in a cell). Drive it from code with
    ``explorer.set(threshold=..., trial=...)``; ``explorer.readout`` holds the ``decision`` shown
    (an ``experiments.Decision``) and ``explorer.plot_data`` what is drawn.

    Args:
      results: ``experiments.Results`` with at least one self-tuning estimator; C checkpoints.
      threshold: the starting SNR threshold, in the slider's range 10^-3 .. 10^-0.5.
      trial: the starting trial length in checkpoints, 1..C; default C // 4 (at least 1).
    """

    FIGSIZE = (12.0, 3.6)
    THRESHOLD_EXPONENTS = (-3.0, -0.5)  # the threshold slider's range, 10^-3 .. 10^-0.5

    def __init__(self, results, threshold=0.01, trial=None):
        if not isinstance(results, Results):
            raise ValueError(f"results must be an experiments.Results, got {type(results)!r}")
        self.results = results
        self._snr = own_snr(results)  # {self-tuning estimator: [S, C]}
        if not self._snr:
            raise ValueError(
                f"results must hold a self-tuning estimator, got only {results.estimators}"
            )
        self.n_checkpoints = results.snr.shape[2]
        self.control = next(
            (name for name in results.estimators if not parse_estimator(name).tunes),
            None,
        )
        trial = max(1, self.n_checkpoints // 4) if trial is None else trial
        style = {"description_width": "initial"}
        low, high = self.THRESHOLD_EXPONENTS
        self.threshold_slider = widgets.FloatLogSlider(
            value=self._checked_threshold(threshold),
            base=10,
            min=low,
            max=high,
            step=0.05,
            description="SNR threshold",
            readout_format=".3f",
            style=style,
        )
        self.trial_slider = widgets.IntSlider(
            value=self._checked_trial(trial),
            min=1,
            max=self.n_checkpoints,
            description="trial (checkpoints)",
            style=style,
        )
        self._build_figure()
        self._connect([self.threshold_slider, self.trial_slider])

    def _checked_threshold(self, threshold) -> float:
        low, high = (10.0**exponent for exponent in self.THRESHOLD_EXPONENTS)
        return check_number("threshold", threshold, low, high)

    def _checked_trial(self, trial) -> int:
        return check_int("trial", trial, 1, self.n_checkpoints, "n_checkpoints")

    def _build_figure(self):
        figure, animate = self._start_figure()
        snr_ax, return_ax = figure.subplots(
            1, 2, gridspec_kw=dict(left=0.07, right=0.99, bottom=0.16, top=0.9, wspace=0.22)
        )
        thousands = self.results.env_steps / 1e3
        self._snr_lines = {
            name: snr_ax.plot(
                thousands, snr.mean(axis=0), "o-", label=name, color=f"C{self.results.index(name)}"
            )[0]
            for name, snr in self._snr.items()
        }
        snr_ax.axhline(0, color="grey", linewidth=0.8)
        self._span = animate(
            snr_ax.axvspan(0, thousands[0], color="grey", alpha=0.15, label="trial")
        )
        self._threshold_line = animate(
            snr_ax.axhline(
                10 ** self.THRESHOLD_EXPONENTS[0], color="k", linestyle="--", label="threshold"
            )
        )
        snr_ax.set_yscale("symlog", linthresh=1e-3)  # linear near 0: the SNR can dip below it
        # Fixed limits that hold every setting: the span starts at 0, and the threshold line
        # anywhere in the slider's range.
        low, high = (10.0**exponent for exponent in self.THRESHOLD_EXPONENTS)
        snr_ax.update_datalim([(0.0, low), (thousands[-1], high)])
        snr_ax.autoscale_view()
        snr_ax.set(
            xlim=snr_ax.get_xlim(),
            ylim=snr_ax.get_ylim(),
            xlabel="environment steps (thousands)",
            ylabel="debiased SNR",
            title="SNR of each run's own meta-gradient",
        )
        snr_ax.legend(fontsize="small")

        finals = final_returns(self.results)  # [E, S]
        names = self.results.estimators
        bars = return_ax.bar(
            names,
            finals.mean(axis=1),
            yerr=finals.std(axis=1, ddof=1) / np.sqrt(finals.shape[1]),
            color=[f"C{e}" for e in range(len(names))],
        )
        # An unfilled copy of each bar, shown only for the pick: a move then redraws one outline,
        # not the bars (which would cover the error bars of the background).
        self._outlines = {
            name: animate(
                return_ax.add_patch(
                    Rectangle(
                        bar.get_xy(),
                        bar.get_width(),
                        bar.get_height(),
                        fill=False,
                        edgecolor="k",
                        linewidth=3,
                    )
                )
            )
            for name, bar in zip(names, bars, strict=True)
        }
        return_ax.set(
            ylabel="final return (mean ± s.e.)",
            title="final return of the full runs (outlined: the choice)",
        )

    def set(self, threshold=None, trial=None) -> None:
        """Move the sliders from code (both checked before either moves), then redraw once.

        Args:
          threshold: SNR threshold in 10^-3 .. 10^-0.5.
          trial: trial length in checkpoints, 1..n_checkpoints.
        """
        moves = []
        if threshold is not None:
            moves.append((self.threshold_slider, self._checked_threshold(threshold)))
        if trial is not None:
            moves.append((self.trial_slider, self._checked_trial(trial)))
        self._move(moves)

    @property
    def plot_data(self) -> dict:
        """What the artists draw: per self-tuning estimator its ``snr`` curve [C] (thousands of
        steps on x), the shaded ``span`` (x0, x1), the ``threshold`` line's y, the ``bars``
        {estimator: height} and the ``outlined`` estimators (one, or none without a control)."""
        x0 = self._span.get_x()
        return {
            "snr": {
                name: np.asarray(line.get_ydata(), dtype=float)
                for name, line in self._snr_lines.items()
            },
            "span": (float(x0), float(x0 + self._span.get_width())),
            "threshold": float(self._threshold_line.get_ydata()[0]),
            "bars": {name: float(outline.get_height()) for name, outline in self._outlines.items()},
            "outlined": [name for name, outline in self._outlines.items() if outline.get_visible()],
        }

    def _show(self) -> dict:
        threshold, trial = self.threshold_slider.value, self.trial_slider.value
        decision = trial_decision(self.results, threshold, trial)
        pick = decision.chosen or self.control  # nothing accepted: keep the hand-set values
        self._span.set_width(decision.trial_env_steps / 1e3)
        self._threshold_line.set_ydata([threshold, threshold])
        for name, outline in self._outlines.items():
            outline.set_visible(name == pick)
        return {"threshold": threshold, "trial": trial, "decision": decision, "outlined": pick}

    def _readout_html(self) -> str:
        r = self.readout
        decision = r["decision"]
        rows = [
            (
                name,
                f"{decision.trial_snr[name]:.4f}" if name in decision.trial_snr else "— (control)",
                ("yes" if name in decision.accepted else "no")
                if name in decision.trial_snr
                else "",
                f"{decision.final_return[name]:.2f}",
            )
            for name in self.results.estimators
        ]
        chosen = decision.chosen or "none, keep the hand-set values"
        accepted = ", ".join(decision.accepted) or "none"
        return (
            f"<b>trial: {decision.trial_env_steps:,} steps per agent</b> ({r['trial']} "
            f"checkpoints), SNR threshold {r['threshold']:.3g} → chosen: "
            f"<b>{html.escape(chosen)}</b> (accepted: {html.escape(accepted)})"
            + html_table(("estimator", "trial SNR", "accepted", "final return"), rows)
        )
