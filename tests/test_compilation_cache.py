"""JAX's persistent compilation cache: on for the course, in the course's folder, overridable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import course_lib

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("value", "folder"),
    [(None, ROOT / ".cache" / "jax"), ("off", None), ("0", None), ("/tmp/jc", Path("/tmp/jc"))],
)
def test_cache_folder_is_the_repositorys_unless_the_environment_says_otherwise(
    monkeypatch, value, folder
):
    if value is None:
        monkeypatch.delenv(course_lib.CACHE_ENV, raising=False)
    else:
        monkeypatch.setenv(course_lib.CACHE_ENV, value)
    assert course_lib.compilation_cache_dir() == folder


# Prints the cache settings importing course_lib made, then compiles with the time threshold at 0 so
# that the compile is written however fast the machine (the folder is what is tested here).
COMPILE = """
import course_lib, jax, jax.numpy as jnp
print(jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((8, 8))).block_until_ready()
"""


def _compile_in_fresh_python(**env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION")}
    result = subprocess.run(
        [sys.executable, "-c", COMPILE],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_importing_course_lib_turns_the_cache_on_for_sub_second_compiles_too(tmp_path):
    folder, min_compile_time = _compile_in_fresh_python(COURSE_JAX_CACHE=str(tmp_path)).split()
    assert folder == str(tmp_path) and float(min_compile_time) < 1.0  # JAX's default: 1 s
    assert any(path.name.endswith("-cache") for path in tmp_path.iterdir())


def test_a_cache_folder_given_to_jax_itself_wins(tmp_path):
    theirs = tmp_path / "theirs"
    folder, _ = _compile_in_fresh_python(
        COURSE_JAX_CACHE=str(tmp_path / "ours"), JAX_COMPILATION_CACHE_DIR=str(theirs)
    ).split()
    assert folder == str(theirs)
    assert not (tmp_path / "ours").exists()
