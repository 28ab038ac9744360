"""course_lib: the JAX library behind the meta-gradient RL course.

Floors (imports point down; README "Layout" and docs/notation.md say what each holds):

    floor 3   widgets/  experiments/  grading/        what lessons touch
    floor 2   problems  metagrad  estimators  exact  plots   the engine, other estimators, exact
              references, figures
    floor 1   envs/  agents  reinforce  stats  mixing  checks  progress   building blocks
    apart     compilation_cache, device, lazy

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
