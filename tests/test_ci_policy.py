"""CI never skips in silence: a missing browser tool fails under CI, a CHROMIUM that names no
executable stops the install step, and only the GPU tests may skip, which the summary says."""

import importlib.util
import os
import subprocess

import pytest

from conftest import ROOT

CI_DIR = ROOT / ".ci"


def _browser_conftest(monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # loading it under CI would import playwright
    spec = importlib.util.spec_from_file_location(
        "browser_conftest", ROOT / "tests" / "browser" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("value", "fails"),
    [(None, False), ("", False), ("0", False), ("false", False), ("true", True), ("1", True)],
)
def test_a_missing_browser_tool_fails_only_under_ci(monkeypatch, value, fails):
    conftest = _browser_conftest(monkeypatch)
    environ = {} if value is None else {"CI": value}
    assert conftest.missing_tool_fails(environ) is fails
    if value is not None:
        monkeypatch.setenv("CI", value)
    outcome = pytest.fail.Exception if fails else pytest.skip.Exception
    with pytest.raises(outcome, match="Chromium not found"):
        conftest.skip_or_fail("Chromium not found")


def _run(script, *args, **env):
    return subprocess.run(
        [str(CI_DIR / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(("chromium", "ok"), [("/no/such/chromium", False), ("sh", True)])
def test_install_step_rejects_a_chromium_that_names_no_executable(chromium, ok):
    result = _run("install-system-deps", CHROMIUM=chromium)
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        assert "names no executable" in result.stderr


SUMMARY = "=========================== short test summary info ============================\n"
GPU_SKIP = "SKIPPED [4] tests/test_gpu.py:27: no GPU: JAX's default backend is 'cpu'\n"
BROWSER_SKIP = "SKIPPED [6] tests/browser/conftest.py:160: Chromium not found\n"


@pytest.mark.parametrize(
    ("summary", "ok", "says"),
    [
        ("", True, ""),
        (GPU_SKIP, True, "GPU tests (tests/test_gpu.py) were skipped"),
        (GPU_SKIP + BROWSER_SKIP, False, "only the GPU tests may skip"),
    ],
)
def test_only_gpu_tests_may_skip_in_ci_and_the_summary_says_so(tmp_path, summary, ok, says):
    log = tmp_path / "pytest.log"
    log.write_text(SUMMARY + summary + "======= 548 passed in 960.00s =======\n")
    result = _run("check-skips", str(log))
    assert (result.returncode == 0) is ok
    assert says in result.stdout + result.stderr


def test_ci_runs_the_skip_check_on_the_test_output():
    run = (CI_DIR / "run").read_text()
    assert "make test 2>&1 | tee" in run and ".ci/check-skips" in run
