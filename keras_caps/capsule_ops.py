"""Capsule primitives: squash, safe lengths, vote computation and dynamic routing.

Everything here is written with `keras.ops` in the forms that survive integer TFLite export
(see DESIGN.md "The maths" and "Integer TFLite"): squared norms are MUL + SUM, squash uses
RSQRT rather than SQRT + DIV chains, the first routing iteration uses the uniform coupling 1/J
instead of a softmax over zeros (no ZEROS_LIKE in the exported graph), and votes are computed
with einsum / batched matmul, never tile + map_fn.

Shape legend used in every docstring:
    B batch, N input capsules, J output capsules, Din / Dout input / output capsule dims,
    T primary-capsule types (weight sharing), P spatial positions (N = P * T).

Two forms of the same routing:
    - `dynamic_routing(votes)` routes precomputed votes kept as (B, J, N, Dout): both routing
      contractions are batched matrix-vector products over the N x Dout block of each output
      capsule (s_j = c_j @ u_hat_j, a_j = u_hat_j @ v_j). ConvCapsule and weight sharing use it.
    - `dense_routing(u, kernel)` gives exactly the same result (values and gradients) without
      ever forming the votes, using u_hat_ij = W_ij u_i inside each contraction:
          s_j  = sum_i c_ij W_ij^T u_i = W_j^T (c_j * u)          one matmul per j over N * Din
          a_ij = u_hat_ij . v_j = u_i . (W_ij v_j)               one matmul per j, then a Din sum
      and the first iteration (c = 1/J) is a single dense matmul (J * Dout, N * Din) @ (N * Din, B).
      It does ~5x the multiply-adds of the votes form for 3 iterations, but every tensor is
      B * N * J * Din (half the votes for Din = 8, Dout = 16) and the work is GEMMs, which is
      faster to train on CPU: the Sabour votes are 47 MB at B = 64, every op over them streams
      that much memory, and each such tensor is a fresh allocation (glibc maps blocks over
      32 MB anew, page faults and all). DenseCapsule trains with it (benchmarks/throughput.py)
      and keeps the votes form for inference and export: at batch 1 the multiply-adds count,
      and TFLite's BATCH_MATMUL keeps a transposed copy of a constant right-hand side per op.
"""

from __future__ import annotations

import contextlib
import contextvars

import keras
from keras import ops

#: Added to squared norms inside square roots so that squash(0) = 0 with finite gradients.
EPSILON = 1e-7

_INTEGER_FORM = contextvars.ContextVar("keras_caps_integer_form", default=False)
_SQUASH_RANGES = contextvars.ContextVar("keras_caps_squash_ranges", default=())
_SQUARED_NORMS_SEEN = contextvars.ContextVar("keras_caps_squared_norms_seen", default=None)


@contextlib.contextmanager
def integer_form(enabled=True, squash_ranges=()):
    """Inside this context, capsule ops build their integer-export form (docs/fidelity.md).

    The same functions (in float: equal, except squash of capsules shorter than 0.26, whose
    length is at most 1/128 too small), written with int8 ops on which LiteRT's reference
    kernels and TFLite Micro compute bit for bit the same: reductions as MEAN of a pre-scaled
    tensor (never SUM), and squash in a form whose int8 intermediates are all bounded (so
    the optimized kernels' 1-step rounding differences are not amplified). Training never
    enters it; `tflite.export` traces every integer export graph inside it.

    Args:
        enabled: bool, whether the integer form is on inside the context. Defaults to True.
        squash_ranges: the ranges of |s|^2 that squash sums on their own int8 grids
            (`_ranged_rsqrt1p`) where a layer does not choose them; () (the default): one
            grid. `squash_ranges_for` picks them from the largest |s|^2 a model computes.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import in_integer_form, integer_form, squash

    s = np.random.rand(2, 10, 16).astype("float32")
    with integer_form():
        assert in_integer_form()
        exported = squash(s)
    assert not in_integer_form()
    # equal in float, up to one int8 step for short capsules
    np.testing.assert_allclose(exported, squash(s), atol=1 / 128)
    ```
    """
    token = _INTEGER_FORM.set(bool(enabled))
    ranges = _SQUASH_RANGES.set(tuple(float(c) for c in squash_ranges))
    try:
        yield
    finally:
        _SQUASH_RANGES.reset(ranges)
        _INTEGER_FORM.reset(token)


@contextlib.contextmanager
def record_squared_norms():
    """Collects the largest |s|^2 of every squash that chooses no ranges (eager calls).

    Yields a list that each such squash call appends its max |s|^2 (a float) to: run the
    float model on calibration images inside it, then `squash_ranges_for(max(seen))`.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import record_squared_norms, squash

    with record_squared_norms() as seen:
        squash(np.array([[[3.0, 4.0]]], "float32"))
    np.testing.assert_allclose(seen, [25.0])
    ```
    """
    seen = []
    token = _SQUARED_NORMS_SEEN.set(seen)
    try:
        yield seen
    finally:
        _SQUARED_NORMS_SEEN.reset(token)


