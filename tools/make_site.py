"""Build the course's static site (``site/``): every lesson executed, with its figures and tables.

    python -m tools.make_site                  # full size, into site/ (what is committed)
    python -m tools.make_site --quick          # COURSE_QUICK=1 sizes, for trying a change
    python -m tools.make_site 06 08            # only these lessons' pages, and the index

The pages are plain HTML files that any web server (or a browser opening the file) shows:
``index.html`` (the README's opening and its lesson table), one page per notebook of
``solutions/`` executed top to bottom in a fresh kernel, and ``notation.html`` and
``reading.html`` (``docs/``). nbconvert renders them all, the Markdown pages as one-cell
notebooks, so every page looks the same and shows its mathematics alike. ``tools.executor``
executes the lessons.

Executions are cached in ``.cache/site/``: an executed notebook is reused as long as its solution
notebook, the library it imports (``course_lib/**/*.py``; ``tools/`` runs in no kernel), the stored
results the lessons read (``results/``) and the mode (quick
or full) are unchanged, so a rebuild after one lesson changed executes only that lesson.

Built with lesson numbers, the builder executes and writes only those lessons' pages (and the
index and reference pages, which list every lesson); the other pages in the folder stay as they
are, so one changed lesson is republished without touching the rest. Each lesson page records
the digest of its solution notebook's cells (``lesson_digest``), so a test can tell a committed
page that no longer shows its lesson.

Every cell has ``CELL_TIMEOUT_S`` to finish; a cell that errors or runs out of time stops the
build with the lesson and the cell named. Explorers (ipywidgets) cannot move in a static page:
each appears as a still of the state its cell left it in, with ``STILL_NOTE`` under it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import posixpath
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbconvert import HTMLExporter

from tools.executor import WIDGET_STATES, WIDGET_VIEW, execute, referenced_id

ROOT = Path(__file__).resolve().parent.parent
# The slowest full-size cell takes about a minute on 2 CPU cores; a cell still running after five
# is stalled, and the build says so instead of waiting.
CELL_TIMEOUT_S = 300
STILL_NOTE = (
    "A still of the explorer as its cell leaves it: run the lesson in JupyterLab "
    "(<code>make lab</code>) and its controls move."
)
# nbconvert's page spans the whole window; lines of text read better in a column.
PAGE_STYLE = (
    "<style>body.jp-Notebook{max-width:1060px;margin:0 auto}"
    ".widget-still .still-note{color:#555;margin-top:4px}</style>"
)
DOCS = {"notation": "docs/notation.md", "reading": "docs/reading.md"}
# IPython's header of every traceback it shows (an error output, or one printed to stderr).
ERROR_MARKER = "Traceback (most recent call last)"
PNG_FIGURE = re.compile(r'<img\s[^>]*src="data:image/png;base64,')
STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.DOTALL)
STYLE_LINK = re.compile(r'<link rel="stylesheet" href="(style-[0-9a-f]+\.css)">')
TITLE = re.compile(r"^#\s+(?:Lesson\s+\d+\s+[—-]\s+)?(.+)$", re.MULTILINE)


class BuildError(RuntimeError):
    """A lesson that cannot be shown: a cell errored or ran out of time, or a page is broken."""


# --- Execution, cached ------------------------------------------------------------------------


def cache_key(notebook: Path, quick: bool, root: Path = ROOT) -> str:
    """sha256 of what an execution of ``notebook`` depends on: its text, the library's sources,
    the stored results and the mode."""
    digest = hashlib.sha256(b"quick" if quick else b"full")
    inputs = [notebook]
    inputs += sorted((root / "course_lib").rglob("*.py"))
    inputs += sorted(p for p in (root / "results").glob("*") if p.suffix in (".json", ".npz"))
    for path in inputs:
        name = path.name if path == notebook else path.relative_to(root).as_posix()
        digest.update(f"\0{name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def lesson_digest(notebook: nbformat.NotebookNode) -> str:
    """sha256 (first 16 hex digits) of a lesson's cells: their kinds and sources, outputs aside,
    so the digest of the solution notebook and of its executed copy agree."""
    digest = hashlib.sha256()
    for cell in notebook.cells:
        digest.update(f"\0{cell.cell_type}\0{cell.source}".encode())
    return digest.hexdigest()[:16]


LESSON_DIGEST = re.compile(r'<meta name="course-lesson-digest" content="([0-9a-f]+)">')


def execute_notebook(
    path: Path, quick: bool, timeout: int = CELL_TIMEOUT_S
) -> nbformat.NotebookNode:
    """``path`` executed top to bottom in a fresh kernel started in its folder, in quick mode
    (``COURSE_QUICK=1``) or at full size, each widget output carrying its state.

    Raises:
      BuildError: a cell raised, or ran longer than ``timeout`` seconds.
    """
    run = execute(path, quick, timeout, widget_states=True)
    where, error = f"{path.name}, cell {run.failed_cell}", run.error
    if isinstance(error, CellTimeoutError):
        raise BuildError(f"{where} ran longer than {timeout} s and was stopped")
    if isinstance(error, CellExecutionError):
        raise BuildError(f"{where} raised {error.ename}: {error.evalue}\n{error}")
    if error is not None:  # the kernel died
        raise BuildError(f"{where}: {error}")
    notebook = run.notebook
    # The whole state at the end (every frame an explorer drew last) is what a live page would
    # need; the stills need only each output's own snapshot.
    notebook.metadata.pop("widgets", None)
    # A cell tagged raises-exception is allowed to fail by nbclient, never on a page.
    failed = [i for i, cell in enumerate(notebook.cells) if _error_outputs(cell)]
    if failed:
        raise BuildError(f"{path.name}: cells {failed} show an error")
    return notebook


def _error_outputs(cell) -> list:
    return [output for output in cell.get("outputs", []) if output.output_type == "error"]


def executed(
    path: Path,
    quick: bool,
    cache: Path,
    root: Path = ROOT,
    execute: Callable[[Path, bool], nbformat.NotebookNode] = execute_notebook,
) -> tuple[nbformat.NotebookNode, bool]:
    """(the executed notebook, whether it came from ``cache``). A fresh execution replaces the
    lesson's older entries of the same mode in the cache."""
    mode = "quick" if quick else "full"
    entry = cache / f"{path.stem}.{mode}.{cache_key(path, quick, root)[:20]}.ipynb"
    if entry.is_file():
        return nbformat.read(entry, as_version=4), True
    notebook = execute(path, quick)
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{path.stem}.{mode}.*.ipynb"):
        old.unlink()
    partial = entry.with_suffix(".partial")  # an interrupted write never looks like an entry
    nbformat.write(notebook, partial)
    partial.replace(entry)
    return notebook, False


