"""Generate the learner notebooks (``notebooks/``) from the solution notebooks (``solutions/``).

    python -m tools.make_notebooks            # create or update the learner copies
    python -m tools.make_notebooks --check    # exit 1 if notebooks/ is out of sync
    python -m tools.make_notebooks --force    # also replace copies a learner has changed

In every code cell, each block from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` becomes
``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the marker's indentation (nbgrader's
markers and stub); outputs and execution counts are cleared; everything else is kept as it is.

This is nbformat, not nbgrader's ``ClearSolutions`` preprocessor: nbgrader would bring a database
stack (SQLAlchemy, alembic) and JupyterLab extensions into every learner's environment, and its
preprocessor insists on nbgrader's own per-cell metadata, all for a 20-line text substitution.

A generated copy records a fingerprint of itself in its metadata. A copy that still matches its
fingerprint holds no learner work and is updated freely; one that does not (the learner edited or
ran it) is never overwritten or deleted without ``--force``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
METADATA_KEY = "course_lib"


def clear_solutions(source: str) -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block with the stub.

    Raises:
      ValueError: unbalanced or nested markers.
    """
    lines, indent = [], None
    for number, line in enumerate(source.split("\n"), start=1):
        text = line.strip()
        if text.startswith(BEGIN):
            if indent is not None:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            indent = line[: len(line) - len(line.lstrip())]
            lines += [indent + stub for stub in STUB]
        elif text.startswith(END):
            if indent is None:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            indent = None
        elif indent is None:
            lines.append(line)
    if indent is not None:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(lines)


def has_solution(source: str) -> bool:
    return any(line.strip().startswith(BEGIN) for line in source.split("\n"))


def learner_notebook(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The learner copy of ``solution`` (``name`` is recorded in its metadata)."""
    notebook = copy.deepcopy(solution)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            if has_solution(cell.source):
                raise ValueError(f"{name}, cell {index}: solution markers outside a code cell")
            continue
        try:
            cell.source = clear_solutions(cell.source)
        except ValueError as error:
            raise ValueError(f"{name}, cell {index}: {error}") from None
        cell.outputs = []
        cell.execution_count = None
    notebook.metadata[METADATA_KEY] = {"generated_from": name}
    notebook.metadata[METADATA_KEY]["fingerprint"] = _fingerprint(notebook)
    return notebook


def _render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def _fingerprint(notebook: nbformat.NotebookNode) -> str:
    """sha256 of the notebook's text without its own fingerprint."""
    unsigned = copy.deepcopy(notebook)
    unsigned.metadata.get(METADATA_KEY, {}).pop("fingerprint", None)
    return hashlib.sha256(_render(unsigned).encode()).hexdigest()


def is_pristine(text: str) -> bool:
    """True when a learner copy is exactly what the generator wrote (its fingerprint matches)."""
    try:
        notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        recorded = notebook.metadata[METADATA_KEY]["fingerprint"]
    except Exception:  # noqa: BLE001 - unreadable or hand-made: treat as the learner's
        return False
    return recorded == _fingerprint(notebook) and _render(notebook) == text


def sync(
    solutions: Path, notebooks: Path, *, force: bool = False, check: bool = False
) -> tuple[list[str], list[str]]:
    """Bring ``notebooks`` in line with ``solutions`` (or, with ``check``, only report).

    Returns:
      (actions, problems): one line per file written or deleted; one line per file skipped (or,
      with ``check``, out of sync). Files already in sync produce no line.
    """
    actions, problems = [], []
    expected = {}
    for path in sorted(solutions.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        expected[path.name] = _render(learner_notebook(solution, f"{solutions.name}/{path.name}"))
    existing = {path.name: path.read_text() for path in sorted(notebooks.glob("*.ipynb"))}

    for name in sorted(expected.keys() | existing.keys()):
        target, new, old = notebooks / name, expected.get(name), existing.get(name)
        if new == old:
            continue
        if new is None:
            why = f"its solution notebook {solutions.name}/{name} is gone"
        elif old is None:
            why = "it does not exist yet"
        else:
            why = f"it differs from what {solutions.name}/{name} generates"
        if check:
            problems.append(f"{target} is out of sync: {why}")
        elif old is not None and not force and not is_pristine(old):
            problems.append(
                f"skipped {target}: {why}, and it holds changes of its own (edits or outputs); "
                "rerun with --force to replace it"
            )
        elif new is None:
            target.unlink()
            actions.append(f"deleted {target}: {why}")
        else:
            notebooks.mkdir(parents=True, exist_ok=True)
            target.write_text(new)
            actions.append(f"{'created' if old is None else 'updated'} {target}")
    return actions, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_notebooks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--solutions", type=Path, default=Path("solutions"))
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--force", action="store_true", help="replace copies with learner changes")
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of sync")
    args = parser.parse_args(argv)
    if not args.solutions.is_dir():
        parser.error(f"no solutions folder at {args.solutions}")
    actions, problems = sync(args.solutions, args.notebooks, force=args.force, check=args.check)
    for line in actions:
        print(line)
    for line in problems:
        print(line, file=sys.stderr)
    if args.check:
        if problems:
            print("run `make notebooks` to regenerate them", file=sys.stderr)
            return 1
        print(f"{args.notebooks} is in sync with {args.solutions}")
    elif not actions and not problems:
        print(f"{args.notebooks} is already in sync with {args.solutions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
