"""The live explorer in a real browser: JupyterLab in headless Chromium (fixtures in conftest.py).

Each test opens a notebook of the temporary course copy, runs every cell from the Run menu, then
moves sliders with the keyboard (focus the handle, press an arrow key) and checks what a learner
sees: the readout text and the plot change after every key press, and no figure is shown twice.
The time from the key press to the updated readout and plot is printed, never asserted.

What a lesson must keep stable for these selectors:
- the explorer's sliders are ipywidgets sliders described "K" (the horizon) and "ρ" or "λ" (the
  mixing parameter), in one cell's output;
- its numbers are in a widget with the CSS class ``metagrad-readout`` (``widget.add_class(...)``);
- its plot is an ipympl canvas (``%matplotlib widget``) or an ``ipywidgets.Image``.

``SAVE_SCREENSHOT=docs/explorer.png`` (relative to the repository) also saves a screenshot of the
explorer there, for the README.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path

import nbformat
import pytest

PlaywrightTimeout = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed (pip install playwright)"
).TimeoutError

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
KERNEL_START_TIMEOUT_MS = 60_000
RUN_ALL_TIMEOUT_MS = 150_000
UPDATE_TIMEOUT_MS = 20_000
KEY_PRESSES = 4
K_LABEL = re.compile(r"^\s*K\s*$")
MIX_LABEL = re.compile(r"^\s*[ρλ]\s*$")
READOUT = ".metagrad-readout"
PLOT = ".jupyter-matplotlib-figure, .widget-image"

# The same selectors as the real explorer on a widget that does almost nothing: it checks the
# harness and gives the baseline round trip (slider -> kernel -> readout) to judge the explorer by.
TRIVIAL_EXPLORER = [
    "%matplotlib widget\n"
    "import ipywidgets as widgets\n"
    "import matplotlib.pyplot as plt\n"
    "import numpy as np",
    """\
with plt.ioff():
    fig, ax = plt.subplots(figsize=(4, 3))
ks = np.arange(1, 11)
bars = ax.bar(ks, np.zeros(10))
ax.set_ylim(0, 1)
k = widgets.IntSlider(value=3, min=1, max=10, description="K")
rho = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="ρ")
readout = widgets.HTML().add_class("metagrad-readout")

def redraw(_=None):
    weights = np.where(ks < k.value, (1 - rho.value) * rho.value ** (ks - 1), 0.0)
    weights[k.value - 1] = rho.value ** (k.value - 1)
    for bar, height in zip(bars, weights):
        bar.set_height(height)
    fig.canvas.draw_idle()
    readout.value = f"K = {k.value}, ρ = {rho.value:.2f}, w_1 = {weights[0]:.3f}"

k.observe(redraw, "value")
rho.observe(redraw, "value")
redraw()
widgets.VBox([k, rho, readout, fig.canvas])""",
]

# The library's explorer on the bandit, for as long as lesson 05 (which shows it) is not written.
LIBRARY_EXPLORER = [
    "%matplotlib widget\n"
    "from course_lib.problems import make_problem\n"
    "from course_lib.widgets import MetaGradientExplorer",
    'MetaGradientExplorer(make_problem("bandit"), k_max=3, n_seeds=64)',
]

# fingerprints(root): one string per plot under root, hashed from its pixels (an ipympl figure's
# canvases, or an Image widget's <img> drawn onto a scratch canvas); "" while nothing is drawn.
# Every 7th byte only, so polling it every frame stays cheap.
FINGERPRINTS_JS = """
const fingerprints = (root) => [...root.querySelectorAll(PLOT)].map((plot) => {
    let canvases = [...plot.querySelectorAll('canvas')];
    if (plot.tagName === 'IMG') {
        if (!plot.complete || plot.naturalWidth === 0) return '';
        const scratch = document.createElement('canvas');
        scratch.width = plot.naturalWidth;
        scratch.height = plot.naturalHeight;
        scratch.getContext('2d').drawImage(plot, 0, 0);
        canvases = [scratch];
    }
    let hash = 2166136261;
    let drawn = false;
    for (const canvas of canvases) {
        if (canvas.width === 0 || canvas.height === 0) continue;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 0; i < data.length; i += 7) {
            drawn = drawn || data[i] !== 0;
            hash = Math.imul(hash ^ data[i], 16777619);
        }
    }
    return drawn ? String(hash >>> 0) : '';
});
""".replace("PLOT", repr(PLOT))

# Records, in the page's clock, the next key press and the first readout and plot changes after it.
WATCH_NEXT_MOVE = f"""(cell) => {{
    {FINGERPRINTS_JS}
    const readout = cell.querySelector({READOUT!r});
    const move = {{
        text: readout.textContent, plots: fingerprints(cell).join(),
        key: null, readout: null, plot: null,
    }};
    window.__move = move;
    const pressed = () => {{ move.key = performance.now(); }};
    document.addEventListener('keydown', pressed, {{capture: true, once: true}});
    new MutationObserver((_, observer) => {{
        if (move.key !== null && readout.textContent !== move.text) {{
            move.readout = performance.now();
            observer.disconnect();
        }}
    }}).observe(readout, {{childList: true, subtree: true, characterData: true}});
    const poll = () => {{
        if (move.key !== null && fingerprints(cell).join() !== move.plots) {{
            move.plot = performance.now();
            return;
        }}
        if (move.gaveUp) return;
        requestAnimationFrame(poll);
    }};
    requestAnimationFrame(poll);
}}"""

PLOTS_ON_PAGE = f"""() => {{
    {FINGERPRINTS_JS}
    const labels = [...document.querySelectorAll({PLOT!r})].map(
        (plot) => (plot.querySelector('.jupyter-matplotlib-header') || {{}}).textContent || '');
    return [labels, fingerprints(document)];
}}"""


def _write_notebook(lab_server, name: str, sources: list[str]) -> str:
    notebook = nbformat.v4.new_notebook()
    kernel = lab_server.kernel_name
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, lab_server.root / name)
    return name


def _explorer_notebook(lab_server) -> str:
    """Lesson 05's solution notebook where it exists, else a notebook with the explorer alone."""
    lessons = sorted((lab_server.root / "solutions").glob("05_*.ipynb"))
    if lessons:
        return lessons[0].relative_to(lab_server.root).as_posix()
    return _write_notebook(lab_server, "library_explorer.ipynb", LIBRARY_EXPLORER)


