"""The live explorers without a browser: readouts and plots against NumPy on the data they show.

For the meta-gradient explorer every oracle recomputes from ``explorer.samples`` and the exact
joint moments with plain NumPy and hand-written weight and measure formulas (not ``metagrad``'s
weight functions nor ``stats``), so a wrong weight, a wrong K, a target that moves with K or a
stale cache shows.
"""

import copy

import jax
import numpy as np
import pytest

from course_lib import exact, mixing, problems, stats, widgets

K_MAX, N_SEEDS = 4, 64
MEASURES = ("cosine", "snr", "right_direction", "scale_free_mse", "variance", "bias_squared", "mse")


@pytest.fixture(scope="module")
def quadratic():
    with jax.enable_x64(True):
        problem = problems.make_problem("quadratic")
        explorer = widgets.MetaGradientExplorer(problem, k_max=K_MAX, n_seeds=N_SEEDS)
        yield problem, explorer


@pytest.fixture
def explorer(quadratic):
    """The shared quadratic explorer, put back to its starting controls for each test."""
    explorer = quadratic[1]
    explorer.set(k=K_MAX, mode="lambda-return", lam=0.5, weights=np.ones(K_MAX), view="target")
    return explorer


def hand_weights(mode, k, lam=None, free=None):
    """The four weight families written out by hand (docs/notation.md §3)."""
    j = np.arange(1, k + 1)
    if mode == "k-step":
        return (j == k).astype(float)
    if mode == "geometric":
        raw = np.array([lam ** (i - 1) if i > 1 else 1.0 for i in j])
        return raw / raw.sum()
    if mode == "lambda-return":
        return np.array([(1 - lam) * lam ** (i - 1) if i < k else lam ** (k - 1) for i in j])
    free = np.asarray(free, dtype=float)[:k]
    return free / free.sum()


def numpy_numbers(explorer, weights):
    """The measures of Σ_j w_j g_j against the explorer's fixed target, by hand: from its exact
    joint moments where it has them, else from the samples' mean and covariance (ddof 1); the
    right-direction share always from the samples."""
    samples, target = explorer.samples, explorer.target
    mixed = sum(w * samples[:, j] for j, w in enumerate(weights))
    if explorer.moments is None:
        mean = mixed.mean(axis=0)
        variance = np.sum((mixed - mean) ** 2) / (len(mixed) - 1)
    else:
        means, joint = explorer.moments
        mean = sum(w * means[j] for j, w in enumerate(weights))
        variance = sum(
            wj * wk * np.trace(joint[j, :, k, :])
            for j, wj in enumerate(weights)
            for k, wk in enumerate(weights)
        )
    cosine = mean @ target / (np.linalg.norm(mean) * np.linalg.norm(target))
    snr = mean @ mean / variance
    bias_squared = np.sum((mean - target) ** 2)
    return {
        "mixed": mixed,
        "mean": mean,
        "cosine": cosine,
        "snr": snr,
        "right_direction": np.mean(mixed @ target > 0),
        "scale_free_mse": 1 - max(0.0, cosine) ** 2 * snr / (1 + snr),
        "variance": variance,
        "bias_squared": bias_squared,
        "mse": bias_squared + variance,
    }


