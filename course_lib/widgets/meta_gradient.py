"""Lessons 04–05: sliders over K and the mixing weights of a cache of K-step meta-gradients.

The expensive part, ``n_seeds`` independent runs of the K-step estimator for every prefix
k = 1..k_max (docs/notation.md §2), is computed once per (problem, η, seed set) by
``metagrad.sample_meta_gradients``:

    samples[s, k−1] = g_k(ω_s),    samples: [n_seeds, k_max, n_eta]

A slider move only chooses weights and recombines the cache with NumPy (``recombination``), then
redraws only the artists that changed (blitting onto a cached background), so nothing is traced or
compiled after the first draw and a move costs a few milliseconds.

Histogram view: the n_seeds estimates projected on the direction of g*_K (what a meta-update acts
on), or any single component (``recombination.direction``).

Axes stay put while the sliders move, so a narrower histogram or a lower curve is visible as such
(``recombination.reachable_maxima`` and ``histogram_span`` give the bounds every setting stays in);
the curves' limits only grow, with a full redraw, when a value leaves them.
"""

from __future__ import annotations

import html
import time

import ipywidgets as widgets
import jax
import numpy as np
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullLocator

from course_lib import metagrad, mixing
from course_lib.checks import check_choice, check_int
from course_lib.widgets.base import SliderExplorer, check_number, format_value, html_table
from course_lib.widgets.figure import grown, padded
from course_lib.widgets.recombination import (
    CURVES,
    EXPLORER_KINDS,
    LOG_CURVES,
    REFERENCE_VIEW,
    curve_values,
    describe_setting,
    direction,
    histogram_span,
    reachable_maxima,
    recombine,
    slider_weights,
)

N_BINS = 40
GRID = dict(left=0.05, right=0.98, bottom=0.12, top=0.86, wspace=0.35, hspace=0.55)


