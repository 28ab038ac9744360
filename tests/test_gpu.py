"""On a GPU, meta-gradients equal the CPU's: the same sampled trajectories, the same numbers up to
float64 rounding. Skipped unless JAX's default backend is a GPU (``pip install -e ".[gpu]"``).

Each problem is built once; its meta-gradients are then computed with every input placed on the
CPU, and again on the GPU. Float64 keeps GPU matmuls off TF32 and makes a sampled action flipping
between devices (a near-tie in the policy's logits) vanishingly unlikely.
"""

import jax
import numpy as np
import pytest

from course_lib import metagrad, problems

pytestmark = pytest.mark.gpu

# problem -> (settings, k_max): small enough to compile in well under a minute on each device.
CASES = {
    "bandit": ({}, 4),
    "snake": ({"n_envs": 8, "rollout_len": 5, "warmup_updates": 20}, 3),
}


@pytest.fixture(scope="module")
def cpu_and_gpu():
    if jax.default_backend() != "gpu":
        pytest.skip(f"no GPU: JAX's default backend is {jax.default_backend()!r}")
    return jax.devices("cpu")[0], jax.devices("gpu")[0]


def meta_gradients_on(device, problem, k_max: int, mode: str) -> np.ndarray:
    """``k_step_meta_gradients`` at ``problem.eta0``, key 0, run on ``device``. [k_max, n_eta]."""
    with jax.default_device(device):
        eta = jax.device_put(problem.eta0, device)
        key = jax.device_put(jax.random.key(0), device)
        grads = metagrad.k_step_meta_gradients(problem, eta, key, k_max, mode=mode)
    assert grads.devices() == {device}, f"computed on {grads.devices()}, not on {device}"
    return np.asarray(grads)


@pytest.mark.parametrize("mode", metagrad.AUTODIFF_MODES)
@pytest.mark.parametrize("name", CASES)
def test_meta_gradients_on_gpu_match_cpu(cpu_and_gpu, name, mode):
    settings, k_max = CASES[name]
    with jax.enable_x64(True):
        problem = problems.make_problem(name, **settings)
        on_cpu, on_gpu = (meta_gradients_on(device, problem, k_max, mode) for device in cpu_and_gpu)
    scale = np.abs(on_cpu).max()
    assert np.all(np.isfinite(on_cpu)) and scale > 0, "all-zero meta-gradients would match anywhere"
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-7, atol=1e-9 * scale)
