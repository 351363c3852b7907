"""Power-of-two (PoT) fixed-point quantizers.

A b-bit signed fixed-point number with f fractional bits is `q * 2^-f`, q an integer in
[-2^(b-1), 2^(b-1) - 1]. The scale 2^-f is a power of two, so rescaling is a shift on hardware.
f may be negative (large ranges) and is chosen per tensor, per channel, or per block:

    granularity "tensor":  one f for the whole tensor.
    granularity "channel": one f per index along `axis` (e.g. the output channels of a kernel).
    granularity "block":   one f per block of `block_size` consecutive indices along `axis`
                           (the last block may be shorter); "channel" is "block" with size 1.

Range clipping picks f from the data itself, so no input preprocessing is needed:

    "maxabs":     the largest f whose range still holds max|x| (no clipping).
    "percentile": the same for the `percentile`-th percentile of |x| (clips outliers).
    "mse":        among the maxabs f and up to `MSE_SEARCH` more fractional bits, the f with
                  the least mean squared quantization error.

Rounding modes (e: quantized minus exact value, lsb = 2^-f, inside the range):
    "nearest":    round half to even, |e| <= lsb / 2.
    "truncate":   floor (two's complement truncation), -lsb < e <= 0.
    "stochastic": floor(x / lsb + u), u ~ U[0, 1); unbiased, |e| < lsb.

`quantize` is the one quantizer of this library. It works on NumPy arrays and on backend
tensors, and its gradient is the clipped straight-through estimator (1 inside the range, 0
outside), so the same function serves post-training quantization, its calibration and
quantization-aware fine-tuning.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_caps.errors import UserError

ROUNDING_MODES = ("nearest", "truncate", "stochastic")
CLIPPING_METHODS = ("maxabs", "percentile", "mse")
GRANULARITIES = ("tensor", "channel", "block")
MIN_BITS, MAX_BITS = 2, 16
# fractional bits f (scale 2^-f) a spec may hold: 2^+-64 and values times it stay finite in
# float32; calibration clamps to it (a tensor with max|x| < 2^-50 quantizes to ~0 anyway)
FRAC_BITS_LIMIT = 64
MSE_SEARCH = 6  # extra fractional bits tried by the "mse" clipping
DEFAULT_PERCENTILE = 99.99


def check_bit_range(min_bits, max_bits):
    """Validates a search range of bit-widths: both valid and min_bits <= max_bits."""
    lo, hi = check_bits(min_bits, "min_bits"), check_bits(max_bits, "max_bits")
    if lo > hi:
        raise UserError(f"min_bits ({lo}) must not exceed max_bits ({hi}): the searches try "
                        "bit-widths from max_bits down to min_bits.")
    return lo, hi


def check_bits(bits, what="bits"):
    """Validates a bit-width: an integer in [MIN_BITS, MAX_BITS]."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not (
        MIN_BITS <= int(bits) <= MAX_BITS
    ):
        raise UserError(
            f"{what} must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}. Power-of-two "
            "fixed point below 2 bits has no sign and magnitude; above 16 use float32."
        )
    return int(bits)


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {list(choices)}.")
    return value


def qrange(bits):
    """Integer range (lo, hi) of a signed `bits`-bit number."""
    bits = check_bits(bits)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def quantize(x, bits, frac_bits, rounding="nearest", seed=None):
    """Fake-quantizes `x` to signed `bits`-bit fixed point with power-of-two scales.

    Args:
        x: array or tensor, any shape.
        bits: bit-width in 2..16.
        frac_bits: fractional bits f, a scalar or an integer array broadcastable to `x`
            (see `frac_bits_for`). The scale is 2^-f.
        rounding: one of ROUNDING_MODES.
        seed: int or keras.random.SeedGenerator for "stochastic" rounding.
    Returns:
        The dequantized values `q * 2^-f`, same shape as `x`, float32. The gradient with
        respect to `x` is 1 where x is inside the representable range and 0 where clipped.
    """
    lo, hi = qrange(bits)
    _check_choice(rounding, ROUNDING_MODES, "rounding mode")
    x = ops.convert_to_tensor(x, "float32")
    scale = ops.convert_to_tensor(np.exp2(np.asarray(frac_bits, np.float32)), "float32")
    step = 1.0 / scale
    clipped = ops.clip(x, lo * step, hi * step)  # (same as x)
    y = clipped * scale
    if rounding == "nearest":
        q = ops.round(y)
    elif rounding == "truncate":
        q = ops.floor(y)
    else:
        noise = keras.random.uniform(ops.shape(y), seed=seed)
        q = ops.floor(y + noise)
    q = ops.clip(q, lo, hi) * step
    return clipped + ops.stop_gradient(q - clipped)  # straight-through inside the range


