"""The live explorers without a browser: readouts and plots against NumPy on the data they show.

For the meta-gradient explorer every oracle recomputes from ``explorer.samples`` and the exact
joint moments with plain NumPy and hand-written weight and measure formulas (not ``metagrad``'s
weight functions nor ``stats``), so a wrong weight, a wrong K, a target that moves with K or a
stale cache shows.
"""

import copy

import ipywidgets
import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib import exact, experiments, mixing, problems, stats, widgets

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


@pytest.fixture
def compilations():
    """Counts XLA compilations while the test runs."""
    events = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield events
    jax.monitoring.unregister_event_duration_listener(listen)


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


@pytest.mark.parametrize("bad, words", BAD_INPUTS, ids=[str(b) for b, _ in BAD_INPUTS])
def test_set_rejects_bad_input_naming_it_and_changes_nothing(explorer, bad, words):
    explorer.set(k=2, mode="geometric", lam=0.4)
    view, readout = copy.deepcopy(explorer.plot_data), copy.deepcopy(explorer.readout)
    controls = control_values(explorer)
    with pytest.raises(ValueError, match=words):
        explorer.set(**bad)
    assert control_values(explorer) == controls
    assert_same_view(explorer, view, readout)
    assert explorer.message == "" and explorer.message_html.value == ""


def control_values(explorer) -> list:
    sliders = (explorer.k_slider, explorer.lam_slider, *explorer.weight_sliders)
    return [control.value for control in (*sliders, explorer.mode_dropdown, explorer.view_dropdown)]


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


def test_headless_view_is_an_image_widget(explorer):
    assert isinstance(explorer._canvas.view, ipywidgets.Image)
    before = bytes(explorer._canvas.view.value)
    assert before.startswith(b"\xff\xd8")  # JPEG
    explorer.set(k=1, mode="k-step")
    assert bytes(explorer._canvas.view.value) != before
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()
    assert "metagrad-readout" in explorer.readout_html._dom_classes


# ipympl 0.10's toolbar passes an argument traitlets no longer wants; not ours to fix.
@pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")
def test_ipympl_view_is_the_figure_canvas_made_under_ioff():
    backend = plt.get_backend()
    plt.switch_backend("module://ipympl.backend_nbagg")
    try:
        interactive = plt.isinteractive()
        explorer = widgets.MetaGradientExplorer.from_samples(
            np.random.default_rng(4).normal(size=(20, 3, 2)), target=np.ones(2)
        )
        canvas = explorer.figure.canvas
        assert isinstance(canvas, ipywidgets.DOMWidget)
        assert explorer._canvas.view is canvas
        assert plt.isinteractive() == interactive
        explorer.set(k=2, mode="geometric", lam=0.2)
        np.testing.assert_allclose(explorer.readout["weights"], [1 / 1.2, 0.2 / 1.2])
        explorer.set(view=1)
        assert explorer.message == ""
        # Before the browser view opens nothing is sent: ipympl would store a broken data URL.
        assert canvas._data_url is None

        sent = []
        canvas.send = lambda content, buffers=None: sent.append((content["data"], buffers))
        canvas._handle_message(None, {"type": "initialized"}, [])  # what the view says on opening
        canvas._handle_message(None, {"type": "draw"}, [])  # its first request: a full frame
        frames = [buffers for data, buffers in sent if data == '{"type": "binary"}']
        assert len(frames) == 1 and bytes(frames[0][0]).startswith(b"\x89PNG")
        sent.clear()
        explorer.k_slider.value = 1  # a move: ipympl sends the changed pixels only
        assert [data for data, _ in sent if "binary" in data] == ['{"type": "binary"}']
        assert "diff" in canvas._current_image_mode
        # After each widget message IPython runs pyplot's draw_all, which redraws stale figures
        # in full: the explorer's figure must not be stale after a move.
        sent.clear()
        plt.draw_all()
        assert sent == []
    finally:
        plt.switch_backend(backend)


