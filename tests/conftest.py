"""What the test modules share: the repository root, a float64 switch, a compilation counter, the
stored capstone results and one tiny capstone run. (The conftest.py at the repository root says how
the suite runs: its compilation cache and its workers.)"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def float64():
    """JAX in float64 for one test (the oracles compare to 1e-10), back to float32 after."""
    import jax

    with jax.enable_x64(True):
        yield


@pytest.fixture
def compilations():
    """Counts XLA compilations while the test runs."""
    import jax

    events = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield events
    jax.monitoring.unregister_event_duration_listener(listen)


@pytest.fixture(scope="module")
def stored_results():
    """The capstone's stored results, loaded once per module."""
    from course_lib import experiments

    return experiments.load_results(experiments.STORED_RESULTS)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny capstone run (tiny_experiment.TINY) and its file, made once for every module that
    reads it (the root conftest.py keeps those tests on one worker)."""
    from tiny_experiment import TINY

    from course_lib import experiments

    out = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    results = experiments.run_experiment(TINY, out, progress=False)
    return out, results
