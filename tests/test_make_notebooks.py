"""The learner-notebook generator: stubs, cleared outputs, the no-overwrite rule, and drift."""

import subprocess
import sys

import nbformat
import pytest

from conftest import ROOT
from tools import make_notebooks
from tools.make_notebooks import clear_solutions, main

EXERCISE = """\
def discounted_sum(rewards, gamma):
    \"\"\"Σ_t γ^t r_t.\"\"\"
    total = 0.0
    ### BEGIN SOLUTION
    for t, reward in enumerate(rewards):
        if reward:
            total += gamma**t * reward
    ### END SOLUTION
    return total"""

EXERCISE_STUBBED = """\
def discounted_sum(rewards, gamma):
    \"\"\"Σ_t γ^t r_t.\"\"\"
    total = 0.0
    # YOUR CODE HERE
    raise NotImplementedError()
    return total"""


def test_solution_block_becomes_the_stub_at_its_indentation():
    assert clear_solutions(EXERCISE) == EXERCISE_STUBBED


def test_every_block_of_a_cell_is_cleared_and_other_lines_kept():
    source = (
        "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3\n"
        "  ### BEGIN SOLUTION\n  d\n  ### END SOLUTION"
    )
    assert clear_solutions(source) == (
        "a = 1\n# YOUR CODE HERE\nraise NotImplementedError()\nc = 3\n"
        "  # YOUR CODE HERE\n  raise NotImplementedError()"
    )


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("### BEGIN SOLUTION\nx = 1", "### BEGIN SOLUTION without ### END SOLUTION"),
        ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without ### BEGIN SOLUTION"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n", "line 2: ### BEGIN SOLUTION inside another"),
    ],
)
def test_unbalanced_markers_are_rejected(source, says):
    with pytest.raises(ValueError, match=says):
        clear_solutions(source)


def _solution_notebook(exercise_source=EXERCISE):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "metagrad-course",
        "display_name": "Python (meta-gradient course)",
        "language": "python",
    }
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Lesson\n\nWrite the discounted sum."),
        nbformat.v4.new_code_cell(
            "import numpy as np",
            execution_count=1,
            outputs=[nbformat.v4.new_output("stream", text="hello\n")],
            metadata={"tags": ["keep-me"]},
        ),
        nbformat.v4.new_code_cell(exercise_source, execution_count=2),
        nbformat.v4.new_code_cell(
            "check(discounted_sum)",
            execution_count=3,
            outputs=[nbformat.v4.new_output("stream", text="Exercise 0.1 passed\n")],
        ),
    ]
    return notebook


@pytest.fixture
def course(tmp_path):
    (tmp_path / "solutions").mkdir()
    nbformat.write(_solution_notebook(), tmp_path / "solutions" / "00_intro.ipynb")
    return tmp_path


def _run(course, *flags):
    return main(
        ["--solutions", str(course / "solutions"), "--notebooks", str(course / "notebooks"), *flags]
    )


def test_generated_copy_differs_only_in_solutions_outputs_and_counts(course, capsys):
    assert _run(course) == 0
    assert "created" in capsys.readouterr().out
    solution = nbformat.read(course / "solutions" / "00_intro.ipynb", as_version=4)
    learner = nbformat.read(course / "notebooks" / "00_intro.ipynb", as_version=4)

    assert learner.metadata.pop("course_lib")["generated_from"] == "solutions/00_intro.ipynb"
    assert learner.metadata == solution.metadata
    assert [c.id for c in learner.cells] == [c.id for c in solution.cells]
    for theirs, ours in zip(solution.cells, learner.cells, strict=True):
        assert ours.cell_type == theirs.cell_type and ours.metadata == theirs.metadata
        if ours.cell_type == "code":
            assert ours.outputs == [] and ours.execution_count is None
    assert learner.cells[2].source == EXERCISE_STUBBED
    assert [c.source for i, c in enumerate(learner.cells) if i != 2] == [
        c.source for i, c in enumerate(solution.cells) if i != 2
    ]


def test_second_run_changes_nothing(course, capsys):
    _run(course)
    before = (course / "notebooks" / "00_intro.ipynb").read_text()
    capsys.readouterr()
    assert _run(course) == 0
    assert "already in sync" in capsys.readouterr().out
    assert (course / "notebooks" / "00_intro.ipynb").read_text() == before