# --------------------------------------------------------------------------------------------------
# Lesson 01's batch-size explorer: the oracle is the estimates array it was given

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


def test_batch_size_moves_blit_without_compiling_or_redrawing_in_full(batch_explorer, compilations):
    full_draws = []
    batch_explorer.figure.canvas.mpl_connect("draw_event", full_draws.append)
    image = bytes(batch_explorer._canvas.view.value)
    assert image.startswith(b"\xff\xd8")  # the headless view: a JPEG image widget
    for batch_size in (1, 5, B_MAX, 2):
        batch_explorer.slider.value = batch_size
    batch_explorer.set(batch_size=2)  # the same B again still redraws, by blitting
    assert full_draws == [] and compilations == []
    assert bytes(batch_explorer._canvas.view.value) != image
    assert "application/vnd.jupyter.widget-view+json" in batch_explorer._repr_mimebundle_()


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


@pytest.mark.parametrize("batch_size", [0, B_MAX + 1, "3", True])
def test_batch_size_set_rejects_a_b_outside_the_cache_and_keeps_the_view(
    batch_explorer, batch_size
):
    batch_explorer.set(batch_size=4)
    with pytest.raises(ValueError, match=f"batch_size must be an integer from 1 to b_max={B_MAX}"):
        batch_explorer.set(batch_size=batch_size)
    assert batch_explorer.slider.value == 4 and batch_explorer.readout["batch_size"] == 4


# --------------------------------------------------------------------------------------------------
# Lesson 03's meta-learning-rate explorer: the oracle is the runs it was given

RATES, LABELS, N_CHECKPOINTS = (0.001, 0.01, 0.1), ("γ", "λ", "c_ent"), 8


def fake_result(rng, estimators=("k1",), n_seeds=3, n_checkpoints=N_CHECKPOINTS):
    """An ``experiments.Results``: random returns (one missing), hyper-parameters in (0, 1)."""
    returns = rng.normal(size=(len(estimators), n_seeds, n_checkpoints))
    returns[0, 0, 0] = np.nan  # no episode ended there: the mean and band skip it
    hyper = rng.uniform(0.01, 1.0, size=(len(estimators), n_seeds, n_checkpoints + 1, 3))
    return experiments.Results(
        config=None,
        estimators=estimators,
        meta_names=("discount", "lambda", "entropy_cost"),
        env_steps=100 * np.arange(1, n_checkpoints + 1),
        episode_return=returns,
        eta=np.log(hyper),
        hyper=hyper,
        samples=None,
        skipped=None,
        weights=None,
        variance=None,
        snr=None,
    )


@pytest.fixture(scope="module")
def rate_runs():
    rng = np.random.default_rng(3)
    return {rate: fake_result(rng) for rate in RATES}


@pytest.fixture
def rate_explorer(rate_runs):
    return widgets.MetaLearningRateExplorer(rate_runs, labels=LABELS, log_scale=("c_ent",))


def test_meta_lr_slider_shows_exactly_that_rates_runs_in_colour(rate_explorer, rate_runs):
    assert rate_explorer.plot_data["highlighted"] == [0.01]  # the middle rate to start with
    for rate in (0.1, 0.001, 0.01):
        rate_explorer.slider.value = rate
        data = rate_explorer.plot_data
        assert data["highlighted"] == [rate]
        result = rate_runs[rate]
        returns = result.episode_return[0]
        x, mean = data["return"]
        np.testing.assert_array_equal(x, result.env_steps)
        np.testing.assert_allclose(mean, np.nanmean(returns, axis=0), rtol=1e-12)
        # The band spans mean ± std (ddof 1) over the seeds at every checkpoint.
        std = np.nanstd(returns, axis=0, ddof=1)
        for step, middle, width in zip(result.env_steps, mean, std, strict=True):
            at_step = data["band"][data["band"][:, 0] == step, 1]
            assert at_step.min() == pytest.approx(middle - width, rel=1e-12)
            assert at_step.max() == pytest.approx(middle + width, rel=1e-12)
        for index, label in enumerate(LABELS):
            np.testing.assert_array_equal(data["hyper"][label], result.hyper[0, :, :, index])


