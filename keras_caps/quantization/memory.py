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
    """The elements per sample of a DenseCapsule / ConvCapsule's routing tensors.

    Args:
        layer: a built DenseCapsule or ConvCapsule of a functional model.
    Returns:
        {"votes": J*N*D, "logits": J*N, "coupling": J*N, "s": J*D, "v": J*D}, times the
        H*W output positions of a ConvCapsule (J output capsules or types, N inputs per
        output, D output dim).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.memory import routing_elements

    counts = routing_elements(mcu_capsnet("S").get_layer("class_caps"))
    # J = 10 classes, N = 3 * 3 * 8 = 72 input capsules, D = 8
    assert counts == {"votes": 5760, "logits": 720, "coupling": 720, "s": 80, "v": 80}
    ```
    """
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
    """The power-of-two exponents stored for `layer`'s weights under `spec`'s granularity.

    One per tensor for vectors and for "tensor" granularity, else one per channel (or
    block) along the weight's `simulate.weight_axis`.

    Args:
        layer: a layer with weights.
        spec: dict, a validated spec (its weight_granularity and block_size are used).
    Returns:
        int.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import uniform_spec
    from keras_caps.quantization.memory import exponent_count

    model = mcu_capsnet("S")
    conv1 = model.get_layer("conv1")  # kernel (3, 3, 1, 16) and bias (16,)
    assert exponent_count(conv1, uniform_spec(model, 8)) == 16 + 1  # per channel + bias
    assert exponent_count(conv1, uniform_spec(model, 8, weight_granularity="tensor")) == 2
    ```
    """
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

    Args:
        model: a keras_caps model (its inference model is counted, at batch 1).
        spec: optional spec dict (validated here). Defaults to None (float32).
    Returns:
        list of dicts (one per layer, input first): name, params, weight_bits (effective, or
        32), weight_memory (bits, exponents included), activation_elements,
        activation_bits, routing_elements, routing_bits, activation_memory (outputs +
        routing, bits), working_set (inputs + outputs + routing, bits).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.memory import memory_table

    rows = {row["name"]: row for row in memory_table(mcu_capsnet("S"))}
    conv1 = rows["conv1"]  # 3 * 3 * 1 * 16 + 16 weights, output 28 x 28 x 16, in float32
    assert conv1["params"] == 160 and conv1["weight_memory"] == 160 * 32
    assert conv1["activation_elements"] == 28 * 28 * 16
    ```
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
    """The total weight memory and the total and peak activation memory, in bits.

    Args:
        model: a keras_caps model.
        spec: optional spec dict. Defaults to None (float32).
    Returns:
        {"weights", "activations_total", "activations_peak"} in bits (see the module
        docstring).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import uniform_spec
    from keras_caps.quantization.memory import memory_summary

    model = mcu_capsnet("S")
    float32, int8 = memory_summary(model), memory_summary(model, uniform_spec(model, 8))
    assert float32["activations_total"] == 4 * int8["activations_total"]
    assert float32["weights"] > 3.5 * int8["weights"]  # BatchNorm and exponents stay
    ```
    """
    rows = memory_table(model, spec)
    return {
        "weights": sum(r["weight_memory"] for r in rows),
        "activations_total": sum(r["activation_memory"] for r in rows),
        "activations_peak": max(r["working_set"] for r in rows),
    }


def reduction_factors(model, spec):
    """float32 memory / spec memory for the weights and the activations (total and peak).

    Args:
        model: a keras_caps model.
        spec: a spec dict.
    Returns:
        {"weights": x, "activations_total": x, "activations_peak": x, "float32": {...bits},
        "quantized": {...bits}}, the last two being the `memory_summary` of each.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import uniform_spec
    from keras_caps.quantization.memory import reduction_factors

    model = mcu_capsnet("S")
    factors = reduction_factors(model, uniform_spec(model, 4))
    assert factors["activations_total"] == 8.0  # 32 / 4 bits
    print(f"weights {factors['weights']:.2f}x smaller")
    ```
    """
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
