"""Which accelerator JAX is using. JAX picks a GPU by itself when it sees one; nothing forces it."""

from __future__ import annotations

import jax


def describe() -> str:
    """One line naming JAX's backend and devices, e.g. ``JAX 0.10.2 on cpu: 1 device (cpu)``."""
    devices = jax.devices()
    kinds = ", ".join(sorted({d.device_kind for d in devices}))
    backend = jax.default_backend()
    noun = "device" if len(devices) == 1 else "devices"
    line = f"JAX {jax.__version__} on {backend}: {len(devices)} {noun} ({kinds})"
    if backend == "cpu":
        line += " - no GPU found; everything runs, only slower (see the README for the GPU install)"
    return line


def on_gpu() -> bool:
    """True when JAX's default backend is a GPU."""
    return jax.default_backend() == "gpu"
