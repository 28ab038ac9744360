"""The static site: its execution cache, widget stills, loud failures, the quick build of two
lessons, and the committed full-size site in site/.

Building every lesson here, even in quick mode, would run each lesson a second time on top of the
nbval run of solutions/ (minutes each on 2 cores), so the quick build covers the two fastest
lessons (00 and 07), and the committed site is checked page by page for every lesson.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT
from tools import make_site
from tools.make_site import BuildError

SITE = ROOT / "site"
LESSONS = sorted(path.stem for path in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LINK = re.compile(r'href="([^"#]+\.html)')
STYLE_LINK = make_site.STYLE_LINK


def _notebook(*sources: str, tags: dict[int, list[str]] | None = None):
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    for index, cell_tags in (tags or {}).items():
        cells[index].metadata["tags"] = cell_tags
    return nbformat.v4.new_notebook(cells=cells)


def _course(tmp_path: Path, lessons=("00_first", "01_second")) -> Path:
    """A repository-shaped folder: lessons, a library, a builder and stored results."""
    (tmp_path / "solutions").mkdir()
    for number, stem in enumerate(lessons):
        nbformat.write(_notebook(f"print({number})"), tmp_path / "solutions" / f"{stem}.ipynb")
    (tmp_path / "course_lib" / "widgets").mkdir(parents=True)
    (tmp_path / "course_lib" / "widgets" / "base.py").write_text("A = 1\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "make_site.py").write_text("B = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text("{}")
    return tmp_path


# --- The execution cache ----------------------------------------------------------------------


def test_cache_key_follows_the_notebook_the_library_the_results_and_the_mode(tmp_path):
    root = _course(tmp_path)
    lesson = root / "solutions" / "00_first.ipynb"
    key = make_site.cache_key(lesson, quick=False, root=root)
    assert make_site.cache_key(lesson, quick=True, root=root) != key
    (root / "tools" / "make_site.py").write_text("B = 2\n")  # renders; runs in no kernel
    (root / "README.md").write_text("changed")
    assert make_site.cache_key(lesson, quick=False, root=root) == key
    for path, text in [
        (root / "course_lib" / "widgets" / "base.py", "A = 2\n"),
        (root / "results" / "run.json", '{"a": 1}'),
        (lesson, nbformat.writes(_notebook("print('changed')"))),
    ]:
        path.write_text(text)
        assert make_site.cache_key(lesson, quick=False, root=root) != key
        key = make_site.cache_key(lesson, quick=False, root=root)


def test_a_rebuild_executes_only_the_lesson_that_changed(tmp_path):
    root = _course(tmp_path)
    cache, runs = tmp_path / "cache", []

    def execute(path, quick):
        runs.append((path.name, quick))
        notebook = nbformat.read(path, as_version=4)
        notebook.cells[0].outputs = [nbformat.v4.new_output("stream", text=f"ran {path.stem}")]
        return notebook

    def build_all(quick=False):
        return [
            make_site.executed(path, quick, cache, root, execute=execute)
            for path in sorted((root / "solutions").glob("*.ipynb"))
        ]

    first = build_all()
    assert runs == [("00_first.ipynb", False), ("01_second.ipynb", False)]
    assert [cached for _, cached in first] == [False, False]

    again = build_all()
    assert len(runs) == 2 and [cached for _, cached in again] == [True, True]
    assert again[1][0].cells[0].outputs[0].text == "ran 01_second"

    nbformat.write(_notebook("print('new')"), root / "solutions" / "01_second.ipynb")
    build_all()
    assert runs[2:] == [("01_second.ipynb", False)]
    # The lesson's older entry is gone: one entry per lesson and mode.
    assert sorted(path.name.split(".")[0] for path in cache.iterdir()) == ["00_first", "01_second"]

    build_all(quick=True)
    assert runs[3:] == [("00_first.ipynb", True), ("01_second.ipynb", True)]


# --- Execution: stills, loud failures ---------------------------------------------------------

EXPLORER = """\
import ipywidgets as widgets
k = widgets.IntSlider(value=3, min=1, max=10, description="K")
mode = widgets.Dropdown(options=["k-step", "mixing"], value="mixing", description="mode")
readout = widgets.HTML("<span class='readout'>variance 0.25</span>")
picture = widgets.Image(value=PNG, format="png")
hidden = widgets.HTML("free weights", layout=widgets.Layout(display="none"))
widgets.VBox([widgets.HBox([k, mode]), hidden, readout, picture])"""


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, format="png")
    return buffer.getvalue()


def test_an_explorer_becomes_a_still_of_the_state_its_cell_left(tmp_path):
    path = tmp_path / "00_tiny.ipynb"
    nbformat.write(
        _notebook(
            "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([0, 1]);",
            f"PNG = {_png()!r}",
            EXPLORER,
            "k.value = 7  # a later cell moves the slider: the still shows 3",
            "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='training'): pass",
        ),
        path,
    )
    notebook = make_site.execute_notebook(path, quick=True, timeout=120)
    make_site.freeze_widgets(notebook)
    page = make_site.render(notebook, "tiny")

    assert make_site.page_problems(page, lesson=True) == []
    still = notebook.cells[2].outputs[0].data["text/html"]
    assert "<b>K</b> 3" in still and "<b>mode</b> mixing" in still
    assert "<span class='readout'>variance 0.25</span>" in still and "free weights" not in still
    assert 'src="data:image/png;base64,' in still and make_site.STILL_NOTE in still
    progress = notebook.cells[4].outputs[0].data["text/html"]
    assert "<progress" in progress and make_site.STILL_NOTE not in progress
    assert make_site.WIDGET_VIEW not in page and make_site.WIDGET_STATES not in page


def test_a_cell_that_raises_stops_the_build_naming_the_lesson(tmp_path):
    path = tmp_path / "00_broken.ipynb"
    nbformat.write(_notebook("print('fine')", "1 / 0"), path)
    with pytest.raises(BuildError, match="00_broken.ipynb, cell 1 raised ZeroDivisionError"):
        make_site.execute_notebook(path, quick=True, timeout=120)


def test_an_error_a_tag_allows_still_stops_the_build(tmp_path):
    path = tmp_path / "00_allowed.ipynb"
    nbformat.write(_notebook("1 / 0", tags={0: ["raises-exception"]}), path)
    with pytest.raises(BuildError, match=r"cells \[0\] show an error"):
        make_site.execute_notebook(path, quick=True, timeout=120)


def test_a_stalled_cell_fails_within_its_timeout(tmp_path):
    path = tmp_path / "00_stalled.ipynb"
    nbformat.write(_notebook("import time\ntime.sleep(120)"), path)
    with pytest.raises(BuildError, match="00_stalled.ipynb, cell 0 ran longer than 3 s"):
        make_site.execute_notebook(path, quick=True, timeout=3)


# --- Pages ------------------------------------------------------------------------------------


def test_the_index_table_has_the_readmes_columns_and_a_row_for_every_lesson():
    readme = (ROOT / "README.md").read_text()
    table, without_row = make_site.lessons_table(
        readme, {"00_setup_and_jax": "Setup", "07_in_practice": "Use"}
    )
    lines = table.splitlines()
    assert without_row == []
    assert lines[0].startswith("| # | lesson | you leave able to")
    assert lines[2].startswith("| 00 | [Setup](00_setup_and_jax.html) | check your device")
    assert lines[3].startswith("| 07 | [Use](07_in_practice.html) |")
    table, without_row = make_site.lessons_table(readme, {"99_new": "New"})
    assert without_row == ["99_new"]
    assert table.splitlines()[2].startswith("| 99 | [New](99_new.html) |")


def test_links_between_sources_point_at_their_pages():
    links = make_site.site_links(ROOT, ["03_single_step_meta_gradients"])
    page = (
        '<a href="../docs/notation.md#s2">§2</a> <a href="03_single_step_meta_gradients.ipynb">'
        '03</a> <a href="https://arxiv.org/abs/1">paper</a> <a href="#top">top</a>'
    )
    assert make_site.rewrite_links(page, "solutions/04_x.ipynb", links) == (
        '<a href="notation.html#s2">§2</a> <a href="03_single_step_meta_gradients.html">'
        '03</a> <a href="https://arxiv.org/abs/1">paper</a> <a href="#top">top</a>'
    )
    assert 'href="reading.html"' in make_site.rewrite_links(
        '<a href="docs/reading.md">', "README.md", links
    )


def test_pages_share_one_style_sheet_named_by_its_content():
    page = "<html><head><style>a{}</style>\n<title>t</title><style>b{}</style></head><body>x</body>"
    linked, name, css = make_site.shared_style(page)
    assert css == "a{}\nb{}" and re.fullmatch(r"style-[0-9a-f]{12}\.css", name)
    assert linked == (
        f'<html><head><title>t</title><link rel="stylesheet" href="{name}">\n</head><body>x</body>'
    )
    assert make_site.shared_style(page.replace("b{}", "c{}"))[1] != name


def test_a_page_with_a_traceback_or_no_figure_is_unfit():
    assert make_site.page_problems("<p>text</p>", lesson=False) == []
    problems = make_site.page_problems("<pre>Traceback (most recent call last)</pre>", lesson=True)
    assert len(problems) == 2


# --- Whole sites ------------------------------------------------------------------------------


def _check_site(folder: Path, lessons: list[str]) -> None:
    """The index lists every lesson of solutions/; the pages of ``lessons`` are fit to publish."""
    index = (folder / "index.html").read_text()
    assert set(LINK.findall(index)) == {f"{stem}.html" for stem in LESSONS} | {
        "notation.html",
        "reading.html",
    }
    for name in ("index", "notation", "reading"):
        assert make_site.page_problems((folder / f"{name}.html").read_text(), lesson=False) == []
    for name in ("index", "notation", "reading", *lessons):
        page = folder / f"{name}.html"
        assert (folder / STYLE_LINK.search(page.read_text()).group(1)).is_file(), page.name
    for stem in lessons:
        page = (folder / f"{stem}.html").read_text()
        assert make_site.page_problems(page, lesson=True) == [], stem


def test_quick_site_of_the_two_fastest_lessons(tmp_path):
    """Built with lesson numbers into a site that has other pages: those two lessons' pages, the
    index and the reference pages are written, and another lesson's page is left as it was."""
    lessons = ["00_setup_and_jax", "07_in_practice"]
    site = tmp_path / "site"
    site.mkdir()
    other = site / f"{LESSONS[1]}.html"
    other.write_text("an earlier build's page")
    written = make_site.build(site, quick=True, cache=tmp_path / "cache", lessons=["00", "07"])
    pages = ["index.html", "notation.html", "reading.html", other.name]
    pages += [f"{stem}.html" for stem in lessons]
    assert sorted(path.name for path in written if path.suffix == ".html") == sorted(pages)
    assert other.read_text() == "an earlier build's page"
    assert len([path for path in written if path.suffix == ".css"]) == 1  # shared by every page
    _check_site(site, lessons)
    assert make_site.STILL_NOTE in (tmp_path / "site" / "07_in_practice.html").read_text()


def test_the_committed_site_shows_every_lesson_at_full_size():
    _check_site(SITE, LESSONS)
    for stem in LESSONS:
        assert "executed at full size" in (SITE / f"{stem}.html").read_text(), stem


def test_every_committed_page_shows_its_lesson_as_it_is_now():
    """A lesson changed since its page was built fails here: rebuild it with
    ``python -m tools.make_site NN`` (only that lesson executes) and commit site/."""
    stale = []
    for stem in LESSONS:
        found = make_site.LESSON_DIGEST.search((SITE / f"{stem}.html").read_text())
        solution = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
        if found is None or found.group(1) != make_site.lesson_digest(solution):
            stale.append(stem)
    numbers = " ".join(stem[:2] for stem in stale)
    assert stale == [], f"stale pages of {stale}: run python -m tools.make_site {numbers}"


def test_a_page_renders_the_same_every_time():
    def page():
        return make_site.render(make_site._markdown_notebook("# Title", "text $x$"), "Title")

    assert page() == page()
