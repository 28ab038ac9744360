"""course_lib: the JAX library behind the meta-gradient RL course.

Floors (imports point down): envs/, agents, stats -> metagrad, plots
-> widgets, experiments, grading.
"""

__version__ = "0.1.0"

import os


def quick_mode() -> bool:
    """True when ``COURSE_QUICK=1``: notebooks and experiments shrink to CI size (make test)."""
    return os.environ.get("COURSE_QUICK", "0") not in ("", "0")
