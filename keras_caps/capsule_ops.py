"""Capsule primitives: squash, safe lengths, vote computation and dynamic routing.

Everything here is written with `keras.ops` in the forms that survive integer TFLite export
(see DESIGN.md "The maths" and "Integer TFLite"): squared norms are MUL + SUM, squash uses
RSQRT rather than SQRT + DIV chains, the first routing iteration uses the uniform coupling 1/J
instead of a softmax over zeros (no ZEROS_LIKE in the exported graph), and votes are computed
with einsum / batched matmul, never tile + map_fn.

Shape legend used in every docstring:
    B batch, N input capsules, J output capsules, Din / Dout input / output capsule dims,
    T primary-capsule types (weight sharing), P spatial positions (N = P * T).

Routing layout: votes are kept as (B, J, N, Dout). Both routing contractions then become
batched matrix-vector products over the contiguous N x Dout block of each output capsule:
    s_j   = c_j (1 x N)   @ u_hat_j (N x Dout)
    a_j   = u_hat_j (N x Dout) @ v_j (Dout x 1)
which is the memory-bound inner loop of a CapsNet (u_hat is ~47 MB for the Sabour layer at B=64).
"""

from __future__ import annotations

import keras
from keras import ops

#: Added to squared norms inside square roots so that squash(0) = 0 with finite gradients.
EPSILON = 1e-7


def squared_norm(s, axis=-1, keepdims=False):
    """Sum of squares along `axis` (MUL + SUM; export-friendly, no SQUARE op).

    Args:
        s: tensor of any shape, e.g. (B, J, D).
        axis: the capsule-dimension axis.
        keepdims: keep the reduced axis with size 1.
    Returns:
        The squared norms, e.g. (B, J) or (B, J, 1) with keepdims.
    """
    return ops.sum(ops.multiply(s, s), axis=axis, keepdims=keepdims)


def squash(s, axis=-1, epsilon=EPSILON):
    """Squash non-linearity: s * |s|^2 / (1 + |s|^2) / sqrt(|s|^2 + eps).

    eps sits inside the root, so squash(0) = 0 and its gradient is finite everywhere.
    Output norms lie in [0, 1). Computed without DIV, SQRT or SQUARE, as
        s * (1 - rsqrt(1 + |s|^2)^2) * rsqrt(|s|^2 + eps)
    using |s|^2 / (1 + |s|^2) = 1 - 1 / (1 + |s|^2): every intermediate of the ratio lies in
    [0, 1] (good for 8-bit ranges) and every op (MUL, SUM, ADD, SUB, RSQRT) has int8 and int16
    TFLite kernels. With DIV, int8 LiteRT aborts when a wide |s|^2 range quantizes 1 + |s|^2
    to its zero point.

    Args:
        s: capsule pre-activations, (..., D) with the capsule dimension on `axis`.
    Returns:
        Squashed capsules of the same shape as `s`.
    """
    sq = squared_norm(s, axis=axis, keepdims=True)  # (..., 1)
    inv = ops.rsqrt(ops.add(sq, 1.0))  # 1 / sqrt(1 + |s|^2), in (0, 1]
    ratio = ops.subtract(1.0, ops.multiply(inv, inv))  # |s|^2 / (1 + |s|^2), in [0, 1)
    return ops.multiply(s, ops.multiply(ratio, ops.rsqrt(ops.add(sq, epsilon))))


def safe_length(s, axis=-1, keepdims=False, epsilon=EPSILON):
    """Capsule length sqrt(|s|^2 + eps): differentiable at 0 (length(0) = sqrt(eps) ~ 3e-4).

    Args:
        s: capsules, e.g. (B, J, D).
    Returns:
        Lengths, e.g. (B, J).
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
        Votes in routing layout, (B, J, N, Dout).
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

    Args:
        u: input capsules, (B, P, T, Din).
        kernel: shared transforms, (T, J, Din, Dout).
    Returns:
        Votes in routing layout, (B, J, P * T, Dout), capsule index n = p * T + t.
    """
    t, j, din, dout = kernel.shape
    p = u.shape[1]
    b = _batch(u)
    w = ops.reshape(ops.transpose(kernel, (0, 2, 1, 3)), (t, din, j * dout))  # (T, Din, J*Dout)
    rows = b * p if b != -1 else -1  # fully static when the batch is (export forms)
    x = ops.reshape(ops.transpose(u, (2, 0, 1, 3)), (t, rows, din))  # (T, B * P, Din)
    votes = ops.reshape(ops.matmul(x, w), (t, b, p, j, dout))  # (T, B, P, J, Dout)
    votes = ops.transpose(votes, (1, 3, 2, 0, 4))  # (B, J, P, T, Dout)
    return ops.reshape(votes, (b, j, p * t, dout))