#: Above this largest |s|^2 the integer squash sums |s|^2 in ranges: one int8 grid over
#: [0, 1024] has a step of 4, which rounds the |s|^2 of capsules up to |s| ~ 1.4 (|v| ~ 0.67)
#: to 0. Measured on the shipped models (2,000 training images): the M model's primary
#: capsules reach 19,832 and lose 2.6 points of int8 accuracy on one grid, 0.3 in ranges; the
#: S model's reach 257 and lose 0.6 points more in ranges than on one grid. The threshold
#: lies between the two; it was not tuned further.
SQUASH_RANGES_ABOVE = 1024.0


def squash_ranges_for(max_squared_norm):
    """The `integer_form(squash_ranges=...)` for a model whose squash inputs reach a given |s|^2.

    Args:
        max_squared_norm: float, the largest |s|^2 of the model's squash inputs on its
            calibration images (`record_squared_norms`).
    Returns:
        () (one int8 grid) up to `SQUASH_RANGES_ABOVE`, else the `INTEGER_SQUASH_RANGES` below
        `max_squared_norm`.

    Example:

    ```python
    from keras_caps.capsule_ops import squash_ranges_for

    assert squash_ranges_for(257.0) == ()
    assert squash_ranges_for(19832.0) == (16.0, 256.0, 4096.0)
    assert squash_ranges_for(2000.0) == (16.0, 256.0)
    ```
    """
    if float(max_squared_norm) <= SQUASH_RANGES_ABOVE:
        return ()
    return tuple(c for c in INTEGER_SQUASH_RANGES if c < float(max_squared_norm))


def in_integer_form():
    """Whether `integer_form()` is active.

    Returns:
        bool.

    Example:

    ```python
    from keras_caps.capsule_ops import in_integer_form, integer_form

    assert not in_integer_form()
    with integer_form():
        assert in_integer_form()
        with integer_form(enabled=False):
            assert not in_integer_form()
    ```
    """
    return _INTEGER_FORM.get()


def _scaled_sum(x, axis, scale=1.0, keepdims=False):
    """scale * sum of x over one axis.

    In the integer form MEAN(x * (scale * size)): LiteRT's reference int8 SUM saturates where
    the other runtimes do not, and a MUL by a constant *after* the MEAN gets the MEAN's output
    quantized on the scale of the product (the converter's choice), losing log2(size) bits.
    """
    if in_integer_form():
        factor = float(scale) * float(x.shape[axis])
        return ops.mean(ops.multiply(x, factor), axis=axis, keepdims=keepdims)
    s = ops.sum(x, axis=axis, keepdims=keepdims)
    return s if scale == 1.0 else ops.multiply(s, float(scale))


def squared_norm(s, axis=-1, keepdims=False):
    """Sum of squares along `axis` (MUL + SUM; export-friendly, no SQUARE op).

    Args:
        s: tensor of any shape, e.g. capsules (B, J, D).
        axis: int, the capsule-dimension axis. Defaults to -1.
        keepdims: bool, keep the reduced axis with size 1. Defaults to False.
    Returns:
        The squared norms, e.g. (B, J), or (B, J, 1) with `keepdims`.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import squared_norm

    capsules = np.array([[[3.0, 4.0], [1.0, 0.0]]], "float32")  # (B, J, D) = (1, 2, 2)
    np.testing.assert_allclose(squared_norm(capsules), [[25.0, 1.0]])  # (B, J)
    assert squared_norm(capsules, keepdims=True).shape == (1, 2, 1)
    ```
    """
    if in_integer_form():
        return _ones_matmul_sum(ops.multiply(s, s), axis=axis, keepdims=keepdims)
    return ops.sum(ops.multiply(s, s), axis=axis, keepdims=keepdims)


def _ones_matmul_sum(x, axis=-1, keepdims=False):
    """Sum over `axis` as a batched matmul with a constant column of ones: BATCH_MATMUL.

    The integer form of the squared norms. x is flattened to (1, M, D) and multiplied by a
    constant (1, D, 1) of ones: a rank-3 constant right-hand side, which the converter keeps
    a BATCH_MATMUL (a rank-2 one it folds into FULLY_CONNECTED). Both accumulate the int8
    products in int32 and requantize once, so the sum keeps the precision of the SUM it
    replaces (MEAN(x * D) quantizes x * D on a D-times wider int8 grid: on the S
    microcontroller CapsNet it cost 2.4 points of int8 accuracy). TFLite Micro's int8
    FULLY_CONNECTED rounds 1 step apart from LiteRT's reference kernel on some inputs, and the
    RSQRT of squash amplified that step to 100+; its BATCH_MATMUL with a constant right-hand
    side computes what LiteRT's reference kernel does, bit for bit (docs/fidelity.md).

    Args:
        x: any shape, e.g. (B, J, D).
        axis: the axis to sum over.
        keepdims: keep it with size 1.
    Returns:
        The sums: x's shape without `axis`, or with it of size 1 with `keepdims`.
    """
    import numpy as np

    rank = len(x.shape)
    axis = axis % rank
    if axis != rank - 1:
        x = ops.transpose(x, [i for i in range(rank) if i != axis] + [axis])
    lead = tuple(-1 if d is None else int(d) for d in x.shape[:-1])  # at most one unknown
    depth = int(x.shape[-1])
    ones = ops.convert_to_tensor(np.ones((1, depth, 1), "float32"))
    flat = ops.reshape(x, (1, -1, depth))  # (1, M, D)
    total = ops.reshape(ops.matmul(flat, ones), lead + (1,))  # (..., 1)
    if keepdims and axis == rank - 1:
        return total
    total = ops.squeeze(total, -1)
    return ops.expand_dims(total, axis) if keepdims else total