SETTINGS = [
    dict(k=1, mode="k-step"),
    dict(k=3, mode="k-step"),
    dict(k=4, mode="geometric", lam=0.3),
    dict(k=4, mode="geometric", lam=1.0),
    dict(k=4, mode="lambda-return", lam=0.6),
    dict(k=2, mode="lambda-return", lam=0.0),
    dict(k=3, mode="free", weights=[0.2, 1.0, 0.5]),
    dict(k=4, mode="free", weights=[4.0, 0.0, 2.0, 1.0]),
]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_readout_equals_numpy_measures_of_the_exact_moments_and_samples(explorer, setting):
    explorer.set(**setting)
    assert explorer.message == ""
    k, mode = setting["k"], setting["mode"]
    weights = hand_weights(mode, k, setting.get("lam"), setting.get("weights"))
    expected = numpy_numbers(explorer, weights)
    readout = explorer.readout
    assert readout["k"] == k and readout["mode"] == mode and readout["source"] == "exact"
    np.testing.assert_allclose(readout["weights"], weights, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(readout["mean"], expected["mean"], rtol=1e-10)
    for name in MEASURES:
        np.testing.assert_allclose(readout[name], expected[name], rtol=1e-9, err_msg=name)
    k_step = numpy_numbers(explorer, np.eye(k)[-1])
    for name in MEASURES:
        np.testing.assert_allclose(readout["k_step"][name], k_step[name], rtol=1e-9, err_msg=name)
    assert f"{readout['scale_free_mse']:.4g}" in explorer.readout_html.value
    assert "scale-dependent" in explorer.readout_html.value


def test_exact_readout_is_the_library_measures_of_the_mix(explorer):
    """The same numbers by the library's route: mixing.mix_moments, stats.moment_measures."""
    explorer.set(k=4, mode="lambda-return", lam=0.7)
    mean, cov = mixing.mix_moments(*explorer.moments, explorer.readout["weights"])
    measures = stats.moment_measures(mean, cov, explorer.target)
    for name in ("cosine", "snr", "scale_free_mse"):
        np.testing.assert_allclose(explorer.readout[name], getattr(measures, name), rtol=1e-9)


def test_the_target_is_exact_g_star_h_and_stays_fixed_while_k_moves(quadratic):
    problem, explorer = quadratic
    horizon = problem.settings["horizon"]
    with jax.enable_x64(True):
        target = exact.true_meta_gradient(problem, problem.eta0, horizon)
        mean, joint = exact.exact_meta_gradient_moments(problem, problem.eta0, K_MAX, joint=True)
    np.testing.assert_allclose(explorer.target, target, rtol=1e-12)
    np.testing.assert_allclose(explorer.moments[0], mean, rtol=1e-12)
    np.testing.assert_allclose(explorer.moments[1], joint, rtol=1e-12)
    assert explorer.target_name == f"g*_{horizon} (exact)"
    for k in range(1, K_MAX + 1):
        explorer.set(k=k, mode="k-step")
        expected = numpy_numbers(explorer, np.eye(k)[-1])
        assert explorer.readout["cosine"] == pytest.approx(expected["cosine"], rel=1e-9)
    np.testing.assert_allclose(explorer.target, target, rtol=1e-12)


def test_bandit_target_is_the_longest_horizon_shown():
    with jax.enable_x64(True):
        problem = problems.make_problem("bandit")
        explorer = widgets.MetaGradientExplorer(problem, k_max=3, n_seeds=16)
        target = exact.true_meta_gradient(problem, problem.eta0, 3)
    np.testing.assert_allclose(explorer.target, target, rtol=1e-12)
    assert explorer.target_name == "g*_3 (exact)" and explorer.moments is not None


def test_moving_the_widgets_themselves_updates_readout_and_plots(explorer):
    before = copy.deepcopy(explorer.plot_data)
    explorer.k_slider.value = 2
    assert explorer.readout["k"] == 2
    explorer.lam_slider.value = 0.2
    explorer.mode_dropdown.value = "geometric"
    expected = numpy_numbers(explorer, hand_weights("geometric", 2, 0.2))
    np.testing.assert_allclose(explorer.readout["snr"], expected["snr"], rtol=1e-9)
    after = explorer.plot_data
    assert not np.array_equal(before["estimates"], after["estimates"])
    assert after["curves"]["snr"]["current"][0] == 2
    assert explorer.lam_slider.description == "λ" and not explorer.lam_slider.disabled
    explorer.mode_dropdown.value = "k-step"
    assert explorer.lam_slider.disabled


@pytest.mark.parametrize("setting", SETTINGS[2:], ids=lambda s: "-".join(map(str, s.values())))
def test_plots_draw_the_current_estimates_and_curves(explorer, setting):
    before = copy.deepcopy(explorer.plot_data)
    explorer.set(**setting)
    k = setting["k"]
    data = explorer.plot_data
    weights = hand_weights(setting["mode"], k, setting.get("lam"), setting.get("weights"))
    expected = numpy_numbers(explorer, weights)
    # Histogram view "target": projections on the unit vector of the fixed g*.
    free = np.zeros(K_MAX)  # the sliders after the given weights are at 0
    free[: len(setting.get("weights", []))] = setting.get("weights", [])
    unit = explorer.target / np.linalg.norm(explorer.target)
    np.testing.assert_allclose(data["estimates"], expected["mixed"] @ unit, rtol=1e-10)
    np.testing.assert_allclose(data["mean"], expected["mixed"].mean(0) @ unit, rtol=1e-10)
    np.testing.assert_allclose(data["exact_mean"], expected["mean"] @ unit, rtol=1e-10)
    heights, _ = np.histogram(data["estimates"], bins=data["edges"])
    np.testing.assert_array_equal(data["heights"], heights)
    assert data["heights"].sum() == N_SEEDS  # the fixed x-range holds every estimate
    # Curves: the K-step line is g_k's measures, the mix line the same mix at every horizon.
    for name in widgets.CURVES:
        curve = data["curves"][name]
        k_step = [numpy_numbers(explorer, np.eye(j)[-1])[name] for j in range(1, K_MAX + 1)]
        np.testing.assert_allclose(curve["k_step"], k_step, rtol=1e-9, err_msg=name)
        mix = [
            numpy_numbers(explorer, hand_weights(setting["mode"], j, setting.get("lam"), free))[
                name
            ]
            if setting["mode"] != "free" or free[:j].sum() > 0
            else np.nan
            for j in range(1, K_MAX + 1)
        ]
        np.testing.assert_allclose(curve["mix"], mix, rtol=1e-9, err_msg=name)
        assert curve["mix_visible"]
        assert curve["current"] == pytest.approx((k, expected[name]), rel=1e-9)
    assert not np.array_equal(before["estimates"], data["estimates"])


def test_k_step_mode_hides_the_mix_line(explorer):
    explorer.set(mode="k-step", k=2)
    assert not any(curve["mix_visible"] for curve in explorer.plot_data["curves"].values())


def test_component_view_shows_one_meta_parameter(explorer):
    explorer.set(k=3, mode="geometric", lam=0.5, view=1)
    data = explorer.plot_data
    expected = numpy_numbers(explorer, hand_weights("geometric", 3, 0.5))
    np.testing.assert_allclose(data["estimates"], expected["mixed"][:, 1], rtol=1e-10)
    np.testing.assert_allclose(data["exact_mean"], expected["mean"][1], rtol=1e-10)
    assert explorer.meta_names[1] in data["xlabel"]


def test_optimal_mix_button_sets_the_optimal_weights_and_beats_every_k(explorer):
    weights = mixing.optimal_mixing_weights(*explorer.moments, explorer.target)
    np.testing.assert_allclose(explorer.optimal_weights, weights, rtol=1e-12)
    explorer.optimal_button.click()
    assert explorer.readout["mode"] == "free" and explorer.readout["k"] == K_MAX
    np.testing.assert_allclose(explorer.readout["weights"], weights, rtol=1e-9, atol=1e-12)
    expected = numpy_numbers(explorer, weights)
    assert explorer.readout["scale_free_mse"] == pytest.approx(expected["scale_free_mse"])
    k_step = explorer.plot_data["curves"]["scale_free_mse"]["k_step"]
    assert explorer.readout["scale_free_mse"] <= k_step.min() + 1e-12


def test_slider_moves_never_compile(explorer, compilations):
    for k in range(1, K_MAX + 1):
        for mode in widgets.EXPLORER_KINDS:
            explorer.set(k=k, mode=mode, lam=0.1 * k)
    explorer.k_slider.value = 1
    explorer.weight_sliders[0].value = 0.3
    explorer.view_dropdown.value = 0
    explorer.optimal_button.click()
    assert compilations == []
    jax.jit(lambda x: x * 3.0 + 1.0)(np.ones(3))  # the counter itself can see a compilation
    assert len(compilations) >= 1


def test_new_samples_change_the_cache_without_recompiling(explorer, compilations):
    old = explorer.samples.copy()
    explorer.set(k=3, mode="k-step")
    before = copy.deepcopy(explorer.plot_data)
    with jax.enable_x64(True):
        assert explorer.new_samples(), explorer.message
    assert compilations == []
    assert explorer.samples.shape == old.shape and not np.allclose(explorer.samples, old)
    assert "sample set 1" in explorer.progress_label.value
    assert explorer.progress.value == explorer.progress.max
    expected = numpy_numbers(explorer, np.eye(3)[-1])
    for name in ("right_direction", "scale_free_mse"):
        np.testing.assert_allclose(explorer.readout[name], expected[name], rtol=1e-9)
    assert not np.array_equal(before["heights"], explorer.plot_data["heights"])


BAD_INPUTS = [
    (dict(k=K_MAX + 1), "k_max"),
    (dict(k=0), "k_max"),
    (dict(k="3"), "K must be"),
    (dict(weights=[0.0, 0.0, 0.0]), "all zero"),
    (dict(weights=[0.5, -0.1]), "weight"),
    (dict(weights=np.ones(K_MAX + 1)), "k_max"),
    (dict(weights=[np.nan, 1.0]), "weight"),
    (dict(mode="bogus"), "mode"),
    (dict(lam=1.5), "lam"),
    (dict(view=7), "view"),
]


def test_all_free_weight_sliders_at_zero_shows_a_message_until_one_rises(explorer):
    explorer.set(weights=[1.0, 0.0, 0.0])
    view, readout = copy.deepcopy(explorer.plot_data), copy.deepcopy(explorer.readout)
    explorer.weight_sliders[0].value = 0.0  # the learner drags the last non-zero weight down
    assert "all zero" in explorer.message and "all zero" in explorer.message_html.value
    assert_same_view(explorer, view, readout)
    explorer.weight_sliders[2].value = 0.5
    assert explorer.message == ""
    np.testing.assert_allclose(explorer.readout["weights"], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(
        explorer.readout["snr"], numpy_numbers(explorer, [0.0, 0.0, 1.0])["snr"], rtol=1e-9
    )


def assert_same_view(explorer, view, readout):
    now = explorer.plot_data
    for key in ("heights", "edges", "estimates"):
        np.testing.assert_array_equal(now[key], view[key])
    assert (now["mean"], now["exact_mean"]) == (view["mean"], view["exact_mean"])
    for name, curve in now["curves"].items():
        np.testing.assert_array_equal(curve["mix"], view["curves"][name]["mix"])
        assert curve["current"] == view["curves"][name]["current"]
    assert explorer.readout.keys() == readout.keys()
    for key, value in readout.items():
        if isinstance(value, dict):
            assert explorer.readout[key] == value
        else:
            np.testing.assert_array_equal(explorer.readout[key], value)


def synthetic(seed, n_seeds=50, k_max=6, n_eta=2):
    """A cache with a mean and a spread per k, and a target: any numbers do for the oracles."""
    rng = np.random.default_rng(seed)
    scale = np.arange(1, k_max + 1)[None, :, None]
    samples = rng.normal(size=(n_seeds, k_max, n_eta)) * scale + rng.normal(size=(k_max, n_eta))
    return samples, rng.normal(size=n_eta)


def test_sampled_explorer_measures_the_samples_against_the_given_target():
    samples, target = synthetic(6)
    explorer = widgets.MetaGradientExplorer.from_samples(
        samples, target, target_name="a reference over many seeds"
    )
    assert explorer.moments is None
    for setting in SETTINGS[2:5]:
        explorer.set(**setting)
        weights = hand_weights(setting["mode"], setting["k"], setting.get("lam"))
        expected = numpy_numbers(explorer, np.pad(weights, (0, 6 - len(weights))))
        assert explorer.readout["source"] == "samples"
        for name in MEASURES:
            np.testing.assert_allclose(explorer.readout[name], expected[name], rtol=1e-9)
    assert "a reference over many seeds" in explorer.readout_html.value
    np.testing.assert_allclose(
        explorer.optimal_weights, mixing.optimal_mixing_weights_from_samples(samples, target)
    )


def test_every_setting_stays_inside_the_axes_drawn_for_the_sample_set():
    """The fixed axes rest on a claim: any mix is a convex combination of g_1..g_K per seed, so its
    estimates lie within the K-step range and its variance, bias² and MSE within
    ``reachable_maxima``. Random free weights must never break it."""
    rng = np.random.default_rng(1)
    samples, target = synthetic(1)
    explorer = widgets.MetaGradientExplorer.from_samples(samples, target)
    maxima = widgets.reachable_maxima(widgets.curve_values(samples, target))
    low, high = explorer._hist_ax.get_xlim()
    for _ in range(60):
        k = int(rng.integers(1, 7))
        weights = rng.random(k) ** 4  # often nearly one-hot: the extreme settings
        explorer.set(k=k, weights=weights / weights.max(), view="target")
        data = explorer.plot_data
        assert low <= data["estimates"].min() and data["estimates"].max() <= high
        for name in ("variance", "bias_squared", "mse"):
            assert explorer.readout[name] <= maxima[name] * (1 + 1e-12)
    assert explorer._hist_ax.get_xlim() == (low, high)


def test_explorer_from_synthetic_samples_without_a_target():
    rng = np.random.default_rng(2)
    samples = rng.normal(size=(30, 5, 3))
    draws = []

    def draw(index):
        draws.append(index)
        return rng.normal(size=(30, 5, 3)) + index

    explorer = widgets.MetaGradientExplorer.from_samples(
        samples, meta_names=("a", "b", "c"), draw=draw
    )
    assert [value for _, value in explorer.view_dropdown.options] == [0, 1, 2]
    explorer.set(k=5, mode="geometric", lam=0.5)
    for name in ("cosine", "scale_free_mse", "bias_squared", "mse", "right_direction"):
        assert np.isnan(explorer.readout[name])
    assert np.isfinite(explorer.readout["snr"])
    assert explorer.plot_data["exact_mean"] is None
    assert "n/a" in explorer.readout_html.value and "no target" in explorer.readout_html.value
    assert explorer.optimal_button.disabled
    assert explorer.new_samples() and draws == [1]
    np.testing.assert_allclose(explorer.plot_data["mean"], explorer.readout["mean"][0], rtol=1e-12)
    assert explorer.new_samples() and draws == [1, 2]

    fixed = widgets.MetaGradientExplorer.from_samples(samples)
    assert fixed.new_samples_button.disabled
    assert fixed.new_samples() is False and "fixed samples" in fixed.message


def test_a_failing_draw_keeps_the_old_samples_and_says_why():
    samples = np.random.default_rng(3).normal(size=(20, 3, 2))

    def draw(index):
        return np.full((20, 3, 2), np.nan)

    explorer = widgets.MetaGradientExplorer.from_samples(samples, draw=draw)
    readout = copy.deepcopy(explorer.readout)
    assert explorer.new_samples() is False
    assert "finite" in explorer.message
    np.testing.assert_array_equal(explorer.samples, samples)
    np.testing.assert_array_equal(explorer.readout["mean"], readout["mean"])
    assert not explorer.new_samples_button.disabled


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(k_max=0), "k_max must be an integer >= 1, got 0"),
        (dict(n_seeds=1), "n_seeds must be an integer >= 2, got 1"),
    ],
)
def test_constructor_checks_its_arguments_before_sampling(kwargs, words):
    problem = problems.make_problem("bandit")
    with pytest.raises(ValueError, match=words):
        widgets.MetaGradientExplorer(problem, **kwargs)


