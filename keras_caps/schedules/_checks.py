"""Argument checks shared by the schedule and batch-policy modules (private)."""

from __future__ import annotations

import math
import numbers

from keras import ops

_DTYPE = "float32"


def _float(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return value


def _positive(name, value):
    value = _float(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}.")
    return value


def _non_negative(name, value):
    value = _float(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")
    return value


def _int(name, value, minimum):
    """An integer >= `minimum`; integral floats (e.g. from flags or JSON) are accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        value = int(value)
    else:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return value


def _ordered(low_name, low, high_name, high):
    if low > high:
        raise ValueError(f"{low_name} ({low}) must be <= {high_name} ({high}).")


def _unit_interval(name, value, include_zero=False):
    value = _float(name, value)
    if not ((0.0 <= value if include_zero else 0.0 < value) and value <= 1.0):
        low = "[0" if include_zero else "(0"
        raise ValueError(f"{name} must be in {low}, 1], got {value}.")
    return value


def _step(step):
    """The step as a float32 tensor, clipped below at 0."""
    return ops.maximum(ops.cast(step, _DTYPE), 0.0)


def _lookup(kind, table, name):
    if not isinstance(name, str):
        raise ValueError(f"{kind} name must be a string, got {name!r}.")
    key = name.strip().lower().replace("-", "_")
    if key not in table:
        raise ValueError(f"Unknown {kind} {name!r}; valid names: {', '.join(sorted(table))}.")
    return table[key]
