"""Benchmarks run from a fresh clone: a peer that needs an extra package is skipped in one line."""

import argparse
import builtins
import importlib.util
import sys
import tomllib

from conftest import ROOT
from course_lib import problems


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pytorch_peer_is_skipped_in_one_line_without_torch(monkeypatch, capsys):
    # `import torch` fails as if not installed. (Not sys.modules["torch"] = None: scipy, which
    # the mixing weights use, reads a torch it finds in sys.modules.)
    real_import = builtins.__import__

    def import_without_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(builtins, "__import__", import_without_torch)
    benchmark = _load_benchmark("metagrad.py")
    args = argparse.Namespace(n_seeds=4, k_max=2, repeats=1, torch_seeds=2)
    benchmark.torch_comparison(problems.make_problem("bandit"), args, jax_per_seed=1e-5)
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == '  skipped: PyTorch is not installed (pip install -e ".[bench]")'
    assert len(printed) == 2  # the section's title and that line


def test_bench_extra_pins_the_pytorch_build_it_was_measured_with():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras["bench"] == ["torch==2.13.0"]


def _duration(seconds: float) -> str:
    """How the README and the lessons write a measured time: "55 s", "2 min 05 s"."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def test_the_readme_and_each_lesson_quote_the_stored_lesson_timings():
    """The computing times the README's table and each lesson's opening state are those
    ``python -m benchmarks.lessons --json benchmarks/lessons_cpu.json`` stored, at full size; and
    the README's "every lesson computes in under a minute" holds for them, first run included."""
    import json

    import nbformat

    stored = json.loads((ROOT / "benchmarks" / "lessons_cpu.json").read_text())
    assert stored["quick"] is False and "2 CPU cores" in stored["machine"]
    readme = (ROOT / "README.md").read_text()
    lessons = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(stored["lessons"]) == [path.stem for path in lessons]
    for path in lessons:
        runs = stored["lessons"][path.stem]
        first, again = (_duration(runs[run]["seconds"]) for run in ("first_run", "second_run"))
        row = next(line for line in readme.splitlines() if f"| `{path.stem}` |" in line)
        assert row.rstrip().endswith(f"| {first} / {again} |"), (path.stem, row)
        opening = nbformat.read(path, as_version=4).cells[0].source
        assert f"Computing:\n{first} on a 2-core CPU the first time, {again} when run again" in (
            opening
        ), path.stem
        assert runs["first_run"]["seconds"] < 60, path.stem