#: Floor of r = |t|^2 under the RSQRT of the integer squash: rsqrt(max(r, R0)) lies in [1, 4].
INTEGER_SQUASH_FLOOR = 1.0 / 16.0


#: Upper ends of the ranges of |s|^2 that the integer squash sums on their own int8 grids
#: (the last range, above 4096, is the full calibrated one). Ratio 16: a range's grid step
#: is about 1/16 of its lower end.
INTEGER_SQUASH_RANGES = (16.0, 256.0, 4096.0)
#: The routing's squash of the class capsules sums |s|^2 on one grid whatever the model
#: (its |s|^2 spans [0, ~120] on the shipped models; ranges there changed no prediction on
#: 2,000 training images of the M model and added ops, bytes and arena).
ROUTING_SQUASH_RANGES = ()


def _ranged_rsqrt1p(s, axis, ranges):
    """rsqrt(1 + |s|^2) as a product of one bounded factor per range of |s|^2.

    One int8 grid cannot hold |s|^2: over the shipped M model's primary capsules it spans
    [0, 19,832], a step of ~78, so every capsule with |s|^2 < 39 (a tenth of them) came out of
    squash as 0, which cost 2 points of int8 accuracy. Here, for the ranges
    [0, C1], [C1, C2], ..., [Cn, inf) given by `ranges` (C1..Cn, e.g. `INTEGER_SQUASH_RANGES`),
    range k sums the squares of s clipped to +-sqrt(C_k) (so its int8 grid spans [0, D C_k]
    and the clipped sum is at least C_k whenever |s|^2 is) and keeps the part of the sum
    inside its range: q_k = clip(|s|^2 - C_{k-1}, 0, C_k - C_{k-1}). Then

        rsqrt(1 + |s|^2) = prod_k rsqrt(1 + C_{k-1} + q_k) * sqrt(1 + C_{k-1})

    (the factors below |s|^2's range are rsqrt(1 + C_k) sqrt(1 + C_{k-1}), those above are
    1: the product telescopes). Every factor lies in [1/4, 1] and is computed on the grid of
    its own range. A range that the calibration data never reaches gives q_k = 0 exactly and
    a factor of 1 (clipping to [C_{k-1}, C_k] instead would not: int8 MAXIMUM keeps its
    input's grid, on which C_{k-1} may not exist).

    Args:
        s: capsules (..., D, ...) with the capsule dimension on `axis`.
        axis: int, the capsule-dimension axis.
        ranges: the upper ends C1 < ... < Cn; () gives the one-grid rsqrt(1 + |s|^2).
    Returns:
        rsqrt(1 + |s|^2) with `axis` kept of size 1.
    """
    import math

    inv = None
    low = 0.0
    for cap in tuple(ranges) + (None,):
        part = s if cap is None else ops.clip(s, -math.sqrt(cap), math.sqrt(cap))
        q = squared_norm(part, axis=axis, keepdims=True)
        if low > 0.0:  # the part of |s|^2 above `low`: 0 (exact) below the range
            q = ops.relu(ops.subtract(q, low))
        if cap is not None:
            q = ops.minimum(q, cap - low)
        factor = ops.rsqrt(ops.add(q, 1.0 + low))
        if low > 0.0:
            factor = ops.multiply(factor, math.sqrt(1.0 + low))
        inv = factor if inv is None else ops.multiply(inv, factor)
        low = cap
    return inv


def _integer_squash(s, axis, ranges):
    """squash in bounded int8 steps: t = s / sqrt(1 + |s|^2), v = t * |t|.

    |t|^2 = 1 - 1 / (1 + |s|^2) = r in [0, 1) and t * |t| = s |s| / (1 + |s|^2) = squash(s).
    Every intermediate is bounded: inv = rsqrt(1 + |s|^2) in (0, 1] (from one factor per
    range of |s|^2, `_ranged_rsqrt1p`), |t| < 1, r in [0, 1), rsqrt(max(r, R0)) in
    [1, 1 / sqrt(R0)] = [1, 4]. |t| = sqrt(r) is r * rsqrt(max(r, R0)): exact for r >= R0;
    below it (|s| < 0.26) |t| is 4 r < sqrt(r) and |v| is at most 1/128 too small (one int8
    step of v).

    The float form s * f(|s|^2), f(x) = sqrt(x) / (1 + x), multiplies the int8-quantized f,
    whose slope is infinite at 0, by the unbounded s, and takes rsqrt(|s|^2 + eps) over a
    range sized by the smallest capsules: one quantization step of |s|^2 there moves v by up
    to ~100 steps, so the runtimes' 1-step rounding differences become different answers
    (docs/fidelity.md). Here the error of |t| is multiplied by t, which is small where it is
    large.
    """
    inv = _ranged_rsqrt1p(s, axis=axis, ranges=ranges)  # (0, 1]
    t = ops.multiply(s, inv)  # |t| < 1
    r = ops.subtract(1.0, ops.multiply(inv, inv))  # |t|^2 in [0, 1)
    norm_t = ops.multiply(r, ops.rsqrt(ops.maximum(r, INTEGER_SQUASH_FLOOR)))  # ~ |t|
    return ops.multiply(t, norm_t)


