"""What the test modules share: the repository root and a float64 switch. (The conftest.py at the
repository root says how the suite runs: its compilation cache and its workers.)"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def float64():
    """JAX in float64 for one test (the oracles compare to 1e-10), back to float32 after."""
    import jax

    with jax.enable_x64(True):
        yield
