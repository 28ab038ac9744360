"""Lesson 08: every estimator family on the direction–SNR map, each family's knob on a slider."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import NamedTuple

import ipywidgets as widgets
import numpy as np

from course_lib import estimators, stats
from course_lib.checks import check_positive, check_shape
from course_lib.widgets.base import SliderExplorer, format_value, html_table
from course_lib.widgets.figure import padded

ERROR_LEVELS = (0.85, 0.9, 0.95, 0.98, 0.995)


class EstimatorFamily(NamedTuple):
    """One estimator family along its knob: n settings, each with the exact moments of one
    estimate and its compute (``estimators.estimator_cost``).

    knob: the knob's name ("K", "μ", "σ", ...); values [n]; mean [n, n_eta]; cov [n, n_eta, n_eta];
    cost [n], > 0.
    """

    knob: str
    values: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    cost: np.ndarray


def equal_compute_measures(family: EstimatorFamily, target, budget: float):
    """``stats.moment_measures`` of the mean of budget / cost estimates, at every knob value."""
    cov = np.stack(
        [
            np.asarray(estimators.variance_at_equal_compute(c, cost, budget))
            for c, cost in zip(family.cov, family.cost, strict=True)
        ]
    )
    return stats.moment_measures(family.mean, cov, target)


def scale_free_error_on_map(direction_error, snr):
    """``stats.scale_free_error`` at the map's coordinates (1 − cos, SNR), e.g. on grids."""
    return stats.scale_free_error(1 - np.asarray(direction_error), snr)


