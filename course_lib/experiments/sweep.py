"""Lesson 02's sweep of γ, λ and the entropy cost, one at a time around the defaults, kept as data.

Every setting x every seed is one compiled call: ``agents.make_train`` vmapped over seed keys,
then over a ``Hyper`` whose fields hold one entry per setting. The stored full run
(``results/a2c_sweep.npz``, with a sidecar in the format of ``results.write_sidecar``) is what
lesson 02's verdict reads and what the capstone's "best of the sweep" control starts from
(``best_setting``); ``python -m course_lib.experiments sweep`` regenerates it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import agents
from course_lib.envs.snake import make_snake
from course_lib.experiments.results import REPOSITORY, write_npz, write_record
from course_lib.progress import progress_bar

STORED_SWEEP = REPOSITORY / "results" / "a2c_sweep.npz"

SWEEP = {
    "gamma": (0.5, 0.8, 0.95, 0.99),
    "lam": (0.0, 0.5, 0.9, 1.0),
    "entropy_cost": (0.0, 0.01, 0.1, 0.3),
}
"""The values tried for each hyper-parameter, the others at ``agents.default_hyper()``."""


class SweepConfig(NamedTuple):
    """What sets a sweep's numbers: lesson 02's agent (6x6 boards, 64 of them, 10-step rollouts,
    RMSProp 3e-3) trained ``n_updates`` times per setting and seed."""

    n_updates: int = 1000
    n_seeds: int = 2
    n_envs: int = 64
    rollout_len: int = 10
    learning_rate: float = 3e-3
    seed: int = 42


class Sweep(NamedTuple):
    """A sweep's results. ``returns[i, s, u]``: mean return of the episodes that ended in update u
    of seed s at setting ``settings[i]`` (NaN when none ended)."""

    config: SweepConfig
    settings: tuple[tuple[str, float], ...]  # (hyper-parameter, value), the others at default
    returns: np.ndarray  # [n_settings, n_seeds, n_updates]

    @property
    def env_steps(self) -> int:
        """Environment steps the whole sweep took: every setting, seed and update."""
        n_settings, n_seeds, n_updates = self.returns.shape
        return n_settings * n_seeds * n_updates * self.config.n_envs * self.config.rollout_len

    def final_returns(self, fraction: float = 0.1, n_updates: int | None = None) -> np.ndarray:
        """``final_mean`` per setting and seed, of the first ``n_updates`` updates (default all:
        what a shorter run of the same seeds is compared with). [n_settings, n_seeds]."""
        return final_mean(self.returns[..., :n_updates], fraction)

    def final_return(self, name: str, value: float) -> np.ndarray:
        """``final_returns`` of one setting, per seed. [n_seeds]."""
        return self.final_returns()[self.settings.index((name, float(value)))]

    def best_setting(self) -> dict[str, float]:
        """Each hyper-parameter at the value with the highest mean final return over seeds."""
        finals = self.final_returns().mean(axis=1)
        best = {}
        for (name, value), final in zip(self.settings, finals, strict=True):
            if name not in best or final > best[name][1]:
                best[name] = (value, final)
        return {name: value for name, (value, _) in best.items()}


def final_mean(returns: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """``returns [..., n_updates] -> [...]``: the mean over the last ``fraction`` of updates, NaNs
    (updates where no episode ended) skipped; lesson 02's "final return"."""
    n_last = max(1, int(fraction * returns.shape[-1]))
    return np.nanmean(returns[..., -n_last:], axis=-1)


def sweep_settings(sweep: dict = SWEEP) -> list[tuple[str, float]]:
    """``[(name, value), ...]``: one setting per value, hyper-parameter by hyper-parameter."""
    return [(name, float(value)) for name, values in sweep.items() for value in values]


def stacked_hypers(settings: Sequence[tuple[str, float]], base=None):
    """A ``Hyper`` of [n_settings] arrays: ``base`` (default ``agents.default_hyper()``) with one
    field replaced per setting."""
    base = agents.default_hyper() if base is None else base
    return jax.tree_util.tree_map(
        lambda *leaves: jnp.stack(leaves),
        *[base._replace(**{name: jnp.float32(value)}) for name, value in settings],
    )


def make_sweep(env, config):
    """``train_sweep(keys [n_seeds], hypers [n_settings]) -> (final states, metrics)``, every
    metric [n_settings, n_seeds, n_updates]: ``agents.make_train`` vmapped over seeds (inner) and
    settings (outer), compiled once. ``config`` is an ``agents.TrainConfig``."""
    over_seeds = jax.vmap(agents.make_train(env, config), in_axes=(0, None))
    return jax.jit(jax.vmap(over_seeds, in_axes=(None, 0)))


def run_sweep(config: SweepConfig | None = None, progress: bool = True) -> tuple[Sweep, float]:
    """Train every setting of ``SWEEP`` for every seed (default ``SweepConfig()``, the stored full
    sweep). Returns the sweep and its seconds (compilation included)."""
    config = SweepConfig() if config is None else config
    env = make_snake(grid=6, n_envs=config.n_envs)
    train_config = agents.TrainConfig(
        n_updates=config.n_updates,
        rollout_len=config.rollout_len,
        learning_rate=config.learning_rate,
    )
    settings = sweep_settings()
    keys = jax.random.split(jax.random.PRNGKey(config.seed), config.n_seeds)
    start = time.perf_counter()
    with progress_bar("sweep", disable=not progress):
        _, metrics = jax.block_until_ready(
            make_sweep(env, train_config)(keys, stacked_hypers(settings))
        )
    seconds = time.perf_counter() - start
    returns = np.asarray(metrics["episode_return"], np.float32)
    return Sweep(config, tuple(settings), returns), seconds


def save_sweep(
    sweep: Sweep, path: str | os.PathLike, seconds: float, command: Sequence[str] | None = None
) -> None:
    """``path`` (.npz: settings, returns, config) and its sidecar ``<path>.json`` (config,
    compute seconds, when, the machine, the command relative to the repository)."""
    path = Path(path)
    config = sweep.config._asdict()
    write_npz(
        path,
        {
            "config": np.array(json.dumps(config, sort_keys=True)),
            "names": np.array([name for name, _ in sweep.settings]),
            "values": np.array([value for _, value in sweep.settings]),
            "returns": sweep.returns,
        },
    )
    write_record(path, config, seconds, command)


def load_sweep(path: str | os.PathLike = STORED_SWEEP) -> Sweep:
    """Read a sweep written by ``save_sweep`` (default: the stored full sweep)."""
    with np.load(path, allow_pickle=False) as data:
        config = SweepConfig(**json.loads(str(data["config"])))
        pairs = zip(data["names"], data["values"], strict=True)
        settings = tuple((str(name), float(value)) for name, value in pairs)
        return Sweep(config, settings, data["returns"])
