"""Benchmarks run from a fresh clone: a peer that needs an extra package is skipped in one line."""

import argparse
import importlib.util
import sys
import tomllib
from pathlib import Path

from course_lib import metagrad

ROOT = Path(__file__).resolve().parent.parent


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pytorch_peer_is_skipped_in_one_line_without_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if not installed
    benchmark = _load_benchmark("metagrad.py")
    args = argparse.Namespace(n_seeds=4, k_max=2, repeats=1, torch_seeds=2)
    benchmark.torch_comparison(metagrad.make_problem("bandit"), args, jax_per_seed=1e-5)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == '  skipped: PyTorch is not installed (pip install -e ".[bench]")'
    assert len(printed) == 2  # the section's title and that line


def test_bench_extra_pins_the_pytorch_build_it_was_measured_with():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras["bench"] == ["torch==2.13.0"]