class EstimatorMapExplorer(SliderExplorer):
    """Every estimator family as one point on the plane (direction error 1 − cos(E g, g*), SNR at
    equal compute), with one slider per family for its knob (the horizon K, a mixing coefficient,
    the trace's decay μ, the smoothing scale σ of evolution strategies) and the scale-free error
    as grey contours.

    Everything is measured at construction: each family's path over all its knob values is drawn
    once into the background (a thin line), and a move only places each family's marker on its
    path and blits. The axes hold every path from the start, so no limit ever changes and nothing
    is computed after the first draw.

    The readout gives, per family, the knob, cos, SNR and scale-free error at the chosen values,
    and the family with the lowest scale-free error among them. Drive it from code with
    ``explorer.set(family=value, ...)``; ``explorer.readout`` holds the numbers shown and
    ``explorer.plot_data`` each marker's (direction error, SNR).

    Args:
      families: {name: EstimatorFamily}; the names are ``set``'s keywords (identifiers).
      target: g* [n_eta], the fixed target every estimate is scored against.
      budget: the compute every point is compared at (default: the largest cost of any point).
    """

    FIGSIZE = (8.5, 4.6)

    def __init__(self, families, target, budget=None):
        self.families = self._checked_families(families)
        n_eta = next(iter(self.families.values())).mean.shape[1]
        self.target = check_shape("target", target, (n_eta,))
        largest = max(float(f.cost.max()) for f in self.families.values())
        self.budget = largest if budget is None else check_positive("budget", budget)
        self.measures = {
            name: equal_compute_measures(family, self.target, self.budget)
            for name, family in self.families.items()
        }
        self.sliders = {
            name: widgets.SelectionSlider(
                options=[(f"{v:g}", float(v)) for v in family.values],
                value=float(family.values[0]),
                description=f"{name}: {family.knob}",
                continuous_update=True,  # a move costs a blit, so the drag can follow the mouse
                layout=widgets.Layout(width="420px"),
                style={"description_width": "110px"},
            )
            for name, family in self.families.items()
        }
        self._build_figure()
        self._connect(list(self.sliders.values()))

    @staticmethod
    def _checked_families(families) -> dict[str, EstimatorFamily]:
        if not isinstance(families, Mapping) or not families:
            raise ValueError(
                f"families must be a non-empty dict name -> EstimatorFamily, got {families!r}"
            )
        checked, n_eta = {}, None
        for name, family in families.items():
            if not (isinstance(name, str) and name.isidentifier()):
                raise ValueError(
                    f"families must be keyed by identifiers (set's keywords), got {name!r}"
                )
            if not isinstance(family, EstimatorFamily):
                raise ValueError(f"families[{name!r}] must be an EstimatorFamily, got {family!r}")
            values, mean = np.asarray(family.values, float), np.asarray(family.mean, float)
            cov, cost = np.asarray(family.cov, float), np.asarray(family.cost, float)
            n = len(values)
            n_eta = mean.shape[-1] if n_eta is None else n_eta
            shapes_ok = (
                values.shape == (n,)
                and n >= 1
                and mean.shape == (n, n_eta)
                and cov.shape == (n, n_eta, n_eta)
                and cost.shape == (n,)
            )
            if not shapes_ok or len(set(values.tolist())) != n:
                raise ValueError(
                    f"families[{name!r}] must hold n distinct values [n], mean [n, {n_eta}], cov "
                    f"[n, {n_eta}, {n_eta}] and cost [n]; got values {values.shape}, mean "
                    f"{mean.shape}, cov {cov.shape}, cost {cost.shape}"
                )
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov)) and np.all(cost > 0)):
                raise ValueError(f"families[{name!r}]: moments must be finite and costs > 0")
            checked[name] = EstimatorFamily(family.knob, values, mean, cov, cost)
        return checked

    def _build_figure(self):
        figure, animate = self._start_figure()
        ax = figure.subplots(gridspec_kw=dict(left=0.1, right=0.97, bottom=0.13, top=0.9))
        xs = np.concatenate([1 - m.cosine for m in self.measures.values()])
        ys = np.concatenate([m.snr for m in self.measures.values()])
        x_limits = (0.0, padded(0.0, float(xs.max()), log=False)[1])
        y_limits = padded(float(ys[ys > 0].min()), float(ys.max()), log=True)
        grid_x, grid_y = np.meshgrid(np.linspace(*x_limits, 200), np.geomspace(*y_limits, 200))
        lines = ax.contour(
            grid_x,
            grid_y,
            scale_free_error_on_map(grid_x, grid_y),
            levels=ERROR_LEVELS,
            colors="0.6",
            linewidths=0.8,
        )
        ax.clabel(lines, fontsize="small", fmt="%.3g")
        self._markers = {}
        for index, (name, measures) in enumerate(self.measures.items()):
            colour = f"C{index}"
            ax.plot(1 - measures.cosine, measures.snr, "-", color=colour, lw=1, alpha=0.5)
            ax.plot(1 - measures.cosine, measures.snr, ".", color=colour, ms=4, alpha=0.5)
            marker = ax.plot([], [], "o", color=colour, ms=11, mec="k", label=name)[0]
            self._markers[name] = animate(marker)
        ax.set(
            xscale="linear",
            yscale="log",
            xlim=x_limits,
            ylim=y_limits,
            xlabel="direction error 1 − cos(E g, g*)",
            ylabel=f"SNR at equal compute ({self.budget:g} units)",
            title="every estimator on one map (grey: scale-free error; dots: each knob value)",
        )
        ax.legend(loc="lower right", fontsize="small")

    def _index(self, name: str, value) -> int:
        values = self.families[name].values
        matches = np.flatnonzero(np.isclose(values, value, rtol=1e-9, atol=0.0))
        if isinstance(value, bool) or len(matches) != 1:
            raise ValueError(f"{name} must be one of {[float(v) for v in values]}, got {value!r}")
        return int(matches[0])

    def set(self, **knobs) -> None:
        """Move the named families' sliders (``family=value``, a value on its slider) from code and
        redraw once; a ValueError names the first bad one and changes nothing."""
        moves = []
        for name, value in knobs.items():
            if name not in self.families:
                raise ValueError(f"family must be one of {list(self.families)}, got {name!r}")
            moves.append(
                (self.sliders[name], float(self.families[name].values[self._index(name, value)]))
            )
        self._move(moves)

    @property
    def plot_data(self) -> dict:
        """Each family's marker as drawn: {name: (direction error, SNR)}."""
        return {
            name: tuple(float(np.asarray(v)[0]) for v in marker.get_data())
            for name, marker in self._markers.items()
        }

    def _show(self) -> dict:
        readout = {}
        for name, slider in self.sliders.items():
            i = self._index(name, slider.value)
            m = self.measures[name]
            self._markers[name].set_data([1 - m.cosine[i]], [m.snr[i]])
            readout[name] = {
                "knob": float(self.families[name].values[i]),
                "cosine": float(m.cosine[i]),
                "snr": float(m.snr[i]),
                "scale_free_mse": float(m.scale_free_mse[i]),
            }
        best = min(readout, key=lambda name: readout[name]["scale_free_mse"])
        return {"families": readout, "best": best}

    def _readout_html(self) -> str:
        r = self.readout["families"]
        rows = [
            (
                name,
                f"{self.families[name].knob} = {values['knob']:g}",
                format_value(values["cosine"]),
                format_value(values["snr"]),
                format_value(values["scale_free_mse"]),
            )
            for name, values in r.items()
        ]
        return (
            f"At equal compute ({self.budget:g} units), the lowest scale-free error: "
            f"<b>{html.escape(self.readout['best'])}</b>"
            + html_table(("family", "knob", "cos", "SNR", "scale-free error"), rows)
        )
