"""Lesson 08's estimator map explorer without a browser: each marker and the readout against
measures recomputed by hand from the moments it was given, moves that only blit, and the checks of
its arguments.

The families are synthetic (random moments, known costs), so the oracle is plain NumPy: cos, SNR
of the mean of budget / cost estimates, and the scale-free error 1 − max(0, cos)² SNR / (1 + SNR).
(The covariances pass through ``estimators.variance_at_equal_compute``, a JAX function: float32
unless x64 is on, hence the tolerance.)
"""

import time

import numpy as np
import pytest

from course_lib.widgets.estimator_map import EstimatorFamily, EstimatorMapExplorer

TARGET = np.array([1.0, -0.5])


def random_family(rng, knob, values, costs):
    n = len(values)
    factor = rng.normal(size=(n, 2, 2))
    return EstimatorFamily(
        knob,
        np.asarray(values, float),
        rng.normal(size=(n, 2)),
        factor @ np.swapaxes(factor, 1, 2) + 0.1 * np.eye(2),
        np.asarray(costs, float),
    )


@pytest.fixture(scope="module")
def families():
    rng = np.random.default_rng(0)
    return {
        "k_step": random_family(rng, "K", [1, 2, 3, 4], [5, 10, 15, 20]),
        "trace": random_family(rng, "μ", [0.0, 0.5, 1.0], [20, 20, 20]),
        "es": random_family(rng, "σ", [0.05, 0.1], [8, 8]),
    }


@pytest.fixture(scope="module")
def explorer(families):
    return EstimatorMapExplorer(families, TARGET)


def hand_measures(family, i, budget):
    mean, cov = family.mean[i], family.cov[i] * family.cost[i] / budget
    cosine = mean @ TARGET / np.linalg.norm(mean) / np.linalg.norm(TARGET)
    snr = mean @ mean / np.trace(cov)
    return cosine, snr, 1 - max(0.0, cosine) ** 2 * snr / (1 + snr)


@pytest.mark.parametrize("choice", [dict(k_step=1, trace=0.5, es=0.1), dict(k_step=4, trace=1.0)])
def test_markers_and_readout_are_the_hand_measures_at_equal_compute(explorer, families, choice):
    explorer.set(**choice)
    assert explorer.budget == 20.0  # the largest cost by default
    errors = {}
    for name, family in families.items():
        i = list(family.values).index(explorer.sliders[name].value)
        cosine, snr, error = hand_measures(family, i, 20.0)
        np.testing.assert_allclose(explorer.plot_data[name], (1 - cosine, snr), rtol=1e-6)
        shown = explorer.readout["families"][name]
        np.testing.assert_allclose(
            (shown["cosine"], shown["snr"], shown["scale_free_mse"]),
            (cosine, snr, error),
            rtol=1e-6,
        )
        errors[name] = error
        if name in choice:
            assert shown["knob"] == choice[name]
    assert explorer.readout["best"] == min(errors, key=errors.get)
    assert explorer.readout["best"] in explorer.readout_html.value


def test_moves_take_under_100_ms_and_keep_every_marker_inside_the_axes(explorer):
    # That they only blit, and set's rejections: tests/test_widgets_contract.py.
    explorer.set(k_step=4)
    ax = explorer.figure.axes[0]
    limits = (ax.get_xlim(), ax.get_ylim())
    start = time.perf_counter()
    for k in (1, 2, 3):
        explorer.sliders["k_step"].value = float(k)
    per_move = (time.perf_counter() - start) / 3
    assert (ax.get_xlim(), ax.get_ylim()) == limits
    assert per_move < 0.1, per_move
    # every marker stays inside the axes drawn at the start, whatever the knobs
    for name, family in explorer.families.items():
        for value in family.values:
            explorer.set(**{name: value})
            x, y = explorer.plot_data[name]
            assert limits[0][0] <= x <= limits[0][1] and limits[1][0] <= y <= limits[1][1]


def test_budget_scales_every_snr(families):
    small = EstimatorMapExplorer(families, TARGET, budget=10.0)
    for name, family in families.items():
        np.testing.assert_allclose(
            small.readout["families"][name]["snr"], hand_measures(family, 0, 10.0)[1], rtol=1e-6
        )


def _bad(families, **change):
    name, field, value = change["family"], change["field"], change["value"]
    return {**families, name: families[name]._replace(**{field: value})}


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda f: ({}, TARGET, None), "families must be a non-empty dict"),
        (lambda f: ({"k step": f["k_step"]}, TARGET, None), "keyed by identifiers"),
        (lambda f: ({"k_step": (1, 2)}, TARGET, None), "must be an EstimatorFamily"),
        (
            lambda f: (
                _bad(f, family="es", field="cost", value=np.array([8.0, 0.0])),
                TARGET,
                None,
            ),
            "costs > 0",
        ),
        (
            lambda f: (
                _bad(f, family="es", field="values", value=np.array([0.1, 0.1])),
                TARGET,
                None,
            ),
            "n distinct values",
        ),
        (lambda f: (f, TARGET[:1], None), r"target must have shape \(2,\)"),
        (lambda f: (f, TARGET, 0.0), "budget must be > 0"),
    ],
)
def test_constructor_rejects_bad_input_naming_it(families, make, words):
    with pytest.raises(ValueError, match=words):
        EstimatorMapExplorer(*make(families))