# --- Stills of widgets ------------------------------------------------------------------------

# (flex direction, how children align across it): a column's children keep their own width (a
# stretched image would be distorted), a row's are centred on one line.
BOXES = {
    "VBoxModel": ("column", "flex-start"),
    "BoxModel": ("column", "flex-start"),
    "HBoxModel": ("row", "center"),
}
SHOWN_AS_IS = {"HTMLModel", "HTMLMathModel"}


def _buffer(model: dict, key: str) -> bytes:
    for buffer in model["buffers"]:
        if buffer["path"] == [key]:
            return base64.b64decode(buffer["data"])
    return b""


def _control_value(state: dict) -> str:
    labels = state.get("_options_labels")
    if labels is not None:
        index = state.get("index")
        chosen = index if isinstance(index, list) else [] if index is None else [index]
        return ", ".join(labels[i] for i in chosen) or "none"
    value = state.get("value")  # a log slider's too: it holds the value, not its exponent
    return format(value, ".4g") if isinstance(value, float) else str(value)


def widget_still(states: dict, model_id: str) -> tuple[str, bool]:
    """(HTML of the widget ``model_id`` in the state ``states`` recorded, whether it holds a
    control a learner would move). Boxes keep their layout, images and HTML are shown as they
    are, a progress bar as a bar, and a control as its description and current value."""
    model = states.get(model_id)
    if model is None:
        return "", False
    state = model["state"]
    name = state.get("_model_name", "")
    layout = states.get(referenced_id(state.get("layout")), {}).get("state", {})
    if layout.get("display") == "none" or layout.get("visibility") == "hidden":
        return "", False
    if name in BOXES:
        parts = [widget_still(states, referenced_id(ref)) for ref in state["children"]]
        inner = "".join(part for part, _ in parts)
        direction, align = BOXES[name]
        style = f"display:flex;flex-flow:{direction} wrap;align-items:{align};gap:4px 12px"
        return f'<div style="{style}">{inner}</div>', any(control for _, control in parts)
    if name in SHOWN_AS_IS:
        return f"<div>{state.get('value', '')}</div>", False
    if name == "LabelModel":
        return f"<div>{html.escape(state.get('value', ''))}</div>", False
    if name == "ImageModel":
        picture = base64.b64encode(_buffer(model, "value")).decode()
        source = f"data:image/{state.get('format', 'png')};base64,{picture}"
        return f'<img src="{source}" style="max-width:100%">', False
    if name in ("IntProgressModel", "FloatProgressModel"):
        bar = f'<progress value="{state.get("value", 0)}" max="{state.get("max", 100)}"></progress>'
        return f"<div>{html.escape(state.get('description', ''))} {bar}</div>", False
    description = html.escape(state.get("description", ""))
    if name == "ButtonModel":
        return f"<div><button disabled>{description}</button></div>", True
    return f"<div><b>{description}</b> {html.escape(_control_value(state))}</div>", True