def test_meta_lr_readout_is_that_rates_final_return_and_hyper_parameters(rate_explorer, rate_runs):
    rate_explorer.set(meta_lr=0.1)
    readout, result = rate_explorer.readout, rate_runs[0.1]
    assert readout["meta_lr"] == 0.1 and "β = 0.1" in rate_explorer.readout_html.value
    # final_returns: the mean over the last quarter of the 8 checkpoints, per seed.
    np.testing.assert_allclose(readout["final_return"], result.episode_return[0, :, -2:].mean(-1))
    for index, label in enumerate(LABELS):
        np.testing.assert_array_equal(readout["start"][label], result.hyper[0, :, 0, index])
        np.testing.assert_array_equal(readout["end"][label], result.hyper[0, :, -1, index])


def test_meta_lr_moves_blit_without_compiling_redrawing_or_moving_axes(rate_explorer, compilations):
    full_draws = []
    rate_explorer.figure.canvas.mpl_connect("draw_event", full_draws.append)
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in rate_explorer.figure.axes]
    image = bytes(rate_explorer._canvas.view.value)
    assert image.startswith(b"\xff\xd8")  # the headless view: a JPEG image widget
    rate_explorer.slider.value = 0.001
    assert bytes(rate_explorer._canvas.view.value) != image
    rate_explorer.slider.value = 0.1
    rate_explorer.set(meta_lr=0.1)  # the same β again still redraws, by blitting
    assert full_draws == [] and compilations == []
    assert [(ax.get_xlim(), ax.get_ylim()) for ax in rate_explorer.figure.axes] == limits
    assert "application/vnd.jupyter.widget-view+json" in rate_explorer._repr_mimebundle_()


BAD_RATE_INPUTS = [
    (dict(runs=[]), "runs must be a non-empty dict"),
    (dict(runs={}), "runs must be a non-empty dict"),
    (dict(runs={0.0: None}), "runs must be keyed by meta-learning rates β > 0, got 0.0"),
    (dict(runs={"fast": None}), "runs must be keyed by meta-learning rates"),
    (dict(runs={0.1: "a result"}), r"runs\[0.1\] must be an experiments.Results"),
    (dict(env_steps=np.arange(N_CHECKPOINTS)), "runs must share env_steps"),
    (dict(n_seeds=2), "runs must share seeds and checkpoints"),
    (dict(labels=("γ", "λ")), "labels must name the 3 hyper-parameters"),
    (dict(log_scale=("c",)), "log_scale must list some of"),
    (dict(log_scale=("λ",), negative=True), "log_scale: λ must be > 0"),
    (dict(meta_lr=0.5), r"meta_lr must be one of \[0.001, 0.01, 0.1\], got 0.5"),
    (dict(estimator="k5"), "unknown estimator 'k5'"),
]


@pytest.mark.parametrize("bad, words", BAD_RATE_INPUTS, ids=[str(b) for b, _ in BAD_RATE_INPUTS])
def test_meta_lr_explorer_rejects_bad_input_naming_the_argument(rate_runs, bad, words):
    bad = dict(bad)
    runs = dict(rate_runs)
    last = runs[RATES[-1]]
    if "env_steps" in bad:
        runs[RATES[-1]] = last._replace(env_steps=bad.pop("env_steps"))
    if "n_seeds" in bad:
        runs[RATES[-1]] = fake_result(np.random.default_rng(0), n_seeds=bad.pop("n_seeds"))
    if bad.pop("negative", False):
        runs[RATES[-1]] = last._replace(hyper=last.hyper - 2.0)
    arguments = dict(runs=runs, labels=LABELS) | bad
    with pytest.raises(ValueError, match=words):
        widgets.MetaLearningRateExplorer(**arguments)