def test_from_samples_checks_shapes():
    with pytest.raises(ValueError, match="samples must have shape"):
        widgets.MetaGradientExplorer.from_samples(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="target must be"):
        widgets.MetaGradientExplorer.from_samples(np.ones((5, 3, 2)), target=np.ones((3, 2)))
    with pytest.raises(ValueError, match="target must be"):
        widgets.MetaGradientExplorer.from_samples(np.ones((5, 3, 2)), target=np.zeros(2))
    with pytest.raises(ValueError, match="need a target"):
        widgets.MetaGradientExplorer.from_samples(
            np.ones((5, 3, 2)), moments=(np.ones((3, 2)), np.ones((3, 2, 3, 2)))
        )
    with pytest.raises(ValueError, match="moments must be"):
        widgets.MetaGradientExplorer.from_samples(
            np.ones((5, 3, 2)), np.ones(2), moments=(np.ones((3, 2)), np.ones((3, 2, 2)))
        )


def test_weight_matrix_rows_are_the_weights_of_each_horizon():
    free = [0.0, 0.0, 2.0, 1.0]
    matrix = mixing.weight_matrix("free", 4, 0.5, free)
    assert np.isnan(matrix[:2]).all()  # w1..wK all zero for K = 1, 2
    np.testing.assert_allclose(matrix[2], [0, 0, 1, 0])
    np.testing.assert_allclose(matrix[3], [0, 0, 2 / 3, 1 / 3])
    for k in range(1, 5):
        np.testing.assert_allclose(
            mixing.weight_matrix("lambda-return", 4, 0.3, free)[k - 1, :k],
            hand_weights("lambda-return", k, 0.3),
        )


def test_the_readout_carries_the_lessons_css_class(explorer):
    # The view, its moves and set's rejections: tests/test_widgets_contract.py.
    assert "metagrad-readout" in explorer.readout_html._dom_classes
