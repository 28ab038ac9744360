"""Results files of a capstone run: the results, the partial file a run resumes from, the sidecar.

- ``<out>.npz``: the settings (a JSON string) and every logged series; ``load_results`` reads it
  back and recomputes variance and SNR from the stored samples.
- ``<out>.npz.partial.npz``: the state after every checkpoint chunk, while a run is under way.
- ``<out>.json``, the sidecar: settings, compute time, the machine and JAX build, the command.

Every file is written atomically (a temporary ``<name>.tmp``, then a rename), so an interruption
leaves the previous version or the new one, never half a file.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.experiments.measures import measure_estimators
from course_lib.experiments.settings import ExperimentConfig, Plan, parse_estimator

REPOSITORY = Path(__file__).resolve().parents[2]
STORED_RESULTS = REPOSITORY / "results" / "snake_full.npz"
"""The full run shipped with the course, ``full_config()``: ``make results`` regenerates it (with
lesson 02's sweep), or ``python -m course_lib.experiments snake --out results/snake_full.npz``."""

PARTIAL_SUFFIX = ".partial.npz"
# The CPU features that change a compiled run's floating-point results (vector width, fused
# multiply-adds), recorded in the sidecar.
CPU_FLAGS = ("avx", "avx2", "avx512f", "fma")


class Results(NamedTuple):
    """Everything a run logged. E estimators, S seeds, C checkpoints, n_eta meta-parameters.

    ``variance[e, s, c, f]`` / ``snr[e, s, c, f]``: tr Cov and ‖E ĝ‖² / tr Cov of estimator f,
    measured on the ``n_variance_samples`` replicas drawn from run (e, s) at checkpoint c; the
    diagonal f = e is each run's own estimator. Both are derived from ``samples`` on loading.
    """

    config: ExperimentConfig
    estimators: tuple[str, ...]
    meta_names: tuple[str, ...]
    env_steps: np.ndarray  # [C] environment steps per agent, outer rollouts included
    episode_return: np.ndarray  # [E, S, C] mean return of the episodes that ended in the chunk
    eta: np.ndarray  # [E, S, C + 1, n_eta] (index 0: η_0)
    hyper: np.ndarray  # [E, S, C + 1, n_eta] the hyper-parameter values η maps to (γ, λ, c_ent)
    samples: np.ndarray  # [E, S, C, n_variance_samples, k_var, n_eta] per-k meta-gradients
    skipped: np.ndarray  # [E, S, C] meta-updates skipped (non-finite ĝ)
    weights: np.ndarray  # [E, S, C, k_var] mixing weights of the last meta-update before each
    # checkpoint: each estimator's own, constant but for auto<K>, whose weights tune themselves
    variance: np.ndarray  # [E, S, C, E]
    snr: np.ndarray  # [E, S, C, E]

    def select(self, estimators) -> Results:
        """These results for some of the estimators only, in the order given (every series, the
        cross-measures ``variance`` and ``snr`` along both estimator axes, and the settings)."""
        names = tuple(parse_estimator(name).name for name in estimators)
        at = [self.index(name) for name in names]
        fields = {name: getattr(self, name)[at] for name in SAVED if name != "env_steps"}
        return self._replace(
            config=dataclasses.replace(self.config, estimators=names),
            estimators=names,
            **fields,
            variance=self.variance[at][..., at],
            snr=self.snr[at][..., at],
        )

    def index(self, estimator: str) -> int:
        """Position of ``estimator`` in ``estimators`` (ValueError listing them if absent)."""
        if estimator not in self.estimators:
            raise ValueError(
                f"unknown estimator {estimator!r}; these results hold {self.estimators}"
            )
        return self.estimators.index(estimator)


SAVED = ("env_steps", "episode_return", "eta", "hyper", "samples", "skipped", "weights")


def with_measurements(config: ExperimentConfig, saved: dict, meta_names) -> Results:
    """``Results`` from the ``SAVED`` series, with every estimator's variance and SNR measured."""
    estimators = tuple(parse_estimator(e).name for e in config.estimators)
    variance, snr = measure_estimators(
        saved["samples"], estimators, weights=saved["weights"][:, None]
    )
    return Results(config, estimators, tuple(meta_names), **saved, variance=variance, snr=snr)


def _write_atomically(path: Path, write: Callable) -> None:
    """``write(file)`` into ``<path>.tmp``, then rename it to ``path``."""
    tmp = temporary_path(path)
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    return path.with_name(path.name + ".tmp")


def write_npz(path: Path, arrays: dict) -> None:
    """``arrays`` as a compressed ``.npz`` at ``path``, written atomically."""
    _write_atomically(path, lambda f: np.savez_compressed(f, **arrays))


def save_results(results: Results, path: str | os.PathLike) -> None:
    """A compressed ``.npz``: the settings as a JSON string and the logged series."""
    arrays = {name: getattr(results, name) for name in SAVED}
    arrays["settings"] = np.array(results.config.to_json())
    arrays["meta_names"] = np.array(results.meta_names)
    write_npz(Path(path), arrays)


def load_results(path: str | os.PathLike) -> Results:
    """Read a results file written by ``run_experiment``; variance and SNR are recomputed."""
    with np.load(path, allow_pickle=False) as data:
        config = ExperimentConfig.from_json(str(data["settings"]))
        saved = {name: data[name] for name in SAVED}
        meta_names = tuple(str(x) for x in data["meta_names"])
    return with_measurements(config, saved, meta_names)


# --------------------------------------------------------------------------------------------------
# The partial file: a run's state after every step, so an interrupted run resumes


class Logs(NamedTuple):
    """Logged series being filled in, all [n_estimators, n_seeds, n_checkpoints, ...]."""

    episode_totals: np.ndarray  # [..., 2]
    eta: np.ndarray  # [..., n_eta]
    samples: np.ndarray  # [..., n_variance_samples, k_var, n_eta]
    skipped: np.ndarray  # [...]
    weights: np.ndarray  # [..., k_var]


class RunProgress(NamedTuple):
    """How far a run has got: what a partial file holds."""

    done: int  # steps finished: per checkpoint, one chunk per group of K, then one measuring step
    runs: list  # per group of K, the run states stacked on a leading axis
    logs: Logs
    seconds: float  # compute time so far


def partial_path(out: str | os.PathLike) -> Path:
    """Where a run writing ``out`` keeps its state between checkpoints."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def _to_host(leaf) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def _like(value: np.ndarray, template) -> np.ndarray:
    """``value`` if it has ``template``'s shape and dtype, else a ``ValueError``."""
    if value.shape != template.shape or value.dtype != template.dtype:
        raise ValueError(
            f"it has an array {value.dtype}{list(value.shape)} where this code expects "
            f"{template.dtype}{list(template.shape)}"
        )
    return value


def _from_host(value: np.ndarray, template):
    if jnp.issubdtype(template.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(
            _like(value, _to_host(template)), impl=jax.random.key_impl(template)
        )
    return jnp.asarray(_like(value, template))


def save_partial(path: Path, config: ExperimentConfig, progress: RunProgress) -> None:
    """Write ``progress`` and the settings it belongs to (PRNG keys as their raw data)."""
    arrays = {
        "settings": np.array(config.to_json()),
        "done": np.array(progress.done),
        "seconds": np.array(progress.seconds),
    }
    arrays.update({f"log_{name}": value for name, value in progress.logs._asdict().items()})
    for g, group_runs in enumerate(progress.runs):
        for i, leaf in enumerate(jax.tree_util.tree_leaves(group_runs)):
            arrays[f"group{g}_leaf{i}"] = _to_host(leaf)
    write_npz(path, arrays)


def load_partial(
    path: Path, config: ExperimentConfig, start: RunProgress, n_steps: int, overwrite: bool
) -> RunProgress:
    """The progress to continue from: the partial run at ``path`` if there is one with these
    settings, else ``start`` (the fresh start, whose shapes and dtypes the file must match).

    A partial run with other settings, or one that cannot be read (a corrupt file, or one written
    by other code), is a ``ValueError`` unless ``overwrite``: then the run starts afresh and
    replaces it at its first save.
    """
    if not path.exists():
        return start
    try:
        settings, progress = _read_partial(path, config, start, n_steps)
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        problem = f"cannot be resumed ({type(error).__name__}: {error})"
    else:
        if progress is not None:
            return progress
        problem = f"holds a partial run with other settings ({settings})"
    if overwrite:
        return start
    raise ValueError(
        f"{path} {problem}; delete it, or pass --overwrite (overwrite=True) to start afresh"
    )


def _read_partial(
    path: Path, config: ExperimentConfig, start: RunProgress, n_steps: int
) -> tuple[str, RunProgress | None]:
    """The file's settings, and its progress if the settings are ``config``'s (else None)."""
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("it holds one array, not the .npz a run writes")
    with data:
        settings = str(data["settings"])
        if settings != config.to_json():
            return settings, None
        done = int(data["done"])
        if not 0 <= done <= n_steps:
            raise ValueError(f"it says {done} steps are done, of {n_steps}")
        logs = Logs(
            *(_like(data[f"log_{name}"], getattr(start.logs, name)) for name in Logs._fields)
        )
        runs = []
        for g, group_runs in enumerate(start.runs):
            leaves, treedef = jax.tree_util.tree_flatten(group_runs)
            runs.append(
                treedef.unflatten(
                    [_from_host(data[f"group{g}_leaf{i}"], leaf) for i, leaf in enumerate(leaves)]
                )
            )
        return settings, RunProgress(done, runs, logs, float(data["seconds"]))


def discard_partial(out: Path) -> None:
    """Remove the partial file of ``out`` and any temporary left by an interrupted write."""
    for path in (partial_path(out), temporary_path(partial_path(out)), temporary_path(out)):
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# The sidecar


def write_sidecar(
    out: Path, plan: Plan, seconds: float, command: Sequence[str] | None = None
) -> None:
    """``<out>.json``: what produced the results, for a reader on another machine.

    Keys: ``settings``; ``rollouts_per_checkpoint`` (rounded up to every K + 1);
    ``compute_seconds`` (compilation included, summed over resumed parts); ``finished`` (UTC);
    ``machine`` (``machine_info``); ``command``: the command line, run from the repository root,
    with ``--out`` relative to it (``None`` for a run started from Python: the settings say all).
    A field the run that wrote the file did not record yet is ``null``.
    Identical numbers are promised only on the same machine and JAX build (see the package
    docstring).
    """
    extra = {"rollouts_per_checkpoint": plan.rollouts_per_checkpoint}
    write_record(out, json.loads(plan.config.to_json()), seconds, command, extra)


def write_record(
    out: Path, settings: dict, seconds: float, command: Sequence[str] | None, extra=None
) -> None:
    """The sidecar ``<out>.json`` of any stored run: ``settings``, then ``extra``'s keys, then
    ``compute_seconds``, ``finished``, ``machine`` and ``command`` (see ``write_sidecar``)."""
    info = {
        "settings": settings,
        **(extra or {}),
        "compute_seconds": round(seconds, 1),
        "finished": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine_info(),
        "command": None if command is None else shlex.join(command),
    }
    text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    _write_atomically(out.with_suffix(".json"), lambda f: f.write(text.encode()))


def machine_info() -> dict[str, Any]:
    """The machine and JAX build a run computes on: the floating-point results depend on both.

    ``cpu_model`` and ``cpu_flags`` ({flag: present} for ``CPU_FLAGS``) come from /proc/cpuinfo
    where it exists; elsewhere the model is ``platform.processor()`` and the flags ``None``.
    """
    model, flags = _cpu_model_and_flags()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": model,
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.devices()],
    }


def _cpu_model_and_flags() -> tuple[str, dict[str, bool] | None]:
    fallback = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fallback, None
    fields = {}
    for line in text.splitlines():  # the first processor's entry is enough: cores are alike
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip(), value.strip())
    present = set(fields["flags"].split()) if "flags" in fields else None
    flags = None if present is None else {flag: flag in present for flag in CPU_FLAGS}
    return fields.get("model name") or fallback, flags
