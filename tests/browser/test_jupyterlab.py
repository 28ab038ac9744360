"""The live explorer in a real browser: JupyterLab in headless Chromium (fixtures in conftest.py).

Each test opens a notebook of the temporary course copy, runs every cell from the Run menu, then
moves sliders with the keyboard (focus the handle, ArrowRight) and checks what a learner would see:
the readout text and the ipympl figure change, and no figure is shown twice. The time from the key
press to the updated readout is printed, never asserted (SPEC.md §4: "well under 100 ms").

What the lesson must keep stable for these selectors:
- sliders are ipywidgets sliders whose description is "K" (the truncation) and "ρ" or "λ" (the mixing
  parameter), in the same cell output;
- the numbers readout carries the CSS class ``metagrad-readout`` (``widget.add_class(...)``);
- figures are ipympl canvases (``%matplotlib widget``), created under ``plt.ioff()``.

``SAVE_SCREENSHOT=docs/explorer.png`` (relative to the repository) also saves the lesson 05
explorer's screenshot there, for the README.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
RUN_ALL_TIMEOUT_MS = 150_000
KERNEL_START_TIMEOUT_MS = 60_000
UPDATE_TIMEOUT_MS = 20_000
KEY_PRESSES = 4
K_LABEL = re.compile(r"^\s*K\s*$")
MIX_LABEL = re.compile(r"^\s*[ρλ]\s*$")
READOUT = ".metagrad-readout"
FIGURE = ".jupyter-matplotlib-figure"

# A trivial explorer with the same selectors as lesson 05: the harness's own check and the baseline
# round trip (a slider move through the kernel and back) against which the explorer is judged.
TRIVIAL_EXPLORER = [
    "%matplotlib widget\nimport ipywidgets as widgets\nimport matplotlib.pyplot as plt\nimport numpy as np",
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

# Records, in the page's own clock, the key press and the first readout and figure changes after it.
WATCH_NEXT_MOVE = """(cell, [readoutSelector, figureSelector]) => {
    const readout = cell.querySelector(readoutSelector);
    const image = () => [...cell.querySelectorAll(figureSelector + ' canvas')].map(c => c.toDataURL()).join();
    const move = {text: readout.textContent, image: image(), key: null, readout: null, plot: null};
    window.__move = move;
    document.addEventListener('keydown', () => { move.key = performance.now(); }, {capture: true, once: true});
    new MutationObserver((_, observer) => {
        if (move.key !== null && readout.textContent !== move.text) {
            move.readout = performance.now();
            observer.disconnect();
        }
    }).observe(readout, {childList: true, subtree: true, characterData: true});
    const poll = () => {
        if (move.key !== null && image() !== move.image) { move.plot = performance.now(); return; }
        requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
}"""


def _write_notebook(lab_server, name: str, sources: list[str]) -> None:
    notebook = nbformat.v4.new_notebook()
    kernel = lab_server.kernel_name
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, lab_server.root / name)


def _lesson_05() -> Path | None:
    found = sorted((REPO / "solutions").glob("05_*.ipynb"))
    return found[0] if found else None


def _open_and_run_all(page, lab_server, path: str):
    """Open ``path`` in JupyterLab, run every cell from the Run menu, wait until all have run.

    JupyterLab stops "Run All Cells" at the first error, so a code cell left without an execution
    count means the notebook failed there.
    """
    page.goto(lab_server.url(path))
    # Running before the kernel is connected opens a "Select Kernel" dialog instead; the status bar
    # names the kernel once it is, which also checks that the course's kernel was picked.
    page.locator(".jp-StatusBar-TextItem").filter(
        has_text=re.compile(rf"^{re.escape(lab_server.kernel_display_name)} \| Idle$")
    ).wait_for(timeout=KERNEL_START_TIMEOUT_MS)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(
        r"""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .every(p => /\[\d+\]/.test(p.textContent))""",
        timeout=RUN_ALL_TIMEOUT_MS,
        polling=250,
    )


def _slider(page, scope, label: re.Pattern):
    """The ipywidgets slider(s) under ``scope`` whose description matches ``label``."""
    return scope.locator(".widget-slider").filter(has=page.locator("label.widget-label", has_text=label))


def _explorer_cell(page):
    """The first cell whose output holds both the K slider and the mixing slider."""
    cells = page.locator(".jp-CodeCell")
    cells = cells.filter(has=_slider(page, page, K_LABEL)).filter(has=_slider(page, page, MIX_LABEL))
    cell = cells.first
    cell.locator(READOUT).wait_for(timeout=UPDATE_TIMEOUT_MS)
    cell.locator(FIGURE).first.wait_for(timeout=UPDATE_TIMEOUT_MS)
    return cell


def _figure_labels_and_images(page) -> tuple[list[str], list[str]]:
    """Header label and canvas pixels of every ipympl figure on the page, in page order."""
    return page.evaluate(
        """(figureSelector) => {
            const figures = [...document.querySelectorAll(figureSelector)];
            return [
                figures.map(f => (f.querySelector('.jupyter-matplotlib-header') || {}).textContent || ''),
                figures.map(f => [...f.querySelectorAll('canvas')].map(c => c.toDataURL()).join()),
            ];
        }""",
        FIGURE,
    )


def _assert_each_figure_shown_once(page) -> int:
    """A figure displayed twice (e.g. created outside ``plt.ioff()`` and also put in a box) shows up
    as two ipympl views with the same "Figure N" label and the same pixels. Returns the count."""
    labels, images = _figure_labels_and_images(page)
    named = [label for label in labels if label.strip()]
    assert len(set(named)) == len(named), f"a figure is shown more than once: {labels}"
    assert len(set(images)) == len(images), f"two figures show identical pixels: {labels}"
    return len(labels)


def _move(page, cell, slider) -> tuple[float, float]:
    """Press an arrow key on ``slider``'s handle; return (ms to readout change, ms to plot change)."""
    handle = slider.locator(".noUi-handle")
    # aria-valuenow is rounded to one decimal: good enough to tell the end of the range, not a step.
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
    value = slider.locator(".widget-readout")
    before = value.text_content()
    cell.evaluate(WATCH_NEXT_MOVE, [READOUT, FIGURE])
    handle.focus()
    page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
    assert value.text_content() != before, f"the key press left the slider at {before}"
    page.wait_for_function(
        "() => window.__move.readout !== null && window.__move.plot !== null", timeout=UPDATE_TIMEOUT_MS
    )
    move = page.evaluate("window.__move")
    return move["readout"] - move["key"], move["plot"] - move["key"]


def _exercise_explorer(page, cell, name: str, report) -> None:
    """Move K and the mixing slider KEY_PRESSES times each; every move must change readout and plot."""
    for label, pattern in (("K", K_LABEL), ("mixing", MIX_LABEL)):
        slider = _slider(page, cell, pattern).first
        texts, readout_ms, plot_ms = [], [], []
        for _ in range(KEY_PRESSES):
            to_readout, to_plot = _move(page, cell, slider)
            readout_ms.append(to_readout)
            plot_ms.append(to_plot)
            texts.append(cell.locator(READOUT).inner_text())
        assert len(set(texts)) == len(texts), f"{label} moves left the readout unchanged: {texts}"
        report(
            f"{name}: {label} slider, key press -> readout {statistics.median(readout_ms):.0f} ms, "
            f"-> plot {statistics.median(plot_ms):.0f} ms (median of {KEY_PRESSES}; "
            f"readout {', '.join(f'{t:.0f}' for t in readout_ms)})"
        )


@pytest.fixture
def report(capsys):
    """Print past pytest's capture: timings belong in the CI log, not only in failure reports."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n[browser] {line}")

    return emit


def test_trivial_widget_round_trip(lab_server, page, tmp_path, report):
    _write_notebook(lab_server, "trivial_explorer.ipynb", TRIVIAL_EXPLORER)
    start = time.monotonic()
    _open_and_run_all(page, lab_server, "trivial_explorer.ipynb")
    cell = _explorer_cell(page)
    report(f"trivial explorer: opened and ran in {time.monotonic() - start:.1f} s")
    assert _assert_each_figure_shown_once(page) == 1
    _exercise_explorer(page, cell, "trivial explorer", report)
    page.screenshot(path=tmp_path / "trivial_explorer.png")


def test_double_display_is_caught(lab_server, page):
    """The once-only figure check can fail: a figure made outside ``plt.ioff()`` and also boxed."""
    sources = list(TRIVIAL_EXPLORER)
    sources[1] = sources[1].replace("with plt.ioff():\n    fig, ax", "fig, ax")
    _write_notebook(lab_server, "double_display.ipynb", sources)
    _open_and_run_all(page, lab_server, "double_display.ipynb")
    _explorer_cell(page)
    page.locator(FIGURE).nth(1).wait_for(timeout=UPDATE_TIMEOUT_MS)
    with pytest.raises(AssertionError, match="more than once"):
        _assert_each_figure_shown_once(page)


def test_lesson_05_explorer(lab_server, page, tmp_path, report):
    lesson = _lesson_05()
    if lesson is None:
        pytest.skip("solutions/05_*.ipynb not written yet")
    start = time.monotonic()
    _open_and_run_all(page, lab_server, f"solutions/{lesson.name}")
    report(f"{lesson.name}: opened and ran all cells in {time.monotonic() - start:.1f} s")
    cell = _explorer_cell(page)
    n_figures = _assert_each_figure_shown_once(page)
    report(f"{lesson.name}: {n_figures} ipympl figure(s), each shown once")
    cell.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "lesson_05_before.png")
    _exercise_explorer(page, cell, lesson.name, report)
    _assert_each_figure_shown_once(page)
    output = cell.locator(".jp-Cell-outputArea")
    output.screenshot(path=tmp_path / "lesson_05_explorer.png")
    if os.environ.get("SAVE_SCREENSHOT"):
        target = REPO / os.environ["SAVE_SCREENSHOT"]
        target.parent.mkdir(parents=True, exist_ok=True)
        output.screenshot(path=target)
        report(f"explorer screenshot saved to {target}")
