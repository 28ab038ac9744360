"""The figure of ``MetaGradientExplorer``: a histogram of the current estimator's samples and six
curves against K, built once and then updated artist by artist (``widgets.figure.BlitFigure``).

A mixin: the explorer (``widgets.meta_gradient``) owns the samples, the target and the controls;
this class owns the axes and the artists that show them, and reads the explorer's state
(``k_max``, ``n_seeds``, ``target``, ``samples``, ``_k_step``, ``_maxima``, ``_limits``).
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullLocator

from course_lib.widgets.figure import grown, padded
from course_lib.widgets.recombination import (
    CURVES,
    FIXED_LIMITS,
    LOG_CURVES,
    NEEDS_TARGET,
    TARGET_VIEW,
    histogram_span,
    recombine,
)

N_BINS = 40
GRID = dict(left=0.04, right=0.985, bottom=0.1, top=0.88, wspace=0.3, hspace=0.5)


class MetaGradientFigure:
    """Builds and updates the explorer's panels; see the module docstring for what it reads."""

    def _build_figure(self):
        figure, animate = self._start_figure()
        self.readout_html.add_class("metagrad-readout")
        grid = figure.add_gridspec(2, 4, width_ratios=(1.4, 1, 1, 1), **GRID)
        hist_ax = figure.add_subplot(grid[:, 0])
        hist_ax.set_yticks([])  # counts need no ticks, and so the y-limit can follow the bars
        hist_ax.set_ylabel("seeds per bin")
        hist_ax.axvline(0.0, color="grey", linewidth=0.6)
        self._hist = animate(
            hist_ax.stairs(
                np.zeros(N_BINS),
                np.arange(N_BINS + 1.0),
                fill=True,
                alpha=0.45,
                color="C0",
                label="estimates",
            )
        )
        self._rug = animate(hist_ax.plot([], [], "|", color="C0", markersize=8, alpha=0.5)[0])
        self._mean_line = animate(
            hist_ax.axvline(0.0, color="C3", linewidth=2, label="sample mean")
        )
        self._exact_line = animate(
            hist_ax.axvline(0.0, color="k", linestyle="--", linewidth=1.5, label="exact mean")
        )
        hist_ax.legend(loc="upper right", fontsize="small")
        # The estimator's name is in the readout above: text drawn on every move costs more than
        # all the other moving artists together.
        hist_ax.set_title(f"{self.n_seeds} estimates of the current estimator", fontsize="small")
        self._hist_ax = hist_ax

        ks = np.arange(1, self.k_max + 1)
        self._curve_axes, self._curve_lines = {}, {}
        for index, (name, title) in enumerate(CURVES.items()):
            ax = figure.add_subplot(grid[index // 3, 1 + index % 3])
            ax.set_title(title, fontsize="small")
            ax.set_xlim(0.5, self.k_max + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
            if name in LOG_CURVES:
                ax.set_yscale("log")
                # Labelled ticks at 1, 2, 5 x 10^n even within one decade; no minor ticks, whose
                # labels cost a lot per draw.
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=8))
                ax.yaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
                ax.yaxis.set_minor_locator(NullLocator())
            if name in FIXED_LIMITS:
                ax.set_ylim(*FIXED_LIMITS[name])
                ax.axhline(0.5 if name == "right_direction" else 0.0, color="grey", lw=0.6)
            ax.tick_params(labelsize="small")
            if index >= 3:
                ax.set_xlabel("K", fontsize="small")
            if self.target is None and name in NEEDS_TARGET:
                ax.text(0.5, 0.5, "needs a target g*", transform=ax.transAxes, ha="center")
            self._curve_lines[name] = {
                # Its y data are the sample set's: ``_update_curves`` sets them with the limits.
                "k_step": ax.plot(ks, ks * np.nan, "o-", color="C0", markersize=3, label="K-step")[
                    0
                ],
                "mix": animate(
                    ax.plot(ks, ks * np.nan, "s--", color="C1", markersize=3, label="current mix")[
                        0
                    ]
                ),
                "k_line": animate(ax.axvline(self.k_max, color="grey", linewidth=0.8)),
                "current": animate(
                    ax.plot([], [], "o", color="C3", markersize=7, label="current K")[0]
                ),
            }
            self._curve_axes[name] = ax
        handles = [self._curve_lines["snr"][line] for line in ("k_step", "mix", "current")]
        figure.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.68, 1.0),
            ncol=3,
            fontsize="small",
            frameon=False,
        )

    def _update_histogram(self, view, values, mean, exact_mean):
        """Set the histogram's artists; a new view or sample set sets its x-axis too."""
        if self._limits.get("view") != view or "hist" not in self._limits:
            span = histogram_span(self.samples, self.target, view)
            self._limits |= {"view": view, "hist": padded(*span, log=False)}
            self._edges = np.linspace(*self._limits["hist"], N_BINS + 1)
            self._hist_ax.set_xlim(*self._limits["hist"])
            self._hist_ax.set_xlabel(
                "⟨g, g*⟩ / ‖g*‖  (right of 0: the right direction)"
                if view == TARGET_VIEW
                else f"g[{self.meta_names[view]}]"
            )
            self._canvas.invalidate()
        heights, _ = np.histogram(values, bins=self._edges)
        self._hist.set_data(heights, self._edges)
        self._rug.set_data(values, np.zeros_like(values))
        self._mean_line.set_xdata([mean, mean])
        self._exact_line.set_visible(exact_mean is not None)
        if exact_mean is not None:
            self._exact_line.set_xdata([exact_mean, exact_mean])
        self._hist_ax.set_ylim(0, 1.4 * max(heights.max(), 1))  # room for the legend

    def _update_curves(self, k, mode, mix):
        """Set the curves' artists; y-limits that must grow (or a new sample set's K-step
        curves) make the next update a full draw."""
        for name, lines in self._curve_lines.items():
            lines["mix"].set_ydata(mix[name])
            lines["mix"].set_visible(mode != "k-step")
            lines["k_line"].set_xdata([k, k])
            lines["current"].set_data([k], [mix[name][k - 1]])
            if name in FIXED_LIMITS:
                if name not in self._limits:
                    lines["k_step"].set_ydata(self._k_step[name])
                    self._limits[name] = FIXED_LIMITS[name]
                    self._canvas.invalidate()
                continue
            limits = self._limits.get(name)
            seen = mix[name]
            if limits is None:  # new samples: start from the values every setting can reach
                lines["k_step"].set_ydata(self._k_step[name])
                seen = np.concatenate([seen, self._k_step[name], [self._bound(name)]])
            new = grown(limits, seen, log=name in LOG_CURVES)
            if new is not None:
                self._limits[name] = new
                self._curve_axes[name].set_ylim(*new)
                self._canvas.invalidate()

    def _bound(self, name: str) -> float:
        """A value the curve ``name`` can reach, so its first limits hold it: the largest
        variance or bias² of any mix, or the optimal mix's scale-free error."""
        if name != "scale_free_mse" or self.optimal_weights is None:
            return self._maxima.get(name, np.nan)
        best = recombine(self.samples, "free", 0.0, self.optimal_weights, self.target, self.moments)
        return float(best[1]["scale_free_mse"][-1])
