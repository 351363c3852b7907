"""Weight and activation memory, in bits, of a model in float32 and under a quantization spec.

Counts are per inference of one sample (batch 1) of the inference model
(`spec.inference_model`: image -> lengths for capsnet / deep_capsnet).

Weights: every weight element at its layer's weight bits (32 when the spec leaves it float;
BatchNormalization always 32), plus 8 bits for each stored power-of-two exponent (one per
tensor, channel or block), so per-channel granularity is not free.

Activations: every layer output (and the input image) at its layer's activation bits, and for
each DenseCapsule / ConvCapsule the routing tensors at its routing bits: votes u_hat (J*N*D),
logits b (J*N), coupling c (J*N), s (J*D) and v (J*D), times the H*W positions of a
ConvCapsule. Two figures:

    total: the sum over all those tensors (every activation stored once; the figure the
           Q-CapsNets line of work reports as activation memory);
    peak:  the largest working set of one layer: its inputs + its outputs + its routing
           tensors (what a layer-by-layer executor must hold at once).
"""

from __future__ import annotations

import math

import keras

from keras_caps.layers import ConvCapsule
from keras_caps.quantization.simulate import weight_axis
from keras_caps.quantization.spec import (
    FLOAT_WEIGHT_LAYERS,
    ROUTING_LAYERS,
    inference_model,
    layer_capabilities,
    validate,
)

FLOAT_BITS = 32
EXPONENT_BITS = 8


def _elements(tensor):
    return int(math.prod(int(d) for d in tensor.shape[1:]))


def routing_elements(layer):
    """{kind: elements per sample} of a DenseCapsule / ConvCapsule's routing tensors."""
    j, d = layer.num_capsules, layer.capsule_dim
    if isinstance(layer, ConvCapsule):
        out = keras.tree.flatten(layer.output)[0]  # (B, H, W, C, D)
        positions = int(out.shape[1]) * int(out.shape[2])
        n = layer.kernel_size**2 * layer.input_types
    else:
        positions, n = 1, layer.num_inputs
    return {"votes": positions * j * n * d, "logits": positions * j * n,
            "coupling": positions * j * n, "s": positions * j * d, "v": positions * j * d}


def exponent_count(layer, spec):
    """Power-of-two exponents stored for `layer`'s weights under `spec`'s granularity."""
    count = 0
    for w in layer.weights:
        shape = tuple(int(d) for d in w.shape)
        if len(shape) < 2 or spec["weight_granularity"] == "tensor":
            count += 1
            continue
        n = shape[weight_axis(layer, w) % len(shape)]
        size = 1 if spec["weight_granularity"] == "channel" else spec["block_size"]
        count += -(-n // size)
    return count


def _producer(tensor):
    op, _, index = tensor._keras_history
    return op.name, index


def memory_table(model, spec=None):
    """Per-layer memory rows of `model` under `spec` (float32 everywhere when None).

    Returns:
        list of dicts (one per layer, input first): name, params, weight_bits (effective, or
        32), weight_memory (bits, exponents included), activation_elements,
        activation_bits, routing_elements, routing_bits, activation_memory (outputs +
        routing, bits), working_set (inputs + outputs + routing, bits).
    """
    infer = inference_model(model)
    spec = None if spec is None else validate(spec, model)
    layers = {} if spec is None else spec["layers"]
    caps = layer_capabilities(model)
    act_bits = {}
    rows = []
    for layer in infer.layers:
        entry = layers.get(layer.name) or {}
        params = sum(int(math.prod(w.shape)) for w in layer.weights)
        wbits = entry.get("weight_bits") if caps[layer.name]["weights"] else None
        exponents = 0
        if isinstance(layer, FLOAT_WEIGHT_LAYERS) or wbits is None:
            wbits = FLOAT_BITS
        else:
            exponents = exponent_count(layer, spec)
        weight_memory = params * wbits + EXPONENT_BITS * exponents
        abits = entry.get("activation_bits") or FLOAT_BITS
        outputs = keras.tree.flatten(layer.output)
        out_elems = sum(_elements(t) for t in outputs)
        act_bits[layer.name] = abits
        r_elems, rbits = 0, 0
        if isinstance(layer, ROUTING_LAYERS):
            r_elems = sum(routing_elements(layer).values())
            rbits = entry.get("routing_bits") or FLOAT_BITS
        in_memory = 0
        if not isinstance(layer, keras.layers.InputLayer):
            for t in keras.tree.flatten(layer.input):
                name, _ = _producer(t)
                in_memory += _elements(t) * act_bits.get(name, FLOAT_BITS)
        activation_memory = out_elems * abits + r_elems * rbits
        rows.append(dict(
            name=layer.name, params=params, weight_bits=wbits, weight_memory=weight_memory,
            activation_elements=out_elems, activation_bits=abits,
            routing_elements=r_elems, routing_bits=rbits,
            activation_memory=activation_memory,
            working_set=in_memory + activation_memory,
        ))
    return rows


def memory_summary(model, spec=None):
    """{"weights", "activations_total", "activations_peak"} in bits for `spec` (or float32)."""
    rows = memory_table(model, spec)
    return {
        "weights": sum(r["weight_memory"] for r in rows),
        "activations_total": sum(r["activation_memory"] for r in rows),
        "activations_peak": max(r["working_set"] for r in rows),
    }


def reduction_factors(model, spec):
    """float32 memory / spec memory for weights and activations (total and peak), plus both
    summaries: {"weights": x, "activations_total": x, "activations_peak": x,
    "float32": {...bits}, "quantized": {...bits}}."""
    base, quant = memory_summary(model), memory_summary(model, spec)
    factors = {k: base[k] / quant[k] for k in base}
    return {**factors, "float32": base, "quantized": quant}


__all__ = [
    "EXPONENT_BITS",
    "FLOAT_BITS",
    "exponent_count",
    "memory_summary",
    "memory_table",
    "reduction_factors",
    "routing_elements",
]