def freeze_widgets(notebook: nbformat.NotebookNode) -> None:
    """Replace every widget output of ``notebook`` by its still as HTML (and ``STILL_NOTE`` under
    a still with controls); a widget whose state was not recorded keeps its text form."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            states = output.get("metadata", {}).pop(WIDGET_STATES, {})
            still, has_controls = widget_still(states, view["model_id"])
            del output.data[WIDGET_VIEW]
            if still:
                note = f'<p class="still-note"><em>{STILL_NOTE}</em></p>' if has_controls else ""
                output.data["text/html"] = f'<div class="widget-still">{still}{note}</div>'


# --- Pages ------------------------------------------------------------------------------------


def first_heading(texts: Iterable[str], fallback: str) -> str:
    """The first level-1 heading of the Markdown ``texts``, without a "Lesson NN —" prefix."""
    for text in texts:
        if match := TITLE.search(text):
            return match.group(1).strip()
    return fallback


def _split_row(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def lessons_table(readme: str, titles: dict[str, str]) -> tuple[str, list[str]]:
    """(the README's lesson table, under "## The lessons", as Markdown with one row per lesson of
    ``titles`` (stem -> title, in order) and each title a link to its page; the lessons that
    have no row there, whose other columns stay empty). A row belongs to the lesson whose number
    is in its first column."""
    section = readme.split("## The lessons", 1)[-1]
    lines = [line for line in section.split("\n## ")[0].splitlines() if line.startswith("|")]
    header, rows = _split_row(lines[0]), [_split_row(line) for line in lines[2:]]
    keep = [i for i, name in enumerate(header) if name not in ("#", "notebook")]
    by_number = {row[0]: row for row in rows}
    table = ["| # | lesson | " + " | ".join(header[i] for i in keep) + " |"]
    table.append("|---" * (2 + len(keep)) + "|")
    for stem, title in titles.items():
        row = by_number.get(stem[:2], [""] * len(header))
        cells = [stem[:2], f"[{title}]({stem}.html)"] + [row[i] for i in keep]
        table.append("| " + " | ".join(cells) + " |")
    return "\n".join(table), [stem for stem in titles if stem[:2] not in by_number]


def _markdown(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]


def _markdown_notebook(*texts: str) -> nbformat.NotebookNode:
    cells = [_markdown_cell(text, f"page-{index}") for index, text in enumerate(texts)]
    return nbformat.v4.new_notebook(cells=cells)


def _markdown_cell(text: str, cell_id: str) -> nbformat.NotebookNode:
    # A fixed id (nbformat draws a random one), so that a rebuild writes the same page.
    return nbformat.v4.new_markdown_cell(text, id=cell_id)


def _navigation(stems: list[str], titles: dict[str, str], index: int) -> str:
    def link(stem: str) -> str:
        return f"[{stem[:2]} {titles[stem]}]({stem}.html)"

    links = ["[Course home](index.html)"]
    if index > 0:
        links.append(f"← {link(stems[index - 1])}")
    if index + 1 < len(stems):
        links.append(f"{link(stems[index + 1])} →")
    return " · ".join(links)


def site_links(root: Path, stems: Iterable[str]) -> dict[str, str]:
    """Repository paths -> their page, for rewriting the links between sources."""
    links = {"README.md": "index.html"}
    links.update({path: f"{name}.html" for name, path in DOCS.items()})
    for stem in stems:
        for folder in ("solutions", "notebooks"):
            links[f"{folder}/{stem}.ipynb"] = f"{stem}.html"
    return links


def rewrite_links(page: str, source: str, links: dict[str, str]) -> str:
    """``page`` with each relative link to a repository file that has a page (resolved from
    ``source``, a repository path) pointing at that page."""

    def replace(match: re.Match) -> str:
        target, _, fragment = match.group(2).partition("#")
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:|^/", target):
            return match.group(0)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
        if resolved not in links:
            return match.group(0)
        return f'{match.group(1)}"{links[resolved]}{"#" + fragment if fragment else ""}"'

    return re.sub(r'(href=)"([^"]*)"', replace, page)


def render(notebook: nbformat.NotebookNode, title: str) -> str:
    """``notebook`` as a page of nbconvert's JupyterLab look, without the In/Out prompts."""
    exporter = HTMLExporter(
        template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True
    )
    page, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
    return page.replace("</head>", PAGE_STYLE + "</head>", 1)