def _open_and_run_all(page, lab_server, path: str) -> None:
    """Open ``path`` in JupyterLab, run every cell from the Run menu, wait until all have run.

    JupyterLab stops "Run All Cells" at the first error and un-queues the cells after it, so a
    code cell left without an execution count means the notebook failed before it.
    """
    page.goto(lab_server.url(path))
    # Running before the kernel is connected opens a "Select Kernel" dialog instead; the status bar
    # names the kernel once it is, which also checks that the course's kernel was picked.
    page.locator(".jp-StatusBar-TextItem").filter(
        has_text=re.compile(rf"^{re.escape(lab_server.kernel_display_name)} \| Idle$")
    ).wait_for(timeout=KERNEL_START_TIMEOUT_MS)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
    # Done: a cell has run ("[1]:") and none is queued or running ("[*]:").
    page.wait_for_function(
        r"""() => {
            const texts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent);
            return texts.some(t => /\[\d+\]/.test(t)) && !texts.some(t => t.includes('*'));
        }""",
        timeout=RUN_ALL_TIMEOUT_MS,
        polling=250,
    )
    texts = prompts.all_inner_texts()
    assert all(re.search(r"\[\d+\]", text) for text in texts), (
        f"{path}: Run All stopped at an error; execution counts {texts}"
    )


def _slider(page, scope, label: re.Pattern):
    """The ipywidgets slider(s) under ``scope`` whose description matches ``label``."""
    return scope.locator(".widget-slider").filter(
        has=page.locator("label.widget-label", has_text=label)
    )


def _explorer_cell(page):
    """The first code cell whose output holds a K slider, a mixing slider, a readout and a plot."""
    cells = page.locator(".jp-CodeCell")
    cell = (
        cells.filter(has=_slider(page, page, K_LABEL))
        .filter(has=_slider(page, page, MIX_LABEL))
        .first
    )
    cell.locator(READOUT).wait_for(timeout=UPDATE_TIMEOUT_MS)
    cell.locator(PLOT).first.wait_for(timeout=UPDATE_TIMEOUT_MS)
    return cell


def _assert_each_figure_shown_once(page) -> int:
    """A figure displayed twice (made outside ``plt.ioff()`` under ipympl, then also put in a box)
    gives two views with one "Figure N" label and the same pixels. Returns the number of plots."""
    labels, prints = page.evaluate(PLOTS_ON_PAGE)
    named = [label for label in labels if label.strip()]
    assert len(set(named)) == len(named), f"a figure is shown more than once: {labels}"
    drawn = [fingerprint for fingerprint in prints if fingerprint]
    assert len(set(drawn)) == len(drawn), f"two plots show the same pixels: {labels} {prints}"
    return len(prints)


