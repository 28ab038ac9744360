"""Live explorers for lessons 01, 03, 04–05 and 07: sliders over cached or stored results.

Lesson 01's ``BatchSizeExplorer`` only looks up the cached batch-B estimates of a policy gradient
for the batch size B on its slider; lesson 03's ``MetaLearningRateExplorer`` shows stored runs of
one meta-learning rate over the others; lesson 07's ``TrialDecisionExplorer`` applies the
practitioner's rule (``experiments.trial_decision``) to stored runs. Each precomputes or stores
what it shows and blits only the artists a move changes. The rest of this docstring is about
lessons 04–05.

The expensive part, ``n_seeds`` independent runs of the K-step estimator for every prefix
k = 1..k_max, is computed once per (problem, η, seed set) by ``metagrad.sample_meta_gradients``:

    samples[s, k−1] = g_k(ω_s),    samples: [n_seeds, k_max, n_eta]

A slider move only chooses weights and recombines the cache with NumPy,

    g_mix(ω_s) = Σ_{k=1}^{K} w_k g_k(ω_s),

then redraws only the artists that changed (blitting onto a cached background), so nothing is
traced or compiled after the first draw and a move costs a few milliseconds.

Histogram view: with several meta-parameters the n_seeds estimates are vectors. The default view
projects each onto the direction of the true meta-gradient, ⟨g, g*_K⟩ / ‖g*_K‖, because that is
what a meta-update acts on: an estimate with a negative projection moves η the wrong way, and the
spread along g*_K is the noise that matters for the update. A dropdown switches to any single
component (the only views when no reference is known).

Axes stay put while the sliders move, so a narrower histogram or a lower curve is visible as such.
That is possible because every estimate the sliders can produce is a convex combination of
g_1..g_K: per seed it lies between the K-step estimates, and its variance (a convex quadratic in the
weights) is at most max_k Var(g_k), reached at a one-hot weight. The curves' limits therefore start
at those reachable bounds and only grow (with a full redraw) when a value leaves them.
"""

from __future__ import annotations

import contextlib
import html
import io
import time
from collections.abc import Mapping

import ipywidgets as widgets
import jax
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullLocator
from PIL import Image
from tqdm.auto import tqdm

from course_lib import experiments, metagrad, mixing, plots, progress
from course_lib.stats import meta_gradient_stats

# The estimator kinds the explorer offers (labels from ``mixing.ESTIMATOR_KINDS``).
MODES = {kind: mixing.ESTIMATOR_KINDS[kind] for kind in ("k-step", "geometric", "lambda-return", "free")}
CURVES = {
    "variance": "variance tr Cov(g)",
    "bias_squared": "bias² ‖E g − g*_K‖²",
    "mse": "MSE = bias² + variance",
    "snr": "SNR ‖E g‖² / variance",
}
LOG_CURVES = ("variance", "mse", "snr")
REFERENCE_VIEW = "reference"
N_BINS = 40
FIGSIZE = (10.5, 4.2)
# Pixels per inch: each move re-encodes the changed pixels, so fewer of them is faster (ipympl
# multiplies this by the screen's pixel ratio, so text stays sharp on HiDPI screens).
DPI = 80


# --------------------------------------------------------------------------------------------------
# Pure NumPy pieces: the weights of every horizon, and the statistics of every mix at once


def recombine(samples, mode: str, lam: float, free_weights, reference=None):
    """Every horizon's estimate for the chosen weights, and its statistics: one NumPy pass.

    Args:
      samples: the cache [n_seeds, k_max, n_eta]; mode, lam, free_weights: as in ``mixing.estimator_weights``.
      reference: [k_max, n_eta] or None.
    Returns: (mixed [n_seeds, k_max, n_eta] with column K−1 = Σ_k w_k g_k at horizon K, NaN where
    the weights are undefined; its ``curve_values``).
    """
    matrix = mixing.weight_matrix(mode, samples.shape[1], lam, free_weights)
    mixed = np.einsum("Kk,ske->sKe", matrix, samples)
    return mixed, curve_values(mixed, reference)


