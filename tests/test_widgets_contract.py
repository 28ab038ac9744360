"""The contract every explorer keeps, checked on each explorer ``course_lib.widgets`` exports: its
headless view is a JPEG image widget shown as a widget; moves of its controls only blit (no
compilation, no full redraw, the axes stay); ``set`` rejects a bad value naming it and changes
nothing (controls, readout, picture, message).

The explorers are found from ``widgets.__all__``; a new one needs its line in ``EXAMPLES`` (a test
says so). The examples are built from the fixtures of each explorer's own test module.
"""

import copy
from typing import NamedTuple

import ipywidgets
import numpy as np
import pytest

# The explorers' fixtures, used here by name (pytest finds them imported).
from test_widgets_batch_size import B_MAX, batch_estimates  # noqa: F401
from test_widgets_estimator_map import families  # noqa: F401
from test_widgets_meta_gradient import BAD_INPUTS, K_MAX, quadratic  # noqa: F401
from test_widgets_meta_learning_rate import LABELS, rate_runs  # noqa: F401
from test_widgets_runs import BAD_RUNS_INPUTS
from test_widgets_trial_decision import BAD_DECISION_INPUTS, CANDIDATES, DECISION_SETTINGS

from course_lib import widgets

EXPLORERS = sorted(
    name
    for name in widgets.__all__
    if isinstance(kind := getattr(widgets, name), type)
    and issubclass(kind, widgets.SliderExplorer)
    and kind is not widgets.SliderExplorer
)


def slide(control: str, value):
    """A move of one control, as the learner makes it (``sliders.k_step``: a control in a dict)."""

    def move(explorer):
        name, _, key = control.partition(".")
        widget = getattr(explorer, name)
        (widget[key] if key else widget).value = value

    return move


def setting(**values):
    """A move made from code."""
    return lambda explorer: explorer.set(**values)


def every_run(explorer):
    explorer.set(runs=explorer.results.estimators)


def meta_gradient(data):
    explorer = data["quadratic"][1]  # the shared quadratic explorer, put back to its start
    explorer.set(k=K_MAX, mode="lambda-return", lam=0.5, weights=np.ones(K_MAX), view="target")
    explorer.set(k=2, mode="geometric", lam=0.4)
    return explorer


def batch_size(data):
    estimates, exact = data["batch_estimates"]
    explorer = widgets.BatchSizeExplorer(estimates, exact, components=(0, 2), batch_size=3)
    explorer.set(batch_size=4)
    return explorer


def meta_learning_rate(data):
    explorer = widgets.MetaLearningRateExplorer(
        data["rate_runs"], labels=LABELS, log_scale=("c_ent",)
    )
    explorer.set(meta_lr=0.001)
    return explorer


def trial_decision(data):
    explorer = widgets.TrialDecisionExplorer(
        data["stored_results"].select(CANDIDATES), threshold=0.01, trial=4
    )
    explorer.set(threshold=0.03, trial=5)
    return explorer


def runs(data):
    return widgets.RunsExplorer(data["stored_results"], runs=("k1", "mix5"), band="std")


def estimator_map(data):
    explorer = widgets.EstimatorMapExplorer(data["families"], np.array([1.0, -0.5]))
    explorer.set(k_step=2, trace=0.0)
    return explorer


class Example(NamedTuple):
    make: object  # the fixtures' values -> an explorer at its start
    moves: list  # moves that only blit, each a function of the explorer
    bad: list  # (set's arguments, words its ValueError says)
    rescaled: tuple = ()  # the axes whose y-range follows the data shown (x-ranges always stay)


