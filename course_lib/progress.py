"""Progress reports from inside compiled loops.

A whole training run is one ``lax.scan`` inside ``jit``: Python sees nothing until it ends. A scan
body that calls ``report(step, total)`` sends ``(step + 1, total)`` to the host about
``N_REPORTS`` times per loop (``jax.debug.callback``), and whoever listens, e.g.
``progress_bar``, a tqdm bar, shows it.

The callback target is this module's one dispatcher, so the compiled program does not depend on
who listens: a progress bar never causes a recompilation, and without a listener a report costs
one no-op host call. ``step`` comes from the scan's own counter, never from a ``vmap``-ed input,
so a vmapped loop (seeds, settings) reports once per tick, not once per lane.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import jax

N_REPORTS = 50

_listeners: list[Callable[[int, int], None]] = []


def _dispatch(done, total) -> None:
    for listener in _listeners:
        listener(int(done), int(total))


def report(step: jax.Array, total: int) -> None:
    """Inside a traced loop over ``range(total)``: tell listeners ``step + 1`` of ``total`` steps
    are done, at every ``ceil(total / N_REPORTS)``-th step and at the last one."""
    every = -(-total // N_REPORTS)
    tick = ((step + 1) % every == 0) | (step == total - 1)
    jax.lax.cond(tick, lambda: jax.debug.callback(_dispatch, step + 1, total), lambda: None)


@contextlib.contextmanager
def listening(listener: Callable[[int, int], None]) -> Iterator[None]:
    """Calls ``listener(done, total)`` for every report made while the block runs (computations
    still running when it ends are waited for, so their last reports arrive)."""
    _listeners.append(listener)
    try:
        yield
    finally:
        jax.effects_barrier()
        _listeners.remove(listener)


@contextlib.contextmanager
def progress_bar(desc: str, disable: bool = False):
    """A tqdm bar fed by the compiled loops that run inside the block.

    ``with progress_bar("training"): train(keys, hyper)`` shows the scan's steps as they finish;
    a block that runs several loops (a warm-up, then the real run) restarts the bar for each loop
    of a different length. Nothing is recompiled for it; ``disable=True`` shows nothing.
    """
    # Imported here: in a notebook tqdm.auto loads ipywidgets, which only a bar needs.
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, disable=disable, unit="step")
    bar.set_postfix_str("compiling")  # the first report comes only once the program runs

    def show(done: int, total: int):
        if bar.total != total:
            bar.reset(total=total)
            bar.set_postfix_str("")
        bar.update(max(0, done - bar.n))  # reports may arrive out of order; the bar only advances

    try:
        with listening(show):
            yield bar
    finally:
        bar.close()
