"""Live explorers for lessons 01, 03, 04–05, 07 and 08: sliders over cached or stored results.

Each explorer precomputes or stores what it shows, so a slider move only looks numbers up (or
recombines a cache with NumPy), sets the artists that change and blits them onto a cached
background: nothing is traced or compiled after the first draw, and a move costs milliseconds.

Modules, one idea each:

- ``figure``: ``BlitFigure``, a figure shown by ipympl or as a JPEG image, updated by blitting.
- ``base``: ``SliderExplorer``, the one base (hold, refresh, reject, the ``set`` contract).
- ``batch_size``: lesson 01's ``BatchSizeExplorer`` over batch-B policy-gradient estimates.
- ``meta_learning_rate``: lesson 03's ``MetaLearningRateExplorer`` over stored runs per β.
- ``meta_gradient``: lessons 04–05's ``MetaGradientExplorer`` over a cache of g_1..g_K, with
  ``recombination`` its NumPy arithmetic (``recombine``, ``curve_values``, ``reachable_maxima``).
- ``runs``: lesson 06's ``RunsExplorer``, the runs of a capstone experiment to compare.
- ``trial_decision``: lesson 07's ``TrialDecisionExplorer`` over the practitioner's rule.
- ``estimator_map``: lesson 08's ``EstimatorMapExplorer``, every estimator family on one map.

Every explorer is driven from code by ``set(...)``, which checks every value before any control
moves (a ValueError names the argument and its allowed range, and changes nothing). A new explorer
subclasses ``SliderExplorer`` (its docstring lists the three methods to write).
"""

# Lesson 02 shows its training's progress beside the explorers as ``widgets.progress_bar``; the
# bar is ``course_lib.progress``'s.
from course_lib.progress import progress_bar
from course_lib.widgets.base import SliderExplorer
from course_lib.widgets.batch_size import BatchSizeExplorer
from course_lib.widgets.estimator_map import EstimatorFamily, EstimatorMapExplorer
from course_lib.widgets.figure import BlitFigure
from course_lib.widgets.meta_gradient import MetaGradientExplorer
from course_lib.widgets.meta_learning_rate import MetaLearningRateExplorer
from course_lib.widgets.recombination import (
    CURVES,
    EXPLORER_KINDS,
    curve_values,
    reachable_maxima,
    recombine,
)
from course_lib.widgets.runs import RunsExplorer
from course_lib.widgets.trial_decision import TrialDecisionExplorer

__all__ = [
    "CURVES",
    "EXPLORER_KINDS",
    "BatchSizeExplorer",
    "BlitFigure",
    "EstimatorFamily",
    "EstimatorMapExplorer",
    "MetaGradientExplorer",
    "MetaLearningRateExplorer",
    "RunsExplorer",
    "SliderExplorer",
    "TrialDecisionExplorer",
    "curve_values",
    "progress_bar",
    "reachable_maxima",
    "recombine",
]
