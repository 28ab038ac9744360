"""The command line: the command it records, bad settings, an existing output."""

import re

import pytest

from conftest import ROOT
from course_lib import experiments
from course_lib.experiments import __main__ as main_module


def test_the_command_line_records_a_command_relative_to_the_repository(monkeypatch, tmp_path):
    recorded = {}
    monkeypatch.setattr(
        main_module, "run_experiment", lambda *args, **kwargs: recorded.update(kwargs)
    )
    monkeypatch.chdir(tmp_path)  # --out is resolved from the folder the command runs in
    out = ROOT / "results" / "x.npz"
    main_module.main(["snake", "--quick", "--seeds", "3", "--out", str(out), "--overwrite"])
    assert "--estimators" not in recorded["command"]  # the default: the config's estimators
    main_module.main(
        ["snake", "--quick", "--estimators", "k1,k5x5", "--seeds", "3", "--out", str(out)]
        + ["--overwrite"]
    )
    assert recorded["command"] == [
        "python",
        "-m",
        "course_lib.experiments",
        "snake",
        "--estimators",
        "k1,k5x5",
        "--seeds",
        "3",
        "--out",
        "results/x.npz",
        "--quick",
        "--overwrite",
    ]


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
