"""The capstone experiment: a tiny run end to end, resumption, bad settings, and the stored data."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import experiments, metagrad, problems, self_tuning
from course_lib.experiments import ExperimentConfig
from course_lib.experiments import __main__ as main_module
from course_lib.experiments import run as run_module
from course_lib.experiments import sweep as sweep_module
from course_lib.experiments.results import SAVED

ROOT = Path(__file__).resolve().parents[1]
TINY = ExperimentConfig(
    estimators=("k2", "mix2", "fixed2"),
    n_seeds=2,
    n_checkpoints=2,
    rollouts_per_checkpoint=3,
    n_variance_samples=3,
    # time_limit 5: every board ends an episode within each chunk, so every return is defined.
    problem=dict(n_envs=2, rollout_len=3, time_limit=5, hidden=(8,)),
)


def host(leaf) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf, dtype=float)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    results = experiments.run_experiment(TINY, out, progress=False)
    return out, results


def test_every_logged_series_has_its_shape_and_is_finite(tiny_run):
    out, results = tiny_run
    n_est, n_seeds, n_ckpt, n_var, k_var = 3, 2, 2, 3, 2
    n_eta = len(results.meta_names)
    assert results.estimators == ("k2", "mix2", "fixed2") and n_eta == 3
    expected = {
        "env_steps": (n_ckpt,),
        "episode_return": (n_est, n_seeds, n_ckpt),
        "eta": (n_est, n_seeds, n_ckpt + 1, n_eta),
        "hyper": (n_est, n_seeds, n_ckpt + 1, n_eta),
        "samples": (n_est, n_seeds, n_ckpt, n_var, k_var, n_eta),
        "skipped": (n_est, n_seeds, n_ckpt),
        "weights": (n_est, n_seeds, n_ckpt, k_var),
        "variance": (n_est, n_seeds, n_ckpt, n_est),
        "snr": (n_est, n_seeds, n_ckpt, n_est),
    }
    for name, shape in expected.items():
        value = getattr(results, name)
        assert value.shape == shape, name
        # the fixed control has no meta-gradient of its own to measure: NaN there, finite elsewhere
        measured = value[..., :2] if name in ("variance", "snr") else value
        assert np.all(np.isfinite(measured)), name
    assert np.all(np.isnan(results.variance[..., 2])) and np.all(np.isnan(results.snr[..., 2]))
    assert np.all(np.isfinite(results.episode_return)) and np.all(results.episode_return >= 0)
    # 3 rollouts of 3 steps on 2 boards per checkpoint, outer rollouts included
    np.testing.assert_array_equal(results.env_steps, [18, 36])
    assert experiments.steps_per_rollout(results) == 6
    assert np.all(results.variance[..., :2] > 0) and np.all(results.skipped == 0)
    # η moved except in the control, and the hyper-parameters are what η maps to
    assert np.all(results.eta[:2, :, -1] != results.eta[:2, :, 0])
    np.testing.assert_array_equal(results.eta[2], np.broadcast_to(results.eta[2, :, :1], (2, 3, 3)))
    np.testing.assert_allclose(
        results.hyper[..., 0], 1 / (1 + np.exp(-results.eta[..., 0])), rtol=1e-5
    )
    np.testing.assert_allclose(results.hyper[..., 2], np.exp(results.eta[..., 2]), rtol=1e-5)
    # the file holds the same numbers and the settings that produced them
    loaded = experiments.load_results(out)
    assert loaded.config == TINY
    for name in expected:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(results, name))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["settings"]["estimators"] == list(TINY.estimators)
    assert sidecar["compute_seconds"] > 0
    assert not experiments.partial_path(out).exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.json", "tiny.npz"]


def test_the_sidecar_records_the_machine_and_jax_build_and_no_absolute_path(tiny_run):
    out, _ = tiny_run
    text = out.with_suffix(".json").read_text()
    sidecar = json.loads(text)
    assert sidecar["command"] is None  # started from Python: the settings say all
    machine = sidecar["machine"]
    for key in ("cpu_model", "cpu_flags", "cpu_count", "jax", "jaxlib", "backend", "devices"):
        assert key in machine, key
    assert machine["jax"] == jax.__version__ and machine["backend"] == jax.default_backend()
    assert isinstance(machine["cpu_model"], str) and machine["cpu_model"]
    if Path("/proc/cpuinfo").exists() and machine["cpu_flags"] is not None:
        assert set(machine["cpu_flags"]) == {"avx", "avx2", "avx512f", "fma"}
    assert str(ROOT) not in text and str(out.parent) not in text


def test_the_command_line_records_a_command_relative_to_the_repository(monkeypatch, tmp_path):
    recorded = {}
    monkeypatch.setattr(
        main_module, "run_experiment", lambda *args, **kwargs: recorded.update(kwargs)
    )
    monkeypatch.chdir(tmp_path)  # --out is resolved from the folder the command runs in
    out = ROOT / "results" / "x.npz"
    main_module.main(["snake", "--quick", "--seeds", "3", "--out", str(out), "--overwrite"])
    assert "--estimators" not in recorded["command"]  # the default: the config's estimators
    main_module.main(
        ["snake", "--quick", "--estimators", "k1,k5x5", "--seeds", "3", "--out", str(out)]
        + ["--overwrite"]
    )
    assert recorded["command"] == [
        "python",
        "-m",
        "course_lib.experiments",
        "snake",
        "--estimators",
        "k1,k5x5",
        "--seeds",
        "3",
        "--out",
        "results/x.npz",
        "--quick",
        "--overwrite",
    ]


def test_the_stored_sidecar_names_no_folder_of_the_machine_that_made_it():
    text = experiments.STORED_RESULTS.with_suffix(".json").read_text()
    sidecar = json.loads(text)
    assert sidecar["command"].startswith("python -m course_lib.experiments snake ")
    assert "--out results/snake_full.npz" in sidecar["command"]
    assert not re.search(r'"/|[A-Z]:\\\\', text), "an absolute path in the sidecar"


@pytest.mark.parametrize("module", ["course_lib.experiments", "course_lib.experiments.analysis"])
def test_reading_results_imports_no_environment(module):
    """Widgets and grading read results through the analysis: no jumanji, no engine."""
    code = (
        f"import sys, {module}; from course_lib import experiments; "
        "experiments.headline(experiments.load_results(experiments.STORED_RESULTS)); "
        "assert 'jumanji' not in sys.modules, 'jumanji'; "
        "assert 'course_lib.metagrad' not in sys.modules, 'metagrad'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_variance_and_snr_are_measured_from_the_samples_as_numpy_says(tiny_run):
    _, results = tiny_run
    samples = results.samples.astype(np.float64)  # [E, S, C, n, k, eta]
    mix = np.array([2 / 3, 1 / 3])  # geometric weights, λ_mix = 0.5, K = 2
    for f, estimator in enumerate(results.estimators[:2]):
        g = samples[..., 1, :] if estimator == "k2" else np.einsum("k,...ke->...e", mix, samples)
        variance = g.var(axis=-2, ddof=1).sum(-1)
        snr = (g.mean(axis=-2) ** 2).sum(-1) / variance
        np.testing.assert_allclose(results.variance[..., f], variance, rtol=1e-6)
        np.testing.assert_allclose(results.snr[..., f], snr, rtol=1e-6)


def interrupt_after(n_saves, config, out, monkeypatch):
    """Run ``config`` into ``out`` and interrupt it just after its ``n_saves``-th partial save."""
    save = run_module.save_partial
    calls = []

    def save_then_interrupt(*args):
        save(*args)
        calls.append(1)
        if len(calls) == n_saves:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(run_module, "save_partial", save_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            experiments.run_experiment(config, out, progress=False)
    assert experiments.partial_path(out).exists() and not out.exists()


def assert_same_numbers(got, want):
    for name in SAVED + ("variance", "snr"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), name)


def test_an_interrupted_run_resumes_to_the_same_numbers(tiny_run, tmp_path, monkeypatch):
    _, uninterrupted = tiny_run
    out = tmp_path / "resumed.npz"
    interrupt_after(2, TINY, out, monkeypatch)  # between checkpoints
    resumed = experiments.run_experiment(TINY, out, progress=False)
    assert_same_numbers(resumed, uninterrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resumed.json", "resumed.npz"]


# Two groups of K (k1, k2): each checkpoint is a chunk of K = 1, a chunk of K = 2, then measuring.
TWO_GROUPS = dataclasses.replace(TINY, estimators=("k1", "k2"))


@pytest.fixture(scope="module")
def two_groups_run():
    return experiments.run_experiment(TWO_GROUPS, progress=False)


@pytest.mark.parametrize(
    "n_saves, overwrite",
    [(1, False), (2, True)],
    ids=["between the two groups", "between a group and its measuring step, --overwrite"],
)
def test_an_interrupt_inside_a_checkpoint_resumes_over_leftover_temporaries(
    two_groups_run, tmp_path, monkeypatch, n_saves, overwrite
):
    out = tmp_path / "r.npz"
    interrupt_after(n_saves, TWO_GROUPS, out, monkeypatch)
    # what an interrupted write leaves: half a temporary file beside the partial and the results
    for path in (experiments.partial_path(out), out):
        path.with_name(path.name + ".tmp").write_bytes(b"half a file")
    if overwrite:  # results of an earlier run: --overwrite replaces them, resuming the partial
        out.write_bytes(b"earlier results")
    resumed = experiments.run_experiment(TWO_GROUPS, out, overwrite=overwrite, progress=False)
    assert_same_numbers(resumed, two_groups_run)
    assert_same_numbers(experiments.load_results(out), two_groups_run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.npz"]


def _corrupt(kind: str, partial: Path) -> None:
    """Turn the partial file of an interrupted TINY run into one that cannot be resumed."""
    if kind == "garbage":
        partial.write_bytes(b"not an npz file")
    elif kind == "truncated":
        partial.write_bytes(partial.read_bytes()[: partial.stat().st_size // 2])
    elif kind == "one array":
        with open(partial, "wb") as f:
            np.save(f, np.zeros(3))
    else:  # "other code": the same settings, a logged series of another shape
        with np.load(partial) as data:
            arrays = dict(data)
        arrays["log_eta"] = arrays["log_eta"][..., :1]
        with open(partial, "wb") as f:
            np.savez(f, **arrays)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "one array", "other code"])
def test_a_partial_file_that_cannot_be_resumed_fails_clearly_unless_overwrite(
    tiny_run, tmp_path, monkeypatch, kind
):
    _, uninterrupted = tiny_run
    out = tmp_path / "r.npz"
    partial = experiments.partial_path(out)
    interrupt_after(1, TINY, out, monkeypatch)
    _corrupt(kind, partial)
    content = partial.read_bytes()
    with pytest.raises(ValueError, match=r"cannot be resumed .*pass --overwrite"):
        experiments.run_experiment(TINY, out, progress=False)
    assert partial.read_bytes() == content and not out.exists()
    # --overwrite starts afresh and replaces it
    assert_same_numbers(
        experiments.run_experiment(TINY, out, overwrite=True, progress=False), uninterrupted
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.npz"]


def test_a_partial_run_with_other_settings_is_kept_unless_overwrite(
    tiny_run, tmp_path, monkeypatch
):
    _, uninterrupted = tiny_run
    out = tmp_path / "r.npz"
    interrupt_after(1, dataclasses.replace(TINY, mix_lambda=0.25), out, monkeypatch)
    content = experiments.partial_path(out).read_bytes()
    with pytest.raises(ValueError, match="partial run with other settings"):
        experiments.run_experiment(TINY, out, progress=False)
    assert experiments.partial_path(out).read_bytes() == content and not out.exists()
    resumed = experiments.run_experiment(TINY, out, overwrite=True, progress=False)
    assert_same_numbers(resumed, uninterrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.npz"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--estimators", "k2,foo"], "unknown estimator 'foo'"),
        (["--estimators", "k0"], "K must be >= 1, got 0"),
        (["--estimators", "k2,k2"], "must not repeat"),
        (["--seeds", "0"], r"n_seeds \(--seeds\) must be an integer >= 1, got 0"),
        (["--mix-lambda", "1.5"], r"mix_lambda must be in \[0, 1\]"),
    ],
)
def test_bad_settings_fail_clearly_and_write_nothing(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["snake", "--quick", "--out", str(tmp_path / "r.npz"), *args])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_kept_unless_overwrite_is_given(tmp_path, capsys):
    out = tmp_path / "r.npz"
    out.write_bytes(b"earlier results")
    with pytest.raises(SystemExit):
        experiments.main(["snake", "--quick", "--out", str(out)])
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"earlier results" and sorted(tmp_path.iterdir()) == [out]


def test_the_block_gives_the_engines_meta_gradients_from_any_state():
    """``meta_gradient_block`` from a state that is not the problem's initial one equals
    ``metagrad.k_step_meta_gradients`` on the problem restarted there, and it ends where k inner
    updates and one outer rollout (the engine's keys: fold_in(key, j)) take that state."""
    problem = problems.make_problem("snake", **TINY.problem)
    key, eta, k = jax.random.PRNGKey(3), problem.eta0 + 0.1, 2
    sample = jax.jit(problem.sample)
    update = jax.jit(problem.inner_update)
    # somewhere else: other weights, boards moved on
    _, state = sample(problem.init_state, jax.random.PRNGKey(9))
    state = state._replace(params=jax.tree_util.tree_map(lambda w: 1.5 * w + 0.01, state.params))
    block = jax.jit(experiments.meta_gradient_block, static_argnums=(0, 4))
    per_step, final, totals = block(problem, state, eta, key, k)
    engine = metagrad.k_step_meta_gradients(
        dataclasses.replace(problem, init_state=state), eta, key, k
    )
    np.testing.assert_allclose(per_step, engine, rtol=1e-4, atol=1e-4 * np.abs(engine).max())
    batch, s = sample(state, jax.random.fold_in(key, 0))
    finished = [batch.finished_returns.sum(), batch.dones.sum()]
    for j in range(1, k + 1):
        batch, s = sample(update(s, batch, eta), jax.random.fold_in(key, j))
        finished = [finished[0] + batch.finished_returns.sum(), finished[1] + batch.dones.sum()]
    for got, want in zip(
        jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(s), strict=True
    ):
        np.testing.assert_allclose(host(got), host(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(totals, finished, rtol=1e-6)


def test_meta_learning_rates_share_one_compiled_chunk_and_each_sets_its_own_step():
    """Adam's first step moves each component of η by about the learning rate (|g| >> Adam's
    eps), so one meta-update per run shows which rate a run used. A second rate compiles nothing.
    Both rates as rows of one chunk (``run_experiments``: 2 rates x 1 seed are the 2 rows of a
    2-seed run) compile no chunk or sampler either, and give the separate runs' seed 0 up to float
    rounding."""
    compiled = []

    def on_event(event, _duration, fun_name="", **_kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(fun_name)

    one_update = dataclasses.replace(TINY, estimators=("k2",), n_checkpoints=1)
    rates = (0.01, 0.1)
    configs = [dataclasses.replace(one_update, meta_learning_rate=rate) for rate in rates]
    alone = [experiments.run_experiment(configs[0], progress=False)]
    one_seed = [dataclasses.replace(config, n_seeds=1) for config in configs]
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        alone.append(experiments.run_experiment(configs[1], progress=False))
        assert compiled == []
        together = experiments.run_experiments(one_seed, progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    # Only the eager post-processing of a result with fewer rows compiles (hyper-parameters).
    assert not {"jit(chunk)", "jit(sample)"} & set(compiled), compiled
    for rate, separate, joint, config in zip(rates, alone, together, one_seed, strict=True):
        eta = separate.eta[0]  # [seed, checkpoint, η]
        np.testing.assert_allclose(np.abs(eta[:, 1] - eta[:, 0]).max(axis=-1), rate, rtol=1e-2)
        assert joint.config == config
        for name in ("eta", "episode_return", "samples"):
            np.testing.assert_allclose(
                getattr(joint, name), getattr(separate, name)[:, :1], rtol=1e-5, atol=1e-6
            )


def test_runs_together_must_differ_only_in_their_meta_optimiser():
    with pytest.raises(ValueError, match="differ only in meta_learning_rate and meta_clip"):
        experiments.run_experiments([TINY, dataclasses.replace(TINY, n_seeds=3)])
    with pytest.raises(ValueError, match="at least one"):
        experiments.run_experiments([])


def test_without_variance_samples_nothing_is_measured_or_compiled(monkeypatch):
    def no_sampler(*_args):
        raise AssertionError("a run without variance samples built the sampler")

    monkeypatch.setattr(run_module, "make_sampler", no_sampler)
    config = dataclasses.replace(TINY, estimators=("k2",), n_checkpoints=1, n_variance_samples=0)
    results = experiments.run_experiment(config, progress=False)
    assert results.samples.shape == (1, 2, 1, 0, 2, 3)
    assert np.all(np.isnan(results.variance)) and np.all(np.isnan(results.snr))
    assert np.all(np.isfinite(results.eta))
    with pytest.raises(ValueError, match=r"n_variance_samples must be 0 \(no variance"):
        experiments.make_plan(dataclasses.replace(config, n_variance_samples=1))


def test_variance_ratio_is_the_geometric_mean_of_paired_ratios():
    a = np.array([[1.0, 8.0], [2.0, np.nan]])
    b = np.array([[2.0, 1.0], [1.0, 5.0]])
    # pairs (1, 2), (8, 1), (2, 1): ratios 1/2, 8, 2 -> (1/2 · 8 · 2)^(1/3) = 2; NaN pair skipped
    assert experiments.variance_ratio(a, b) == pytest.approx(2.0)
    assert experiments.variance_ratio(b, a) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no finite positive entries"):
        experiments.variance_ratio([np.nan], [1.0])


def test_debiased_snr_removes_the_noise_floor_of_pure_noise():
    rng = np.random.default_rng(0)
    n = 24  # replicas per checkpoint in the stored run
    noise = rng.normal(size=(n, 20_000, 3))  # 20,000 sets of n zero-mean samples
    plain = ((noise.mean(0) ** 2).sum(-1) / noise.var(0, ddof=1).sum(-1)).mean()
    assert plain == pytest.approx(1 / n, rel=0.05)  # pure noise looks like SNR ≈ 1/n
    assert abs(experiments.debiased_snr(noise).mean()) < 0.1 / n
    shifted = noise + np.array([1.0, 0.0, 0.0])  # true SNR = 1 / 3
    assert experiments.debiased_snr(shifted).mean() == pytest.approx(1 / 3, rel=0.05)


@pytest.mark.parametrize(
    "snr, ks, threshold, chosen",
    [
        ([0.1, 0.02, 0.05], [1, 5, 5], 0.03, 2),  # k5 fails, mix5 (K = 5) beats k1 (K = 1)
        ([0.1, 0.06, 0.05], [1, 5, 5], 0.03, 1),  # equal K: the higher SNR
        ([0.1, 0.02, 0.01], [1, 5, 5], 0.03, 0),  # only the one-step estimator is stable
        ([0.01, 0.02, np.nan], [1, 5, 5], 0.03, -1),  # none: keep the hand-set values
    ],
)
def test_choose_estimator_scales_the_most_far_sighted_stable_one(snr, ks, threshold, chosen):
    assert experiments.choose_estimator(snr, ks, threshold) == chosen


def test_trial_decision_reads_the_trial_and_reports_every_outcome(tiny_run):
    _, results = tiny_run
    decision = experiments.trial_decision(results, snr_threshold=-np.inf, trial_checkpoints=1)
    assert set(decision.trial_snr) == {"k2", "mix2"} and decision.trial_env_steps == 18
    assert decision.accepted == ("k2", "mix2") and decision.chosen in ("k2", "mix2")
    assert set(decision.final_return) == {"k2", "mix2", "fixed2"}
    assert experiments.trial_decision(results, np.inf, 2).chosen is None
    with pytest.raises(ValueError, match="trial_checkpoints must be in 1..2"):
        experiments.trial_decision(results, 0.1, 3)


def test_the_stored_full_run_supports_what_lesson_06_states():
    """Recompute lesson 06's claims from the raw arrays of ``results/snake_full.npz`` with plain
    numpy, check them, and check that ``experiments.headline`` (what the lesson prints) agrees."""
    path = ROOT / "results" / "snake_full.npz"
    with np.load(path, allow_pickle=False) as data:
        settings = json.loads(str(data["settings"]))
        samples = data["samples"].astype(np.float64)  # [E, S, C, n, k, eta]
        episode_return = data["episode_return"].astype(np.float64)  # [E, S, C]
    names, k = settings["estimators"], 5

    def trace_variance(g):  # g: [..., n, eta] -> [...]
        return g.var(axis=-2, ddof=1).sum(-1)

    var_k = trace_variance(np.moveaxis(samples, 4, 3))  # [E, S, C, k]: every g_k on every state
    weights = settings["mix_lambda"] ** np.arange(k)
    var_mix = trace_variance(np.einsum("k,rscnke->rscne", weights / weights.sum(), samples))
    log_var_k = np.log(var_k).reshape(-1, var_k.shape[-1]).mean(0)
    growth = np.exp(log_var_k[k - 1] - log_var_k[0])
    cut = np.exp(np.mean(np.log(var_k[..., k - 1]) - np.log(var_mix)))
    n_last = round(0.25 * episode_return.shape[-1])
    finals = episode_return[..., -n_last:].mean(-1)  # [E, S]

    def paired(a, b):  # 90% Student-t interval of the paired differences, by hand
        d = finals[names.index(b)] - finals[names.index(a)]
        half = 1.894579 * d.std(ddof=1) / np.sqrt(d.size)  # t_{0.95}, 7 degrees of freedom
        return d.mean() - half, d.mean() + half

    assert settings["n_seeds"] == 8 and finals.shape[1] == 8
    # §7 of the lesson: variance grows with K, at every step of K
    assert growth > 3 and np.all(np.diff(log_var_k) > 0), (growth, log_var_k)
    # mixing cuts it, by more than the paper's 3x overall and at every checkpoint
    assert cut > 3, cut
    per_checkpoint = np.exp(np.mean(np.log(var_k[..., k - 1]) - np.log(var_mix), axis=(0, 1)))
    assert np.all(per_checkpoint > 1), per_checkpoint
    # returns: the K = 5 runs within the noise of one another and of the fixed control (t
    # intervals hold 0); the sweep's best setting well above; k1 and k5x5 well below
    for a, b in [("k5", "mix5"), ("fixed5", "k5"), ("fixed5", "mix5"), ("fixed5", "auto5")]:
        low, high = paired(a, b)
        assert low < 0 < high, (a, b, low, high)
    for a, b in [("fixed5", "fixed5@swept"), ("k1", "fixed5"), ("k5x5", "k5")]:
        assert paired(a, b)[0] > 0.5, (a, b)
    # from the poor start, the best tuner gets back a small part of what the sweep gains
    gain, sweep_gain = paired("fixed5@poor", "mix5@poor"), paired("fixed5@poor", "fixed5@swept")
    assert gain[1] < sweep_gain[0] / 3, (gain, sweep_gain)  # under a third, at both ends

    results = experiments.load_results(path)
    head = experiments.headline(results)
    assert head.k == k
    assert head.variance_growth == pytest.approx(growth, rel=1e-6)
    assert head.mixing_cut == pytest.approx(cut, rel=1e-6)
    for a, b in [("k5", "mix5"), ("fixed5@poor", "mix5@poor")]:
        t = experiments.student_interval(
            experiments.final_returns(results)[results.index(b)]
            - experiments.final_returns(results)[results.index(a)]
        )
        assert (t.low, t.high) == pytest.approx(paired(a, b), abs=1e-5)  # returns are float32
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["settings"] == settings and sidecar["compute_seconds"] > 0


# --------------------------------------------------------------------------------------------------
# The controls: estimators on several outer batches, named starts, honest step counts


@pytest.mark.parametrize(
    "name, k, kind, outer_batches, start",
    [("k5", 5, "k", 1, None), ("k5x5", 5, "k", 5, None), ("mix5@poor", 5, "mix", 1, "poor")],
)
def test_estimator_names_carry_outer_batches_and_a_start(name, k, kind, outer_batches, start):
    estimator = experiments.parse_estimator(name)
    assert estimator == (name, k, kind, outer_batches, start)
    assert estimator.rollouts_per_block == k + outer_batches
    assert estimator.measured == (outer_batches == 1)


@pytest.mark.parametrize(
    "name, message",
    [("mix5x5", "only a K-step estimator"), ("k5x0", "M must be >= 1"), ("k5@", "unknown")],
)
def test_bad_suffixes_fail_clearly(name, message):
    with pytest.raises(ValueError, match=message):
        experiments.parse_estimator(name)


def test_a_start_must_be_defined_and_set_known_hyper_parameters():
    with pytest.raises(ValueError, match="names the start 'poor', which starts does not define"):
        experiments.make_plan(dataclasses.replace(TINY, estimators=("k2@poor",)))
    with pytest.raises(ValueError, match="start 'poor' must set some of"):
        experiments.make_plan(
            dataclasses.replace(TINY, estimators=("k2@poor",), starts={"poor": {"alpha": 1}})
        )


CONTROLS = dataclasses.replace(
    TINY,
    estimators=("k2", "k2x2", "fixed2@poor", "k2@poor"),
    starts={"poor": {"gamma": 0.8}},
)


def test_controls_start_where_told_share_compiled_chunks_and_count_every_rollout():
    plan = experiments.make_plan(CONTROLS)
    # one chunk for K = 2 (k2, fixed2@poor, k2@poor, every seed), one for K = 2 on 2 outer batches
    assert plan.groups == ((2, 1, (0, 2, 3)), (2, 2, (1,)))
    results = experiments.run_experiment(CONTROLS, progress=False)
    gamma = results.hyper[..., 0]  # [E, S, C + 1]
    np.testing.assert_allclose(gamma[:2, :, 0], 0.95, rtol=1e-6)
    np.testing.assert_allclose(gamma[2:, :, 0], 0.8, rtol=1e-6)
    np.testing.assert_allclose(gamma[2], 0.8, rtol=1e-6)  # the fixed control never moves
    assert np.all(gamma[3, :, -1] != gamma[3, :, 0])
    # blocks of 3 (k2) and 4 (k2x2) rollouts: 3 rollouts per checkpoint round up to 12, 6 steps each
    np.testing.assert_array_equal(results.env_steps, [72, 144])
    # the samples (one outer batch per block) do not measure k2x2's own meta-gradient
    assert np.all(np.isnan(results.variance[..., 1])) and np.all(results.variance[..., 0] > 0)
    assert set(experiments.own_snr(results)) == {"k2", "k2@poor"}
    assert np.all(np.isfinite(results.episode_return))


def test_outer_batches_score_the_last_meta_gradient_on_more_rollouts_of_the_same_agent():
    problem = problems.make_problem("snake", **TINY.problem)
    key, eta, k, m = jax.random.PRNGKey(3), problem.eta0 + 0.1, 2, 3
    dones = lambda batch: batch.dones.sum()
    pass_ = jax.jit(metagrad.meta_gradient_pass, static_argnums=(0, 4, 5, 6))
    one, _, _ = pass_(problem, None, eta, key, k, dones, 1)
    several, _, counted = pass_(problem, None, eta, key, k, dones, m)
    np.testing.assert_array_equal(several[:-1], one[:-1])
    assert counted.shape == (k + m,)  # every rollout of the block is summarised (and counted)

    def mean_outer_loss(eta):  # reverse mode through the same keys: τ_0..τ_k, then m − 1 more
        batch, state = problem.sample(problem.init_state, jax.random.fold_in(key, 0))
        for j in range(1, k + 1):
            state = problem.inner_update(state, batch, eta)
            batch, state = problem.sample(state, jax.random.fold_in(key, j))
        losses = [problem.outer_loss(state, batch)]
        for j in range(1, m):
            batch, state = problem.sample(state, jax.random.fold_in(key, k + j))
            losses.append(problem.outer_loss(state, batch))
        return jnp.mean(jnp.stack(losses))

    want = jax.jit(jax.grad(mean_outer_loss))(eta)
    np.testing.assert_allclose(several[-1], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert not np.allclose(several[-1], one[-1])


def test_full_config_asks_the_capstone_question_with_the_sweeps_best_setting():
    config = experiments.full_config()
    assert config.n_seeds >= 8
    controls = {"fixed5@swept", "fixed5@poor", "k1@poor", "k5@poor", "mix5@poor", "k5x5"}
    assert controls | {"auto5"} <= set(config.estimators)
    assert config.starts["swept"] == sweep_module.load_sweep().best_setting()
    assert config.starts["poor"] == {"gamma": 0.8}
    # k5x5 uses as many outer batches per meta-update as mix5 mixes meta-gradients
    assert experiments.parse_estimator("k5x5").outer_batches == 5


# --------------------------------------------------------------------------------------------------
# Lesson 02's sweep, stored


def test_the_stored_sweep_has_a_sidecar_and_round_trips(tmp_path):
    stored = sweep_module.load_sweep()
    assert stored.returns.shape == (12, 2, 1000) and stored.config == sweep_module.SweepConfig()
    assert stored.settings == tuple(sweep_module.sweep_settings())
    assert stored.env_steps == 12 * 2 * 1000 * 64 * 10
    text = sweep_module.STORED_SWEEP.with_suffix(".json").read_text()
    sidecar = json.loads(text)
    assert (
        sidecar["command"].startswith("python -m course_lib.experiments sweep --out ")
    ) and "results/a2c_sweep.npz" in sidecar["command"]
    assert sidecar["machine"]["jax"] and sidecar["compute_seconds"] > 0
    assert not re.search(r'"/|[A-Z]:\\\\', text), "an absolute path in the sidecar"
    out = tmp_path / "s.npz"
    sweep_module.save_sweep(stored, out, 1.0)
    again = sweep_module.load_sweep(out)
    assert again.config == stored.config and again.settings == stored.settings
    np.testing.assert_array_equal(again.returns, stored.returns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.npz"]


def test_best_setting_takes_each_hyper_parameters_best_value():
    config = sweep_module.SweepConfig(n_updates=10)
    settings = (("gamma", 0.9), ("gamma", 0.99), ("lam", 0.5), ("lam", 1.0))
    returns = np.zeros((4, 2, 10), np.float32)
    returns[:, :, -1] = [[1, 1], [2, 4], [5, 5], [3, 3]]
    best = sweep_module.Sweep(config, settings, returns).best_setting()
    assert best == {"gamma": 0.99, "lam": 0.5}


def test_final_returns_of_a_shorter_run_read_its_last_tenth_and_skip_updates_without_an_episode():
    returns = np.arange(2 * 1 * 40, dtype=np.float32).reshape(2, 1, 40)
    returns[0, 0, 19] = np.nan  # no episode ended in that update
    stored = sweep_module.Sweep(
        sweep_module.SweepConfig(n_updates=40), (("gamma", 0.9),) * 2, returns
    )
    # a run of the first 20 updates: its final return is the mean of updates 18 and 19
    np.testing.assert_allclose(stored.final_returns(n_updates=20)[:, 0], [18.0, 40 + 18.5])
    np.testing.assert_allclose(stored.final_returns()[:, 0], [37.5, 40 + 37.5])  # updates 36..39
    np.testing.assert_array_equal(
        sweep_module.final_mean(returns[:, :, :20]), stored.final_returns(n_updates=20)
    )


# --------------------------------------------------------------------------------------------------
# Statistics over seeds, on synthetic results with known answers


def synthetic_results(samples, episode_return, estimators=("k1", "k2", "mix2")):
    """``Results`` from given samples [E, S, C, n, 2, 3] and returns [E, S, C]."""
    e, s, c = episode_return.shape
    config = dataclasses.replace(TINY, estimators=estimators, n_seeds=s, n_checkpoints=c)
    saved = dict(
        env_steps=np.arange(1, c + 1) * 100,
        episode_return=episode_return,
        eta=np.zeros((e, s, c + 1, 3)),
        hyper=np.zeros((e, s, c + 1, 3)),
        samples=samples,
        skipped=np.zeros((e, s, c), np.int32),
        weights=np.stack(
            [
                np.broadcast_to(experiments.parse_estimator(name).weights(2, 0.5), (s, c, 2))
                for name in estimators
            ]
        ),
    )
    return experiments.results.with_measurements(config, saved, ("a", "b", "c"))


@pytest.fixture(scope="module")
def synthetic():
    """g_2 = 2 g_1 on every replica, g_1 ~ N((1, 0, 0), I): Var(k2) = 4 Var(k1), equal SNR; the
    return of mix2 is that of k1 plus 1 on every seed."""
    rng = np.random.default_rng(0)
    g1 = rng.normal(size=(3, 10, 4, 400, 3)) + np.array([1.0, 0.0, 0.0])
    samples = np.stack([g1, 2 * g1], axis=-2)  # [E, S, C, n, k, eta]
    returns = rng.normal(size=(3, 10, 4))
    returns[2] = returns[0] + 1.0
    return synthetic_results(samples, returns)


def test_paired_return_gaps_and_measure_ratios_give_the_known_answers(synthetic):
    gap = experiments.return_gap(synthetic, "k1", "mix2")
    assert gap[:3] == pytest.approx((1.0, 1.0, 1.0)) and gap.excludes(0.0)
    ratio = experiments.measure_ratio(synthetic, "variance", "k2", "k1")
    assert ratio[:3] == pytest.approx((4.0, 4.0, 4.0))
    assert experiments.measure_ratio(synthetic, "snr", "k2", "k1")[:3] == pytest.approx((1, 1, 1))
    with pytest.raises(ValueError, match="measure must be"):
        experiments.measure_ratio(synthetic, "bias", "k2", "k1")


def test_snr_over_training_finds_the_true_snr_within_its_interval(synthetic):
    curve = experiments.snr_over_training(synthetic, "k1", level=0.99)
    assert curve.per_seed.shape == (10, 4) and curve.mean.shape == (4,)
    assert np.all(curve.low <= curve.mean) and np.all(curve.mean <= curve.high)
    # true SNR ‖(1, 0, 0)‖² / tr I = 1/3, the same at every checkpoint
    assert np.all((curve.low < 1 / 3) & (1 / 3 < curve.high)), curve
    np.testing.assert_array_equal(curve.env_steps, [100, 200, 300, 400])


def test_seed_intervals_cover_the_true_mean_about_as_often_as_their_level():
    rng = np.random.default_rng(1)
    covered = [
        not experiments.seed_interval(rng.normal(size=30), 0.9, n_boot=400, seed=i).excludes(0.0)
        for i in range(200)
    ]
    assert 0.8 < np.mean(covered) < 0.97


def test_scale_free_measures_against_the_longest_horizon():
    """g_1 = −g_2 on every replica: k2 points along the target, k1 against it."""
    rng = np.random.default_rng(2)
    g2 = rng.normal(size=(2, 3, 2, 200, 3)) * 0.1 + np.array([1.0, 0.0, 0.0])
    samples = np.stack([-g2, g2], axis=-2)
    results = synthetic_results(samples, np.zeros((2, 3, 2)), estimators=("k1", "k2"))
    measures = experiments.scale_free_measures(results)
    np.testing.assert_allclose(measures.cosine[..., 1], 1.0)
    np.testing.assert_allclose(measures.cosine[..., 0], -1.0)
    np.testing.assert_array_equal(measures.right_direction[..., 0], 0.0)
    np.testing.assert_array_equal(measures.right_direction[..., 1], 1.0)
    np.testing.assert_allclose(measures.scale_free_mse[..., 0], 1.0)  # never reversed: stay put
    assert np.all(measures.scale_free_mse[..., 1] < 0.05)


def test_agreement_accepts_the_same_run_and_flags_a_shifted_one(synthetic):
    assert all(check.ok for check in experiments.agreement(synthetic, synthetic))
    shifted = synthetic._replace(episode_return=synthetic.episode_return + 5.0)
    flagged = [c.measure for c in experiments.agreement(synthetic, shifted) if not c.ok]
    assert len(flagged) == 3 * 4 and all(m.startswith("episode return") for m in flagged)
    with pytest.raises(ValueError, match="settings but n_checkpoints, n_seeds and estimators"):
        experiments.agreement(
            synthetic, synthetic._replace(config=dataclasses.replace(synthetic.config, seed=1))
        )
    # a prefix: two of the estimators, the first 2 checkpoints, 5 of the 10 seeds
    prefix = synthetic_results(
        synthetic.samples[[0, 2], :5, :2], synthetic.episode_return[[0, 2], :5, :2], ("k1", "mix2")
    )
    checks = experiments.agreement(synthetic, prefix)
    assert len(checks) == 2 * 3 * 2 and all(check.ok for check in checks)
    assert all(check.low == check.high == 0.0 for check in checks)  # the same numbers: d = 0


def test_a_regenerated_first_checkpoint_agrees_with_the_stored_run():
    """Regenerate the stored run's first checkpoint with its own settings on this machine and
    compare it with the stored numbers seed by seed, within intervals (``agreement``): identical
    numbers are promised only on the machine and JAX build that made them (results/*.json).
    A prefix of the stored run: its first checkpoint, for k5, mix5, auto5 and fixed5 (one compiled
    chunk: they share K) and the first 4 seeds (an estimator's runs do not depend on which others
    run beside it), so the test costs the same whatever the full run holds."""
    stored = experiments.load_results(experiments.STORED_RESULTS)
    estimators = ("k5", "mix5", "auto5", "fixed5")
    config = dataclasses.replace(
        stored.config, n_checkpoints=1, n_seeds=min(4, stored.config.n_seeds), estimators=estimators
    )
    regenerated = experiments.run_experiment(config, progress=False)
    checks = experiments.agreement(stored, regenerated)
    assert len(checks) == 4 + 3 * 2  # a return for each estimator; variance and SNR if measured
    assert all(check.ok for check in checks), [check for check in checks if not check.ok]


def test_recovery_measures_the_share_of_the_sweeps_gain_a_tuner_gets_back():
    """Poor start 2, sweep's best 6, the tuner 5 (± seed noise shared by all three): it recovers
    3 of the 4 the sweep gains, 1 short of it."""
    rng = np.random.default_rng(3)
    seeds = rng.normal(size=(1, 12, 4)) * 0.5
    returns = np.array([2.0, 5.0, 6.0])[:, None, None] + seeds  # [E, S, C]
    names = ("fixed2@poor", "k2@poor", "fixed2@swept")
    results = synthetic_results(np.ones((3, 12, 4, 2, 2, 3)), returns, estimators=names)
    result = experiments.recovery(results, "k2@poor", "fixed2@poor", "fixed2@swept")
    assert result.gain[:3] == pytest.approx((3.0, 3.0, 3.0))
    assert result.shortfall[:3] == pytest.approx((1.0, 1.0, 1.0))
    assert result.recovered.value == pytest.approx(0.75)
    assert result.recovered.low <= 0.75 <= result.recovered.high and result.env_steps == 400


def test_self_tuning_mixing_runs_the_rule_it_states_inside_the_compiled_chunk():
    """auto2's chunk against a plain Python loop over ``meta_gradient_block`` with the rule of
    ``course_lib.self_tuning`` applied by hand: the same weights, moments and η after 3 updates;
    its first update uses the prior (the geometric mix), so it moves η exactly as mix2 does."""
    config = dataclasses.replace(TINY, estimators=("auto2", "mix2"), n_seeds=1)
    plan = experiments.make_plan(config)
    state = run_module._seed_problem_state(plan, 0)
    runs = run_module._initial_runs([plan], [0, 1], [state])
    prior = np.tile(experiments.parse_estimator("mix2").weights(2, 0.5), (2, 1)).astype(np.float32)
    chunk = run_module.make_chunk(plan.problem, 2, 3, 1, 0.8, 2.0)
    out, log = chunk(runs, jnp.asarray(prior), jnp.array([True, False]))
    chunk_one = run_module.make_chunk(plan.problem, 2, 1, 1, 0.8, 2.0)
    after_one, _ = chunk_one(runs, jnp.asarray(prior), jnp.array([True, False]))
    np.testing.assert_array_equal(after_one.eta[0], after_one.eta[1])

    run = jax.tree_util.tree_map(lambda leaf: leaf[0], runs)
    optimizer = run_module.make_meta_optimizer(config.meta_learning_rate, config.meta_clip)
    eta, opt_state, moments = run.eta, optimizer.init(run.eta), self_tuning.init_moments(2, 3)
    problem_state, weights = run.problem_state, None
    for u in range(3):
        key = jax.random.fold_in(jax.random.fold_in(run.key, 0), u)
        per_step, problem_state, _ = experiments.meta_gradient_block(
            plan.problem, problem_state, eta, key, 2
        )
        weights = self_tuning.self_tuning_weights(moments, jnp.asarray(prior[0]), 2.0)
        moments = self_tuning.update_moments(moments, per_step, 0.8)
        updates, opt_state = optimizer.update(weights @ per_step, opt_state, eta)
        eta = eta + updates
    np.testing.assert_allclose(log.weights[0], weights, rtol=1e-5, atol=1e-6)
    assert not np.allclose(log.weights[0], prior[0])  # the weights did move
    np.testing.assert_allclose(log.weights[1], prior[1])  # mix2's never do
    np.testing.assert_allclose(out.mix_moments.mean[0], moments.mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out.eta[0], eta, rtol=1e-5, atol=1e-6)


def test_a_run_with_self_tuning_mixing_logs_and_measures_its_moving_weights():
    config = dataclasses.replace(TINY, estimators=("auto2", "k1"))
    results = experiments.run_experiment(config, progress=False)
    auto = results.weights[0]  # [S, C, k_var]
    np.testing.assert_allclose(auto.sum(-1), 1.0, rtol=1e-5)
    assert np.all(auto >= 0)
    np.testing.assert_array_equal(results.weights[1], np.broadcast_to([1.0, 0.0], auto.shape))
    # auto2's own SNR is measured with the weights it had at each checkpoint
    own = np.einsum("sck,scnke->nsce", auto, results.samples[0].astype(np.float64))
    variance = own.var(axis=0, ddof=1).sum(-1)
    np.testing.assert_allclose(results.variance[0, ..., 0], variance, rtol=1e-6)


def test_selecting_estimators_keeps_every_series_and_cross_measure_in_step(tiny_run):
    _, results = tiny_run  # k2, mix2, fixed2
    picked = results.select(["fixed2", "k2"])
    assert picked.estimators == ("fixed2", "k2") == picked.config.estimators
    np.testing.assert_array_equal(picked.episode_return, results.episode_return[[2, 0]])
    np.testing.assert_array_equal(picked.weights, results.weights[[2, 0]])
    np.testing.assert_array_equal(picked.snr[1, ..., 1], results.snr[0, ..., 0])
    np.testing.assert_array_equal(picked.variance[1, ..., 0], results.variance[0, ..., 2])
    assert experiments.own_snr(picked).keys() == {"k2"}
    with pytest.raises(ValueError, match="unknown estimator 'mix5'"):
        results.select(["mix5"])


def test_student_intervals_are_mean_plus_minus_t_sd_over_root_n_and_wider_than_the_bootstrap():
    rng = np.random.default_rng(5)
    values = rng.normal(size=8)
    got = experiments.student_interval(values, 0.9)
    half = 1.894579 * values.std(ddof=1) / np.sqrt(8)  # t_7 at 0.95, from a printed table
    assert (got.value, got.low, got.high) == pytest.approx(
        (values.mean(), values.mean() - half, values.mean() + half), rel=1e-6, abs=1e-6
    )
    boot = experiments.seed_interval(values, 0.9)
    assert got.low < boot.low and boot.high < got.high
    with pytest.raises(ValueError, match="at least 2 finite"):
        experiments.student_interval([1.0, np.nan])