def squash(s, axis=-1, epsilon=EPSILON, ranges=None):
    """Squash non-linearity: s * |s|^2 / (1 + |s|^2) / sqrt(|s|^2 + eps).

    eps sits inside the root, so squash(0) = 0 and its gradient is finite everywhere.
    Output norms lie in [0, 1). Computed without DIV, SQRT or SQUARE, as
        s * (1 - rsqrt(1 + |s|^2)^2) * rsqrt(|s|^2 + eps)
    using |s|^2 / (1 + |s|^2) = 1 - 1 / (1 + |s|^2): every intermediate of the ratio lies in
    [0, 1] (good for 8-bit ranges) and every op (MUL, SUM, ADD, SUB, RSQRT) has int8 and int16
    TFLite kernels. With DIV, int8 LiteRT aborts when a wide |s|^2 range quantizes 1 + |s|^2
    to its zero point.

    Args:
        s: capsule pre-activations, any shape with the capsule dimension on `axis`, e.g.
            (B, J, D).
        axis: int, the capsule-dimension axis. Defaults to -1.
        epsilon: float, added to |s|^2 under the root. Defaults to `EPSILON` (1e-7).
        ranges: the integer export form only (`integer_form()`): upper ends of the ranges
            of |s|^2 summed on their own int8 grids (`_ranged_rsqrt1p`); () sums it on one.
            Defaults to None: `integer_form`'s `squash_ranges` (and, inside
            `record_squared_norms`, the call records its largest |s|^2). The float result
            does not depend on it.
    Returns:
        The squashed capsules, the shape of `s`.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import squash

    s = np.array([[[0.0, 0.0], [3.0, 4.0]]], "float32")  # (B, J, D): |s| = 0 and 5
    v = np.asarray(squash(s))
    np.testing.assert_allclose(v[0, 0], [0.0, 0.0])  # squash(0) = 0
    np.testing.assert_allclose(np.linalg.norm(v[0, 1]), 25 / 26, rtol=1e-5)  # |s|^2 / (1 + |s|^2)
    np.testing.assert_allclose(v[0, 1] / np.linalg.norm(v[0, 1]), [0.6, 0.8], rtol=1e-5)
    ```
    """
    if in_integer_form():
        return _integer_squash(s, axis=axis,
                               ranges=_SQUASH_RANGES.get() if ranges is None else ranges)
    sq = squared_norm(s, axis=axis, keepdims=True)  # (..., 1)
    seen = _SQUARED_NORMS_SEEN.get()
    if seen is not None and ranges is None:
        seen.append(float(ops.convert_to_numpy(ops.max(sq))))
    inv = ops.rsqrt(ops.add(sq, 1.0))  # 1 / sqrt(1 + |s|^2), in (0, 1]
    ratio = ops.subtract(1.0, ops.multiply(inv, inv))  # |s|^2 / (1 + |s|^2), in [0, 1)
    return ops.multiply(s, ops.multiply(ratio, ops.rsqrt(ops.add(sq, epsilon))))


def safe_length(s, axis=-1, keepdims=False, epsilon=EPSILON):
    """Capsule length sqrt(|s|^2 + eps): differentiable at 0 (length(0) = sqrt(eps) ~ 3e-4).

    Args:
        s: capsules, e.g. (B, J, D).
        axis: int, the capsule-dimension axis. Defaults to -1.
        keepdims: bool, keep the reduced axis with size 1. Defaults to False.
        epsilon: float, added under the root. Defaults to `EPSILON` (1e-7).
    Returns:
        The lengths, e.g. (B, J).

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import safe_length

    capsules = np.array([[[0.6, 0.8], [0.0, 0.0]]], "float32")  # (B, J, D)
    np.testing.assert_allclose(safe_length(capsules), [[1.0, 1e-7 ** 0.5]], rtol=1e-5)
    ```
    """
    return ops.sqrt(ops.add(squared_norm(s, axis=axis, keepdims=keepdims), epsilon))


def _batch(x):
    """Static batch size when known (export forms), else -1 for reshapes."""
    return x.shape[0] if x.shape[0] is not None else -1


