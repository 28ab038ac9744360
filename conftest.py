"""How the suite runs, for every test path (tests/, solutions/, notebooks/): its own JAX
compilation cache, and how pytest-xdist spreads it over the cores. (tests/conftest.py holds the
fixtures the test modules share.)

**The compilation cache.** The suite never touches the learner's ``.cache/jax``: each run gets a
fresh folder per xdist worker (``$TMPDIR/metagrad-tests-<run>/<worker>``), set through
``COURSE_JAX_CACHE`` before course_lib is imported, so that the worker's kernels and subprocesses
inherit it. One folder per worker means no two processes of the suite compile into one folder at
the same moment, while a lesson's solution and its learner copy, which run on one worker, share
their compiled programs.

**Spreading the work.** ``make test`` runs ``pytest -n auto --dist loadgroup``: one worker per
core. What shares expensive state runs in one worker, as one group: the cells of a notebook (one
kernel), a lesson's solution and its learner copy (one cache), the tests of a module that share a
module-scoped fixture, and the tests of any module that use a session-scoped one of
tests/conftest.py (each computed once per group). Groups are dealt largest first, then the
ungrouped tests one at a time, so that the workers finish close together.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# The controlling process names the run; xdist's workers inherit its environment.
os.environ.setdefault("METAGRAD_TEST_RUN", uuid.uuid4().hex[:12])
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
SUITE_CACHE = Path(tempfile.gettempdir()) / f"metagrad-tests-{os.environ['METAGRAD_TEST_RUN']}"
if "COURSE_JAX_CACHE" not in os.environ:
    os.environ["COURSE_JAX_CACHE"] = str(SUITE_CACHE / _WORKER)

_LESSON = re.compile(r"(\d\d)_[a-z0-9_]+\.ipynb")


def _shared_fixtures(item: pytest.Item, scope: str | None = None) -> list[str]:
    """The fixtures of this repository's tests that ``item`` shares with others (wider scope than
    one test; only those of ``scope`` if given), each with its parameter when it has one."""
    shared = []
    for name, definitions in item._fixtureinfo.name2fixturedefs.items():
        definition = definitions[-1]
        if definition.scope == "function" or not definition.baseid:  # not ours: tmp_path_factory
            continue
        if scope is not None and definition.scope != scope:
            continue
        param = getattr(item, "callspec", None) and item.callspec.params.get(name)
        shared.append(name if param is None else f"{name}[{param}]")
    return sorted(shared)


def _group(item: pytest.Item) -> str | None:
    """The xdist group of an item: its lesson for notebook runs; its session-scoped fixtures when
    it uses any (tests/conftest.py's, computed once for every module that asks); else its module
    and shared fixtures when it shares any (computed once per group); None (scheduled alone)
    otherwise."""
    path = Path(str(item.fspath))
    if path.suffix == ".ipynb":
        return f"lesson-{_LESSON.search(path.name).group(1)}"
    shared = _shared_fixtures(item)
    if path.name == "test_learner_notebooks.py" and shared:
        return f"lesson-{_LESSON.search(shared[0]).group(1)}"
    if session := _shared_fixtures(item, "session"):
        return "session:" + ",".join(session)
    if shared:
        return path.relative_to(ROOT).as_posix() + ":" + ",".join(shared)
    return None


def _groups_file(worker: str) -> Path:
    return SUITE_CACHE / f"groups-{worker}.json"


def pytest_collection_modifyitems(config, items):
    """Each worker writes down the group of every test it collected (the groups need the fixtures,
    which only a collecting process knows); the scheduler in the controlling process reads them."""
    groups = {item.nodeid: group for item in items if (group := _group(item)) is not None}
    if _WORKER != "main":
        SUITE_CACHE.mkdir(parents=True, exist_ok=True)
        partial = _groups_file(_WORKER).with_suffix(".partial")
        partial.write_text(json.dumps(groups))
        partial.replace(_groups_file(_WORKER))


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with the groups above. xdist 3.8's own loadgroup marks a group by
    rewriting ``item._nodeid``, which pytest 9 no longer reads, so every test would be scheduled
    alone (a notebook's cells on different workers, each without the kernel of the others)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """Whole groups to one worker, most tests first; ungrouped tests one by one."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # called once every worker has collected
                self.groups = {}
                for path in SUITE_CACHE.glob("groups-*.json"):
                    self.groups.update(json.loads(path.read_text()))
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


# --- Counting lesson executions (benchmarks/suite.py sets COURSE_LESSON_LOG) -------------------


def _lesson_titles() -> dict[str, str]:
    """Each lesson's first line (its title, the same in the solution and the learner copy)."""
    import nbformat

    titles = {}
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
        titles[first] = path.stem
    return titles


def _log_lesson_run(lesson: str, how: str) -> None:
    with open(os.environ["COURSE_LESSON_LOG"], "a") as log:  # one short line: appends atomically
        log.write(json.dumps({"lesson": lesson, "how": how}) + "\n")


def pytest_runtest_setup(item):
    if os.environ.get("COURSE_LESSON_LOG") and getattr(item, "cell_num", None) == 0:
        _log_lesson_run(Path(str(item.fspath)).stem, "nbval")  # a notebook's first cell: its kernel


@pytest.fixture(scope="session", autouse=True)
def _count_notebook_executions():
    """Logs every notebook nbclient executes in this process (learner copies, site builds)."""
    if not os.environ.get("COURSE_LESSON_LOG"):
        yield
        return
    from nbclient import NotebookClient

    titles, execute = _lesson_titles(), NotebookClient.execute

    def counted(self, *args, **kwargs):
        first = self.nb.cells[0].source.splitlines()[0] if self.nb.cells else ""
        _log_lesson_run(titles.get(first, "not a lesson"), "nbclient")
        return execute(self, *args, **kwargs)

    NotebookClient.execute = counted
    yield
    NotebookClient.execute = execute


def pytest_sessionfinish(session, exitstatus):
    if _WORKER == "main" and os.environ.get("COURSE_JAX_CACHE", "").startswith(str(SUITE_CACHE)):
        shutil.rmtree(SUITE_CACHE, ignore_errors=True)
