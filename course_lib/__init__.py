"""course_lib: the JAX library behind the meta-gradient RL course.

The library is built in floors, each importing only from those below it: the one map of them is
``[tool.importlinter]`` in ``pyproject.toml``, which ``make lint`` holds the code to
(each module's docstring says what it holds).

Importing course_lib turns on JAX's persistent compilation cache in the course's own folder
(``<repository>/.cache/jax``, or ``$COURSE_JAX_CACHE``; see ``compilation_cache``), so that a
lesson's second run loads its compiled programs instead of compiling them again.
"""

__version__ = "0.1.0"

import os

from course_lib.compilation_cache import CACHE_ENV, compilation_cache_dir, enable

__all__ = ["CACHE_ENV", "compilation_cache_dir", "quick_mode"]


def quick_mode() -> bool:
    """True when ``COURSE_QUICK=1``: notebooks and experiments shrink to CI size (make test)."""
    return os.environ.get("COURSE_QUICK", "0") not in ("", "0")


enable()