def routing_step(votes, coupling):
    """One routing step: weighted sum of votes and squash.

    Args:
        votes: (B, J, N, Dout).
        coupling: coupling coefficients c_ij, (B, J, N); sums to 1 over J.
    Returns:
        v: output capsules, (B, J, Dout).
    """
    s = ops.matmul(ops.expand_dims(coupling, 2), votes)  # (B, J, 1, N) @ (B, J, N, D) -> (B, J, 1, D)
    return squash(ops.squeeze(s, 2))  # (B, J, D)


def agreement(votes, v):
    """Agreement a_ij = u_hat_{j|i} . v_j.

    Args:
        votes: (B, J, N, Dout).
        v: output capsules, (B, J, Dout).
    Returns:
        (B, J, N).
    """
    return ops.squeeze(ops.matmul(votes, ops.expand_dims(v, -1)), -1)  # (B, J, N, D) @ (B, J, D, 1)


def dynamic_routing(votes, iterations=3, stop_gradient=True, return_coupling=False):
    """Routing by agreement (Sabour et al. 2017, Procedure 1).

    b starts at 0, so the first coupling is exactly uniform (1/J) and is computed as a mean
    (no softmax over zeros). Coupling c = softmax(b) over the output capsules J; b += u_hat . v.
    The output is v from the last iteration.

    Args:
        votes: u_hat, (B, J, N, Dout).
        iterations: number of routing iterations r >= 1.
        stop_gradient: if True, gradients flow through the votes only in the last iteration
            (the logits b are computed from stopped votes), as in Sabour's reference code.
        return_coupling: also return the last coupling coefficients.
    Returns:
        v: (B, J, Dout); and c: (B, J, N) if `return_coupling`.
    """
    if iterations < 1:
        raise ValueError(f"routing iterations must be >= 1, got {iterations}.")
    routed = ops.stop_gradient(votes) if stop_gradient else votes
    logits = None
    coupling = None
    for r in range(iterations):
        u_hat = votes if r == iterations - 1 else routed
        if logits is None:
            v = squash(uniform_coupling_sum(u_hat))  # c_ij = 1/J: (B, J, D)
        else:
            coupling = ops.softmax(logits, axis=1)  # over J: (B, J, N)
            v = routing_step(u_hat, coupling)
        if r < iterations - 1:
            a = agreement(routed, v)  # (B, J, N)
            logits = a if logits is None else ops.add(logits, a)
    if not return_coupling:
        return v
    if coupling is None:  # a single iteration: the uniform coupling
        coupling = ops.multiply(ops.ones_like(votes[..., 0]), 1.0 / float(votes.shape[1]))
    return v, coupling


def uniform_coupling_sum(votes):
    """First-iteration s_j = sum_i (1/J) u_hat_ij (b = 0). votes: (B, J, N, D) -> (B, J, D)."""
    return ops.multiply(ops.sum(votes, axis=2), 1.0 / float(votes.shape[1]))  # MUL, not DIV


__all__ = [
    "EPSILON",
    "CAPSULE_INIT_GAIN",
    "agreement",
    "capsule_initializer",
    "initializer_config",
    "dynamic_routing",
    "predict_votes",
    "predict_votes_shared",
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
        num_inputs: N, input capsules each output capsule sums over.
        num_outputs: J, output capsules the coupling is split over.
        output_dim: Dout.
    """
    if initializer == "capsule":
        std = CAPSULE_INIT_GAIN * float(num_outputs) / (float(num_inputs) * float(output_dim)) ** 0.5
        return keras.initializers.TruncatedNormal(stddev=std)
    return keras.initializers.get(initializer)


def initializer_config(initializer):
    """Config form of a capsule layer's kernel_initializer ("capsule" or a Keras initializer)."""
    if isinstance(initializer, str):
        return initializer
    return keras.initializers.serialize(keras.initializers.get(initializer))
