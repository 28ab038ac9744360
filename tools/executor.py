"""Execute a notebook top to bottom in a fresh kernel, timed cell by cell: the one executor of the
site build (``tools.make_site``) and of the lessons' timings (``benchmarks/lessons.py``)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

KERNEL = "python3"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATES = "course_lib_widget_states"


class Execution(NamedTuple):
    """An executed notebook.

    Attributes:
      notebook: the notebook with the outputs of the cells that ran.
      seconds: the whole execution, the kernel's start included.
      cell_seconds: each executed code cell's seconds, by cell index.
      error: what stopped the execution (a cell raised, ran out of time or lost its kernel); None
        when every cell ran.
      failed_cell: the index of the cell that ``error`` stopped; None when every cell ran.
    """

    notebook: nbformat.NotebookNode
    seconds: float
    cell_seconds: dict[int, float]
    error: CellExecutionError | CellTimeoutError | DeadKernelError | None = None
    failed_cell: int | None = None


def referenced_id(reference: str | None) -> str:
    """The model id in a widget state's reference to another widget ("IPY_MODEL_<id>")."""
    return (reference or "").removeprefix("IPY_MODEL_")


def _snapshot_widgets(client: NotebookClient, cell) -> None:
    """Record, in each widget output's metadata, the state of its widget tree right now."""
    for output in cell.get("outputs", []):
        view = output.get("data", {}).get(WIDGET_VIEW)
        if view is None:
            continue
        states, pending = {}, [view["model_id"]]
        while pending:
            widget = pending.pop()
            if widget in states or widget not in client.widget_state:
                continue
            state = client.widget_state[widget]
            buffers = client.widget_buffers.get(widget, {})
            states[widget] = {"state": dict(state), "buffers": list(buffers.values())}
            references = [*state.get("children", []), state.get("layout")]
            pending += [referenced_id(reference) for reference in references]
        output.setdefault("metadata", {})[WIDGET_STATES] = states


def execute(
    path: Path,
    quick: bool,
    timeout: float,
    *,
    env: Mapping[str, str | None] | None = None,
    upto: int | None = None,
    widget_states: bool = False,
) -> Execution:
    """``path`` executed top to bottom (its cells 0..``upto``, all by default) in a fresh kernel
    started in its folder, in quick mode (``COURSE_QUICK=1``) or at full size; a cell still
    running after ``timeout`` seconds is stopped.

    Args:
      env: the kernel's environment variables on top of this process's (None: unset).
      widget_states: record in each widget output's metadata (under ``WIDGET_STATES``) the state
        of its widget tree as its cell left it, which a still of it shows (later cells may still
        move the widget).
    """
    notebook = nbformat.read(path, as_version=4)
    if upto is not None:
        notebook.cells = notebook.cells[: upto + 1]
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=KERNEL,
        store_widget_state=widget_states,
        resources={"metadata": {"path": str(path.parent)}},
    )
    running, started, cell_seconds = {"cell": None}, {}, {}

    def on_cell_execute(cell, cell_index, **_):
        running["cell"], started[cell_index] = cell_index, time.perf_counter()

    def on_cell_executed(cell, cell_index, **_):
        cell_seconds[cell_index] = time.perf_counter() - started[cell_index]
        if widget_states:
            _snapshot_widgets(client, cell)

    client.on_cell_execute, client.on_cell_executed = on_cell_execute, on_cell_executed
    kernel_env = {name: value for name, value in os.environ.items() if name != "COURSE_QUICK"}
    if quick:
        kernel_env["COURSE_QUICK"] = "1"
    for name, value in (env or {}).items():
        if value is None:
            kernel_env.pop(name, None)
        else:
            kernel_env[name] = value
    start, error = time.perf_counter(), None
    try:
        client.execute(env=kernel_env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as stopped:
        error = stopped
    failed_cell = None if error is None else running["cell"]
    return Execution(notebook, time.perf_counter() - start, cell_seconds, error, failed_cell)