BAD_B = f"batch_size must be an integer from 1 to b_max={B_MAX}"
EXAMPLES = {
    "MetaGradientExplorer": Example(
        meta_gradient,
        [setting(k=1, mode="k-step"), slide("k_slider", 3), setting(mode="geometric", lam=0.2)],
        BAD_INPUTS,
        rescaled=(0,),  # the histogram's counts
    ),
    "BatchSizeExplorer": Example(
        batch_size,
        [*(slide("slider", b) for b in (1, 5, B_MAX, 2)), setting(batch_size=2)],
        [(dict(batch_size=b), BAD_B) for b in (0, B_MAX + 1, "3", True)],
    ),
    "MetaLearningRateExplorer": Example(
        meta_learning_rate,
        [slide("slider", 0.01), slide("slider", 0.1), setting(meta_lr=0.1)],
        [(dict(meta_lr=rate), "meta_lr must be one of") for rate in (0.2, "0.1", True, None)],
    ),
    "TrialDecisionExplorer": Example(
        trial_decision,
        [
            *(setting(threshold=t, trial=n) for t, n in DECISION_SETTINGS),
            slide("threshold_slider", 10**-0.5),  # the slider's ends
            slide("trial_slider", 1),
        ],
        [({"threshold": 0.001, "trial": 2} | bad, words) for bad, words in BAD_DECISION_INPUTS],
    ),
    "RunsExplorer": Example(
        runs,
        [
            slide("run_list", ("k5",)),
            lambda explorer: explorer.set(runs=explorer.results.estimators),
        ],
        BAD_RUNS_INPUTS,
    ),
    "EstimatorMapExplorer": Example(
        estimator_map,
        [*(slide("sliders.k_step", float(k)) for k in (1, 3, 4)), setting(trace=1.0)],
        [
            (dict(k_step=3, trace=0.7), r"trace must be one of \[0.0, 0.5, 1.0\], got 0.7"),
            (dict(mix=0.5), "family must be one of"),
        ],
    ),
}
BAD_CASES = [(name, bad, words) for name in EXPLORERS for bad, words in EXAMPLES[name].bad]


@pytest.fixture
def data(quadratic, batch_estimates, rate_runs, stored_results, families):  # noqa: F811
    return dict(
        quadratic=quadratic,
        batch_estimates=batch_estimates,
        rate_runs=rate_runs,
        stored_results=stored_results,
        families=families,
    )


def test_every_explorer_has_an_example():
    assert sorted(EXAMPLES) == EXPLORERS


@pytest.mark.parametrize("name", EXPLORERS)
def test_the_headless_view_is_a_jpeg_image_widget_shown_as_a_widget(data, name):
    explorer = EXAMPLES[name].make(data)
    assert isinstance(explorer._canvas.view, ipywidgets.Image)
    assert bytes(explorer._canvas.view.value).startswith(b"\xff\xd8")  # JPEG
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def axes_limits(explorer):
    rescaled = EXAMPLES[type(explorer).__name__].rescaled
    return [
        (ax.get_xlim(), None if i in rescaled else ax.get_ylim())
        for i, ax in enumerate(explorer.figure.axes)
    ]


@pytest.mark.parametrize("name", EXPLORERS)
def test_moves_blit_without_compiling_redrawing_or_moving_axes(data, name, compilations):
    explorer = EXAMPLES[name].make(data)
    full_draws = []
    explorer.figure.canvas.mpl_connect("draw_event", full_draws.append)
    limits = axes_limits(explorer)
    image = bytes(explorer._canvas.view.value)
    for move in EXAMPLES[name].moves:
        move(explorer)
        assert explorer.message == ""
    EXAMPLES[name].moves[-1](explorer)  # the same setting again still redraws, by blitting
    assert full_draws == [] and compilations == []
    assert axes_limits(explorer) == limits
    assert bytes(explorer._canvas.view.value) != image


def state(explorer):
    """Everything ``set`` must leave alone: every control's value, the readout, the picture's data
    and the message."""
    values, widgets_left = [], [explorer.widget]
    while widgets_left:
        widget = widgets_left.pop()
        widgets_left.extend(getattr(widget, "children", ()))
        if hasattr(widget, "value") and not isinstance(widget, ipywidgets.Image):
            values.append(copy.deepcopy(widget.value))
    return values, copy.deepcopy(explorer.readout), copy.deepcopy(explorer.plot_data)


def assert_same(got, want):
    """Equal, down through dicts, sequences and arrays (NaN equal to NaN)."""
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, list | tuple) and not isinstance(want, str):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w)
    elif isinstance(want, np.ndarray | float | np.floating):
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want


@pytest.mark.parametrize(
    "name, bad, words", BAD_CASES, ids=[f"{name}-{bad}" for name, bad, _ in BAD_CASES]
)
def test_set_rejects_bad_input_naming_it_and_changes_nothing(data, name, bad, words):
    explorer = EXAMPLES[name].make(data)
    before = state(explorer)
    with pytest.raises(ValueError, match=words):
        explorer.set(**bad)
    assert_same(state(explorer), before)
    assert explorer.message == "" and explorer.message_html.value == ""
