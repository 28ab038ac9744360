"""One vocabulary for estimators: ``mixing.estimator_weights`` against hand-written weights."""

import numpy as np
import pytest

from course_lib import experiments, mixing


def _by_hand(kind, k, lam, free):
    if kind == "k-step":
        return [0.0] * (k - 1) + [1.0]
    if kind == "uniform":
        return [1.0 / k] * k
    if kind == "geometric":
        raw = [lam**j for j in range(k)]
        return [r / sum(raw) for r in raw]
    if kind == "lambda-return":
        return [(1 - lam) * lam**j for j in range(k - 1)] + [lam ** (k - 1)]
    if kind == "free":
        return [f / sum(free[:k]) for f in free[:k]]
    return [0.0] * k


@pytest.mark.parametrize("kind", list(mixing.ESTIMATOR_KINDS))
@pytest.mark.parametrize("k", [1, 2, 5])
def test_estimator_weights_match_their_formula_and_are_padded(kind, k):
    free = [0.5, 2.0, 0.0, 1.0, 3.0]
    weights = mixing.estimator_weights(kind, k, 7, lam=0.3, free_weights=free)
    assert weights.shape == (7,)
    np.testing.assert_allclose(weights[:k], _by_hand(kind, k, 0.3, free), rtol=1e-12)
    np.testing.assert_array_equal(weights[k:], 0.0)


def test_experiment_names_use_the_same_weights():
    for name, kind in (("k4", "k-step"), ("mix4", "geometric"), ("fixed4", "fixed")):
        np.testing.assert_array_equal(
            experiments.parse_estimator(name).weights(6, 0.5),
            mixing.estimator_weights(kind, 4, 6, lam=0.5),
        )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mixing.estimator_weights("median", 3), "kind must be one of"),
        (lambda: mixing.estimator_weights("k-step", 0), "k must be an integer >= 1"),
        (lambda: mixing.estimator_weights("k-step", 4, 3), "k_max must be an integer >= 4"),
        (lambda: mixing.estimator_weights("geometric", 3, lam=1.5), r"lam must be in \[0, 1\]"),
        (lambda: mixing.estimator_weights("free", 2, free_weights=[0, 0]), "all zero"),
        (lambda: mixing.estimator_weights("free", 2, free_weights=[1, -1]), ">= 0"),
        (lambda: mixing.estimator_weights("free", 3, free_weights=[1, 1]), "at least k=3"),
    ],
)
def test_bad_estimator_settings_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_weight_matrix_rows_are_each_horizons_weights():
    matrix = mixing.weight_matrix("geometric", 4, lam=0.5)
    for k in range(1, 5):
        np.testing.assert_allclose(matrix[k - 1], mixing.estimator_weights("geometric", k, 4, 0.5))
