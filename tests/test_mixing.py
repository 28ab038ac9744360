"""One vocabulary for estimators: ``mixing.estimator_weights`` against hand-written weights, and
``mix`` and ``mix_moments`` against sums written out."""

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
    np.testing.assert_allclose(
        mixing.weight_matrix("lambda-return", 3, lam=0.3)[2],
        mixing.lambda_return_weights(3, 0.3),
    )


@pytest.mark.parametrize(
    "kind, k_max, lam, message",
    [
        ("mean", 3, 0.5, "kind must be one of"),
        ("geometric", True, 0.5, "k_max must be an integer >= 1, got True"),
        ("geometric", 3, 1.5, r"lam must be in \[0, 1\], got 1.5"),
        ("lambda-return", 3, -0.1, r"rho must be in \[0, 1\], got -0.1"),
    ],
)
def test_weight_matrix_refuses_bad_settings_once_not_as_nan_rows(kind, k_max, lam, message):
    with pytest.raises(ValueError, match=message):
        mixing.weight_matrix(kind, k_max, lam)


def test_mix_of_weight_rows_is_each_row_summed_by_hand():
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(7, 4, 2))  # [n_seeds, k_max, n_eta]
    matrix = mixing.weight_matrix("geometric", 4, lam=0.5)  # [M = 4, K = 4]
    by_hand = [[sum(w[k] * g[k] for k in range(4)) for w in matrix] for g in samples]
    np.testing.assert_allclose(mixing.mix(samples, matrix), by_hand, rtol=1e-12)
    # Rows per seed broadcast against the seeds: seed s is mixed by its own two rows of 3 weights.
    per_seed = rng.dirichlet(np.ones(3), size=(7, 2))  # [n_seeds, M = 2, K = 3]
    by_hand = [
        [sum(w[k] * g[k] for k in range(3)) for w in rows]
        for g, rows in zip(samples, per_seed, strict=True)
    ]
    np.testing.assert_allclose(mixing.mix(samples, per_seed), by_hand, rtol=1e-12)
    # A row that is no mix (free weights all zero up to K = 1) stays NaN; the others are mixed.
    free = mixing.weight_matrix("free", 3, free_weights=[0.0, 1.0, 1.0])
    mixed = mixing.mix(samples[:, :3], free)
    assert np.all(np.isnan(mixed[:, 0])) and np.all(np.isfinite(mixed[:, 1:]))


def test_mix_moments_of_weight_rows_are_each_rows_moments():
    rng = np.random.default_rng(4)
    mean = rng.normal(size=(3, 2))  # [k_max, n_eta]
    root = rng.normal(size=(6, 6))
    cov = root @ root.T  # Cov of (g_1, g_2, g_3) flattened
    rows = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    means, covs = mixing.mix_moments(mean, cov.reshape(3, 2, 3, 2), rows)
    for w, m, c in zip(rows, means, covs, strict=True):
        spread = np.kron(w, np.eye(2))  # [2, 6]: g_mix = spread @ (g_1, g_2, g_3)
        np.testing.assert_allclose(m, spread @ mean.reshape(-1), rtol=1e-12)
        np.testing.assert_allclose(c, spread @ cov @ spread.T, rtol=1e-12)
    # Rows shorter than k_max mix the first K steps, as zeros would.
    short = mixing.mix_moments(mean, cov.reshape(3, 2, 3, 2), rows[1:, :2])
    padded = mixing.mix_moments(
        mean, cov.reshape(3, 2, 3, 2), np.pad(rows[1:, :2], ((0, 0), (0, 1)))
    )
    for got, expected in zip(short, padded, strict=True):
        np.testing.assert_array_equal(got, expected)
