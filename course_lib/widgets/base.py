"""The base of every explorer: controls, a message line, a readout and one blitted figure.

``SliderExplorer`` owns what all explorers share: the hold (several controls change, one redraw
follows), the refresh (blit the artists that move, or draw in full when the background changed),
the rejection of a combination the controls cannot show (message shown, last good picture kept),
the change handler, ``figure`` and the notebook display. A new explorer subclasses it and writes
only what it shows.
"""

from __future__ import annotations

import contextlib
import html

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from course_lib.widgets.figure import FIGSIZE, BlitFigure


class SliderExplorer:
    """Controls, a message line, an HTML readout and one blitted figure, stacked in ``widget``.

    A subclass builds in two calls:

    1. ``figure, animate = self._start_figure()``, then draws on ``figure``, registering with
       ``animate`` every artist that a move changes (the rest is drawn once, into the background);
    2. ``self._connect(controls, rows)``: watches ``controls``, stacks ``rows`` (default: the
       controls), the message line, the readout and the figure in ``widget``, and shows the start.

    and writes three methods:

    - ``_show()``: sets the animated artists for the controls' current values and returns the
      readout (a dict). It raises ValueError, before any artist changes, when the controls hold a
      combination it cannot show, and calls ``self._canvas.invalidate()`` when something outside
      the animated artists changed (axis limits, labels), so that the figure is drawn in full;
    - ``_readout_html()``: ``self.readout`` as HTML;
    - ``set(...)``, the one contract for moving an explorer from code: every value is checked
      before any control moves, and a ValueError names the argument and its allowed range and
      changes nothing; then ``self._move([(control, value), ...])`` redraws once.

    A control moved in the notebook refreshes at once: ``_show()``, a blit (or a full draw), the
    readout. A combination that ``_show`` rejects (all free weights dragged to zero) is shown in
    the message line (``message``), and the previous picture and readout stay until a good move.
    """

    FIGSIZE = FIGSIZE

    def _start_figure(self):
        """(figure, animate) of a fresh ``BlitFigure``, with the message line and readout."""
        self._canvas = BlitFigure(self.FIGSIZE)
        self.readout: dict = {}
        self.readout_html = widgets.HTML()
        self.message = ""
        self.message_html = widgets.HTML()
        self._holding = False
        return self._canvas.figure, self._canvas.animate

    def _connect(self, controls, rows=None):
        self.widget = widgets.VBox(
            [*(controls if rows is None else rows), self.message_html, self.readout_html]
            + [self._canvas.view]
        )
        for control in controls:
            control.observe(self._on_change, names="value")
        if not self._refresh():
            raise ValueError(self.message)

    @contextlib.contextmanager
    def _hold(self):
        """Change several controls inside the block; the caller redraws once afterwards."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def _on_change(self, _change):
        if not self._holding:
            self._refresh()

    def _move(self, moves) -> None:
        """Set each (control, value) of ``moves`` (checked by ``set``), then redraw once, also when
        no value changed."""
        with self._hold():
            for control, value in moves:
                control.value = value
        self._refresh()

    def _refresh(self) -> bool:
        """Show the controls' current values; False (with the message shown) if ``_show`` rejects
        them, the previous picture and readout kept."""
        try:
            readout = self._show()
        except ValueError as error:
            return self._reject(str(error))
        self._canvas.update()
        self.readout = readout
        self.message = ""
        self.message_html.value = ""
        self.readout_html.value = self._readout_html()
        return True

    def _reject(self, message: str) -> bool:
        self.message = message
        self.message_html.value = (
            f"<div style='color:#b00020;font-weight:bold'>⚠ {html.escape(message)} "
            f"(the plots still show the previous setting)</div>"
        )
        return False

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def figure(self) -> Figure:
        return self._canvas.figure


def format_value(value) -> str:
    """A readout number (or vector) in a few digits; "n/a" for None or a non-finite scalar."""
    if value is None or (np.ndim(value) == 0 and not np.isfinite(value)):
        return "n/a"
    if np.ndim(value):
        return "[" + ", ".join(f"{v:.3g}" for v in np.ravel(value)) + "]"
    return f"{value:.4g}"


def html_table(head, rows) -> str:
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
