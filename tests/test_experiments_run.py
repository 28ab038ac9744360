"""The capstone's runner: a tiny run end to end, resuming after an interrupt, and what its compiled
chunks do (meta-learning rates, controls, outer batches, self-tuning mixing)."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_experiment import TINY

from course_lib import experiments, metagrad, problems, self_tuning
from course_lib.experiments import run as run_module
from course_lib.experiments.results import SAVED


def host(leaf) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf, dtype=float)


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
