"""JAX's persistent compilation cache: on for the course, in the course's folder, overridable, the
suite's own, and safe against writers that are killed or run at the same time."""

import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import course_lib
from conftest import ROOT
from course_lib import compilation_cache


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


def test_the_suite_never_uses_the_learners_cache():
    import jax

    suite_folder = Path(jax.config.jax_compilation_cache_dir)
    assert suite_folder != ROOT / ".cache" / "jax"
    assert ROOT not in suite_folder.parents


# Prints the cache settings importing course_lib made, then compiles a few programs with the time
# threshold at 0 so that each compile is written however fast the machine.
COMPILE = """
import sys
import course_lib, jax, jax.numpy as jnp
print(jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
for n in [int(arg) for arg in sys.argv[1:]] or [8]:
    jax.jit(lambda x: jnp.sin(x) @ x + n)(jnp.ones((n, n))).block_until_ready()
"""


def _environment(**env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION")}
    return {**environment, **env}


def _compile_in_fresh_python(*sizes, **env):
    return subprocess.run(
        [sys.executable, "-c", COMPILE, *map(str, sizes)],
        env=_environment(**env),
        capture_output=True,
        text=True,
        check=True,
    )


def test_importing_course_lib_turns_the_cache_on_with_jaxs_own_threshold(tmp_path):
    printed = _compile_in_fresh_python(COURSE_JAX_CACHE=str(tmp_path)).stdout
    folder, min_compile_time = printed.split()
    assert folder == str(tmp_path) and float(min_compile_time) == 1.0  # JAX's default
    assert any(path.name.endswith("-cache") for path in tmp_path.iterdir())


def test_a_cache_folder_given_to_jax_itself_wins(tmp_path):
    theirs = tmp_path / "theirs"
    printed = _compile_in_fresh_python(
        COURSE_JAX_CACHE=str(tmp_path / "ours"), JAX_COMPILATION_CACHE_DIR=str(theirs)
    ).stdout
    assert printed.split()[0] == str(theirs)
    assert not (tmp_path / "ours").exists()


# --- Torn entries ---------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _as_if_written_long_ago(folder: Path) -> None:
    """Every entry settled and written after the last look (which the writers made at start)."""
    for entry in folder.glob("*-cache"):
        _age(entry, 120)
    for marker in folder.glob(".checked*"):
        _age(marker, 1000)


def test_only_entries_that_do_not_decompress_are_dropped_and_each_is_looked_at_once(tmp_path):
    whole, torn, empty, fresh = (tmp_path / f"{name}-cache" for name in "abcd")
    data = zlib.compress(b"an executable" * 100)
    whole.write_bytes(data)
    torn.write_bytes(data[: len(data) // 2])
    empty.write_bytes(b"")
    fresh.write_bytes(data[:5])  # still being written, perhaps: left for a later look
    for path in (whole, torn, empty):
        _age(path, 120)
    assert sorted(compilation_cache.drop_torn_entries(tmp_path)) == [torn, empty]
    assert whole.exists() and fresh.exists()
    # A later look reads only what was written since: the fresh one, once it has settled.
    assert compilation_cache.drop_torn_entries(tmp_path, settle_s=0) == [fresh]
    torn.write_bytes(b"x")
    _age(torn, 120)  # older than the last look: not read again
    assert compilation_cache.drop_torn_entries(tmp_path, settle_s=0) == []


def test_killed_and_concurrent_writers_leave_no_entry_that_warns_on_later_runs(tmp_path):
    """Four processes compile the same programs into one folder; two are killed while working.
    None aborts, a torn entry is removed with one line, and the next runs read every entry."""
    sizes = [str(n) for n in range(4, 16)]
    env = _environment(COURSE_JAX_CACHE=str(tmp_path))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", COMPILE, *random.Random(seed).sample(sizes, len(sizes))],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    time.sleep(3.0)
    for writer in writers[:2]:
        writer.send_signal(signal.SIGKILL)
    for writer in writers:
        writer.wait(timeout=120)
    assert all(w.returncode in (0, -signal.SIGKILL) for w in writers[:2])  # killed or done
    assert all(w.returncode == 0 for w in writers[2:]), [w.stderr.read() for w in writers[2:]]
    for writer in writers:
        writer.stderr.close()

    # A writer killed in the middle of write_bytes leaves a prefix of its entry: make one for sure.
    entries = sorted(tmp_path.glob("*-cache"))
    assert len(entries) >= len(sizes)
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    _as_if_written_long_ago(tmp_path)
    plain_jax = subprocess.run(  # JAX alone warns about it, run after run
        [sys.executable, "-c", COMPILE.replace("import course_lib, ", "import "), *sizes],
        env=_environment(JAX_COMPILATION_CACHE_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert "Error reading persistent compilation cache entry" in plain_jax.stderr

    first = _compile_in_fresh_python(*sizes, COURSE_JAX_CACHE=str(tmp_path))
    said = [line for line in first.stderr.splitlines() if "torn" in line]
    assert len(said) == 1 and "removed 1 torn entry" in said[0], first.stderr
    assert "Error reading" not in first.stderr
    _as_if_written_long_ago(tmp_path)
    again = _compile_in_fresh_python(*sizes, COURSE_JAX_CACHE=str(tmp_path))
    assert "Error reading" not in again.stderr and "torn" not in again.stderr
