"""Progress of compiled loops, shown as a tqdm bar."""

from __future__ import annotations

import contextlib

from tqdm.auto import tqdm

from course_lib import progress


@contextlib.contextmanager
def progress_bar(desc: str, disable: bool = False):
    """A tqdm bar fed by the compiled loops that run inside the block (``course_lib.progress``).

    ``with progress_bar("training"): train(keys, hyper)`` shows the scan's steps as they finish;
    a block that runs several loops (a warm-up, then the real run) restarts the bar for each loop
    of a different length. Nothing is recompiled for it; ``disable=True`` shows nothing.
    """
    bar = tqdm(desc=desc, disable=disable, unit="step")
    bar.set_postfix_str("compiling")  # the first report comes only once the program runs

    def show(done: int, total: int):
        if bar.total != total:
            bar.reset(total=total)
            bar.set_postfix_str("")
        bar.update(max(0, done - bar.n))  # reports may arrive out of order; the bar only advances

    try:
        with progress.listening(show):
            yield bar
    finally:
        bar.close()