class MetaGradientExplorer(SliderExplorer):
    """Sliders over K and the mixing weights, a histogram of the n_seeds estimates, and curves of
    variance, bias², MSE and SNR against K for the K-step estimator with the current mix overlaid.

    ``MetaGradientExplorer(problem, k_max, n_seeds)`` draws the sample cache with
    ``metagrad.sample_meta_gradients`` and, where the problem can be enumerated (the bandit), takes
    the reference g*_K = ``metagrad.true_meta_gradients(problem, eta, k_max)[K − 1]``: the exact
    gradient of the expected outer loss after K inner steps, what a horizon-K meta-gradient is
    meant to follow (docs/notation.md §4–5). The K-step estimator is biased against it for K >= 2
    (it holds the sampled data fixed), and a mix at horizon K is measured against the same g*_K,
    so mixing trades bias for variance.
    ``MetaGradientExplorer.from_samples`` builds the same explorer from any cache.

    Display ``explorer.widget`` (or the explorer itself, last in a cell). Drive it from code with
    ``explorer.set(...)``; read the numbers shown in ``explorer.readout`` and what is drawn in
    ``explorer.plot_data``; ``explorer.message`` is the warning shown when a slider move is
    rejected (all free weights at zero), or "".

    Args:
      problem: a ``metagrad.make_problem(...)`` problem.
      k_max: the longest horizon K, >= 1.
      n_seeds: independent seeds per sample set, >= 2.
      eta: [n_eta] meta-parameters the meta-gradients are taken at; default ``problem.eta0``.
      key: PRNG key; sample set d uses ``fold_in(key, d)``. Default ``jax.random.key(0)``.
      reference: "auto" (exact where the problem allows it, else none), None, or [k_max, n_eta].
        The exact reference compiles one enumeration of the k_max-step paths, once per problem
        and k_max.
    """

    def __init__(
        self, problem, k_max: int = 8, n_seeds: int = 256, eta=None, key=None, reference="auto"
    ):
        k_max = check_int("k_max", k_max)
        n_seeds = check_int("n_seeds", n_seeds, minimum=2)
        eta = problem.eta0 if eta is None else eta
        key = jax.random.key(0) if key is None else key

        def draw(index: int) -> np.ndarray:
            seed_key = jax.random.fold_in(key, index)
            return np.asarray(
                metagrad.sample_meta_gradients(problem, eta, seed_key, k_max, n_seeds)
            )

        if isinstance(reference, str) and reference == "auto":
            reference = _exact_reference(problem, eta, k_max)
        self._setup(draw(0), reference, problem.meta_names, draw, f"the {problem.name} problem")

    @classmethod
    def from_samples(cls, samples, reference=None, meta_names=None, draw=None):
        """An explorer over a given cache ``samples`` [n_seeds, k_max, n_eta] and an optional
        ``reference`` [k_max, n_eta]. ``draw(index)`` returns a fresh cache of the same shape for
        the "new samples" button (index 1, 2, ...); without it the button is disabled.
        """
        explorer = cls.__new__(cls)
        explorer._setup(samples, reference, meta_names, draw, "given samples")
        return explorer

    # ---------------------------------------------------------------------------------- building

    def _setup(self, samples, reference, meta_names, draw, title):
        if np.ndim(samples) != 3:
            raise ValueError(
                f"samples must have shape [n_seeds, k_max, n_eta], got {np.shape(samples)}"
            )
        _, k_max, n_eta = np.shape(samples)
        if reference is not None:
            reference = np.asarray(reference, dtype=float)
            if reference.shape != (k_max, n_eta):
                raise ValueError(
                    f"reference must have shape ({k_max}, {n_eta}), got {reference.shape}"
                )
        meta_names = tuple(meta_names or (f"eta[{i}]" for i in range(n_eta)))
        if len(meta_names) != n_eta:
            raise ValueError(f"meta_names must name {n_eta} meta-parameters, got {meta_names}")
        self.k_max, self.n_eta, self.meta_names = k_max, n_eta, meta_names
        self.reference = reference
        self._draw, self._draws = draw, 0
        self._use_samples(samples)
        self._build_widgets(title)
        self._build_figure()
        self._connect(
            list(self._controls.values()),
            rows=[
                widgets.HBox([self.k_slider, self.mode_dropdown, self.lam_slider]),
                self.free_box,
                widgets.HBox(
                    [self.view_dropdown, self.new_samples_button, self.progress]
                    + [self.progress_label]
                ),
            ],
        )

    def _use_samples(self, samples):
        samples = np.asarray(samples, dtype=float)
        if samples.shape[1:] != (self.k_max, self.n_eta) or samples.ndim != 3 or len(samples) < 2:
            raise ValueError(
                f"samples must have shape [n_seeds >= 2, {self.k_max}, {self.n_eta}], "
                f"got {samples.shape}"
            )
        if not np.all(np.isfinite(samples)):
            raise ValueError("samples must be finite")
        self.samples = samples
        self.n_seeds = samples.shape[0]
        self._k_step = curve_values(samples, self.reference)
        self._maxima = reachable_maxima(self._k_step, self.reference)
        # No limits yet: the next ``_show`` sets every axis for this sample set and draws in full.
        self._limits: dict = {}

    def _build_widgets(self, title):
        k_max = self.k_max
        style = {"description_width": "initial"}
        self.k_slider = widgets.IntSlider(
            value=k_max, min=1, max=k_max, description="K", style=style
        )
        self.mode_dropdown = widgets.Dropdown(
            options=[(label, mode) for mode, label in EXPLORER_KINDS.items()],
            value="lambda-return",
            description="estimator",
        )
        self.lam_slider = widgets.FloatSlider(
            value=0.5, min=0.0, max=1.0, step=0.05, description="ρ", style=style
        )
        self.weight_sliders = [
            widgets.FloatSlider(
                value=1.0,
                min=0.0,
                max=1.0,
                step=0.05,
                description=f"w{k}",
                orientation="vertical",
                readout_format=".2f",
                layout=widgets.Layout(width="48px"),
            )
            for k in range(1, k_max + 1)
        ]
        views = [(f"component {name}", i) for i, name in enumerate(self.meta_names)]
        if self.reference is not None:
            views.insert(0, ("along g*_K", REFERENCE_VIEW))
        self.view_dropdown = widgets.Dropdown(options=views, description="histogram")
        self.new_samples_button = widgets.Button(
            description="new samples",
            icon="refresh",
            disabled=self._draw is None,
            tooltip="draw fresh seeds and recompute the cache",
            layout=widgets.Layout(width="140px"),
        )
        self.new_samples_button.on_click(lambda _: self.new_samples())
        self.progress = widgets.IntProgress(
            value=0, min=0, max=3, layout=widgets.Layout(width="120px")
        )
        self.progress_label = widgets.Label(f"{self.n_seeds} seeds of {title}")
        self.free_box = widgets.HBox(
            [widgets.Label("free weights, normalised over w1..wK:"), *self.weight_sliders]
        )
        # By the names ``_checked_moves`` gives them (w0, w1, ... for the free weights).
        self._controls = {
            "k": self.k_slider,
            "mode": self.mode_dropdown,
            "lam": self.lam_slider,
            "view": self.view_dropdown,
            **{f"w{j}": slider for j, slider in enumerate(self.weight_sliders)},
        }

    def _build_figure(self):
        figure, animate = self._start_figure()
        self.readout_html.add_class("metagrad-readout")
        grid = figure.add_gridspec(2, 3, width_ratios=(1.5, 1, 1), **GRID)
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
        self._true_line = animate(
            hist_ax.axvline(0.0, color="k", linestyle="--", linewidth=1.5, label="true g*_K")
        )
        hist_ax.legend(loc="upper right", fontsize="small")
        # The estimator's name is in the readout above: text drawn on every move costs more than
        # all the other moving artists together.
        hist_ax.set_title(f"{self.n_seeds} estimates of the current estimator", fontsize="small")
        self._hist_ax = hist_ax

        ks = np.arange(1, self.k_max + 1)
        self._curve_axes, self._curve_lines = {}, {}
        for index, (name, title) in enumerate(CURVES.items()):
            ax = figure.add_subplot(grid[index // 2, 1 + index % 2])
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
            ax.tick_params(labelsize="small")
            if index >= 2:
                ax.set_xlabel("K", fontsize="small")
            if self.reference is None and name in ("bias_squared", "mse"):
                note = "needs a reference g*"
                ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", color="grey")
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
        handles = [self._curve_lines["variance"][line] for line in ("k_step", "mix", "current")]
        figure.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.7, 1.0),
            ncol=3,
            fontsize="small",
            frameon=False,
        )

    # ---------------------------------------------------------------------------------- public API

    def set(self, k=None, mode=None, lam=None, weights=None, view=None) -> None:
        """Move the controls from code, then redraw once. Every value, and the combination they
        make, is checked before any control moves: a ValueError names the argument and its
        allowed values, and changes nothing.

        Args:
          k: horizon K in 1..k_max.
          mode: one of ``EXPLORER_KINDS``: "k-step", "geometric", "lambda-return" or "free".
          lam: λ (geometric) or ρ (lambda-return), in [0, 1].
          weights: free weights w_1..w_j (j <= k_max, >= 0, normalised afterwards; scaled into the
            sliders' range [0, 1] if larger); the sliders after j go to 0. Implies mode="free"
            and K = j unless those are given.
          view: the histogram's view, "reference" or a component index.
        """
        self._move(self._checked_moves(k, mode, lam, weights, view))

    def new_samples(self) -> bool:
        """Draw a fresh seed set (same problem, η and shapes, so nothing recompiles), recompute the
        K-step curves and redraw, showing progress. Returns False (with a message) if it fails."""
        if self._draw is None:
            return self._reject(
                "this explorer was built from fixed samples: there is nothing to draw"
            )
        self.new_samples_button.disabled = True
        previous = self.samples
        try:
            start = time.perf_counter()
            self._progress(1, f"drawing {self.n_seeds} fresh seeds…")
            samples = self._draw(self._draws + 1)
            self._progress(2, "statistics…")
            self._use_samples(samples)
            self._progress(3, "drawing…")
            if not self._refresh():
                raise ValueError(self.message)
            self._draws += 1
            self._progress(
                3,
                f"sample set {self._draws}: {self.n_seeds} seeds in "
                f"{time.perf_counter() - start:.2f} s",
            )
            return True
        except Exception as error:  # a learner's widget shows the failure instead of a traceback
            self._use_samples(previous)
            self._progress(0, "")
            return self._reject(f"could not draw new samples: {error}")
        finally:
            self.new_samples_button.disabled = self._draw is None

    @property
    def plot_data(self) -> dict:
        """What the artists currently draw: the histogram ``heights`` [N_BINS] and ``edges``, the
        projected ``estimates`` [n_seeds] of the rug, the ``mean`` and ``true`` marker positions
        (``true`` None when hidden), the ``xlabel``, and per curve name the y data of the ``k_step``
        and ``mix`` lines [k_max], whether the mix line is shown, and the ``current`` point (K, y).
        """
        heights, edges, _ = self._hist.get_data()
        curves = {
            name: {
                "k_step": np.array(lines["k_step"].get_ydata(), dtype=float),
                "mix": np.array(lines["mix"].get_ydata(), dtype=float),
                "mix_visible": lines["mix"].get_visible(),
                "current": tuple(float(v) for v in np.ravel(lines["current"].get_data())),
            }
            for name, lines in self._curve_lines.items()
        }
        return {
            "heights": np.array(heights, dtype=float),
            "edges": np.array(edges, dtype=float),
            "estimates": np.array(self._rug.get_xdata(), dtype=float),
            "mean": float(self._mean_line.get_xdata()[0]),
            "true": float(self._true_line.get_xdata()[0])
            if self._true_line.get_visible()
            else None,
            "xlabel": self._hist_ax.get_xlabel(),
            "curves": curves,
        }

    # ---------------------------------------------------------------------------------- internals

    def _checked_moves(self, k, mode, lam, weights, view) -> list:
        """The (control, value) moves ``set`` asks for, checked alone and together."""
        checked = {}
        if weights is not None:
            free = slider_weights(weights, self.k_max)
            checked |= {f"w{j}": float(w) for j, w in enumerate(free)}
            mode = "free" if mode is None else mode
            k = np.size(weights) if k is None else k
        if k is not None:
            checked["k"] = check_int("K", k, 1, self.k_max, "k_max")
        if mode is not None:
            checked["mode"] = check_choice("mode", mode, EXPLORER_KINDS)
        if lam is not None:
            checked["lam"] = check_number("lam", lam, 0.0, 1.0)
        if view is not None:
            checked["view"] = check_choice(
                "view", view, [value for _, value in self.view_dropdown.options]
            )
        controls = self._controls
        after = {name: checked.get(name, control.value) for name, control in controls.items()}
        # The combination too: weights defined at K, and a direction for the histogram.
        mixing.estimator_weights(
            after["mode"],
            after["k"],
            lam=after["lam"],
            free_weights=[after[f"w{j}"] for j in range(self.k_max)],
        )
        direction(self.reference, after["view"], after["k"], self.n_eta)
        return [(controls[name], value) for name, value in checked.items()]

    def _progress(self, step: int, text: str):
        self.progress.value = step
        self.progress_label.value = text

    def _sync_controls(self, mode: str, k: int):
        self.lam_slider.disabled = mode not in ("geometric", "lambda-return")
        self.lam_slider.description = "ρ" if mode == "lambda-return" else "λ"
        self.free_box.layout.display = "flex" if mode == "free" else "none"
        for index, slider in enumerate(self.weight_sliders):
            slider.disabled = index >= k

    def _show(self) -> dict:
        """Recombine the cache for the current controls and set every artist (ValueError, with
        no artist changed, where the weights or the histogram's direction are undefined)."""
        k, mode, lam = self.k_slider.value, self.mode_dropdown.value, self.lam_slider.value
        view = self.view_dropdown.value
        free = [slider.value for slider in self.weight_sliders]
        # Before any check: a learner who picks "free" with every weight at 0 must see the sliders.
        self._sync_controls(mode, k)
        weights = mixing.estimator_weights(mode, k, lam=lam, free_weights=free)
        mixed, mix = recombine(self.samples, mode, lam, free, self.reference)
        values, mean, true, label = self._projection(view, k, mixed[:, k - 1], mix["mean"][k - 1])
        self._update_histogram(view, values, mean, true, label)
        self._update_curves(k, mode, mix)
        row = k - 1
        return {
            "k": k,
            "mode": mode,
            "lam": lam if mode in ("geometric", "lambda-return") else None,
            "weights": weights,
            "mean": mix["mean"][row],
            **{
                name: float(mix[name][row])
                for name in ("variance", "bias", "bias_squared", "cosine", "mse", "snr")
            },
            "k_step_variance": float(self._k_step["variance"][row]),
            "variance_ratio": float(mix["variance"][row] / self._k_step["variance"][row]),
        }

    def _projection(self, view, k: int, estimates: np.ndarray, mean: np.ndarray):
        """(projected estimates, mean, true value or None, axis label) in the histogram's view."""
        unit = direction(self.reference, view, k, self.n_eta)
        true = None if self.reference is None else float(self.reference[k - 1] @ unit)
        label = "⟨g, g*_K⟩ / ‖g*_K‖" if view == REFERENCE_VIEW else f"g[{self.meta_names[view]}]"
        return estimates @ unit, float(mean @ unit), true, label

    def _update_histogram(self, view, values, mean, true, label):
        """Set the histogram's artists; a new view or sample set sets its x-axis too."""
        if self._limits.get("view") != view or "hist" not in self._limits:
            span = histogram_span(self.samples, self.reference, view)
            self._limits |= {"view": view, "hist": padded(*span, log=False)}
            self._edges = np.linspace(*self._limits["hist"], N_BINS + 1)
            self._hist_ax.set_xlim(*self._limits["hist"])
            self._hist_ax.set_xlabel(label)
            self._canvas.invalidate()
        heights, _ = np.histogram(values, bins=self._edges)
        self._hist.set_data(heights, self._edges)
        self._rug.set_data(values, np.zeros_like(values))
        self._mean_line.set_xdata([mean, mean])
        self._true_line.set_visible(true is not None)
        if true is not None:
            self._true_line.set_xdata([true, true])
        self._hist_ax.set_ylim(0, 1.4 * max(heights.max(), 1))  # room for the legend

    def _update_curves(self, k, mode, mix):
        """Set the curves' artists; y-limits that must grow (or a new sample set's K-step
        curves) make the next update a full draw."""
        for name, lines in self._curve_lines.items():
            lines["mix"].set_ydata(mix[name])
            lines["mix"].set_visible(mode != "k-step")
            lines["k_line"].set_xdata([k, k])
            lines["current"].set_data([k], [mix[name][k - 1]])
            limits = self._limits.get(name)
            seen = mix[name]
            if limits is None:  # new samples: start from the values every setting can reach
                lines["k_step"].set_ydata(self._k_step[name])
                seen = np.concatenate([seen, self._k_step[name], [self._maxima.get(name, np.nan)]])
            new = grown(limits, seen, log=name in LOG_CURVES)
            if new is not None:
                self._limits[name] = new
                self._curve_axes[name].set_ylim(*new)
                self._canvas.invalidate()

    def _readout_html(self) -> str:
        r = self.readout
        columns = [
            ("variance", format_value(r["variance"])),
            ("K-step variance", format_value(r["k_step_variance"])),
            ("ratio mix / K-step", format_value(r["variance_ratio"])),
            ("bias ‖E g − g*_K‖", format_value(r["bias"])),
            ("cos(E g, g*_K)", "n/a" if np.isnan(r["cosine"]) else f"{r['cosine']:.4f}"),
            ("MSE", format_value(r["mse"])),
            ("SNR", format_value(r["snr"])),
            ("mean E g", format_value(r["mean"])),
        ]
        return "<div><b>{}</b> at K = {}; normalised weights w1..w{}: {}</div>{}".format(
            html.escape(describe_setting(r["mode"], r["lam"])),
            r["k"],
            r["k"],
            " · ".join(f"{w:.2f}" for w in r["weights"]),
            html_table([name for name, _ in columns], [[value for _, value in columns]]),
        )


def _exact_reference(problem, eta, k_max: int):
    """g*_K for K = 1..k_max where the problem can be enumerated, else None. [k_max, n_eta]."""
    try:
        return np.asarray(metagrad.true_meta_gradients(problem, eta, k_max))
    except ValueError:  # no exact enumeration for this problem, or too many paths at this k_max
        return None