def test_untouched_copy_follows_its_solution(course, capsys):
    _run(course)
    nbformat.write(
        _solution_notebook(EXERCISE.replace("total = 0.0", "total = 0")),
        course / "solutions" / "00_intro.ipynb",
    )
    assert _run(course) == 0
    assert "updated" in capsys.readouterr().out
    learner = nbformat.read(course / "notebooks" / "00_intro.ipynb", as_version=4)
    assert learner.cells[2].source == EXERCISE_STUBBED.replace("total = 0.0", "total = 0")


def _learner_works_in(path):
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[2].source = notebook.cells[2].source.replace(
        "raise NotImplementedError()", "total = sum(rewards)"
    )
    nbformat.write(notebook, path)
    return path.read_text()


def test_copy_with_learner_work_is_skipped_then_replaced_with_force(course, capsys):
    _run(course)
    target = course / "notebooks" / "00_intro.ipynb"
    worked = _learner_works_in(target)
    nbformat.write(
        _solution_notebook(EXERCISE.replace("total = 0.0", "total = 0")),
        course / "solutions" / "00_intro.ipynb",
    )
    capsys.readouterr()

    assert _run(course) == 0
    err = capsys.readouterr().err
    assert f"skipped {target}" in err and "--force" in err
    assert target.read_text() == worked

    assert _run(course, "--force") == 0
    assert "updated" in capsys.readouterr().out
    assert make_notebooks.is_pristine(target.read_text())
    assert "raise NotImplementedError()" in target.read_text()


def test_copy_of_a_removed_solution_is_deleted_only_when_untouched(course, capsys):
    _run(course)
    (course / "solutions" / "00_intro.ipynb").unlink()
    nbformat.write(_solution_notebook(), course / "solutions" / "01_next.ipynb")
    _run(course)
    assert not (course / "notebooks" / "00_intro.ipynb").exists()
    assert "deleted" in capsys.readouterr().out

    target = course / "notebooks" / "01_next.ipynb"
    _learner_works_in(target)
    (course / "solutions" / "01_next.ipynb").unlink()
    assert _run(course) == 0
    assert "solution notebook solutions/01_next.ipynb is gone" in capsys.readouterr().err
    assert target.exists()
    _run(course, "--force")
    assert not target.exists()


def test_check_lists_out_of_sync_copies_and_writes_nothing(course, capsys):
    assert _run(course, "--check") == 1
    assert "00_intro.ipynb is out of sync: it does not exist yet" in capsys.readouterr().err
    assert not (course / "notebooks").exists()
    _run(course)
    assert _run(course, "--check") == 0
    _learner_works_in(course / "notebooks" / "00_intro.ipynb")
    assert _run(course, "--check") == 1


def test_markers_outside_code_cells_are_rejected(course):
    notebook = _solution_notebook()
    notebook.cells.append(nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nanswer"))
    nbformat.write(notebook, course / "solutions" / "00_intro.ipynb")
    with pytest.raises(ValueError, match="cell 4: solution markers outside a code cell"):
        _run(course)


def test_repository_learner_notebooks_are_in_sync_with_solutions():
    """The drift test: edit solutions/, then run `make notebooks` and commit both."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.make_notebooks", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_nbval_tags_reach_the_learner_copy_even_on_exercise_cells(course):
    notebook = _solution_notebook()
    notebook.cells[2].metadata["tags"] = ["nbval-ignore-output", "nbval-raises-exception"]
    nbformat.write(notebook, course / "solutions" / "00_intro.ipynb")
    _run(course)
    learner = nbformat.read(course / "notebooks" / "00_intro.ipynb", as_version=4)
    assert learner.cells[2].metadata["tags"] == ["nbval-ignore-output", "nbval-raises-exception"]
    assert learner.cells[2].source == EXERCISE_STUBBED


# Lines a learner would read that exist only for the test runner or the maintainers: nbval's markers
# belong in cell tags, GPU timing notes in the README and lesson 00.
MAINTAINER_ONLY = ("NBVAL", "not yet timed", "switches notebooks to ipympl")


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_no_cell_holds_maintainer_only_text(folder):
    found = [
        f"{path.name}, cell {index}: {phrase!r}"
        for path in sorted((ROOT / folder).glob("*.ipynb"))
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells)
        for phrase in MAINTAINER_ONLY
        if phrase in cell.source
    ]
    assert not found, found