@pytest.mark.parametrize("meta_lr", [0.2, "0.1", True, None])
def test_meta_lr_set_rejects_a_rate_without_runs_and_keeps_the_view(rate_explorer, meta_lr):
    rate_explorer.set(meta_lr=0.001)
    with pytest.raises(ValueError, match="meta_lr must be one of"):
        rate_explorer.set(meta_lr=meta_lr)
    assert rate_explorer.slider.value == 0.001 and rate_explorer.plot_data["highlighted"] == [0.001]


# --------------------------------------------------------------------------------------------------
# Lesson 07's trial-decision explorer: the oracle is experiments.trial_decision on the stored runs

# (threshold, trial) reaching each outcome on lesson 07's runs: mix5, and none accepted (the
# rule never picks k5 or auto5 there: mix5's SNR wins every tie in K).
DECISION_SETTINGS = [(0.001, 2), (0.01, 4), (0.3, 16), (0.03, 3), (0.001, 1), (0.2, 2)]
CANDIDATES = ["k1", "k5", "mix5", "auto5", "fixed5"]  # lesson 07's runs, from the defaults


@pytest.fixture(scope="module")
def stored_results():
    return experiments.load_results(experiments.STORED_RESULTS)


@pytest.fixture(scope="module")
def candidate_results(stored_results):
    return stored_results.select(CANDIDATES)


@pytest.fixture
def decision_explorer(candidate_results):
    return widgets.TrialDecisionExplorer(candidate_results, threshold=0.01, trial=4)


def test_decision_explorer_shows_exactly_the_trial_decision(decision_explorer, candidate_results):
    stored_results = candidate_results
    chosen = set()
    for threshold, trial in DECISION_SETTINGS:
        decision_explorer.set(threshold=threshold, trial=trial)
        expected = experiments.trial_decision(stored_results, threshold, trial)
        assert decision_explorer.readout["decision"] == expected
        data = decision_explorer.plot_data
        assert data["span"] == (0.0, pytest.approx(stored_results.env_steps[trial - 1] / 1e3))
        assert data["threshold"] == threshold
        assert data["outlined"] == [expected.chosen or "fixed5"]  # none accepted: the control
        text = decision_explorer.readout_html.value
        assert f"{stored_results.env_steps[trial - 1]:,} steps per agent" in text
        assert (expected.chosen or "none, keep the hand-set values") in text
        chosen.add(expected.chosen)
    assert chosen == {"mix5", None}  # the settings reach every outcome


def test_decision_sliders_themselves_update_the_view(decision_explorer, candidate_results):
    decision_explorer.trial_slider.value = 2
    decision_explorer.threshold_slider.value = 0.001
    assert decision_explorer.plot_data["outlined"] == ["mix5"]
    assert decision_explorer.readout["decision"] == experiments.trial_decision(
        candidate_results, 0.001, 2
    )
    decision_explorer.threshold_slider.value = 0.2
    assert decision_explorer.plot_data["outlined"] == ["fixed5"]
    assert decision_explorer.plot_data["threshold"] == pytest.approx(0.2)


def test_decision_explorer_draws_each_runs_snr_and_final_return(
    decision_explorer, candidate_results
):
    stored_results = candidate_results
    data = decision_explorer.plot_data
    own = experiments.own_snr(stored_results)
    assert list(data["snr"]) == ["k1", "k5", "mix5", "auto5"]  # the control has no meta-gradient
    for name, curve in data["snr"].items():
        np.testing.assert_allclose(curve, own[name].mean(axis=0), rtol=1e-12)
    # Final return: the mean over the last quarter (4 of 16) of checkpoints, then over seeds.
    finals = np.nanmean(stored_results.episode_return[..., -4:], axis=-1).mean(axis=1)
    assert data["bars"] == pytest.approx(dict(zip(stored_results.estimators, finals, strict=True)))


