"""Results files: the sidecar, what reading them imports, selecting estimators."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import ROOT
from course_lib import experiments


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
