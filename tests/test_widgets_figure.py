"""BlitFigure under ipympl: the explorer's view is the figure canvas, and a move sends only the
changed pixels."""

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib import widgets


# ipympl 0.10's toolbar passes an argument traitlets no longer wants; not ours to fix.
@pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")
def test_ipympl_view_is_the_figure_canvas_made_under_ioff():
    backend = plt.get_backend()
    plt.switch_backend("module://ipympl.backend_nbagg")
    try:
        interactive = plt.isinteractive()
        explorer = widgets.MetaGradientExplorer.from_samples(
            np.random.default_rng(4).normal(size=(20, 3, 2)), target=np.ones(2)
        )
        canvas = explorer.figure.canvas
        assert isinstance(canvas, ipywidgets.DOMWidget)
        assert explorer._canvas.view is canvas
        assert plt.isinteractive() == interactive
        explorer.set(k=2, mode="geometric", lam=0.2)
        np.testing.assert_allclose(explorer.readout["weights"], [1 / 1.2, 0.2 / 1.2])
        explorer.set(view=1)
        assert explorer.message == ""
        # Before the browser view opens nothing is sent: ipympl would store a broken data URL.
        assert canvas._data_url is None

        sent = []
        canvas.send = lambda content, buffers=None: sent.append((content["data"], buffers))
        canvas._handle_message(None, {"type": "initialized"}, [])  # what the view says on opening
        canvas._handle_message(None, {"type": "draw"}, [])  # its first request: a full frame
        frames = [buffers for data, buffers in sent if data == '{"type": "binary"}']
        assert len(frames) == 1 and bytes(frames[0][0]).startswith(b"\x89PNG")
        sent.clear()
        explorer.k_slider.value = 1  # a move: ipympl sends the changed pixels only
        assert [data for data, _ in sent if "binary" in data] == ['{"type": "binary"}']
        assert "diff" in canvas._current_image_mode
        # After each widget message IPython runs pyplot's draw_all, which redraws stale figures
        # in full: the explorer's figure must not be stale after a move.
        sent.clear()
        plt.draw_all()
        assert sent == []
    finally:
        plt.switch_backend(backend)
