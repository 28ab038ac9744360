"""Lesson 02's sweep, stored: its sidecar, its best setting and its final returns."""

import json
import re

import numpy as np

from course_lib.experiments import sweep as sweep_module


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
