"""Forward FLOPs and parameter counts per layer, routing included, for keras_caps models.

A multiply-add counts as 2 FLOPs. Counts are per example (batch 1) for inference.
Routing with r iterations over N inputs, J outputs of dim D (the forms in capsule_ops):
    votes:                     2 N J Din D
    iteration 1 (uniform c):   N J D (sum) + J D (scale) + squash
    iterations 2..r:           softmax 4 N J, weighted sum 2 N J D, squash
    agreements (r - 1 times):  2 N J D, plus N J to accumulate b from the second on
    squash of J capsules:      J (3 D + 5)  (|s|^2: 2D, ratio and rsqrt: ~5, scaling: D)
"""

from __future__ import annotations

import math

import keras

from keras_caps.layers import ConvCapsule, Decoder, DenseCapsule, Length, Mask, PrimaryCapsule


def squash_flops(num_capsules, dim):
    return num_capsules * (3 * dim + 5)


def routing_flops(n, j, d, iterations):
    """FLOPs of dynamic routing (excluding the votes) for one example / position."""
    total = n * j * d + j * d + squash_flops(j, d)  # first iteration, uniform coupling
    total += (iterations - 1) * (4 * n * j + 2 * n * j * d + squash_flops(j, d))
    total += (iterations - 1) * 2 * n * j * d + max(iterations - 2, 0) * n * j
    return total


def _shape(tensor):
    return tuple(int(d) for d in tensor.shape[1:])


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def layer_flops(layer):
    """Forward FLOPs of one built layer of a functional model, per example."""
    out = _shape(_first(layer.output))
    if isinstance(layer, PrimaryCapsule):
        conv_out = _shape(layer.output[1]) if layer.return_feature_map else None
        conv_out = conv_out or out[:2] + (out[2] * out[3] * out[4],)
        cin = int(_first(layer.input).shape[-1])
        k = layer.conv.kernel_size
        conv = 2 * math.prod(conv_out) * k[0] * k[1] * cin + math.prod(conv_out)
        return conv + squash_flops(math.prod(out[:-1]), out[-1])
    if isinstance(layer, DenseCapsule):
        j, d = out
        n, din = layer.num_inputs, layer.input_dim
        return 2 * n * j * din * d + routing_flops(n, j, d, layer.routings)
    if isinstance(layer, ConvCapsule):
        h, w, j, d = out
        n = layer.kernel_size**2 * layer.input_types
        per_position = 2 * n * j * layer.input_dim * d + routing_flops(n, j, d, layer.routings)
        return h * w * per_position
    if isinstance(layer, keras.layers.Conv2D):
        k = layer.kernel_size
        cin = int(layer.input.shape[-1])
        groups = getattr(layer, "groups", 1)
        flops = 2 * math.prod(out) * k[0] * k[1] * cin // groups
        return flops + (math.prod(out) if layer.use_bias else 0)
    if isinstance(layer, keras.layers.Dense):
        return 2 * int(layer.input.shape[-1]) * math.prod(out) + (
            math.prod(out) if layer.use_bias else 0
        )
    if isinstance(layer, Decoder):
        flops, width = 0, int(layer.input.shape[-1])
        for dense in layer.hidden + [layer.pixels]:
            flops += 2 * width * dense.units + dense.units
            width = dense.units
        return flops
    if isinstance(layer, Length):
        j, d = int(layer.input.shape[1]), int(layer.input.shape[2])
        return j * 2 * d + (0 if layer.squared else j)
    if isinstance(layer, Mask):
        caps = _first(layer.input)
        j, d = int(caps.shape[1]), int(caps.shape[2])
        return j * 2 * d + j * d  # lengths for the argmax, then the masking product
    if isinstance(layer, keras.layers.BatchNormalization):
        return 2 * math.prod(out)
    if isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
        return math.prod(out)
    return 0


def profile(model):
    """Per-layer parameters and forward FLOPs of `model` (functional, built).

    Returns:
        list of {"layer", "type", "params", "flops"} in model order (input layers omitted).
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        rows.append({
            "layer": layer.name,
            "type": type(layer).__name__,
            "params": int(layer.count_params()),
            "flops": int(layer_flops(layer)),
        })
    return rows


def total_flops(model):
    """Forward FLOPs per example of the whole model."""
    return sum(row["flops"] for row in profile(model))


def format_profile(rows):
    """A markdown table of `profile` rows with a total line."""
    lines = ["| layer | type | params | FLOPs |", "|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['type']} | {r['params']:,} | {r['flops']:,} |")
    lines.append(
        f"| total | | {sum(r['params'] for r in rows):,} | {sum(r['flops'] for r in rows):,} |"
    )
    return "\n".join(lines)
