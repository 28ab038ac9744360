"""pyproject.toml and environment.yml must declare the same packages with the same lower bounds;
the package installed is the library alone."""

import re
import tomllib
from fnmatch import fnmatchcase

import yaml

from conftest import ROOT

NOT_PACKAGES = {"python", "pip"}


def parse(requirement: str) -> tuple[str, str]:
    """'jax[cuda12]>=0.10.2' -> ('jax', '>=0.10.2'); names normalised as pip does."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*?)\s*", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(3).replace(" ", "")


def pyproject_packages() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(parse(r) for r in requirements)


def conda_packages() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    entries = []
    for dep in env["dependencies"]:
        entries.extend(dep["pip"] if isinstance(dep, dict) else [dep])
    packages = dict(parse(e) for e in entries)
    return {name: spec for name, spec in packages.items() if name not in NOT_PACKAGES}


def test_environment_yml_and_pyproject_declare_the_same_packages():
    ours, conda = pyproject_packages(), conda_packages()
    assert sorted(ours) == sorted(conda), (
        f"only in pyproject.toml: {sorted(set(ours) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(ours))}"
    )
    mismatched = {n: (ours[n], conda[n]) for n in ours if ours[n] != conda[n]}
    assert not mismatched, f"version bounds differ (pyproject, environment.yml): {mismatched}"


def test_every_dependency_has_a_tested_lower_bound():
    missing = [n for n, spec in pyproject_packages().items() if not spec.startswith(">=")]
    assert not missing, f"give these a lower bound that the suite was run with: {missing}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_the_installed_package_is_the_library_without_the_maintainers_tools():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    include = find["find"]["include"]
    assert any(fnmatchcase("course_lib.widgets", pattern) for pattern in include)
    for folder in ("tools", "benchmarks", "tests"):
        assert not any(fnmatchcase(folder, pattern) for pattern in include), folder


def test_ci_holds_the_library_to_its_floors():
    """`make lint` runs import-linter on pyproject.toml's contracts, and CI runs `make lint`."""
    assert "[tool.importlinter]" in (ROOT / "pyproject.toml").read_text()
    assert "lint-imports" in (ROOT / "Makefile").read_text()
    assert "make lint" in (ROOT / ".ci" / "run").read_text()
