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
    """Validates a search range of bit-widths: both valid and `min_bits` <= `max_bits`.

    Args:
        min_bits: int, the fewest bits a search may try.
        max_bits: int, the most.
    Returns:
        (min_bits, max_bits) as ints.
    Raises:
        keras_caps.errors.UserError: a bit-width outside [MIN_BITS, MAX_BITS] (2..16), or
            `min_bits` > `max_bits`.

    Example:

    ```python
    from keras_caps.quantization.pot import check_bit_range

    assert check_bit_range(4, 8) == (4, 8)
    try:
        check_bit_range(8, 4)
    except ValueError as err:  # a UserError
        assert "must not exceed" in str(err)
    else:
        raise AssertionError("8 > 4")
    ```
    """
    lo, hi = check_bits(min_bits, "min_bits"), check_bits(max_bits, "max_bits")
    if lo > hi:
        raise UserError(f"min_bits ({lo}) must not exceed max_bits ({hi}): the searches try "
                        "bit-widths from max_bits down to min_bits.")
    return lo, hi


def check_bits(bits, what="bits"):
    """Validates a bit-width: an integer in [MIN_BITS, MAX_BITS] (2..16).

    Args:
        bits: the bit-width to check (bools and floats are rejected).
        what: str, how the message names the value. Defaults to "bits".
    Returns:
        `bits` as an int.
    Raises:
        keras_caps.errors.UserError: not an integer in 2..16.

    Example:

    ```python
    from keras_caps.quantization.pot import check_bits

    assert check_bits(8) == 8
    try:
        check_bits(1, "weight_bits")
    except ValueError as err:
        assert str(err).startswith("weight_bits must be an integer in 2..16")
    else:
        raise AssertionError("1 bit is too few")
    ```
    """
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
    """The integer range (lo, hi) of a signed `bits`-bit number.

    Args:
        bits: int in 2..16.
    Returns:
        (-2^(bits-1), 2^(bits-1) - 1).

    Example:

    ```python
    from keras_caps.quantization.pot import qrange

    assert qrange(8) == (-128, 127)
    assert qrange(4) == (-8, 7)
    ```
    """
    bits = check_bits(bits)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def quantize(x, bits, frac_bits, rounding="nearest", seed=None):
    """Fake-quantizes `x` to signed `bits`-bit fixed point with power-of-two scales.

    Args:
        x: array or tensor, any shape.
        bits: int, the bit-width in 2..16.
        frac_bits: fractional bits f, a scalar or an integer array broadcastable to `x`
            (see `frac_bits_for`). The scale is 2^-f.
        rounding: one of `ROUNDING_MODES`: "nearest" (the default), "truncate" or
            "stochastic".
        seed: int or `keras.random.SeedGenerator` for "stochastic" rounding. Defaults to
            None.
    Returns:
        The dequantized values `q * 2^-f`, same shape as `x`, float32. The gradient with
        respect to `x` is 1 where x is inside the representable range and 0 where clipped.
    Raises:
        ValueError: a bit-width outside 2..16 or an unknown rounding mode.

    Example:

    ```python
    import numpy as np
    from keras_caps.quantization import quantize

    x = np.array([0.30, -0.70, 1.00, 9.0], "float32")
    # 4 bits, f = 2: steps of 0.25 in [-8, 7] * 0.25 = [-2.0, 1.75]
    np.testing.assert_allclose(quantize(x, bits=4, frac_bits=2), [0.25, -0.75, 1.0, 1.75])
    np.testing.assert_allclose(quantize(x, 4, 2, rounding="truncate"), [0.25, -0.75, 1.0, 1.75])
    # per-channel exponents broadcast against x
    np.testing.assert_allclose(quantize(x, 8, np.array([4, 4, 0, 0])), [0.3125, -0.6875, 1.0, 9.0])
    ```
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
    """The largest f with max|x| <= (2^(b-1) - 1) * 2^-f, elementwise (b - 1 where maxabs is 0).

    Args:
        maxabs: float or array of the largest magnitudes to cover.
        bits: int, the bit-width in 2..16.
    Returns:
        int32 array (or scalar) of fractional bits, clipped to +-FRAC_BITS_LIMIT.

    Example:

    ```python
    import numpy as np
    from keras_caps.quantization.pot import maxabs_frac_bits

    assert int(maxabs_frac_bits(1.0, 8)) == 6  # 127 * 2^-6 = 1.98 >= 1 > 127 * 2^-7
    np.testing.assert_array_equal(maxabs_frac_bits([0.1, 100.0, 0.0], 8), [10, 0, 7])
    ```
    """
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
        bits: int, the bit-width in 2..16.
        clipping: one of `CLIPPING_METHODS`: "mse" (the default), "maxabs" or "percentile"
            (see the module docstring).
        granularity: one of `GRANULARITIES`: "tensor" (the default), "channel" or "block".
        axis: int, the channel axis for "channel" and "block". Defaults to -1.
        block_size: int >= 1, the indices per block along `axis` for "block". Defaults to
            None.
        percentile: float in (0, 100], for clipping "percentile". Defaults to 99.99.
        rounding: the rounding mode the values will be quantized with ("mse" scores with
            it). Defaults to "nearest".
    Returns:
        int32 fractional bits: a scalar for "tensor"; otherwise an array with the shape of `x`
        except 1 on every axis but `axis`, so it broadcasts against `x`.
    Raises:
        ValueError: an unknown option, a bad `axis`, `percentile` or `block_size`.

    Example:

    ```python
    import numpy as np
    from keras_caps.quantization import frac_bits_for

    kernel = np.stack([np.full(4, 0.1), np.full(4, 3.0)], axis=-1)  # (4, 2): 2 channels
    assert int(frac_bits_for(kernel, 8, clipping="maxabs")) == 5  # one f for max|x| = 3
    per_channel = frac_bits_for(kernel, 8, clipping="maxabs", granularity="channel")
    assert per_channel.shape == (1, 2) and per_channel.tolist() == [[10, 5]]
    ```
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
    """Chooses f for `x` (see `frac_bits_for`) and quantizes it (see `quantize`).

    Args:
        x: array, any shape.
        bits: int, the bit-width in 2..16.
        clipping: as in `frac_bits_for`. Defaults to "mse".
        granularity: as in `frac_bits_for`. Defaults to "tensor".
        axis: as in `frac_bits_for`. Defaults to -1.
        block_size: as in `frac_bits_for`. Defaults to None.
        percentile: as in `frac_bits_for`. Defaults to 99.99.
        rounding: as in `quantize`. Defaults to "nearest".
        seed: as in `quantize`. Defaults to None.
    Returns:
        (values, frac_bits): the dequantized float32 array and the exponents chosen.

    Example:

    ```python
    import numpy as np
    from keras_caps.quantization import quantize_array

    w = np.random.default_rng(0).normal(0, 0.5, (3, 3, 8, 16)).astype("float32")
    # one exponent per output channel, no clipping: every error within half a step 2^-f
    q, f = quantize_array(w, 8, clipping="maxabs", granularity="channel")
    assert q.shape == w.shape and f.shape == (1, 1, 1, 16)
    assert np.all(np.abs(q - w) <= 0.5 * 2.0 ** -f.astype("float32"))
    ```
    """
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
