"""Argument checks shared by the whole library: one module, one argument order (name first).

Each check raises ``ValueError`` naming the argument and the allowed range before any tracing, so a
learner sees ``k_max must be an integer >= 1, got 0`` instead of a traceback from inside JAX. Values
that are only known at run time (tracers inside ``jit``) pass through unchecked.
"""

from __future__ import annotations

from collections.abc import Collection

import jax
import numpy as np


def _is_traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def check_int(
    name: str, value, minimum: int = 1, maximum: int | None = None, maximum_name: str | None = None
) -> int:
    """``value`` as an ``int`` in [minimum, maximum]; ``maximum_name`` says what bounds it.

    Booleans are rejected (``True`` is an int to Python, never a count to a learner).
    """
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if maximum is None:
        if not is_int or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        return int(value)
    if not is_int or not minimum <= value <= maximum:
        bound = f"{maximum_name}={maximum}" if maximum_name else str(maximum)
        raise ValueError(f"{name} must be an integer from {minimum} to {bound}, got {value!r}")
    return int(value)


def check_unit_interval(name: str, value):
    """A scalar in [0, 1], returned as a float; a traced scalar is returned unchecked.

    As ``check_number``, booleans and strings are rejected (``True`` would pass as 1.0 and
    ``"0.5"`` as 0.5); a 0-d array of numbers is accepted.
    """
    if _is_traced(value):
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
        return value
    array = np.asarray(value)
    if isinstance(value, bool) or array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if array.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {array.shape}")
    number = float(array)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {number}")
    return number


def check_number(name: str, value, low: float, high: float) -> float:
    """``value`` as a float in [low, high] (a slider's range), else a ValueError naming ``name``.

    Booleans, strings and NaN are rejected: a slider would coerce them into some other value.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not low <= value <= high  # also rejects NaN
    ):
        raise ValueError(f"{name} must be a number from {low:g} to {high:.4g}, got {value!r}")
    return float(value)


def check_positive(name: str, value, note: str = ""):
    """A finite scalar > 0, returned as a float; a traced scalar is returned unchecked.

    ``note`` says why after the bound (``" (it is learnt through exp)"``). As ``check_number``,
    booleans, strings, NaN and infinity are rejected; a 0-d array of numbers is accepted.
    """
    if _is_traced(value):
        return value
    array = np.asarray(value)
    if (
        isinstance(value, bool)
        or array.dtype.kind not in "iuf"
        or array.ndim != 0
        or not 0 < float(array) < np.inf  # also rejects NaN
    ):
        raise ValueError(f"{name} must be > 0{note}, got {value!r}")
    return float(array)


def check_shape(name: str, value, shape: tuple, described: str | None = None) -> np.ndarray:
    """``value`` as a float array of ``shape`` (``None`` stands for any length on that axis).

    ``described`` names the axes in the message (``"[n_seeds, n_points]"``); else the shape itself.
    """
    array = np.asarray(value, dtype=float)
    fits = array.ndim == len(shape) and all(
        n is None or n == m for n, m in zip(shape, array.shape, strict=True)
    )
    if not fits:
        raise ValueError(f"{name} must have shape {described or shape}, got shape {array.shape}")
    return array


def check_count(name: str, array, minimum: int, unit: str) -> np.ndarray:
    """``array`` (at least 1-D) if its leading axis holds at least ``minimum`` ``unit``."""
    array = np.asarray(array)
    if len(array) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} {unit}, got {len(array)}")
    return array


def check_choice(name: str, value, choices: Collection):
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_finite_per_step(name: str, per_step):
    """Raise if a concrete ``[..., k_max, n_eta]`` result is non-finite, naming the first bad k.

    Returns ``per_step`` unchanged (tracers too), so it can wrap a return value.
    """
    if _is_traced(per_step):
        return per_step
    values = np.asarray(per_step)
    bad = ~np.isfinite(values).reshape(-1, values.shape[-2], values.shape[-1]).all(axis=(0, 2))
    if bad.any():
        k = int(np.argmax(bad)) + 1
        raise ValueError(
            f"{name} diverged (non-finite) at k={k}: try a smaller learning rate or a smaller k_max"
        )
    return per_step