def predict_votes(u, kernel):
    """Votes u_hat_{j|i} = W_ij u_i for every input capsule i and output capsule j.

    Computed as one batched matmul over the input capsules, (N, B, Din) @ (N, Din, J * Dout),
    with static reshapes: TFLite's lowering of the equivalent einsum declares wrong tensor
    shapes that TFLite Micro rejects.

    Args:
        u: input capsules, (B, N, Din).
        kernel: transforms, (N, J, Din, Dout).
    Returns:
        The votes in routing layout, (B, J, N, Dout).

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import predict_votes

    u = np.random.rand(2, 6, 4).astype("float32")  # (B, N, Din)
    kernel = np.random.rand(6, 3, 4, 5).astype("float32")  # (N, J, Din, Dout)
    votes = predict_votes(u, kernel)
    assert votes.shape == (2, 3, 6, 5)  # (B, J, N, Dout)
    np.testing.assert_allclose(votes, np.einsum("bni,njio->bjno", u, kernel), rtol=1e-5)
    ```
    """
    n, j, din, dout = kernel.shape
    b = _batch(u)
    w = ops.reshape(ops.transpose(kernel, (0, 2, 1, 3)), (n, din, j * dout))  # (N, Din, J*Dout)
    votes = ops.matmul(ops.transpose(u, (1, 0, 2)), w)  # (N, B, J * Dout)
    votes = ops.reshape(votes, (n, b, j, dout))
    return ops.transpose(votes, (1, 2, 0, 3))  # (B, J, N, Dout)


def predict_votes_shared(u, kernel):
    """Votes with weight sharing (FasTrCaps Alg. 4): one transform per capsule type.

    The transform of input capsule i = (position p, type t) is W_tj, shared over positions.
    One BATCH_MATMUL over the types; in the integer export form (`integer_form()`) one
    grouped 1x1 convolution over the positions instead, with the same result.

    Args:
        u: input capsules, (B, P, T, Din).
        kernel: shared transforms, (T, J, Din, Dout).
    Returns:
        The votes in routing layout, (B, J, P * T, Dout), capsule index n = p * T + t.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import predict_votes_shared

    u = np.random.rand(2, 9, 4, 8).astype("float32")  # (B, P, T, Din)
    kernel = np.random.rand(4, 10, 8, 16).astype("float32")  # (T, J, Din, Dout)
    votes = predict_votes_shared(u, kernel)
    assert votes.shape == (2, 10, 36, 16)  # (B, J, P * T, Dout)
    expected = np.einsum("bpti,tjio->bjpto", u, kernel).reshape(2, 10, 36, 16)
    np.testing.assert_allclose(votes, expected, rtol=1e-5)
    ```
    """
    t, j, din, dout = kernel.shape
    p = u.shape[1]
    b = _batch(u)
    if in_integer_form():
        # one grouped 1x1 CONV_2D over the positions (groups = types): LiteRT's XNNPACK takes
        # it (it takes no int8 BATCH_MATMUL), and TFLite Micro computes it bit for bit as
        # LiteRT's reference kernel; `keras_caps.lite.grouped_conv` gives it a per-tensor filter
        x = ops.reshape(u, (b, 1, p, t * din))  # channel t * Din + i
        k = ops.reshape(ops.transpose(kernel, (2, 0, 1, 3)), (1, 1, din, t * j * dout))
        votes = ops.reshape(ops.conv(x, k), (b, p, t, j, dout))  # group t -> channels of type t
        return ops.reshape(ops.transpose(votes, (0, 3, 1, 2, 4)), (b, j, p * t, dout))
    w = ops.reshape(ops.transpose(kernel, (0, 2, 1, 3)), (t, din, j * dout))  # (T, Din, J*Dout)
    rows = b * p if b != -1 else -1  # fully static when the batch is (export forms)
    x = ops.reshape(ops.transpose(u, (2, 0, 1, 3)), (t, rows, din))  # (T, B * P, Din)
    votes = ops.reshape(ops.matmul(x, w), (t, b, p, j, dout))  # (T, B, P, J, Dout)
    votes = ops.transpose(votes, (1, 3, 2, 0, 4))  # (B, J, P, T, Dout)
    return ops.reshape(votes, (b, j, p * t, dout))


def vote_sum(votes, coupling):
    """s_j = sum_i c_ij u_hat_{j|i}, the coupled sum of the votes.

    Args:
        votes: u_hat, (B, J, N, Dout).
        coupling: coupling coefficients c, (B, J, N).
    Returns:
        s, (B, J, Dout).

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import vote_sum

    votes = np.random.rand(2, 3, 5, 4).astype("float32")  # (B, J, N, Dout)
    coupling = np.full((2, 3, 5), 1 / 3, "float32")  # (B, J, N)
    np.testing.assert_allclose(vote_sum(votes, coupling), votes.sum(axis=2) / 3, rtol=1e-5)
    ```
    """
    s = ops.matmul(ops.expand_dims(coupling, 2), votes)  # (B, J, 1, N) @ (B, J, N, D) -> (B, J, 1, D)
    return ops.squeeze(s, 2)


def routing_step(votes, coupling):
    """One routing step: the coupled sum of the votes, squashed.

    Args:
        votes: u_hat, (B, J, N, Dout).
        coupling: coupling coefficients c_ij, (B, J, N); sums to 1 over J.
    Returns:
        v, the output capsules, (B, J, Dout).

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import routing_step, squash, vote_sum

    votes = np.random.rand(2, 3, 5, 4).astype("float32")  # (B, J, N, Dout)
    coupling = np.full((2, 3, 5), 1 / 3, "float32")  # (B, J, N)
    v = routing_step(votes, coupling)
    assert v.shape == (2, 3, 4)  # (B, J, Dout)
    np.testing.assert_allclose(v, squash(vote_sum(votes, coupling)), rtol=1e-6)
    ```
    """
    return squash(vote_sum(votes, coupling))  # (B, J, D)


