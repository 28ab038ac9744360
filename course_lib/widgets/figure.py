"""A figure whose moving parts are blitted onto a cached background, in ipympl or as an image."""

from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

FIGSIZE = (10.5, 4.2)
# Pixels per inch: each move re-encodes the changed pixels, so fewer of them is faster (ipympl
# multiplies this by the screen's pixel ratio, so text stays sharp on HiDPI screens).
DPI = 80


class BlitFigure:
    """One matplotlib figure, shown by ``self.view`` (a widget) and updated without flicker.

    Under ipympl (``%matplotlib widget``) the view is the figure's own canvas, created under
    ``plt.ioff()`` so that pyplot does not show it a second time. Elsewhere (inline, Agg, pytest) it
    is an ``ipywidgets.Image`` whose JPEG bytes are replaced in place. Artists registered with
    ``animate`` are left out of full draws; ``update`` restores the background and draws only them,
    unless ``invalidate`` said the background changed (then it draws in full).
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

    def invalidate(self):
        """Something outside the animated artists changed (axis limits, labels): the next
        ``update`` draws the whole figure."""
        self._background = None

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


def padded(low: float, high: float, log: bool) -> tuple[float, float]:
    """Axis limits a little wider than [low, high] (a factor 1.5 each way on a log axis)."""
    if log:
        return low / 1.5, high * 1.5
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
    return low - pad, high + pad


def grown(limits, values, log: bool):
    """New axis limits covering ``values`` and the old ``limits``, or None if they already fit."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0 or (
        limits is not None and limits[0] <= values.min() and values.max() <= limits[1]
    ):
        return None
    low, high = padded(values.min(), values.max(), log)
    if limits is not None:
        low, high = min(low, limits[0]), max(high, limits[1])
    return low, high
