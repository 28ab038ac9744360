"""Lesson 01's batch-size explorer without a browser: the oracle is the estimates array it was
given."""

import numpy as np
import pytest

from course_lib import widgets

B_MAX, PLANE = 16, (0, 2)


@pytest.fixture(scope="module")
def batch_estimates():
    rng = np.random.default_rng(5)
    exact = np.array([-0.2, 0.05, 0.3])
    # Noise shrinking with B, as for real batch-B estimates; any array would do for the oracles.
    noise = rng.normal(size=(2, 40, B_MAX, 3)) / np.sqrt(np.arange(1, B_MAX + 1))[:, None]
    return {"plain": exact + noise[0], "baseline": exact + 0.5 * noise[1]}, exact


@pytest.fixture
def batch_explorer(batch_estimates):
    estimates, exact = batch_estimates
    return widgets.BatchSizeExplorer(estimates, exact, components=PLANE, batch_size=3)


def test_batch_size_slider_moves_each_cloud_to_that_batch_sizes_estimates(
    batch_explorer, batch_estimates
):
    estimates, _ = batch_estimates
    for batch_size in (1, 9, B_MAX):
        batch_explorer.slider.value = batch_size
        data = batch_explorer.plot_data
        assert data["marker"] == batch_size
        for name, estimate in estimates.items():
            np.testing.assert_array_equal(
                data["clouds"][name], estimate[:, batch_size - 1][:, list(PLANE)]
            )
            variance = np.var(estimate[:, batch_size - 1], axis=0, ddof=1).sum()
            assert data["current"][name] == pytest.approx((batch_size, variance), rel=1e-12)


def test_batch_size_readout_is_the_numpy_variance_snr_and_right_way_share(
    batch_explorer, batch_estimates
):
    estimates, exact = batch_estimates
    batch_explorer.set(batch_size=2)
    readout = batch_explorer.readout
    assert readout["batch_size"] == 2 and list(readout["estimators"]) == list(estimates)
    for name, estimate in estimates.items():
        rows = estimate[:, 1]
        variance = np.var(rows, axis=0, ddof=1).sum()
        numbers = readout["estimators"][name]
        np.testing.assert_allclose(numbers["variance"], variance, rtol=1e-12)
        np.testing.assert_allclose(numbers["snr"], np.sum(rows.mean(0) ** 2) / variance, rtol=1e-12)
        right = [
            np.sign(row[0]) == np.sign(exact[0]) and np.sign(row[2]) == np.sign(exact[2])
            for row in rows
        ]
        assert numbers["right_way"] == np.mean(right)
        assert 0 < numbers["right_way"] < 1  # the data leave room for a wrong count to show
        assert f"{variance:.4g}" in batch_explorer.readout_html.value
    assert "B = 2" in batch_explorer.readout_html.value


BAD_BATCH_INPUTS = [
    (dict(estimates=[np.ones((4, 3, 3))]), "estimates must be a non-empty dict"),
    (dict(estimates={}), "estimates must be a non-empty dict"),
    (dict(estimates={"a": np.ones((4, 3))}), "estimates must share one shape"),
    (dict(estimates={"a": np.ones((1, 3, 3))}), "n_seeds >= 2"),
    (dict(estimates={"a": np.ones((4, 3, 3)), "b": np.ones((4, 2, 3))}), "one shape"),
    (dict(estimates={"a": np.full((4, 3, 3), np.nan)}), "estimates must be finite"),
    (dict(exact_gradient=np.ones(2)), r"exact_gradient must have shape \(3,\)"),
    (dict(components=(0, 3)), "components must be two different indices in 0..2"),
    (dict(components=(1, 1)), "components"),
    (dict(components=(0,)), "components"),
    (dict(labels=("x",)), "labels"),
    (dict(batch_size=0), "batch_size must be an integer from 1 to b_max=3, got 0"),
    (dict(batch_size=4), "b_max=3"),
    (dict(batch_size=2.0), "batch_size"),
]


@pytest.mark.parametrize("bad, words", BAD_BATCH_INPUTS, ids=[str(b) for b, _ in BAD_BATCH_INPUTS])
def test_batch_size_explorer_rejects_bad_input_naming_the_argument(bad, words):
    arguments = dict(estimates={"a": np.ones((4, 3, 3))}, exact_gradient=np.ones(3)) | bad
    with pytest.raises(ValueError, match=words):
        widgets.BatchSizeExplorer(**arguments)