def agreement(votes, v):
    """Agreement a_ij = u_hat_{j|i} . v_j between the votes and the output capsules.

    Args:
        votes: u_hat, (B, J, N, Dout).
        v: output capsules, (B, J, Dout).
    Returns:
        The agreements, (B, J, N).

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import agreement

    votes = np.random.rand(2, 3, 5, 4).astype("float32")  # (B, J, N, Dout)
    v = np.random.rand(2, 3, 4).astype("float32")  # (B, J, Dout)
    np.testing.assert_allclose(agreement(votes, v), np.einsum("bjnd,bjd->bjn", votes, v),
                               rtol=1e-5)
    ```
    """
    if in_integer_form():
        # MUL + MEAN(u_hat * (D v)): TFLite Micro's int8 BATCH_MATMUL rounds this product
        # 1 step differently from LiteRT's kernels
        d = float(votes.shape[-1])
        return ops.mean(ops.multiply(votes, ops.expand_dims(ops.multiply(v, d), 2)), axis=-1)
    return ops.squeeze(ops.matmul(votes, ops.expand_dims(v, -1)), -1)  # (B, J, N, D) @ (B, J, D, 1)


ROUTING_TENSORS = ("votes", "logits", "coupling", "s", "v")


def _identity(kind, x):
    return x


def dynamic_routing(
    votes, iterations=3, stop_gradient=True, return_coupling=False, quantize=None
):
    """Routing by agreement (Sabour et al. 2017, Procedure 1).

    b starts at 0, so the first coupling is exactly uniform (1/J) and is computed as a mean
    (no softmax over zeros). Coupling c = softmax(b) over the output capsules J; b += u_hat . v.
    The output is v from the last iteration.

    Args:
        votes: u_hat, (B, J, N, Dout).
        iterations: int, routing iterations r >= 1. Defaults to 3.
        stop_gradient: bool; if True, gradients flow through the votes only in the last
            iteration (the logits b are computed from stopped votes), as in Sabour's reference
            code. Defaults to True.
        return_coupling: bool, also return the last coupling coefficients. Defaults to False.
        quantize: optional callable `(kind, tensor) -> tensor` applied to every routing
            internal as it is produced, kind in `ROUTING_TENSORS`: "votes" u_hat (B, J, N, D),
            "logits" b (B, J, N), "coupling" c (B, J, N), "s" (B, J, D) and "v" (B, J, D).
            Simulated quantization (`keras_caps.quantization`) and its calibration use it.
    Returns:
        v, (B, J, Dout); with `return_coupling` the tuple (v, c), c being (B, J, N).
    Raises:
        ValueError: `iterations` < 1.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import dynamic_routing

    votes = np.random.rand(2, 10, 36, 16).astype("float32")  # (B, J, N, Dout)
    v, c = dynamic_routing(votes, iterations=3, return_coupling=True)
    assert v.shape == (2, 10, 16) and c.shape == (2, 10, 36)
    np.testing.assert_allclose(np.sum(c, axis=1), np.ones((2, 36)), rtol=1e-5)  # softmax over J
    assert float(np.max(np.linalg.norm(v, axis=-1))) < 1.0  # squashed

    # Watch (or quantize) the routing internals:
    seen = []
    dynamic_routing(votes, quantize=lambda kind, x: seen.append(kind) or x)
    assert seen[:3] == ["votes", "s", "v"]
    ```
    """
    if iterations < 1:
        raise ValueError(f"routing iterations must be >= 1, got {iterations}.")
    q = quantize or _identity
    votes = q("votes", votes)
    routed = ops.stop_gradient(votes) if stop_gradient else votes
    logits = None
    coupling = None
    for r in range(iterations):
        u_hat = votes if r == iterations - 1 else routed
        if logits is None:
            s = uniform_coupling_sum(u_hat)  # c_ij = 1/J: (B, J, D)
        else:
            coupling = q("coupling", ops.softmax(logits, axis=1))  # over J: (B, J, N)
            s = vote_sum(u_hat, coupling)
        v = q("v", squash(q("s", s), ranges=ROUTING_SQUASH_RANGES))
        if r < iterations - 1:
            a = agreement(routed, v)  # (B, J, N)
            logits = q("logits", a if logits is None else ops.add(logits, a))
    if not return_coupling:
        return v
    if coupling is None:  # a single iteration: the uniform coupling
        coupling = ops.multiply(ops.ones_like(votes[..., 0]), 1.0 / float(votes.shape[1]))
    return v, coupling


def uniform_coupling_sum(votes):
    """First-iteration s_j = sum_i (1/J) u_hat_ij (routing logits b = 0).

    Args:
        votes: u_hat, (B, J, N, D).
    Returns:
        s, (B, J, D); a MUL by 1/J, not a DIV, in the exported graph.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import uniform_coupling_sum

    votes = np.random.rand(2, 4, 5, 3).astype("float32")  # (B, J, N, D)
    np.testing.assert_allclose(uniform_coupling_sum(votes), votes.sum(axis=2) / 4, rtol=1e-5)
    ```
    """
    return _scaled_sum(votes, axis=2, scale=1.0 / float(votes.shape[1]))  # MUL, not DIV