def test_decision_moves_blit_without_compiling_redrawing_or_moving_axes(
    decision_explorer, compilations
):
    full_draws = []
    decision_explorer.figure.canvas.mpl_connect("draw_event", full_draws.append)
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in decision_explorer.figure.axes]
    image = bytes(decision_explorer._canvas.view.value)
    for threshold, trial in DECISION_SETTINGS:
        decision_explorer.set(threshold=threshold, trial=trial)
    decision_explorer.threshold_slider.value = 10**-0.5  # the slider's ends
    decision_explorer.trial_slider.value = 1
    assert full_draws == [] and compilations == []
    assert [(ax.get_xlim(), ax.get_ylim()) for ax in decision_explorer.figure.axes] == limits
    assert bytes(decision_explorer._canvas.view.value) != image


def only_fixed(results):
    """The stored results cut down to the hand-set control alone."""
    return results.select(["fixed5"])


BAD_THRESHOLD = "threshold must be a number from 0.001 to 0.3162"
BAD_TRIAL = "trial must be an integer from 1 to n_checkpoints=16"
BAD_DECISION_INPUTS = [
    (dict(threshold=0.0), BAD_THRESHOLD),
    (dict(threshold=0.5), BAD_THRESHOLD),
    (dict(threshold=float("nan")), BAD_THRESHOLD),
    (dict(threshold="0.01"), BAD_THRESHOLD),
    (dict(threshold=True), BAD_THRESHOLD),
    (dict(trial=0), BAD_TRIAL),
    (dict(trial=17), BAD_TRIAL),
    (dict(trial=2.0), BAD_TRIAL),
    (dict(trial=True), BAD_TRIAL),
]


@pytest.mark.parametrize(
    "bad, words", BAD_DECISION_INPUTS, ids=[str(b) for b, _ in BAD_DECISION_INPUTS]
)
def test_decision_explorer_rejects_bad_input_naming_the_argument(stored_results, bad, words):
    with pytest.raises(ValueError, match=words):
        widgets.TrialDecisionExplorer(stored_results, **bad)


@pytest.mark.parametrize(
    "bad, words", BAD_DECISION_INPUTS, ids=[str(b) for b, _ in BAD_DECISION_INPUTS]
)
def test_decision_set_rejects_bad_input_and_moves_nothing(decision_explorer, bad, words):
    decision_explorer.set(threshold=0.03, trial=5)
    with pytest.raises(ValueError, match=words):
        decision_explorer.set(**({"threshold": 0.001, "trial": 2} | bad))
    assert (
        decision_explorer.readout["threshold"] == 0.03 and decision_explorer.readout["trial"] == 5
    )
    assert (
        decision_explorer.threshold_slider.value == 0.03
        and decision_explorer.trial_slider.value == 5
    )


@pytest.mark.parametrize(
    "results, words",
    [("runs", "results must be an experiments.Results"), (None, "self-tuning estimator")],
)
def test_decision_explorer_needs_results_with_a_self_tuning_run(stored_results, results, words):
    with pytest.raises(ValueError, match=words):
        widgets.TrialDecisionExplorer(only_fixed(stored_results) if results is None else results)


# --------------------------------------------------------------------------------------------------
# Lesson 06's run chooser: the oracle is the stored runs' arrays, averaged here with NumPy


@pytest.fixture
def runs_explorer(stored_results):
    return widgets.RunsExplorer(stored_results, runs=("k1", "mix5"), band="std")