def curve_values(samples, reference=None) -> dict[str, np.ndarray]:
    """The explorer's numbers for one estimate per horizon, all horizons at once.

    Args:
      samples: [n_seeds, k_max, n_eta], the estimate at horizon K in column K−1.
      reference: [k_max, n_eta] true meta-gradients g*_K, or None.
    Returns: ``mean`` [k_max, n_eta] and ``variance``, ``snr``, ``bias``, ``bias_squared``,
    ``cosine``, ``mse``, each [k_max] (the last four NaN without a reference); see
    ``stats.meta_gradient_stats``.
    """
    stats = meta_gradient_stats(samples, reference)
    unknown = np.full(stats.variance.shape, np.nan)
    bias = unknown if stats.bias_norm is None else stats.bias_norm
    return {
        "mean": stats.mean,
        "variance": stats.variance,
        "snr": stats.snr,
        "bias": bias,
        "bias_squared": bias**2,
        "cosine": unknown if stats.cosine is None else stats.cosine,
        "mse": unknown if stats.mse is None else stats.mse,
    }


def reachable_maxima(k_step: dict, reference=None) -> dict[str, float]:
    """The largest variance, bias² and MSE that any mix of g_1..g_K can show at any horizon K.

    Each is convex in the weights (variance wᵀCw, bias² ‖Σ_j w_j E g_j − g*_K‖²), so over the
    simplex it peaks at a one-hot weight: max over K and j <= K of Var(g_j), ‖E g_j − g*_K‖² and
    their sum. ``k_step`` is ``curve_values`` of the K-step cache. NaN without a reference.
    """
    variance = k_step["variance"]
    out = {"variance": float(np.max(variance)), "bias_squared": np.nan, "mse": np.nan}
    if reference is None:
        return out
    # gap[j, K] = ‖E g_j − g*_K‖², only j <= K is reachable at horizon K.
    gap = ((k_step["mean"][:, None, :] - np.asarray(reference)[None, :, :]) ** 2).sum(-1)
    reachable = np.triu(np.ones_like(gap, dtype=bool))
    out["bias_squared"] = float(gap[reachable].max())
    out["mse"] = float((gap + variance[:, None])[reachable].max())
    return out


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _format(value) -> str:
    if value is None or (np.ndim(value) == 0 and not np.isfinite(value)):
        return "n/a"
    if np.ndim(value):
        return "[" + ", ".join(f"{v:.3g}" for v in np.ravel(value)) + "]"
    return f"{value:.4g}"


def _setting(mode: str, lam) -> str:
    """The estimator in words, e.g. "λ-return style, ρ = 0.50"."""
    if mode in ("geometric", "lambda-return"):
        return f"{MODES[mode]} = {lam:.2f}"
    return MODES[mode]


def _html_table(head, rows) -> str:
    """A monospace readout table: one header row ``head``, then ``rows`` (texts, escaped here)."""
    cell = "padding:0 10px 0 0;text-align:left"
    lines = [("th", head)] + [("td", row) for row in rows]
    body = "".join(
        "<tr>"
        + "".join(f"<{tag} style='{cell}'>{html.escape(text)}</{tag}>" for text in line)
        + "</tr>"
        for tag, line in lines
    )
    return f"<table style='font-family:monospace'>{body}</table>"


def _padded(low: float, high: float, log: bool) -> tuple[float, float]:
    if log:
        return low / 1.5, high * 1.5
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
    return low - pad, high + pad