def _kernel_layouts(kernel):
    """The transforms as W_j for per-j matmuls: (J, N * Din, Dout) and (J, Dout, N * Din).

    4-D transposes then reshapes, which TF's graph optimizer cannot fold into matmul adjoint
    flags (adjoint batched matmuls over the large operand are ~2x slower on CPU).
    """
    n, j, din, dout = kernel.shape
    w4 = ops.transpose(kernel, (1, 0, 2, 3))  # (J, N, Din, Dout)
    w_in = ops.reshape(w4, (j, n * din, dout))
    w_out = ops.reshape(ops.transpose(w4, (0, 3, 1, 2)), (j, dout, n * din))
    return w_in, w_out


@ops.custom_gradient
def _coupled_sum(u_t, coupling, w_in, w_out):
    """s_j = sum_i c_ij W_ij^T u_i, batch-last, as one matmul per j: W_j^T (c_j * u).

    The hand-written gradient matters for speed only: the input and kernel gradients are plain
    batched matmuls with `w_in` (autodiff of the product would use adjoint matmuls over the
    large operands, ~25% slower in TF on CPU). x = c * u is formed again in the backward pass
    rather than kept: one large tensor less alive between the passes, so the allocator reuses
    memory instead of faulting in fresh pages.

    Args:
        u_t: input capsules, (N, Din, B).
        coupling: c, (J, N, B).
        w_in: transforms, (J, N * Din, Dout); receives the kernel gradient.
        w_out: the same transforms as (J, Dout, N * Din), for the product (no gradient of
            its own: the kernel gradient is returned through `w_in`).
    Returns:
        s transposed, (J, Dout, B).
    """
    j, k, _ = w_in.shape

    def coupled_inputs():
        x = ops.multiply(ops.expand_dims(coupling, 2), u_t)  # (J, N, Din, B)
        return ops.reshape(x, (j, k, -1))  # (J, N*Din, B)

    s_t = ops.matmul(w_out, coupled_inputs())  # (J, Dout, B)

    def grad(*args, upstream=None):
        ds_t = args[0] if upstream is None else upstream  # (J, Dout, B)
        dx = ops.matmul(w_in, ds_t)  # (J, N*Din, B)
        dx = ops.reshape(dx, (j,) + tuple(u_t.shape[:2]) + (-1,))  # (J, N, Din, B)
        du = ops.sum(ops.multiply(dx, ops.expand_dims(coupling, 2)), axis=0)  # (N, Din, B)
        dc = ops.sum(ops.multiply(dx, u_t), axis=2)  # (J, N, B)
        dw = ops.matmul(coupled_inputs(), ops.transpose(ds_t, (0, 2, 1)))  # (J, N*Din, Dout)
        return du, dc, dw, None

    return s_t, grad


def dense_routing(u, kernel, iterations=3, stop_gradient=True, return_coupling=False):
    """`dynamic_routing(predict_votes(u, kernel), ...)` without forming the votes.

    Same maths, values and gradients as the votes form (see the module docstring for the
    contractions); no tensor is larger than (J, N, Din, B). Internally the batch is the last
    axis (u^T (N, Din, B), b and c (J, N, B), v^T (J, Dout, B)), which makes every product a
    plain batched matmul over J with the kernel as W_j in one of two layouts. This is the
    training form: a graph exported from it would store the kernel twice (the converter folds
    both layouts into constants); export the votes form, as DenseCapsule does.

    Args:
        u: input capsules, (B, N, Din).
        kernel: transforms, (N, J, Din, Dout).
        iterations: int, routing iterations r >= 1. Defaults to 3.
        stop_gradient: bool, as in `dynamic_routing`. Defaults to True.
        return_coupling: bool, also return the last coupling coefficients. Defaults to False.
    Returns:
        v, (B, J, Dout); with `return_coupling` the tuple (v, c), c being (B, J, N).
    Raises:
        ValueError: `iterations` < 1.

    Example:

    ```python
    import numpy as np
    from keras_caps.capsule_ops import dense_routing, dynamic_routing, predict_votes

    u = np.random.rand(2, 36, 8).astype("float32")  # (B, N, Din)
    kernel = np.random.normal(0, 0.1, (36, 10, 8, 16)).astype("float32")  # (N, J, Din, Dout)
    v = dense_routing(u, kernel, iterations=3)
    assert v.shape == (2, 10, 16)  # (B, J, Dout)
    np.testing.assert_allclose(v, dynamic_routing(predict_votes(u, kernel)), atol=1e-5)
    ```
    """
    if iterations < 1:
        raise ValueError(f"routing iterations must be >= 1, got {iterations}.")
    n, j, din, dout = kernel.shape
    b = _batch(u)
    w_in, w_out = _kernel_layouts(kernel)  # (J, N*Din, Dout), (J, Dout, N*Din)
    u_t = ops.transpose(u, (1, 2, 0))  # (N, Din, B)

    def stop(x):
        return ops.stop_gradient(x) if stop_gradient else x

    routed_u, routed_w_in, routed_w_out = stop(u_t), stop(w_in), stop(w_out)
    logits = None
    coupling = None
    for r in range(iterations):
        last = r == iterations - 1
        ut, wi, wo = (u_t, w_in, w_out) if last else (routed_u, routed_w_in, routed_w_out)
        if logits is None:  # c_ij = 1/J: one dense matmul, (J*Dout, N*Din) @ (N*Din, B)
            s_t = ops.matmul(ops.reshape(wo, (j * dout, n * din)), ops.reshape(ut, (n * din, b)))
            s_t = ops.multiply(ops.reshape(s_t, (j, dout, b)), 1.0 / float(j))  # (J, Dout, B)
        else:
            coupling = ops.softmax(logits, axis=0)  # over J: (J, N, B)
            s_t = _coupled_sum(ut, coupling, wi, wo)  # (J, Dout, B)
        v_t = squash(s_t, axis=1)  # (J, Dout, B)
        if not last:
            m = ops.reshape(ops.matmul(routed_w_in, v_t), (j, n, din, b))  # W_ij v_j
            a = ops.sum(ops.multiply(m, routed_u), axis=2)  # u_i . W_ij v_j: (J, N, B)
            logits = a if logits is None else ops.add(logits, a)
    v = ops.transpose(v_t, (2, 0, 1))  # (B, J, Dout)
    if not return_coupling:
        return v
    if coupling is None:  # a single iteration: the uniform coupling
        ones = ops.expand_dims(ops.ones_like(u[:, :, 0]), 1)  # (B, 1, N)
        return v, ops.multiply(ones, ops.full((1, j, 1), 1.0 / float(j)))
    return v, ops.transpose(coupling, (2, 0, 1))  # (B, J, N)


