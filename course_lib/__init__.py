"""course_lib: the JAX library behind the meta-gradient RL course.

Floors (imports point down; README "Layout" and docs/notation.md say what each holds):

    floor 3   widgets/  experiments/  grading/        what lessons touch
    floor 2   problems  metagrad  estimators  exact  plots   the engine, other estimators, exact
              references, figures
    floor 1   envs/  agents  reinforce  stats  mixing  checks  progress   building blocks
    apart     device, lazy, make_notebooks, make_site

Importing course_lib turns on JAX's persistent compilation cache in the course's own folder
(``<repository>/.cache/jax``, or ``$COURSE_JAX_CACHE``; see ``compilation_cache_dir``), so that a
lesson's second run loads its compiled programs instead of compiling them again.
"""

__version__ = "0.1.0"

import os
from pathlib import Path

import jax

CACHE_ENV = "COURSE_JAX_CACHE"
_REPOSITORY = Path(__file__).resolve().parent.parent
# JAX caches only compiles of 1 s or more by default; on a CPU most of a lesson's compiling is in
# shorter ones, which load from disk in a few milliseconds.
_MIN_COMPILE_TIME_S = 0.1


def quick_mode() -> bool:
    """True when ``COURSE_QUICK=1``: notebooks and experiments shrink to CI size (make test)."""
    return os.environ.get("COURSE_QUICK", "0") not in ("", "0")


def compilation_cache_dir() -> Path | None:
    """The folder JAX keeps the course's compiled programs in, or None for no cache.

    ``$COURSE_JAX_CACHE`` when set (``off`` or ``0``: no cache); otherwise ``.cache/jax`` in the
    course's repository; None when course_lib is installed without its repository around it (a
    plain ``pip install``), so that nothing is written anywhere the learner did not choose.
    """
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "0", "off") else Path(chosen).expanduser()
    if (_REPOSITORY / "pyproject.toml").is_file():
        return _REPOSITORY / ".cache" / "jax"
    return None


def _enable_compilation_cache() -> None:
    # A cache folder the user gave JAX itself wins; JAX reads it only at the first compile.
    if jax.config.jax_compilation_cache_dir is not None:
        return
    folder = compilation_cache_dir()
    if folder is None:
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_TIME_S)
    # -1: cache entries of any size (0 would let JAX substitute a filesystem-specific minimum).
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


_enable_compilation_cache()