def _grown(limits, values, log: bool):
    """New axis limits covering ``values`` and the old limits, or None if they already fit."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0 or (
        limits is not None and limits[0] <= values.min() and values.max() <= limits[1]
    ):
        return None
    low, high = _padded(values.min(), values.max(), log)
    if limits is not None:
        low, high = min(low, limits[0]), max(high, limits[1])
    return low, high


# --------------------------------------------------------------------------------------------------
# A figure whose moving parts are blitted onto a cached background, in ipympl or as an image


class _BlitFigure:
    """One matplotlib figure, shown by ``self.view`` (a widget) and updated without flicker.

    Under ipympl (``%matplotlib widget``) the view is the figure's own canvas, created under
    ``plt.ioff()`` so that pyplot does not show it a second time. Elsewhere (inline, Agg, pytest) it
    is an ``ipywidgets.Image`` whose JPEG bytes are replaced in place. Artists registered with
    ``animate`` are left out of full draws; ``update`` restores the background and draws only them.
    """

    def __init__(self, figsize=FIGSIZE):
        backend = matplotlib.get_backend()
        if "ipympl" in backend or backend in ("widget", "ipympl"):
            with plt.ioff():
                self.figure = plt.figure(figsize=figsize, dpi=DPI)
            # pyplot redraws stale figures in interactive mode, right away and again after each
            # widget message: a full draw per move on top of the blit. Here only we (and ipympl
            # on the browser's request) draw, and ``update`` leaves the figure fresh.
            self.figure.stale_callback = None
            self.figure.canvas.header_visible = False
            self.figure.canvas.resizable = False
            self.image = None
            self.view = self.figure.canvas
        else:
            self.figure = Figure(figsize=figsize, dpi=DPI)
            FigureCanvasAgg(self.figure)
            self.image = widgets.Image(format="jpeg")
            self.view = self.image
        self._animated: list = []
        self._background = None
        # Any full draw (ours, or ipympl's own after a resize) refreshes the background first.
        self.figure.canvas.mpl_connect("draw_event", self._on_draw)

    def animate(self, artist):
        artist.set_animated(True)
        self._animated.append(artist)
        return artist

    def _on_draw(self, _event):
        self._background = self.figure.canvas.copy_from_bbox(self.figure.bbox)
        self._draw_animated()

    def _draw_animated(self):
        for artist in self._animated:
            self.figure.draw_artist(artist)

    def _view_is_open(self) -> bool:
        """Whether ipympl's canvas may send frames. Until its view in the browser reports
        "initialized", ipympl (0.10) stores each frame as a data URL without its "data:" prefix,
        which leaves the view blank when it opens; it asks for a full frame when it does open."""
        return not getattr(self.figure.canvas, "syncing_data_url", False)

    def full_draw(self):
        if self.image is not None:
            self.figure.canvas.draw()
            self._encode()
        elif self._view_is_open():
            self.figure.canvas.draw()  # ipympl renders and sends the frame
        else:
            FigureCanvasAgg.draw(self.figure.canvas)  # render only (fires draw_event), send nothing

    def update(self):
        if self._background is None:
            self.full_draw()
            return
        self.figure.canvas.restore_region(self._background)
        self._draw_animated()
        # What changed outside the animated artists (the histogram's y-limit) draws nothing in
        # the background, so the picture is current.
        self.figure.stale = False
        if self.image is not None:
            self._encode()
        elif self._view_is_open():
            self.figure.canvas.blit(self.figure.bbox)  # ipympl sends the changed pixels

    def _encode(self):
        canvas = self.figure.canvas
        picture = Image.frombuffer(
            "RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1
        )
        buffer = io.BytesIO()
        # JPEG at full chroma: ~1 ms where even the fastest PNG costs ~15 ms for this figure.
        picture.convert("RGB").save(buffer, format="jpeg", quality=92, subsampling=0)
        self.image.value = buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# The explorer


class MetaGradientExplorer:
    """Sliders over K and the mixing weights, a histogram of the n_seeds estimates, and curves of
    variance, bias², MSE and SNR against K for the K-step estimator with the current mix overlaid.

    ``MetaGradientExplorer(problem, k_max, n_seeds)`` draws the sample cache with
    ``metagrad.sample_meta_gradients`` and, where the problem can be enumerated (the bandit), takes
    the reference g*_K = ``metagrad.true_meta_gradients(problem, eta, k_max)[K − 1]``: the exact
    gradient of the expected outer loss after K inner steps, what a horizon-K meta-gradient is
    meant to follow. The K-step estimator is biased against it for K >= 2 (it holds the sampled
    data fixed), and a mix at horizon K is measured against the same g*_K, so mixing trades bias
    for variance.
    ``MetaGradientExplorer.from_samples`` builds the same explorer from any cache.

    Display ``explorer.widget`` (or the explorer itself, last in a cell). Drive it from code with
    ``explorer.set(...)``; read the numbers shown in ``explorer.readout`` and what is drawn in
    ``explorer.plot_data``; ``explorer.message`` is the warning shown for rejected input, or "".

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
        k_max = _check_count(k_max, "k_max", 1)
        n_seeds = _check_count(n_seeds, "n_seeds", 2)
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
        self._holding = False
        self.message = ""
        self.readout: dict = {}
        self._use_samples(samples)
        self._build_widgets(title)
        self._build_figure()
        if not self._refresh(full=True):
            raise ValueError(self.message)

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
        self._limits: dict = {}

    def _build_widgets(self, title):
        k_max = self.k_max
        style = {"description_width": "initial"}
        self.k_slider = widgets.IntSlider(
            value=k_max, min=1, max=k_max, description="K", style=style
        )
        self.mode_dropdown = widgets.Dropdown(
            options=[(label, mode) for mode, label in MODES.items()],
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
        self.progress = widgets.IntProgress(
            value=0, min=0, max=3, layout=widgets.Layout(width="120px")
        )
        self.progress_label = widgets.Label(f"{self.n_seeds} seeds of {title}")
        self.message_html = widgets.HTML()
        self.weights_html = widgets.HTML()
        self.readout_html = widgets.HTML()
        self.readout_html.add_class("metagrad-readout")
        self.free_box = widgets.HBox(
            [widgets.Label("free weights, normalised over w1..wK:"), *self.weight_sliders]
        )
        for control in (
            self.k_slider,
            self.mode_dropdown,
            self.lam_slider,
            self.view_dropdown,
            *self.weight_sliders,
        ):
            control.observe(self._on_change, names="value")
        self.new_samples_button.on_click(lambda _: self.new_samples())

    def _build_figure(self):
        self._canvas = _BlitFigure()
        figure, animate = self._canvas.figure, self._canvas.animate
        grid = figure.add_gridspec(
            2,
            3,
            width_ratios=(1.5, 1, 1),
            left=0.05,
            right=0.98,
            bottom=0.12,
            top=0.86,
            wspace=0.35,
            hspace=0.55,
        )
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
                ax.text(
                    0.5,
                    0.5,
                    "needs a reference g*",
                    transform=ax.transAxes,
                    ha="center",
                    color="grey",
                )
            self._curve_lines[name] = {
                "k_step": ax.plot(
                    ks, self._k_step[name], "o-", color="C0", markersize=3, label="K-step"
                )[0],
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

        controls = widgets.VBox(
            [
                widgets.HBox([self.k_slider, self.mode_dropdown, self.lam_slider]),
                self.free_box,
                widgets.HBox(
                    [
                        self.view_dropdown,
                        self.new_samples_button,
                        self.progress,
                        self.progress_label,
                    ]
                ),
                self.message_html,
            ]
        )
        # One column, narrower than a notebook: controls, the numbers, then the figure.
        self.widget = widgets.VBox(
            [controls, self.weights_html, self.readout_html, self._canvas.view]
        )

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ---------------------------------------------------------------------------------- public API

    @property
    def figure(self) -> Figure:
        return self._canvas.figure

    def set(self, k=None, mode=None, lam=None, weights=None, view=None) -> bool:
        """Move the controls from code, then redraw once.

        Args:
          k: horizon K in 1..k_max.
          mode: one of ``MODES``: "k-step", "geometric", "lambda-return" or "free".
          lam: λ (geometric) or ρ (lambda-return), in [0, 1].
          weights: free weights w_1..w_j (j <= k_max, >= 0, normalised afterwards; scaled into the
            sliders' range [0, 1] if larger); the sliders after j go to 0. Implies mode="free"
            and K = j unless those are given.
          view: the histogram's view, "reference" or a component index.
        Returns: True when the view was updated; False when the input was rejected, in which case
        ``message`` says why, the controls keep their values and the previous view stays.
        """
        try:
            values = self._validated(k, mode, lam, weights, view)
        except (TypeError, ValueError) as error:
            return self._reject(str(error))
        view_changes = values["view"] is not None and values["view"] != self.view_dropdown.value
        with self._hold():
            if values["weights"] is not None:
                for slider, weight in zip(self.weight_sliders, values["weights"], strict=True):
                    slider.value = float(weight)
            for name, control in (
                ("k", self.k_slider),
                ("mode", self.mode_dropdown),
                ("lam", self.lam_slider),
                ("view", self.view_dropdown),
            ):
                if values[name] is not None:
                    control.value = values[name]
        return self._refresh(full=view_changes)

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
            for name, lines in self._curve_lines.items():
                lines["k_step"].set_ydata(self._k_step[name])
            self._progress(3, "drawing…")
            if not self._refresh(full=True):
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
            for name, lines in self._curve_lines.items():
                lines["k_step"].set_ydata(self._k_step[name])
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

    @contextlib.contextmanager
    def _hold(self):
        """Batch several control changes into the single redraw that follows."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def _on_change(self, change):
        if not self._holding:
            self._refresh(full=change["owner"] is self.view_dropdown)

    def _validated(self, k, mode, lam, weights, view) -> dict:
        """The requested control values, checked together before any control moves."""
        if k is not None and (
            isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.k_max
        ):
            raise ValueError(f"K must be an integer from 1 to k_max={self.k_max}, got {k!r}")
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if lam is not None and (
            isinstance(lam, bool)
            or not isinstance(lam, (int, float, np.number))
            or not 0.0 <= lam <= 1.0
        ):
            raise ValueError(f"lam must be a number in [0, 1], got {lam!r}")
        free = [slider.value for slider in self.weight_sliders]
        if weights is not None:
            weights = np.asarray(weights, dtype=float)
            if weights.ndim != 1 or not 1 <= weights.size <= self.k_max:
                raise ValueError(
                    f"weights must list 1 to k_max={self.k_max} numbers, got shape {weights.shape}"
                )
            if not np.all(np.isfinite(weights) & (weights >= 0)):
                raise ValueError(f"free weights must be finite and >= 0, got {weights}")
            free = np.zeros(self.k_max)
            # Scaled into the sliders' range [0, 1]; normalising afterwards undoes the scale.
            free[: weights.size] = weights / max(weights.max(), 1.0)
            mode = "free" if mode is None else mode
            k = weights.size if k is None else k
        valid_views = [value for _, value in self.view_dropdown.options]
        if view is not None and view not in valid_views:
            raise ValueError(f"view must be one of {valid_views}, got {view!r}")
        mixing.estimator_weights(
            mode or self.mode_dropdown.value,
            k or self.k_slider.value,
            lam=self.lam_slider.value if lam is None else lam,
            free_weights=free,
        )
        return {
            "k": k,
            "mode": mode,
            "lam": lam,
            "weights": None if weights is None else free,
            "view": view,
        }

    def _reject(self, message: str) -> bool:
        self.message = message
        self.message_html.value = (
            f"<div style='color:#b00020;font-weight:bold'>⚠ {html.escape(message)} "
            f"(the plots still show the previous setting)</div>"
        )
        return False

    def _progress(self, step: int, text: str):
        self.progress.value = step
        self.progress_label.value = text

    def _sync_controls(self, mode: str, k: int):
        self.lam_slider.disabled = mode not in ("geometric", "lambda-return")
        self.lam_slider.description = "ρ" if mode == "lambda-return" else "λ"
        self.free_box.layout.display = "flex" if mode == "free" else "none"
        for index, slider in enumerate(self.weight_sliders):
            slider.disabled = index >= k

    def _refresh(self, full: bool = False) -> bool:
        """Recombine the cache for the current controls and update every view, or keep the
        previous views and show why not. ``full`` redraws the background too."""
        k, mode, lam = self.k_slider.value, self.mode_dropdown.value, self.lam_slider.value
        free = [slider.value for slider in self.weight_sliders]
        self._sync_controls(mode, k)
        try:
            weights = mixing.estimator_weights(mode, k, lam=lam, free_weights=free)
            mixed, mix = recombine(self.samples, mode, lam, free, self.reference)
            values, mean, true, label = self._projection(k, mixed[:, k - 1], mix["mean"][k - 1])
        except Exception as error:  # a learner's widget shows the failure instead of a traceback
            return self._reject(str(error))
        # Everything is computed before the first artist changes, so a failure leaves the
        # previous picture whole.
        full = self._update_histogram(values, mean, true, label, full)
        full = self._update_curves(k, mode, mix) or full
        if full:
            self._canvas.full_draw()
        else:
            self._canvas.update()
        self.message = ""
        self.message_html.value = ""
        row = k - 1
        self.readout = {
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
        self._write_readout()
        return True

    def _direction(self, k: int):
        """Unit vector of the histogram's view at horizon K. [n_eta]."""
        view = self.view_dropdown.value
        if view != REFERENCE_VIEW:
            return np.eye(self.n_eta)[view]
        norm = np.linalg.norm(self.reference[k - 1])
        if norm == 0:
            raise ValueError(f"g*_{k} is zero, so it has no direction: pick a component view")
        return self.reference[k - 1] / norm

    def _projection(self, k: int, estimates: np.ndarray, mean: np.ndarray):
        """(projected estimates, mean, true value or None, axis label) in the histogram's view."""
        unit = self._direction(k)
        true = None if self.reference is None else float(self.reference[k - 1] @ unit)
        view = self.view_dropdown.value
        label = "⟨g, g*_K⟩ / ‖g*_K‖" if view == REFERENCE_VIEW else f"g[{self.meta_names[view]}]"
        return estimates @ unit, float(mean @ unit), true, label

    def _histogram_range(self) -> tuple[float, float]:
        """Every estimate a setting can show lies between the K-step estimates of its seed, so the
        range over all K of the projected g_1..g_K (plus 0 and g*) holds every histogram."""
        points = [0.0]
        for k in range(1, self.k_max + 1):
            with contextlib.suppress(ValueError):
                unit = self._direction(k)
                projected = self.samples[:, :k] @ unit
                points += [projected.min(), projected.max()]
                if self.reference is not None:
                    points.append(float(self.reference[k - 1] @ unit))
        return _padded(min(points), max(points), log=False)

    def _update_histogram(self, values, mean, true, label, full) -> bool:
        """Set the histogram's artists; True when its x-axis changed (a full redraw is due)."""
        if full or "hist" not in self._limits:
            self._limits["hist"] = self._histogram_range()
            self._edges = np.linspace(*self._limits["hist"], N_BINS + 1)
            self._hist_ax.set_xlim(*self._limits["hist"])
            self._hist_ax.set_xlabel(label)
            full = True
        heights, _ = np.histogram(values, bins=self._edges)
        self._hist.set_data(heights, self._edges)
        self._rug.set_data(values, np.zeros_like(values))
        self._mean_line.set_xdata([mean, mean])
        self._true_line.set_visible(true is not None)
        if true is not None:
            self._true_line.set_xdata([true, true])
        self._hist_ax.set_ylim(0, 1.4 * max(heights.max(), 1))  # room for the legend
        return full

    def _update_curves(self, k, mode, mix) -> bool:
        """Set the curves' artists; True when some y-limits had to grow (a full redraw is due)."""
        grew = False
        for name, lines in self._curve_lines.items():
            lines["mix"].set_ydata(mix[name])
            lines["mix"].set_visible(mode != "k-step")
            lines["k_line"].set_xdata([k, k])
            lines["current"].set_data([k], [mix[name][k - 1]])
            limits = self._limits.get(name)
            seen = mix[name]
            if limits is None:  # new samples: start from the values every setting can reach
                seen = np.concatenate([seen, self._k_step[name], [self._maxima.get(name, np.nan)]])
            new = _grown(limits, seen, log=name in LOG_CURVES)
            if new is not None:
                self._limits[name] = new
                self._curve_axes[name].set_ylim(*new)
                grew = True
        return grew

    def _write_readout(self):
        r = self.readout
        self.weights_html.value = "<b>{}</b> at K = {}; normalised weights w1..w{}: {}".format(
            html.escape(_setting(r["mode"], r["lam"])),
            r["k"],
            r["k"],
            " · ".join(f"{w:.2f}" for w in r["weights"]),
        )
        columns = [
            ("variance", _format(r["variance"])),
            ("K-step variance", _format(r["k_step_variance"])),
            ("ratio mix / K-step", _format(r["variance_ratio"])),
            ("bias ‖E g − g*_K‖", _format(r["bias"])),
            ("cos(E g, g*_K)", "n/a" if np.isnan(r["cosine"]) else f"{r['cosine']:.4f}"),
            ("MSE", _format(r["mse"])),
            ("SNR", _format(r["snr"])),
            ("mean E g", _format(r["mean"])),
        ]
        self.readout_html.value = _html_table(
            [name for name, _ in columns], [[value for _, value in columns]]
        )


def _exact_reference(problem, eta, k_max: int):
    """g*_K for K = 1..k_max where the problem can be enumerated, else None. [k_max, n_eta]."""
    try:
        return np.asarray(metagrad.true_meta_gradients(problem, eta, k_max))
    except ValueError:  # no exact enumeration for this problem, or too many paths at this k_max
        return None


# --------------------------------------------------------------------------------------------------
# One-figure slider explorers over stored data (lessons 01, 03 and 07)


def _integer_from_1(value, name: str, high: int, high_name: str) -> int:
    """``value`` as an int in 1..high, else a ValueError naming ``name`` and what ``high`` is."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 1 <= value <= high
    ):
        raise ValueError(f"{name} must be an integer from 1 to {high_name}={high}, got {value!r}")
    return int(value)


class _SliderExplorer:
    """Controls, an HTML readout and one blitted figure, stacked in ``widget``.

    A subclass calls ``_start_figure()``, draws on the figure it returns (registering what moves
    with ``animate``), then ``_connect(controls)``. After that every control change, and every
    ``_move`` from code, calls the subclass's ``_show()``, which sets the animated artists for the
    controls' values and returns the readout; the artists are then blitted onto the background
    (the figure is drawn in full only once) and ``_readout_html()`` is shown above it.
    """

    FIGSIZE = FIGSIZE

    def _start_figure(self):
        """(figure, animate) of a fresh ``_BlitFigure``."""
        self._canvas = _BlitFigure(self.FIGSIZE)
        self.readout_html = widgets.HTML()
        self.readout: dict = {}
        self._holding = False
        return self._canvas.figure, self._canvas.animate

    def _connect(self, controls):
        self.widget = widgets.VBox([*controls, self.readout_html, self._canvas.view])
        for control in controls:
            control.observe(self._on_change, names="value")
        self._refresh(full=True)

    def _on_change(self, _change):
        if not self._holding:  # ``_move`` sets several controls, then redraws once
            self._refresh()

    def _move(self, moves):
        """Set each (control, value) of ``moves`` (values checked by the caller), then redraw
        once, also when no value changed."""
        self._holding = True
        try:
            for control, value in moves:
                control.value = value
        finally:
            self._holding = False
        self._refresh()

    def _refresh(self, full: bool = False):
        self.readout = self._show()
        if full:
            self._canvas.full_draw()
        else:
            self._canvas.update()
        self.readout_html.value = self._readout_html()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def figure(self) -> Figure:
        return self._canvas.figure


# --------------------------------------------------------------------------------------------------
# Lesson 01: the batch-size explorer


class BatchSizeExplorer(_SliderExplorer):
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
        exact = np.asarray(exact_gradient, dtype=float)
        if exact.shape != (n_params,):
            raise ValueError(f"exact_gradient must have shape ({n_params},), got {exact.shape}")
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
        batch_size = _integer_from_1(batch_size, "batch_size", self.b_max, "b_max")
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
        limits = [_padded(points[:, i].min(), points[:, i].max(), log=False) for i in (0, 1)]
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
        self._move([(self.slider, _integer_from_1(batch_size, "batch_size", self.b_max, "b_max"))])

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
        return f"<b>B = {self.readout['batch_size']}</b>, {self.n_seeds} seeds" + _html_table(
            head, rows
        )


# --------------------------------------------------------------------------------------------------
# Lesson 03: the meta-learning-rate explorer


class MetaLearningRateExplorer(_SliderExplorer):
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
            if not isinstance(result, experiments.Results):
                raise ValueError(f"runs[{rate}] must be an experiments.Results, got {result!r}")
        self.rates = sorted(runs)
        self.env_steps = np.asarray(runs[self.rates[0]].env_steps, dtype=float)
        self.returns, self.hyper, self.final_returns = {}, {}, {}
        for rate in self.rates:
            result = runs[rate]
            e = result.index(result.estimators[0] if estimator is None else estimator)
            self.returns[rate] = np.asarray(result.episode_return[e], dtype=float)  # [S, C]
            self.hyper[rate] = np.asarray(result.hyper[e], dtype=float)  # [S, C + 1, n]
            self.final_returns[rate] = experiments.final_returns(result)[e]  # [S]
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
            (label, _format(r["start"][label]), _format(r["end"][label])) for label in self.labels
        ]
        return (
            f"<b>β = {r['meta_lr']:g}</b>: final return per seed (mean of the last quarter of "
            f"checkpoints) {html.escape(_format(r['final_return']))}"
            + _html_table(("per seed", "at the start", "at the end"), rows)
        )


# --------------------------------------------------------------------------------------------------
# Lesson 07: the trial-decision explorer


class TrialDecisionExplorer(_SliderExplorer):
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
        if not isinstance(results, experiments.Results):
            raise ValueError(f"results must be an experiments.Results, got {type(results)!r}")
        self.results = results
        self._snr = experiments.own_snr(results)  # {self-tuning estimator: [S, C]}
        if not self._snr:
            raise ValueError(
                f"results must hold a self-tuning estimator, got only {results.estimators}"
            )
        self.n_checkpoints = results.snr.shape[2]
        self.control = next(
            (name for name in results.estimators if not experiments.parse_estimator(name).tunes),
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
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float, np.number))
            or not low <= threshold <= high  # also rejects NaN
        ):
            raise ValueError(
                f"threshold must be a number from {low:g} to {high:.4g} (the slider's range), "
                f"got {threshold!r}"
            )
        return float(threshold)

    def _checked_trial(self, trial) -> int:
        return _integer_from_1(trial, "trial", self.n_checkpoints, "n_checkpoints")

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

        finals = experiments.final_returns(self.results)  # [E, S]
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
        decision = experiments.trial_decision(self.results, threshold, trial)
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
            + _html_table(("estimator", "trial SNR", "accepted", "final return"), rows)
        )


# --------------------------------------------------------------------------------------------------
# Progress of compiled loops


@contextlib.contextmanager
def progress_bar(desc: str, disable: bool = False):
    """A tqdm bar fed by the compiled loops that run inside the block (``course_lib.progress``).

    ``with progress_bar("training"): train(keys, hyper)`` shows the scan's steps as they finish;
    a block that runs several loops (a warm-up, then the real run) restarts the bar for each loop
    of a different length. Nothing is recompiled for it; ``disable=True`` shows nothing.
    """
    bar = tqdm(desc=desc, disable=disable, unit="step")
    bar.set_postfix_str("compiling")  # the first report comes only once the program runs

    def show(done: int, total: int):
        if bar.total != total:
            bar.reset(total=total)
            bar.set_postfix_str("")
        bar.update(max(0, done - bar.n))  # reports may arrive out of order; the bar only advances

    try:
        with progress.listening(show):
            yield bar
    finally:
        bar.close()