__all__ = [
    "EPSILON",
    "INTEGER_SQUASH_FLOOR",
    "INTEGER_SQUASH_RANGES",
    "ROUTING_SQUASH_RANGES",
    "SQUASH_RANGES_ABOVE",
    "in_integer_form",
    "integer_form",
    "record_squared_norms",
    "squash_ranges_for",
    "CAPSULE_INIT_GAIN",
    "agreement",
    "capsule_initializer",
    "initializer_config",
    "dense_routing",
    "dynamic_routing",
    "predict_votes",
    "predict_votes_shared",
    "ROUTING_TENSORS",
    "vote_sum",
    "routing_step",
    "safe_length",
    "squared_norm",
    "squash",
    "uniform_coupling_sum",
]


#: Gain of the "capsule" initializer, see `capsule_initializer`.
CAPSULE_INIT_GAIN = 3.0


def capsule_initializer(initializer, num_inputs, num_outputs, output_dim):
    """Resolves a capsule layer's kernel initializer.

    "capsule" (the default of every capsule layer) is a truncated normal with
    std = g * J / sqrt(N * Dout), g = 3. With the uniform first coupling 1/J and votes of random
    direction, s_j = (1/J) sum_i W_ij u_i then has about g times the norm of the inputs. Since
    squash maps a norm x to x^2 / (1 + x^2), a stack of capsule layers with gain g has a
    non-zero stable norm only for g >= 2 (g = 3: ~0.87); with g <= 1 (or Glorot on an
    (N, J, Din, Dout) kernel, ~0.003) activations collapse exponentially through ConvCapsule
    stacks before training starts. Any other value goes through `keras.initializers.get`.

    Args:
        initializer: "capsule" or a Keras initializer (name, config or instance).
        num_inputs: int, N, the input capsules each output capsule sums over.
        num_outputs: int, J, the output capsules the coupling is split over.
        output_dim: int, Dout.
    Returns:
        A `keras.initializers.Initializer`.

    Example:

    ```python
    import keras
    from keras_caps.capsule_ops import CAPSULE_INIT_GAIN, capsule_initializer

    init = capsule_initializer("capsule", num_inputs=1152, num_outputs=10, output_dim=16)
    assert isinstance(init, keras.initializers.TruncatedNormal)
    assert abs(init.stddev - CAPSULE_INIT_GAIN * 10 / (1152 * 16) ** 0.5) < 1e-12
    assert isinstance(capsule_initializer("zeros", 1152, 10, 16), keras.initializers.Zeros)
    ```
    """
    if initializer == "capsule":
        std = CAPSULE_INIT_GAIN * float(num_outputs) / (float(num_inputs) * float(output_dim)) ** 0.5
        return keras.initializers.TruncatedNormal(stddev=std)
    return keras.initializers.get(initializer)


def initializer_config(initializer):
    """The config form of a capsule layer's kernel_initializer, for `get_config`.

    Args:
        initializer: "capsule", an initializer name, config dict or instance.
    Returns:
        The string itself, or the serialized Keras initializer (a dict).

    Example:

    ```python
    import keras
    from keras_caps.capsule_ops import initializer_config

    assert initializer_config("capsule") == "capsule"
    config = initializer_config(keras.initializers.TruncatedNormal(stddev=0.1))
    assert config["config"]["stddev"] == 0.1
    ```
    """
    if isinstance(initializer, str):
        return initializer
    return keras.initializers.serialize(keras.initializers.get(initializer))
