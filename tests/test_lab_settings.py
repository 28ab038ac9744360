"""The JupyterLab settings shipped with the course (``jupyter/overrides.json``) and where
``make lab`` puts them: the news popup stays off without touching the learner's ~/.jupyter."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jupyterlab.labapp import LabApp
from jupyterlab_server.settings_utils import _get_overrides

from conftest import ROOT

SHIPPED = ROOT / "jupyter" / "overrides.json"
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def test_shipped_overrides_turn_the_news_off_with_a_value_the_schema_allows():
    overrides = json.loads(SHIPPED.read_text())
    assert overrides[NOTIFICATION]["fetchNews"] == "false"
    package, plugin = NOTIFICATION.split(":")
    schema = json.loads((Path(LabApp().schemas_dir) / package / f"{plugin}.json").read_text())
    properties = schema["properties"]
    assert set(overrides[NOTIFICATION]) <= set(properties)
    assert "false" in {choice["const"] for choice in properties["fetchNews"]["oneOf"]}


def test_jupyterlab_reads_the_file_where_the_makefile_installs_it(tmp_path):
    settings = Path(LabApp().app_settings_dir)
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not the course's own venv, which the Makefile installs into")
    target = (settings / "overrides.d" / "metagrad-course.json").resolve().relative_to(ROOT)
    plan = subprocess.run(
        ["make", "-n", "-B", str(target)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert f"cp jupyter/overrides.json {target}" in plan.stdout

    (tmp_path / "overrides.d").mkdir()
    (tmp_path / "overrides.d" / target.name).write_text(SHIPPED.read_text())
    overrides, error = _get_overrides(str(tmp_path))
    assert not error
    assert overrides[NOTIFICATION]["fetchNews"] == "false"
