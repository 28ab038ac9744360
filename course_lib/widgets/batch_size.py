"""Lesson 01: a batch-size slider over cached policy-gradient estimates."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from course_lib.checks import check_int, check_shape
from course_lib.stats import meta_gradient_stats
from course_lib.widgets.base import SliderExplorer, html_table
from course_lib.widgets.figure import padded


class BatchSizeExplorer(SliderExplorer):
    """A batch-size slider over cached policy-gradient estimates: per estimator, the cloud of its
    n_seeds batch-B estimates in the plane of two components, with the exact gradient as a star;
    beside them each estimator's variance tr Cov(ĝ_B) against B (log-log), marked at the slider's B.

    Every batch size is estimated up front (``estimates[name][s, B − 1]`` is seed s's batch-B
    estimate, e.g. the mean of its first B pulls), so a move only looks up column B − 1, sets the
    clouds' points and the markers, and blits them onto the cached background: nothing is traced
    or compiled, and no axis changes, so the figure is never drawn in full after the first time.

    The readout gives per estimator, at B: the variance and SNR (``stats.meta_gradient_stats``)
    and ``right_way``, the fraction of seeds whose estimate has the exact gradient's sign in both
    shown components (a zero exact component counts as never matched).

    Display ``explorer.widget`` (or the explorer itself, last in a cell). Drive it from code with
    ``explorer.set(batch_size=B)``; ``explorer.readout`` holds the numbers shown and
    ``explorer.plot_data`` what is drawn.

    Args:
      estimates: {name: [n_seeds, b_max, n_params]}, each estimator's batch-B estimates of the same
        gradient for B = 1..b_max; one shape for all, n_seeds >= 2, b_max >= 1.
      exact_gradient: [n_params], the gradient they estimate.
      components: the two parameter indices (x, y) of the clouds' plane.
      labels: axis labels of those two components; default "g[i]".
      batch_size: the slider's starting B, in 1..b_max.
    """

    FIGSIZE = (11.0, 3.4)

    def __init__(self, estimates, exact_gradient, components=(0, 1), labels=None, batch_size=1):
        if not isinstance(estimates, dict) or not estimates:
            raise ValueError(f"estimates must be a non-empty dict name -> array, got {estimates!r}")
        arrays = {str(name): np.asarray(value, dtype=float) for name, value in estimates.items()}
        shapes = {name: array.shape for name, array in arrays.items()}
        shape = next(iter(shapes.values()))
        if len(shape) != 3 or shape[0] < 2 or shape[1] < 1 or len(set(shapes.values())) > 1:
            raise ValueError(
                f"estimates must share one shape [n_seeds >= 2, b_max >= 1, n_params], got {shapes}"
            )
        if not all(np.all(np.isfinite(array)) for array in arrays.values()):
            raise ValueError("estimates must be finite")
        self.n_seeds, self.b_max, n_params = shape
        exact = check_shape("exact_gradient", exact_gradient, (n_params,))
        if (
            np.ndim(components) != 1
            or len(components) != 2
            or not all(isinstance(c, (int, np.integer)) and 0 <= c < n_params for c in components)
            or components[0] == components[1]
        ):
            raise ValueError(
                f"components must be two different indices in 0..{n_params - 1}, got {components!r}"
            )
        self.components = tuple(int(c) for c in components)
        self.labels = tuple(labels or (f"g[{c}]" for c in self.components))
        if len(self.labels) != 2:
            raise ValueError(f"labels must name the 2 components, got {self.labels!r}")
        batch_size = check_int("batch_size", batch_size, 1, self.b_max, "b_max")
        self.estimates, self.exact_gradient = arrays, exact

        # Everything a move shows, for every B at once: a move is then only look-ups.
        self._stats = {name: meta_gradient_stats(array) for name, array in arrays.items()}
        plane = list(self.components)
        # [b_max, n_seeds, 2]: one contiguous block per B.
        self._clouds = {
            name: np.ascontiguousarray(array[:, :, plane].transpose(1, 0, 2))
            for name, array in arrays.items()
        }
        # "The right way for both": each shown component has the exact gradient's sign.
        self._right_way = {
            name: np.mean(np.all(cloud * exact[plane] > 0, axis=-1), axis=1)
            for name, cloud in self._clouds.items()
        }
        self.slider = widgets.IntSlider(
            value=batch_size,
            min=1,
            max=self.b_max,
            description="batch size B",
            continuous_update=True,  # a move costs a blit, so the drag can follow the mouse
            style={"description_width": "initial"},
            layout=widgets.Layout(width="420px"),
        )
        self._build_figure()
        self._connect([self.slider])

    def _build_figure(self):
        figure, animate = self._start_figure()
        names = list(self.estimates)
        axes = figure.subplots(
            1, len(names) + 1, gridspec_kw=dict(left=0.06, right=0.98, bottom=0.15, wspace=0.3)
        )
        # One range for every cloud and every B, so a shrinking cloud is seen to shrink.
        points = np.concatenate([c.reshape(-1, 2) for c in self._clouds.values()])
        exact = self.exact_gradient[list(self.components)]
        points = np.concatenate([points, [exact, (0.0, 0.0)]])
        limits = [padded(points[:, i].min(), points[:, i].max(), log=False) for i in (0, 1)]
        self._cloud_lines, self._current = {}, {}
        variance_ax = axes[-1]
        batch_sizes = np.arange(1, self.b_max + 1)
        for index, (ax, name) in enumerate(zip(axes, names, strict=False)):
            color = f"C{index}"
            ax.axhline(0.0, color="grey", linewidth=0.5)
            ax.axvline(0.0, color="grey", linewidth=0.5)
            ax.set(xlim=limits[0], ylim=limits[1], xlabel=self.labels[0], title=name)
            # Line markers, not a scatter: Agg draws one cached marker many times, far faster.
            self._cloud_lines[name] = animate(
                ax.plot([], [], ".", color=color, markersize=3, alpha=0.3)[0]
            )
            # Animated too, after the cloud: else the dots would cover it.
            animate(ax.plot(*exact, "*", color="k", markersize=15, label="exact gradient")[0])
            variance_ax.loglog(batch_sizes, self._stats[name].variance, color=color, label=name)
            self._current[name] = animate(variance_ax.plot([], [], "o", color=color)[0])
        axes[0].set_ylabel(self.labels[1])
        axes[0].legend(loc="upper right", fontsize="small")
        self._b_line = animate(variance_ax.axvline(1.0, color="k", linestyle="--", linewidth=1))
        variance_ax.set(xlabel="batch size B", ylabel="tr Cov(ĝ_B)", title="variance")
        variance_ax.legend(fontsize="small")

    def set(self, batch_size: int) -> None:
        """Move the slider to ``batch_size`` (1..b_max) from code and redraw (ValueError if not)."""
        self._move([(self.slider, check_int("batch_size", batch_size, 1, self.b_max, "b_max"))])

    @property
    def plot_data(self) -> dict:
        """What the artists draw: per estimator its ``clouds`` points [n_seeds, 2] and its
        ``current`` point (B, variance) on the variance panel; the ``marker`` line's B."""
        return {
            "clouds": {
                name: np.column_stack(line.get_data()).astype(float)
                for name, line in self._cloud_lines.items()
            },
            "current": {
                name: tuple(float(v) for v in np.ravel(line.get_data()))
                for name, line in self._current.items()
            },
            "marker": float(self._b_line.get_xdata()[0]),
        }

    def _show(self) -> dict:
        batch_size = self.slider.value
        row = batch_size - 1
        for name, line in self._cloud_lines.items():
            cloud = self._clouds[name][row]
            line.set_data(cloud[:, 0], cloud[:, 1])
            self._current[name].set_data([batch_size], [self._stats[name].variance[row]])
        self._b_line.set_xdata([batch_size, batch_size])
        return {
            "batch_size": batch_size,
            "estimators": {
                name: {
                    "variance": float(stats.variance[row]),
                    "snr": float(stats.snr[row]),
                    "right_way": float(self._right_way[name][row]),
                }
                for name, stats in self._stats.items()
            },
        }

    def _readout_html(self) -> str:
        head = ("estimator", "variance tr Cov(ĝ_B)", "SNR", "right way for both components")
        rows = [
            (name, f"{r['variance']:.4g}", f"{r['snr']:.3g}", f"{r['right_way']:.0%}")
            for name, r in self.readout["estimators"].items()
        ]
        return f"<b>B = {self.readout['batch_size']}</b>, {self.n_seeds} seeds" + html_table(
            head, rows
        )
