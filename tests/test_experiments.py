"""The capstone experiment: a tiny run end to end, resumption, bad settings, and the stored data."""

import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import experiments, metagrad
from course_lib.experiments import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ExperimentConfig(
    estimators=("k2", "mix2"),
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
    n_est, n_seeds, n_ckpt, n_var, k_var = 2, 2, 2, 3, 2
    n_eta = len(results.meta_names)
    assert results.estimators == ("k2", "mix2") and n_eta == 3
    expected = {
        "env_steps": (n_ckpt,),
        "episode_return": (n_est, n_seeds, n_ckpt),
        "eta": (n_est, n_seeds, n_ckpt + 1, n_eta),
        "hyper": (n_est, n_seeds, n_ckpt + 1, n_eta),
        "samples": (n_est, n_seeds, n_ckpt, n_var, k_var, n_eta),
        "skipped": (n_est, n_seeds, n_ckpt),
        "variance": (n_est, n_seeds, n_ckpt, n_est),
        "snr": (n_est, n_seeds, n_ckpt, n_est),
    }
    for name, shape in expected.items():
        value = getattr(results, name)
        assert value.shape == shape, name
        assert np.all(np.isfinite(value)), name
    # 3 rollouts of 3 steps on 2 boards per checkpoint, outer rollouts included
    np.testing.assert_array_equal(results.env_steps, [18, 36])
    assert np.all(results.variance > 0) and np.all(results.skipped == 0)
    # η moved, and the hyper-parameters are what η maps to: γ = sigmoid(η_0), c_ent = exp(η_2)
    assert np.all(results.eta[:, :, -1] != results.eta[:, :, 0])
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
    assert sidecar["settings"]["estimators"] == ["k2", "mix2"] and sidecar["compute_seconds"] > 0
    assert not experiments.partial_path(out).exists()


def test_variance_and_snr_are_measured_from_the_samples_as_numpy_says(tiny_run):
    _, results = tiny_run
    samples = results.samples.astype(np.float64)  # [E, S, C, n, k, eta]
    mix = np.array([2 / 3, 1 / 3])  # geometric weights, λ_mix = 0.5, K = 2
    for f, estimator in enumerate(results.estimators):
        g = samples[..., 1, :] if estimator == "k2" else np.einsum("k,...ke->...e", mix, samples)
        variance = g.var(axis=-2, ddof=1).sum(-1)
        snr = (g.mean(axis=-2) ** 2).sum(-1) / variance
        np.testing.assert_allclose(results.variance[..., f], variance, rtol=1e-6)
        np.testing.assert_allclose(results.snr[..., f], snr, rtol=1e-6)


def test_an_interrupted_run_resumes_to_the_same_numbers(tiny_run, tmp_path, monkeypatch):
    _, uninterrupted = tiny_run
    out = tmp_path / "resumed.npz"
    save = experiments._save_partial
    calls = []

    def save_then_interrupt(*args):
        save(*args)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "_save_partial", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment(TINY, out, progress=False)
    assert experiments.partial_path(out).exists() and not out.exists()
    monkeypatch.setattr(experiments, "_save_partial", save)

    # a partial run with other settings is not silently mixed in
    other = dataclasses.replace(TINY, seed=1)
    with pytest.raises(ValueError, match="partial run with other settings"):
        experiments.run_experiment(other, out, progress=False)

    resumed = experiments.run_experiment(TINY, out, progress=False)
    for name in experiments._SAVED + ("variance", "snr"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(uninterrupted, name), name)
    assert out.exists() and not experiments.partial_path(out).exists()


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
    problem = metagrad.make_problem("snake", **TINY.problem)
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