def _move(page, cell, slider) -> tuple[float, float]:
    """Press an arrow key on ``slider``'s handle; return the ms until readout and plot change."""
    handle = slider.locator(".noUi-handle")
    # aria-valuenow is rounded to one decimal: enough to tell the end of the range, not one step.
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(
        handle.get_attribute("aria-valuemax")
    )
    value = slider.locator(".widget-readout")
    before = value.text_content()
    cell.evaluate(WATCH_NEXT_MOVE)
    handle.focus()
    page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
    after = value.text_content()
    assert after != before, f"the key press left the slider at {before}"
    try:
        page.wait_for_function(
            "() => window.__move.readout !== null && window.__move.plot !== null",
            timeout=UPDATE_TIMEOUT_MS,
        )
    except PlaywrightTimeout:
        move = page.evaluate("() => { window.__move.gaveUp = true; return window.__move; }")
        unchanged = [name for name in ("readout", "plot") if move[name] is None]
        raise AssertionError(
            f"slider {before} -> {after}: the {' and '.join(unchanged)} did not change"
        ) from None
    move = page.evaluate("window.__move")
    return move["readout"] - move["key"], move["plot"] - move["key"]


def _assert_no_browser_errors(console: list[str]) -> None:
    """A widget whose view fails to build (ipywidgets logs "Error setting state: ...") can leave a
    blank plot that no kernel-side check sees."""
    errors = [line for line in console if line.startswith(("error:", "pageerror:"))]
    assert not errors, f"errors in the browser console: {errors}"


def _exercise_explorer(page, cell, name: str, report) -> None:
    """Move K and the mixing slider KEY_PRESSES times each: every press must change both views."""
    for label, pattern in (("K", K_LABEL), ("mixing", MIX_LABEL)):
        slider = _slider(page, cell, pattern).first
        moves = [_move(page, cell, slider) for _ in range(KEY_PRESSES)]
        readout_ms, plot_ms = ([round(move[i]) for move in moves] for i in (0, 1))
        report(
            f"{name}: {label} slider, key press -> readout {statistics.median(readout_ms):.0f} ms, "
            f"-> plot {statistics.median(plot_ms):.0f} ms (median of {KEY_PRESSES}; "
            f"readout {readout_ms}, plot {plot_ms})"
        )


@pytest.fixture
def report(capsys):
    """Print past pytest's capture: the timings belong in every CI log, not only in failures."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n[browser] {line}", flush=True)

    return emit


def test_trivial_widget_round_trip(lab_server, page, console, tmp_path, report):
    path = _write_notebook(lab_server, "trivial_explorer.ipynb", TRIVIAL_EXPLORER)
    start = time.monotonic()
    _open_and_run_all(page, lab_server, path)
    cell = _explorer_cell(page)
    report(f"trivial widget: opened and ran in {time.monotonic() - start:.1f} s")
    assert _assert_each_figure_shown_once(page) == 1
    _exercise_explorer(page, cell, "trivial widget", report)
    page.screenshot(path=tmp_path / "trivial_explorer.png")
    _assert_no_browser_errors(console)


def test_double_display_is_caught(lab_server, page):
    """The once-only check can fail: under ipympl a figure made outside ``plt.ioff()`` and also put
    in a box is shown twice."""
    sources = [
        TRIVIAL_EXPLORER[0],
        TRIVIAL_EXPLORER[1].replace("with plt.ioff():\n    fig, ax", "fig, ax"),
    ]
    _open_and_run_all(
        page, lab_server, _write_notebook(lab_server, "double_display.ipynb", sources)
    )
    _explorer_cell(page)
    page.locator(PLOT).nth(1).wait_for(timeout=UPDATE_TIMEOUT_MS)
    with pytest.raises(AssertionError, match="more than once"):
        _assert_each_figure_shown_once(page)


def test_explorer_answers_slider_moves(lab_server, page, console, tmp_path, report):
    path = _explorer_notebook(lab_server)
    start = time.monotonic()
    _open_and_run_all(page, lab_server, path)
    report(f"{path}: opened and ran every cell in {time.monotonic() - start:.1f} s")
    cell = _explorer_cell(page)
    _assert_no_browser_errors(console)
    report(f"{path}: {_assert_each_figure_shown_once(page)} plot(s) on the page, each shown once")
    cell.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "explorer_before.png")
    _exercise_explorer(page, cell, path, report)
    _assert_each_figure_shown_once(page)
    _assert_no_browser_errors(console)
    output = cell.locator(".jp-Cell-outputArea")
    output.screenshot(path=tmp_path / "explorer_after.png")
    if os.environ.get("SAVE_SCREENSHOT"):
        target = REPO / os.environ["SAVE_SCREENSHOT"]
        target.parent.mkdir(parents=True, exist_ok=True)
        output.screenshot(path=target)
        report(f"explorer screenshot saved to {target}")