def test_runs_explorer_draws_each_chosen_runs_mean_and_band(runs_explorer, stored_results):
    panels = runs_explorer.plot_data["panels"]
    assert all(list(runs) == ["k1", "mix5"] for runs in panels.values())
    steps = stored_results.env_steps / 1e3
    for name in ("k1", "mix5"):
        e = stored_results.index(name)
        returns = stored_results.episode_return[e].astype(float)  # stored as float32
        drawn = panels["mean episode return"][name]
        mean, std = np.nanmean(returns, axis=0), np.nanstd(returns, axis=0, ddof=1)
        np.testing.assert_allclose(drawn["mean"], mean, rtol=1e-12)
        (band,) = drawn["band"]  # the chosen band only
        for step, middle, width in zip(steps, mean, std, strict=True):
            at_step = band[np.isclose(band[:, 0], step), 1]
            assert at_step.min() == pytest.approx(middle - width, rel=1e-9)
            assert at_step.max() == pytest.approx(middle + width, rel=1e-9)
        own = np.log10(stored_results.variance[e, :, :, e].astype(float)).mean(axis=0)
        np.testing.assert_allclose(panels["variance of own meta-gradient"][name]["mean"], own)
    runs_explorer.set(runs="fixed5")  # the control: no meta-gradient of its own to draw
    panels = runs_explorer.plot_data["panels"]
    assert list(panels["mean episode return"]) == ["fixed5"]
    assert panels["variance of own meta-gradient"] == {}


def test_runs_choices_blit_and_only_another_band_draws_in_full(
    runs_explorer, stored_results, compilations
):
    full_draws = []
    runs_explorer.figure.canvas.mpl_connect("draw_event", full_draws.append)
    limits = runs_explorer.plot_data["ylim"]
    image = bytes(runs_explorer._canvas.view.value)
    runs_explorer.run_list.value = ("k5",)
    runs_explorer.set(runs=stored_results.estimators)
    assert full_draws == [] and compilations == []
    assert runs_explorer.plot_data["ylim"] == limits
    assert bytes(runs_explorer._canvas.view.value) != image
    runs_explorer.band_dropdown.value = "minmax"
    assert len(full_draws) == 1
    # The new limits hold every run's range over seeds, chosen or not.
    low, high = runs_explorer.plot_data["ylim"][0]
    returns = stored_results.episode_return
    assert low <= np.nanmin(returns) and np.nanmax(returns) <= high
    assert runs_explorer.readout == {"runs": stored_results.estimators, "band": "minmax"}


def test_runs_list_emptied_in_the_notebook_keeps_the_picture_until_a_run_is_chosen(
    runs_explorer,
):
    before = copy.deepcopy(runs_explorer.plot_data)
    runs_explorer.run_list.value = ()
    assert "no run chosen" in runs_explorer.message
    assert "no run chosen" in runs_explorer.message_html.value
    assert runs_explorer.readout["runs"] == ("k1", "mix5")
    assert runs_explorer.plot_data["panels"].keys() == before["panels"].keys()
    for title, runs in runs_explorer.plot_data["panels"].items():
        assert list(runs) == list(before["panels"][title])
    runs_explorer.run_list.value = ("k5",)
    assert runs_explorer.message == "" and runs_explorer.readout["runs"] == ("k5",)


BAD_RUNS = "runs must list one or more of"


@pytest.mark.parametrize(
    "bad, words",
    [
        (dict(runs=()), BAD_RUNS),
        (dict(runs=("k1", "k7")), BAD_RUNS),
        (dict(runs="fixed"), BAD_RUNS),
        (dict(band="iqr"), "band must be one of"),
        (dict(runs=("k5",), band="iqr"), "band must be one of"),
    ],
)
def test_runs_set_rejects_bad_input_and_changes_nothing(runs_explorer, bad, words):
    with pytest.raises(ValueError, match=words):
        runs_explorer.set(**bad)
    assert runs_explorer.run_list.value == ("k1", "mix5")
    assert runs_explorer.band_dropdown.value == "std"
    assert runs_explorer.readout == {"runs": ("k1", "mix5"), "band": "std"}
    with pytest.raises(ValueError, match=words):
        widgets.RunsExplorer(runs_explorer.results, **bad)


def test_runs_explorer_needs_results():
    with pytest.raises(ValueError, match="results must be an experiments.Results"):
        widgets.RunsExplorer({"k1": None})
