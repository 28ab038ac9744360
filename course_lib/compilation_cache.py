"""JAX's persistent compilation cache, in the course's folder, and safe against torn entries.

Importing course_lib calls ``enable()``: JAX keeps the programs it compiles in
``<repository>/.cache/jax`` (or ``$COURSE_JAX_CACHE``), so a lesson's second run loads them instead
of compiling again.

Why a check of our own: JAX writes an entry straight to its final name and never replaces an
existing one, so a process killed while writing (Ctrl-C, a timed-out cell or subprocess) leaves a
torn entry that makes every later process warn and recompile. ``drop_torn_entries`` finds entries
that do not decompress (JAX compresses each with zstd or zlib) and removes them, saying so in one
line; JAX then writes them afresh. It reads only the entries written since its last look.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path

import jax

CACHE_ENV = "COURSE_JAX_CACHE"
_REPOSITORY = Path(__file__).resolve().parent.parent
_ENTRY_SUFFIX = "-cache"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# An entry younger than this may still be being written by another process: left for next time.
_SETTLE_S = 60.0
# Marks how far the last look went: entries older than its modification time were checked.
_CHECKED = ".checked-by-course-lib"


def compilation_cache_dir() -> Path | None:
    """The folder JAX keeps the course's compiled programs in, or None for no cache.

    ``$COURSE_JAX_CACHE`` when set (``off`` or ``0``: no cache); otherwise ``.cache/jax`` in the
    course's repository; None when course_lib is installed without its repository around it (a
    plain ``pip install``), so that nothing is written anywhere the learner did not choose.
    """
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "0", "off") else Path(chosen).expanduser()
    if (_REPOSITORY / "pyproject.toml").is_file():
        return _REPOSITORY / ".cache" / "jax"
    return None


def _decompresses(data: bytes) -> bool:
    """Whether a cache entry is whole: it decompresses (zstd when JAX used it, else zlib)."""
    if data.startswith(_ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError:  # written by a JAX with zstd support that this Python lacks
            return True
        try:
            zstandard.ZstdDecompressor().decompress(data)
        except zstandard.ZstdError:
            return False
        return True
    try:
        zlib.decompress(data)
    except zlib.error:
        return False
    return True


def drop_torn_entries(folder: Path, settle_s: float = _SETTLE_S) -> list[Path]:
    """Remove the entries of ``folder`` that do not decompress; returns the paths removed.

    Looks only at entries modified since its last look and at least ``settle_s`` seconds ago.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    marker = folder / _CHECKED
    since = marker.stat().st_mtime if marker.exists() else float("-inf")
    until = time.time() - settle_s
    removed = []
    for entry in folder.glob(f"*{_ENTRY_SUFFIX}"):
        try:
            modified = entry.stat().st_mtime
            if since <= modified < until and not _decompresses(entry.read_bytes()):
                entry.unlink()
                removed.append(entry)
        except FileNotFoundError:  # removed meanwhile by another process's look
            continue
    marker.touch()
    os.utime(marker, (until, until))
    if removed:
        print(
            f"course_lib: removed {len(removed)} torn entr{'y' if len(removed) == 1 else 'ies'} "
            f"from the compilation cache {folder} (a process was stopped while writing); "
            "they are compiled again",
            file=sys.stderr,
        )
    return removed


def enable() -> None:
    """Turn JAX's persistent cache on in ``compilation_cache_dir()``, after dropping torn entries.

    A cache folder the user gave JAX itself (``JAX_COMPILATION_CACHE_DIR``) wins and is left alone.
    JAX's own thresholds apply: only compiles of 1 s or more are stored.
    """
    if jax.config.jax_compilation_cache_dir is not None:
        return
    folder = compilation_cache_dir()
    if folder is None:
        return
    drop_torn_entries(folder)
    jax.config.update("jax_compilation_cache_dir", str(folder))