def maxabs_frac_bits(maxabs, bits):
    """Largest f with max|x| <= (2^(b-1) - 1) * 2^-f, elementwise; 0 where maxabs is 0."""
    hi = 2 ** (check_bits(bits) - 1) - 1
    m = np.asarray(maxabs, np.float64)
    safe = np.where(m > 0, m, 1.0)
    f = np.clip(np.floor(np.log2(hi / safe)), -FRAC_BITS_LIMIT, FRAC_BITS_LIMIT)
    return np.where(m > 0, f, bits - 1).astype(np.int32)


def _groups(x, granularity, axis, block_size):
    """Splits x into quantization groups along `axis`: list of (index slice, values 1-D)."""
    if granularity == "tensor" or x.ndim == 0:
        return [(slice(None), x.reshape(-1))]
    n = x.shape[axis]
    size = 1 if granularity == "channel" else int(block_size)
    moved = np.moveaxis(x, axis, 0)
    return [
        (slice(i, min(i + size, n)), moved[i : i + size].reshape(-1)) for i in range(0, n, size)
    ]


def _choose(values, bits, clipping, percentile, rounding):
    a = np.abs(values.astype(np.float64))
    if a.size == 0 or not np.any(a > 0):
        return bits - 1
    if clipping == "percentile":
        return int(maxabs_frac_bits(np.percentile(a, percentile), bits))
    base = int(maxabs_frac_bits(a.max(), bits))
    if clipping == "maxabs":
        return base
    best, best_err = base, math.inf
    v = values.astype(np.float32)
    for f in range(base, max(base, min(base + MSE_SEARCH, FRAC_BITS_LIMIT)) + 1):
        q = np.asarray(quantize(v, bits, f, "nearest" if rounding == "stochastic" else rounding))
        err = float(np.mean((q - v) ** 2))
        if err < best_err:
            best, best_err = f, err
    return best


def frac_bits_for(
    x,
    bits,
    clipping="mse",
    granularity="tensor",
    axis=-1,
    block_size=None,
    percentile=DEFAULT_PERCENTILE,
    rounding="nearest",
):
    """Chooses the fractional bits of `x` for a `bits`-bit PoT quantizer.

    Args:
        x: array (any shape) of the values to cover (weights, or calibration samples).
        bits: bit-width in 2..16.
        clipping: one of CLIPPING_METHODS (see module docstring).
        granularity: one of GRANULARITIES.
        axis: the channel axis for "channel" and "block".
        block_size: indices per block along `axis` for "block" (>= 1).
        percentile: for clipping "percentile", in (0, 100].
        rounding: the rounding mode the values will be quantized with ("mse" scores with it).
    Returns:
        int32 fractional bits: a scalar for "tensor"; otherwise an array with the shape of `x`
        except 1 on every axis but `axis`, so it broadcasts against `x`.
    """
    bits = check_bits(bits)
    _check_choice(clipping, CLIPPING_METHODS, "clipping method")
    _check_choice(granularity, GRANULARITIES, "granularity")
    _check_choice(rounding, ROUNDING_MODES, "rounding mode")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}.")
    x = np.asarray(x)
    if granularity != "tensor" and x.ndim:
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"axis {axis} is out of range for a tensor of shape {x.shape}.")
        if granularity == "block" and (block_size is None or int(block_size) < 1):
            raise ValueError(f"block granularity needs block_size >= 1, got {block_size!r}.")
    groups = _groups(x, granularity, axis, block_size)
    fracs = [_choose(vals, bits, clipping, percentile, rounding) for _, vals in groups]
    if granularity == "tensor" or x.ndim == 0:
        return np.int32(fracs[0])
    axis = axis % x.ndim
    per_index = np.empty(x.shape[axis], np.int32)
    for (index, _), f in zip(groups, fracs):
        per_index[index] = f
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return per_index.reshape(shape)


def quantize_array(x, bits, clipping="mse", granularity="tensor", axis=-1, block_size=None,
                   percentile=DEFAULT_PERCENTILE, rounding="nearest", seed=None):
    """Chooses f for `x` (see `frac_bits_for`) and quantizes it. Returns (values, frac_bits)."""
    f = frac_bits_for(x, bits, clipping, granularity, axis, block_size, percentile, rounding)
    return np.asarray(quantize(np.asarray(x, np.float32), bits, f, rounding, seed)), f


__all__ = [
    "CLIPPING_METHODS",
    "GRANULARITIES",
    "FRAC_BITS_LIMIT",
    "MAX_BITS",
    "MIN_BITS",
    "ROUNDING_MODES",
    "check_bit_range",
    "check_bits",
    "frac_bits_for",
    "maxabs_frac_bits",
    "qrange",
    "quantize",
    "quantize_array",
]