def shared_style(page: str) -> tuple[str, str, str]:
    """(``page`` linking a style sheet instead of holding it, the sheet's file name, its CSS).
    Every page carries the same 260 kB of nbconvert's CSS: the site stores it once, named by
    its hash."""
    head, body = page.split("</head>", 1)
    css = "\n".join(STYLE.findall(head))
    name = f"style-{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
    head = STYLE.sub("", head) + f'<link rel="stylesheet" href="{name}">\n'
    return f"{head}</head>{body}", name, css


def page_problems(page: str, lesson: bool) -> list[str]:
    """What makes a page unfit to publish: an error output, or a lesson page without a figure
    (an ``<img>`` with PNG data)."""
    problems = [f"holds an error's traceback ({ERROR_MARKER!r})"] if ERROR_MARKER in page else []
    if lesson and not PNG_FIGURE.search(page):
        problems.append("shows no figure (no <img> with PNG data)")
    if WIDGET_VIEW in page:
        problems.append("holds a widget view that a static page cannot show")
    return problems


def build(
    out: Path,
    quick: bool = False,
    cache: Path = ROOT / ".cache" / "site",
    lessons: Sequence[str] = (),
    root: Path = ROOT,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write the site into ``out``; return the files in ``out``.

    ``lessons``: lesson numbers ("00", "07") to build; all when empty. Every build writes the
    index and the reference pages (which list every lesson of ``solutions/``) and the pages of the
    lessons it builds, replacing their old versions; a build of some lessons leaves the other
    lessons' pages in ``out`` as they are, a full build removes pages no lesson has any more.

    Raises:
      BuildError: a lesson failed to execute, or a page is unfit (see ``page_problems``).
    """
    every = sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))
    paths = [path for path in every if not lessons or path.name[:2] in lessons]
    if not paths:
        raise BuildError(f"no lesson numbered {', '.join(lessons)} in {root / 'solutions'}")
    notebooks = {}
    for path in paths:
        start = time.perf_counter()
        notebooks[path.stem], cached = executed(path, quick, cache, root)
        took = "from the cache" if cached else f"executed in {time.perf_counter() - start:.0f} s"
        log(f"{path.stem}: {took}")
    sources = {path.stem: nbformat.read(path, as_version=4) for path in every}
    stems = list(sources)  # every lesson: the index and the navigation list them all
    titles = {stem: first_heading(_markdown(nb), stem) for stem, nb in sources.items()}
    links = site_links(root, stems)

    mode = "in quick mode (COURSE_QUICK=1)" if quick else "at full size"
    pages: dict[str, str] = {}
    for stem, notebook in notebooks.items():
        freeze_widgets(notebook)
        navigation = _navigation(stems, titles, stems.index(stem))
        notebook.cells.insert(0, _markdown_cell(
            f"{navigation}\n\n*The lesson with its solutions, executed {mode}. To do the exercises "
            "yourself, install the course and open it in JupyterLab (`make lab`).*",
            "site-navigation-top",
        ))  # fmt: skip
        notebook.cells.append(_markdown_cell(navigation, "site-navigation-bottom"))
        page = render(notebook, f"Lesson {stem[:2]} — {titles[stem]}")
        digest = f'<meta name="course-lesson-digest" content="{lesson_digest(sources[stem])}">'
        page = page.replace("<head>", f"<head>\n{digest}", 1)
        pages[f"{stem}.html"] = rewrite_links(page, f"solutions/{stem}.ipynb", links)
    readme = (root / "README.md").read_text()
    table, without_row = lessons_table(readme, titles)
    for stem in without_row:
        log(f"{stem}: no row in the README's lesson table, so the index gives only its title")
    opening = readme.split("\n## ", 1)[0]
    pages["index.html"] = rewrite_links(render(_markdown_notebook(
        opening,
        "## The lessons\n\n" + table + "\n\nEach page is the whole "
        f"lesson, its solutions included, executed {mode}, and each explorer a still. To do the "
        "exercises and move the explorers, install the course and open it in JupyterLab "
        "(`make lab`, see the README).",
        "## Reference\n\n- [Notation and equations](notation.html): the symbols every lesson "
        "uses\n- [Reading](reading.html): the papers the course stands on, and what to read next",
    ), first_heading([opening], "Course")), "README.md", links)  # fmt: skip
    for name, source in DOCS.items():
        text = (root / source).read_text()
        heading = first_heading([text], name)
        page = render(_markdown_notebook("[Course home](index.html)", text), heading)
        pages[f"{name}.html"] = rewrite_links(page, source, links)

    problems = [
        f"{name}: {problem}"
        for name, page in pages.items()
        for problem in page_problems(page, lesson=name[:2].isdigit())
    ]
    if problems:
        raise BuildError("the site is unfit to publish:\n" + "\n".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    if not lessons:
        for old in out.glob("*.html"):
            if old.name not in pages:
                old.unlink()
    for name, page in pages.items():
        page, style, css = shared_style(page)
        (out / name).write_text(page)
        (out / style).write_text(css)
    # Style sheets no page links to any more (nbconvert's CSS changed) go.
    linked = {name for page in out.glob("*.html") for name in STYLE_LINK.findall(page.read_text())}
    for sheet in out.glob("style-*.css"):
        if sheet.name not in linked:
            sheet.unlink()
    return sorted(out.iterdir())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_site", description=__doc__.split("\n")[0]
    )
    parser.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 00 07 (default: all)")
    parser.add_argument("--quick", action="store_true", help="COURSE_QUICK=1 sizes")
    parser.add_argument("--out", type=Path, default=ROOT / "site")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "site")
    args = parser.parse_args(argv)
    try:
        written = build(args.out, quick=args.quick, cache=args.cache, lessons=args.lessons)
    except BuildError as error:
        print(f"make_site: {error}", file=sys.stderr)
        return 1
    size = sum(path.stat().st_size for path in written) / 1e6
    print(f"wrote {len(written)} files ({size:.1f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
