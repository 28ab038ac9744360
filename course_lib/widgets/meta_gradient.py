"""Lessons 04–05: sliders over K and the mixing weights of a cache of K-step meta-gradients.

The expensive part, ``n_seeds`` independent runs of the K-step estimator for every prefix
k = 1..k_max (docs/notation.md §2), is computed once per (problem, η, seed set) by
``metagrad.sample_meta_gradients``:

    samples[s, k−1] = g_k(ω_s),    samples: [n_seeds, k_max, n_eta]

and, where the problem allows it, the exact joint moments of g_1..g_k_max once
(``exact.references``). A slider move only chooses weights
and recombines both with NumPy (``recombination``), then redraws only the artists that changed
(blitting onto a cached background), so nothing is traced or compiled after the first draw and
a move costs a few milliseconds.

Every estimate is scored against ONE target g* that does not move with K (docs/notation.md §4):
g*_H, the exact meta-gradient of a long horizon H, or a reference the caller names. The curves
show cosine, SNR, right-direction share and scale-free error against K, for the K-step estimator
and the current mix, with the raw variance and bias² beside them, labelled scale-dependent.

Histogram view: the n_seeds estimates projected on the direction of g* (right of 0: a step in
the right direction), or any single component (``recombination.direction``).

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

from course_lib import exact, metagrad, mixing
from course_lib.checks import check_choice, check_int, check_number
from course_lib.widgets.base import SliderExplorer, format_value, html_table
from course_lib.widgets.meta_gradient_figure import MetaGradientFigure
from course_lib.widgets.recombination import (
    EXPLORER_KINDS,
    TARGET_VIEW,
    curve_values,
    describe_setting,
    direction,
    reachable_maxima,
    recombine,
    slider_weights,
)

# (label, key of the readout) per readout column; * marks the scale-dependent ones.
READOUT_COLUMNS = (
    ("cos(E g, g*)", "cosine"),
    ("SNR", "snr"),
    ("right direction", "right_direction"),
    ("scale-free error", "scale_free_mse"),
    ("variance*", "variance"),
    ("bias²*", "bias_squared"),
    ("MSE*", "mse"),
)


class MetaGradientExplorer(MetaGradientFigure, SliderExplorer):
    """Sliders over K and the mixing weights, a histogram of the n_seeds estimates, and curves of
    cosine to a fixed target, SNR, right-direction share, scale-free error, variance and bias²
    against K for the K-step estimator, with the current mix overlaid (docs/notation.md §3–§4).

    ``MetaGradientExplorer(problem, k_max, n_seeds)`` draws the sample cache with
    ``metagrad.sample_meta_gradients``. With ``target="auto"`` the target is exact where the
    problem allows it: g*_H = ``exact.true_meta_gradient(problem, eta, H)`` for the horizon H
    in ``problem.settings["horizon"]`` (the quadratic: H = 100), else H = k_max (the bandit). The
    target does not move with K, so a curve against K shows how each horizon's estimate serves
    the same long-horizon goal. With ``moments="auto"`` the curves come from the exact joint
    moments where the problem has them (then any mix's mean and covariance are exact); the
    histogram and the right-direction share always come from the samples.
    ``MetaGradientExplorer.from_samples`` builds the same explorer from any cache, e.g. with a
    high-sample reference as the target.

    ``explorer.optimal_weights`` are the weights over g_1..g_k_max with the smallest scale-free
    error (``mixing.optimal_mixing_weights`` on the curves' moments); the "optimal mix" button
    sets them.

    Display ``explorer.widget`` (or the explorer itself, last in a cell). Drive it from code with
    ``explorer.set(...)``; read the numbers shown in ``explorer.readout`` and what is drawn in
    ``explorer.plot_data``; ``explorer.message`` is the warning shown when a slider move is
    rejected (all free weights at zero), or "".

    Args:
      problem: a ``problems.make_problem(...)`` problem.
      k_max: the longest horizon K, >= 1.
      n_seeds: independent seeds per sample set, >= 2.
      eta: [n_eta] meta-parameters the meta-gradients are taken at; default ``problem.eta0``.
      key: PRNG key; sample set d uses ``fold_in(key, d)``. Default ``jax.random.key(0)``.
      target: "auto" (exact g*_H where the problem allows it, else none), None, or [n_eta].
      target_name: how the readout names a given target (e.g. "g_16 over 4096 seeds").
      moments: "auto" (exact where the problem allows it and there is a target), None (the
        samples'), or (mean [k_max, n_eta], joint_cov [k_max, n_eta, k_max, n_eta]).
    """

    FIGSIZE = (12.0, 4.8)

    def __init__(
        self,
        problem,
        k_max: int = 8,
        n_seeds: int = 256,
        eta=None,
        key=None,
        target="auto",
        target_name=None,
        moments="auto",
    ):
        eta = problem.eta0 if eta is None else eta
        key = jax.random.key(0) if key is None else key

        def draw(index: int) -> np.ndarray:
            seed_key = jax.random.fold_in(key, index)
            return np.asarray(
                metagrad.sample_meta_gradients(problem, eta, seed_key, k_max, n_seeds)
            )

        samples = draw(0)  # checks k_max, n_seeds and eta, before the references use them
        if _is_auto(target) or _is_auto(moments):
            target, target_name, moments = _exact_references(
                problem, eta, k_max, target, target_name, moments
            )
        self._setup(
            samples,
            target,
            target_name,
            moments,
            problem.meta_names,
            draw,
            f"the {problem.name} problem",
        )

    @classmethod
    def from_samples(
        cls, samples, target=None, meta_names=None, draw=None, moments=None, target_name=None
    ):
        """An explorer over a given cache ``samples`` [n_seeds, k_max, n_eta], an optional fixed
        ``target`` [n_eta] (named ``target_name`` in the readout) and optional exact ``moments``
        (mean, joint_cov) of g_1..g_k_max, which need a target. ``draw(index)`` returns a fresh
        cache of the same shape for the "new samples" button (index 1, 2, ...); without it the
        button is disabled.
        """
        explorer = cls.__new__(cls)
        explorer._setup(samples, target, target_name, moments, meta_names, draw, "given samples")
        return explorer

    # ---------------------------------------------------------------------------------- building

    def _setup(self, samples, target, target_name, moments, meta_names, draw, title):
        if np.ndim(samples) != 3:
            raise ValueError(
                f"samples must have shape [n_seeds, k_max, n_eta], got {np.shape(samples)}"
            )
        _, k_max, n_eta = np.shape(samples)
        if target is not None:
            target = np.asarray(target, dtype=float)
            if target.shape != (n_eta,) or not np.all(np.isfinite(target)) or not target.any():
                raise ValueError(
                    f"target must be a finite, non-zero [n_eta] = ({n_eta},), got {target}"
                )
        if moments is not None:
            if target is None:
                raise ValueError("moments need a target g* to be measured against: give one")
            mean, joint_cov = (np.asarray(m, dtype=float) for m in moments)
            if mean.shape != (k_max, n_eta) or joint_cov.shape != (k_max, n_eta) * 2:
                raise ValueError(
                    f"moments must be (mean [{k_max}, {n_eta}], joint_cov "
                    f"[{k_max}, {n_eta}, {k_max}, {n_eta}]), got {mean.shape}, {joint_cov.shape}"
                )
            moments = (mean, joint_cov)
        meta_names = tuple(meta_names or (f"eta[{i}]" for i in range(n_eta)))
        if len(meta_names) != n_eta:
            raise ValueError(f"meta_names must name {n_eta} meta-parameters, got {meta_names}")
        self.k_max, self.n_eta, self.meta_names = k_max, n_eta, meta_names
        self.target, self.moments = target, moments
        self.target_name = None if target is None else (target_name or "the given target")
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
                    [self.view_dropdown, self.optimal_button, self.new_samples_button]
                    + [self.progress, self.progress_label]
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
        moments, one_hot = self.moments, np.eye(self.k_max)  # row K−1 of one_hot: g_K
        k_step = None if moments is None else mixing.mix_moments(*moments, one_hot)
        self._k_step = curve_values(samples, self.target, k_step)
        self._maxima = reachable_maxima(self._k_step)
        self.optimal_weights = self._optimal_weights()
        # No limits yet: the next ``_show`` sets every axis for this sample set and draws in full.
        self._limits: dict = {}

    def _optimal_weights(self):
        """[k_max] weights with the smallest scale-free error on the curves' moments; None
        without a target."""
        if self.target is None:
            return None
        if self.moments is None:
            return mixing.optimal_mixing_weights_from_samples(self.samples, self.target)
        return mixing.optimal_mixing_weights(*self.moments, self.target)

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
                step=0.01,
                description=f"w{k}",
                orientation="vertical",
                readout_format=".2f",
                layout=widgets.Layout(width="48px"),
            )
            for k in range(1, k_max + 1)
        ]
        views = [(f"component {name}", i) for i, name in enumerate(self.meta_names)]
        if self.target is not None:
            views.insert(0, ("along g*", TARGET_VIEW))
        self.view_dropdown = widgets.Dropdown(options=views, description="histogram")
        self.optimal_button = widgets.Button(
            description="optimal mix",
            disabled=self.target is None,
            tooltip="the free weights with the smallest scale-free error, at K = k_max",
            layout=widgets.Layout(width="120px"),
        )
        self.optimal_button.on_click(lambda _: self.set(weights=self.optimal_weights))
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
          view: the histogram's view, "target" or a component index.
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
        projected ``estimates`` [n_seeds] of the rug, the ``mean`` and ``exact_mean`` marker
        positions (``exact_mean`` None when hidden), the ``xlabel``, and per curve name the y data
        of the ``k_step`` and ``mix`` lines [k_max], whether the mix line is shown, and the
        ``current`` point (K, y).
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
            "exact_mean": float(self._exact_line.get_xdata()[0])
            if self._exact_line.get_visible()
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
        # The combination too: weights defined at K.
        mixing.estimator_weights(
            after["mode"],
            after["k"],
            lam=after["lam"],
            free_weights=[after[f"w{j}"] for j in range(self.k_max)],
        )
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
        no artist changed, where the weights are undefined)."""
        k, mode, lam = self.k_slider.value, self.mode_dropdown.value, self.lam_slider.value
        view = self.view_dropdown.value
        free = [slider.value for slider in self.weight_sliders]
        # Before any check: a learner who picks "free" with every weight at 0 must see the sliders.
        self._sync_controls(mode, k)
        weights = mixing.estimator_weights(mode, k, lam=lam, free_weights=free)
        mixed, mix = recombine(self.samples, mode, lam, free, self.target, self.moments)
        unit = direction(self.target, view, self.n_eta)
        row = k - 1
        exact_mean = None if self.moments is None else float(mix["mean"][row] @ unit)
        sample_mean = float(mixed[:, row].mean(axis=0) @ unit)
        self._update_histogram(view, mixed[:, row] @ unit, sample_mean, exact_mean)
        self._update_curves(k, mode, mix)
        measures = [key for _, key in READOUT_COLUMNS]
        return {
            "k": k,
            "mode": mode,
            "lam": lam if mode in ("geometric", "lambda-return") else None,
            "weights": weights,
            "mean": mix["mean"][row],
            **{name: float(mix[name][row]) for name in measures},
            "k_step": {name: float(self._k_step[name][row]) for name in measures},
            "source": "samples" if self.moments is None else "exact",
            "target_name": self.target_name,
        }

    def _readout_html(self) -> str:
        r = self.readout
        head = ["", *(label for label, _ in READOUT_COLUMNS)]
        rows = [
            ["current mix", *(format_value(r[key]) for _, key in READOUT_COLUMNS)],
            [f"{r['k']}-step", *(format_value(r["k_step"][key]) for _, key in READOUT_COLUMNS)],
        ]
        if self.target is None:
            about = "no target g*: cosine, right direction, scale-free error and bias need one"
        else:
            source = (
                "exact moments"
                if r["source"] == "exact"
                else f"the moments of the {self.n_seeds} samples"
            )
            about = (
                f"target g* = {self.target_name}, the same for every K; measures from {source}, "
                f"right direction from the {self.n_seeds} samples"
            )
        return "<div><b>{}</b> at K = {}; normalised weights w1..w{}: {}</div>{}{}".format(
            html.escape(describe_setting(r["mode"], r["lam"])),
            r["k"],
            r["k"],
            " · ".join(f"{w:.2f}" for w in r["weights"]),
            html_table(head, rows),
            f"<div style='font-size:small'>{html.escape(about)}. * scale-dependent: it changes "
            "with the size of g, not only with its quality.</div>",
        )


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == "auto"


def _exact_references(problem, eta, k_max: int, target, target_name, moments):
    """(target, target_name, moments) with each "auto" replaced by its exact reference where the
    problem has one (``exact.references``), else None. The target's horizon H is
    ``problem.settings["horizon"]`` if the problem names one, else k_max."""
    horizon = int(problem.settings.get("horizon", k_max))
    known = exact.references(problem, eta, k_max, horizon)
    if _is_auto(target):
        target = None if known is None else np.asarray(known.target)
        target_name = None if known is None else f"g*_{horizon} (exact)"
    if _is_auto(moments):
        exact_moments = None if known is None or target is None else known.moments
        moments = None if exact_moments is None else tuple(np.asarray(m) for m in exact_moments)
    return target, target_name, moments
