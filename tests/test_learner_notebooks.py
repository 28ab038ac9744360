"""Every learner notebook fails exactly at its unsolved exercises, and passes once they are solved.

One kernel run per lesson (``COURSE_QUICK=1``, this environment's Python): the learner copy as
``make notebooks`` generates it, followed by each exercise's reference solution and its check
again. In that run

- every cell of the learner copy passes except the check cells, which fail with the grading
  message (so no later cell depends on an unsolved exercise), and
- each check passes once its reference solution is pasted back.

Together with ``test_learner_copy_with_solutions_pasted_back_is_the_solution`` (pasting the blocks
back into the learner copy gives the solution notebook, which nbval runs in full) this shows that
the learner copy with the solutions pasted back passes completely, without a second run.
"""

import copy
import re
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from conftest import ROOT
from course_lib import grading
from tools.make_notebooks import BEGIN, END, STUB, has_solution, learner_notebook

LESSONS = sorted(
    path.name
    for path in (ROOT / "solutions").glob("*.ipynb")
    if any(has_solution(cell.source) for cell in nbformat.read(path, as_version=4).cells)
)
# grading.check_x(...) or an imported check_x(...): graded checks only (not, say, check_grads).
GRADED_CHECKS = sorted(name for name in grading.__all__ if name.startswith("check_"))
CHECK_CALL = re.compile(r"\b(?:" + "|".join(GRADED_CHECKS) + r")\(")


class _ThisPython(KernelSpecManager):
    """Run notebooks with the interpreter running the tests, in quick mode, whatever they name."""

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="this environment",
            language="python",
            env={"COURSE_QUICK": "1"},
        )


def _is_check(cell) -> bool:
    return cell.cell_type == "code" and CHECK_CALL.search(cell.source) is not None


def _solution(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / name, as_version=4)


def _learner(name: str) -> nbformat.NotebookNode:
    return learner_notebook(_solution(name), f"solutions/{name}")


@pytest.fixture(scope="module", params=LESSONS)
def run(request):
    """(lesson name, number of learner cells, the executed notebook)."""
    name = request.param
    solution, notebook = _solution(name), _learner(name)
    n_learner_cells = len(notebook.cells)
    for index, cell in enumerate(solution.cells):
        if cell.cell_type == "code" and has_solution(cell.source):
            notebook.cells.append(nbformat.v4.new_code_cell(cell.source))
            check = next((c for c in solution.cells[index + 1 :] if _is_check(c)), None)
            assert check is not None, f"{name}: the exercise in cell {index} has no check cell"
            notebook.cells.append(nbformat.v4.new_code_cell(check.source))
    client = NotebookClient(
        notebook,
        km=KernelManager(kernel_name="course", kernel_spec_manager=_ThisPython()),
        allow_errors=True,
        timeout=600,
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()
    return name, n_learner_cells, notebook


def _errors(cell) -> list[dict]:
    return [out for out in cell.get("outputs", []) if out.output_type == "error"]


def test_learner_copy_fails_exactly_at_its_check_cells(run):
    name, n_learner_cells, notebook = run
    for index, cell in enumerate(notebook.cells[:n_learner_cells]):
        if cell.cell_type != "code":
            continue
        errors = _errors(cell)
        if _is_check(cell):
            assert len(errors) == 1, f"{name} cell {index}: an unsolved exercise's check passed"
            error = errors[0]
            assert error.ename == "ExerciseFailed", f"{name} cell {index}: {error.ename}"
            assert error.evalue.startswith("Exercise "), error.evalue
            assert len(error.traceback) == 1, "the learner should see one line, not a traceback"
        else:
            assert not errors, (
                f"{name} cell {index} fails in the learner copy "
                f"({errors[0].ename}: {errors[0].evalue}); cells after an exercise must not "
                "call the learner's function:\n" + cell.source
            )


def test_reference_solutions_pass_their_checks_in_the_learner_copy(run):
    name, n_learner_cells, notebook = run
    appended = notebook.cells[n_learner_cells:]
    assert appended, f"{name} has no exercises"
    for cell in appended:
        errors = _errors(cell)
        assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}\n{cell.source}"
        if _is_check(cell):
            printed = "".join(out.get("text", "") for out in cell.outputs)
            assert printed.startswith("Exercise ") and printed.rstrip().endswith("passed")


def _paste_back(learner_source: str, solution_source: str) -> str:
    """The learner cell with each stub replaced by the solution's block, in order."""
    blocks, block = [], None
    for line in solution_source.split("\n"):
        if line.strip().startswith(BEGIN):
            block = [line]
        elif block is not None:
            block.append(line)
            if line.strip().startswith(END):
                blocks.append("\n".join(block))
                block = None
    lines, learner_lines = [], learner_source.split("\n")
    index = 0
    while index < len(learner_lines):
        pair = [line.strip() for line in learner_lines[index : index + 2]]
        if pair == list(STUB):
            lines.append(blocks.pop(0))
            index += 2
        else:
            lines.append(learner_lines[index])
            index += 1
    assert not blocks, "more solution blocks than stubs"
    return "\n".join(lines)


@pytest.mark.parametrize("name", LESSONS)
def test_learner_copy_with_solutions_pasted_back_is_the_solution(name):
    solution, learner = _solution(name), _learner(name)
    expected = copy.deepcopy(solution)
    for theirs, ours in zip(expected.cells, learner.cells, strict=True):
        if ours.cell_type == "code":
            ours.source = _paste_back(ours.source, theirs.source)
            theirs.outputs, theirs.execution_count = [], None
    del learner.metadata["course_lib"]
    assert learner == expected
