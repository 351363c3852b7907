"""Simulated power-of-two quantized inference of any keras_caps model, driven by a spec.

`quantized_model(model, spec, calibration)` returns a new Keras model (image -> what the
classifier view returns, lengths (B, J) for capsnet/deep_capsnet) in which

- weights are quantized copies (the original model is untouched),
- the input and every layer output are fake-quantized with the layer's activation bits,
- DenseCapsule/ConvCapsule routing internals (u_hat, b, c, s, v) are fake-quantized with the
  layer's routing bits, each tensor kind with its own exponent,

all with power-of-two scales (`keras_caps.quantization.pot.quantize`), so its accuracy is what
a fixed-point implementation of the spec gets. Exponents missing from the spec come from a
`Calibration` (samples of every activation and routing tensor of the float model on a few
training batches) and from the weights themselves; `complete_spec` writes them into the spec.

BatchNormalization layers keep float weights (they fold into the preceding convolution when
deployed) and are counted at 32 bits by `keras_caps.quantization.memory`.
"""

from __future__ import annotations

import copy

import keras
import numpy as np

from keras_caps.capsule_ops import ROUTING_TENSORS
from keras_caps.data import image_batches, unit_images
from keras_caps.quantization.pot import frac_bits_for, quantize
from keras_caps.quantization.spec import (
    ROUTING_LAYERS,
    inference_model,
    layer_capabilities,
    validate,
)


def weight_axis(layer, weight):
    """The channel axis of a weight for per-channel / per-block quantization.

    Args:
        layer: the layer holding the weight.
        weight: the weight variable (or anything with a `shape`).
    Returns:
        int: 1 (the output capsules) for the (rows, J, Din, Dout) kernel of a DenseCapsule /
        ConvCapsule, -1 (the output channels) otherwise.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.simulate import weight_axis

    model = mcu_capsnet("S")
    class_caps, conv1 = model.get_layer("class_caps"), model.get_layer("conv1")
    assert weight_axis(class_caps, class_caps.kernel) == 1
    assert weight_axis(conv1, conv1.kernel) == -1
    ```
    """
    if isinstance(layer, ROUTING_LAYERS) and len(weight.shape) == 4:
        return 1
    return -1


def weight_key(layer, weight):
    """A weight's name inside its layer, the key of its exponents in a spec's weight_frac_bits.

    Args:
        layer: the layer holding the weight.
        weight: the weight variable.
    Returns:
        str, e.g. "kernel", "bias" or "conv/kernel" (a PrimaryCapsule's inner convolution).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.simulate import weight_key

    primary = mcu_capsnet("S").get_layer("primary_caps")
    assert [weight_key(primary, w) for w in primary.weights] == ["conv/kernel", "conv/bias"]
    ```
    """
    path = getattr(weight, "path", weight.name)
    prefix = layer.name + "/"
    return path[len(prefix):] if path.startswith(prefix) else weight.name


def _act_rounding(rounding):
    return "nearest" if rounding == "stochastic" else rounding


class Calibration:
    """Value samples of every layer output and routing internal of the float model.

    The inference model (`spec.inference_model`) is run on the calibration images; each
    layer output and each routing tensor ("votes", "logits", "coupling", "s", "v") of every
    DenseCapsule / ConvCapsule is subsampled. The exponents of a spec are then chosen from
    these samples (`frac_bits`, `complete_spec`).

    Args:
        model: a keras_caps model (its inference model is probed).
        images: calibration images (N, H, W, C), or a dataset / iterable of image batches or
            (images, labels) batches (e.g. a few training batches), read by
            `keras_caps.data.image_batches`: uint8 arrays are scaled to [0, 1] like the
            training data (`make_dataset`), float images are used as they are.
        batch_size: int, the batch size when `images` is an array. Defaults to 64.
        max_samples: int, the values kept per tensor (a uniform random subsample; the
            largest magnitude of every batch is always kept, so "maxabs" clipping is exact).
            Defaults to 100,000.
        seed: int, the subsampling seed. Defaults to 0.
    Attributes:
        activations: {layer name: [samples (1-D) per output]}.
        routing: {layer name: {kind: samples (1-D)}}.
        num_batches: int, the batches seen.
    Raises:
        ValueError: no images.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration

    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    images = np.random.default_rng(0).uniform(0, 1, (16, 12, 12, 1)).astype("float32")
    calibration = Calibration(model, images, batch_size=8)
    assert sorted(calibration.routing["class_caps"]) == ["coupling", "logits", "s", "v", "votes"]
    assert len(calibration.activations["primary_caps"]) == 2  # capsules and feature map
    f = calibration.frac_bits("conv1", 8, "maxabs", 99.99, index=0)
    assert np.abs(calibration.activations["conv1"][0]).max() <= 127 * 2.0 ** -f
    ```
    """

    def __init__(self, model, images, batch_size=64, max_samples=100_000, seed=0):
        self.max_samples = int(max_samples)
        self._rng = np.random.default_rng(seed)
        infer = inference_model(model)
        probes = {}
        for layer in infer.layers:
            outs = keras.tree.flatten(layer.output)
            probes[layer.name] = outs
        names = list(probes)
        flat = [t for n in names for t in probes[n]]
        counts = [len(probes[n]) for n in names]
        inputs = infer.inputs[0] if len(infer.inputs) == 1 else infer.inputs
        probe = keras.Model(inputs, flat)
        batches = list(image_batches(images, batch_size=batch_size))
        if not batches:
            raise ValueError("calibration needs at least one batch of images; got none.")
        self._per_batch = max(1, self.max_samples // len(batches))
        acts = {n: [[] for _ in range(c)] for n, c in zip(names, counts)}
        routing = {layer.name: {k: [] for k in ROUTING_TENSORS}
                   for layer in infer.layers if isinstance(layer, ROUTING_LAYERS)}
        hooks = {}
        for layer in infer.layers:
            if layer.name in routing:
                hooks[layer.name] = layer.routing_quantizer
                layer.routing_quantizer = self._recorder(routing[layer.name])
        try:
            for x in batches:
                outs = probe(x, training=False)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                i = 0
                for n, c in zip(names, counts):
                    for k in range(c):
                        acts[n][k].append(self._sample(outs[i]))
                        i += 1
        finally:
            for layer in infer.layers:
                if layer.name in hooks:
                    layer.routing_quantizer = hooks[layer.name]
        self.activations = {n: [np.concatenate(s) for s in v] for n, v in acts.items()}
        self.routing = {n: {k: np.concatenate(s) for k, s in v.items() if s}
                        for n, v in routing.items()}
        self.num_batches = len(batches)
        self._cache = {}

    def _sample(self, tensor):
        a = np.asarray(keras.ops.convert_to_numpy(tensor), np.float32).reshape(-1)
        if a.size <= self._per_batch:
            return a
        keep = self._rng.choice(a.size, self._per_batch - 1, replace=False)
        return np.concatenate([a[keep], a[[int(np.argmax(np.abs(a)))]]])

    def _recorder(self, store):
        def record(kind, x):
            store[kind].append(self._sample(x))
            return x

        return record

    def frac_bits(self, layer, bits, clipping, percentile, index=None, kind=None):
        """The exponent of output `index` (or of routing tensor `kind`) of `layer` at `bits`.

        Args:
            layer: str, the layer name.
            bits: int in 2..16.
            clipping: one of `pot.CLIPPING_METHODS`.
            percentile: float, for clipping "percentile".
            index: int, the output index for an activation (None for a routing tensor).
            kind: str, a routing tensor kind of `capsule_ops.ROUTING_TENSORS` (None for an
                activation).
        Returns:
            int, the fractional bits (cached).
        """
        key = (layer, index, kind, bits, clipping, percentile)
        if key not in self._cache:
            values = (self.activations[layer][index] if kind is None
                      else self.routing[layer][kind])
            self._cache[key] = int(frac_bits_for(values, bits, clipping, percentile=percentile))
        return self._cache[key]


class WeightQuantizer:
    """Quantized copies of a model's weights, cached per (layer, bits, spec options).

    Args:
        model: a keras_caps model (the weights of its inference model are quantized; the
            model itself is never changed).

    Example:

    ```python
    import numpy as np
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import uniform_spec
    from keras_caps.quantization.simulate import WeightQuantizer

    model = mcu_capsnet("S")
    spec = uniform_spec(model, 4, clipping="maxabs")
    weights = WeightQuantizer(model)
    kernel, bias = weights.values("conv1", 4, spec)  # in get_weights() order
    exponents = weights.frac_bits("conv1", 4, spec)["kernel"]  # one per output channel
    assert kernel.shape == (3, 3, 1, 16) and len(exponents) == 16
    steps = np.unique(np.round(kernel[..., 0] * 2.0 ** exponents[0]))
    assert np.all(steps == np.round(steps)) and len(steps) <= 16  # 4-bit integers
    ```
    """

    def __init__(self, model):
        self.model = inference_model(model)
        self._cache = {}

    def frac_bits(self, layer_name, bits, spec):
        """The exponents of `layer_name`'s weights at `bits` under `spec`'s options.

        Args:
            layer_name: str, a layer of the inference model.
            bits: int in 2..16.
            spec: dict, a validated spec (its rounding, clipping, granularity, block size and
                percentile are used).
        Returns:
            {weight key (see `weight_key`): exponent, an int or a per-channel list}.
        """
        return {k: f for k, (_, f) in self._quantized(layer_name, bits, spec).items()}

    def values(self, layer_name, bits, spec, frac_override=None):
        """The layer's quantized weights, in `get_weights()` order.

        Args:
            layer_name: str, a layer of the inference model.
            bits: int in 2..16.
            spec: dict, a validated spec (see `frac_bits`).
            frac_override: optional {weight key: exponent(s)} to use instead of calibrating
                (a spec's weight_frac_bits). Defaults to None.
        Returns:
            list of float32 arrays.
        """
        layer = self.model.get_layer(layer_name)
        q = self._quantized(layer_name, bits, spec, frac_override)
        return [q[weight_key(layer, w)][0] for w in layer.weights]

    def _quantized(self, layer_name, bits, spec, frac_override=None):
        layer = self.model.get_layer(layer_name)
        out = {}
        for w in layer.weights:
            key = weight_key(layer, w)
            given = (frac_override or {}).get(key)
            cache_key = (layer_name, key, bits, spec["rounding"], spec["clipping"],
                         spec["weight_granularity"], spec["block_size"], spec["percentile"],
                         None if given is None else str(given))
            if cache_key not in self._cache:
                value = np.asarray(w.numpy(), np.float32)
                gran = spec["weight_granularity"] if value.ndim >= 2 else "tensor"
                axis = weight_axis(layer, w)
                if given is None:
                    f = frac_bits_for(value, bits, spec["clipping"], gran, axis,
                                      spec["block_size"], spec["percentile"], spec["rounding"])
                else:
                    f = frac_array(given, value.shape, axis)
                q = np.asarray(quantize(value, bits, f, spec["rounding"], seed=0))
                self._cache[cache_key] = (q, _frac_json(f))
            out[key] = self._cache[cache_key]
        return out


def _frac_json(f):
    f = np.asarray(f)
    return int(f) if f.ndim == 0 else [int(v) for v in f.reshape(-1)]


def frac_array(given, shape, axis):
    """A weight's spec exponents as an array that broadcasts against the weight.

    Args:
        given: an int (one exponent) or a list with one exponent per index along `axis`.
        shape: the weight's shape.
        axis: int, the channel axis the list runs along.
    Returns:
        An int32 scalar, or an int32 array with `shape[axis]` on `axis` and 1 elsewhere.
    Raises:
        ValueError: a list whose length is not `shape[axis]`.

    Example:

    ```python
    from keras_caps.quantization.simulate import frac_array

    assert frac_array(5, (3, 3, 1, 4), -1) == 5
    assert frac_array([5, 6, 7, 8], (3, 3, 1, 4), -1).shape == (1, 1, 1, 4)
    ```
    """
    if isinstance(given, int):
        return np.int32(given)
    arr = np.asarray(given, np.int32)
    shape = tuple(int(d) for d in shape)
    axis = axis % len(shape)
    if arr.size != shape[axis]:
        raise ValueError(
            f"{arr.size} per-channel exponents given for a weight of shape {shape} "
            f"(axis {axis} has {shape[axis]}); recalibrate the spec for this model."
        )
    out = [1] * len(shape)
    out[axis] = shape[axis]
    return arr.reshape(out)


class RoutingQuantizer:
    """The `(kind, tensor) -> tensor` hook of capsule layers for simulated quantization.

    Set as `layer.routing_quantizer` of a DenseCapsule / ConvCapsule (as `quantized_model`
    does), it fake-quantizes each routing tensor with `bits` and its own exponent
    `frac_bits[kind]` (see `capsule_ops.dynamic_routing(quantize=...)`).

    Args:
        bits: int in 2..16.
        frac_bits: {kind: exponent} for every kind in `capsule_ops.ROUTING_TENSORS` the
            layer produces.
        rounding: the spec's rounding mode ("stochastic" rounds routing tensors to nearest).
            Defaults to "nearest".

    Example:

    ```python
    import numpy as np
    from keras_caps.layers import DenseCapsule
    from keras_caps.quantization.simulate import RoutingQuantizer

    layer = DenseCapsule(10, 8)
    capsules = np.random.rand(2, 36, 4).astype("float32")  # (B, N, Din)
    layer(capsules)  # build
    layer.routing_quantizer = RoutingQuantizer(
        4, {"votes": 3, "logits": 2, "coupling": 3, "s": 2, "v": 3})
    v = np.asarray(layer(capsules))  # (B, J, Dout), on the 4-bit grid of "v" (2^-3)
    np.testing.assert_allclose(v * 8, np.round(v * 8), atol=1e-5)
    ```
    """

    def __init__(self, bits, frac_bits, rounding="nearest"):
        self.bits = int(bits)
        self.frac_bits = dict(frac_bits)
        self.rounding = _act_rounding(rounding)

    def __call__(self, kind, x):
        return quantize(x, self.bits, self.frac_bits[kind], self.rounding)


def complete_spec(model, spec, calibration, weights=None):
    """A copy of `spec` with every missing exponent filled in from `calibration` and the weights.

    A completed spec fixes the quantized model exactly: save it (`spec.save_spec`) and
    `quantized_model` needs no calibration to rebuild it.

    Args:
        model: the float keras_caps model.
        spec: a spec dict (validated here).
        calibration: a `Calibration` of `model`.
        weights: optional `WeightQuantizer` of `model` (reuse one across calls for speed).
    Returns:
        The completed spec (a new dict).
    Raises:
        SpecError: an invalid spec.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration, complete_spec, uniform_spec

    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    images = np.random.default_rng(0).uniform(0, 1, (16, 12, 12, 1)).astype("float32")
    spec = complete_spec(model, uniform_spec(model, 8), Calibration(model, images))
    entry = spec["layers"]["class_caps"]
    assert sorted(entry["routing_frac_bits"]) == ["coupling", "logits", "s", "v", "votes"]
    assert len(entry["weight_frac_bits"]["kernel"]) == 10  # per output capsule
    ```
    """
    spec = validate(spec, model)
    weights = weights or WeightQuantizer(model)
    out = copy.deepcopy(spec)
    clip, pct = spec["clipping"], spec["percentile"]
    for name, entry in out["layers"].items():
        if entry.get("weight_bits") is not None and "weight_frac_bits" not in entry:
            entry["weight_frac_bits"] = weights.frac_bits(name, entry["weight_bits"], spec)
        bits = entry.get("activation_bits")
        if bits is not None and "activation_frac_bits" not in entry:
            n = len(calibration.activations[name])
            entry["activation_frac_bits"] = [
                calibration.frac_bits(name, bits, clip, pct, index=i) for i in range(n)
            ]
        bits = entry.get("routing_bits")
        if bits is not None:
            have = entry.get("routing_frac_bits") or {}
            entry["routing_frac_bits"] = {
                k: have.get(k, calibration.frac_bits(name, bits, clip, pct, kind=k))
                for k in ROUTING_TENSORS if k in calibration.routing[name] or k in have
            }
    return out


def quantized_model(model, spec, calibration=None, weights=None):
    """The simulated quantized inference model of `model` under `spec` (see the module docstring).

    Args:
        model: a float keras_caps model (left unchanged).
        spec: a spec dict; exponents missing from it need `calibration`.
        calibration: optional `Calibration` of `model`. Defaults to None (the spec must be
            complete).
        weights: optional `WeightQuantizer` cache of `model`.
    Returns:
        A new `keras.Model`: image (B, H, W, C) -> the inference model's outputs (the
        lengths (B, J) of a capsnet / deep_capsnet), named "<name>_pot".
    Raises:
        SpecError: an invalid spec.
        ValueError: exponents missing and no calibration, or exponents that do not fit the
            model.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration, quantized_model, uniform_spec

    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    images = np.random.default_rng(0).uniform(0, 1, (16, 12, 12, 1)).astype("float32")
    int8 = quantized_model(model, uniform_spec(model, 8), Calibration(model, images))
    lengths = np.asarray(int8(images))
    assert lengths.shape == (16, 10)  # (B, J)
    error = np.abs(lengths - model(images)["lengths"])
    print(f"mean |error| of the 8-bit lengths: {error.mean():.4f}")
    assert error.mean() < 0.02
    ```
    """
    spec = validate(spec, model)
    if calibration is None:
        missing = [n for n, e in spec["layers"].items()
                   if (e.get("activation_bits") is not None and "activation_frac_bits" not in e)
                   or (e.get("routing_bits") is not None and "routing_frac_bits" not in e)]
        if missing:
            raise ValueError(
                f"spec has no activation/routing exponents for layers {missing}; pass a "
                "Calibration (calibration=Calibration(model, images)) or a completed spec."
            )
    else:
        spec = complete_spec(model, spec, calibration, weights)
    weights = weights or WeightQuantizer(model)
    infer = inference_model(model)
    layers = spec["layers"]
    act_rounding = _act_rounding(spec["rounding"])

    def act_quant(name, outputs):
        entry = layers.get(name) or {}
        bits = entry.get("activation_bits")
        if bits is None:
            return outputs
        fracs = entry["activation_frac_bits"]
        flat = keras.tree.flatten(outputs)
        if len(fracs) != len(flat):
            raise ValueError(
                f"layer {name!r} has {len(flat)} outputs but the spec gives {len(fracs)} "
                "activation exponents; recalibrate the spec for this model."
            )
        q = [quantize(t, bits, f, act_rounding) for t, f in zip(flat, fracs)]
        return keras.tree.pack_sequence_as(outputs, q)

    def clone_layer(layer):
        new = layer.__class__.from_config(layer.get_config())
        entry = layers.get(layer.name) or {}
        if isinstance(layer, ROUTING_LAYERS) and entry.get("routing_bits") is not None:
            new.routing_quantizer = RoutingQuantizer(
                entry["routing_bits"], entry["routing_frac_bits"], spec["rounding"]
            )
        return new

    def call_layer(layer, *args, **kwargs):
        return act_quant(layer.name, layer(*args, **kwargs))

    clone = keras.models.clone_model(infer, clone_function=clone_layer, call_function=call_layer)
    for layer in infer.layers:
        if not layer.weights:
            continue
        entry = layers.get(layer.name) or {}
        target = clone.get_layer(layer.name)
        if entry.get("weight_bits") is None:
            target.set_weights(layer.get_weights())
        else:
            target.set_weights(weights.values(layer.name, entry["weight_bits"], spec,
                                              entry.get("weight_frac_bits")))
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in clone.inputs]
    in_names = [layer.name for layer in infer.layers
                if isinstance(layer, keras.layers.InputLayer)]
    quantized_in = [act_quant(n, x) for n, x in zip(in_names, inputs)]
    outputs = clone(quantized_in[0] if len(quantized_in) == 1 else quantized_in)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs,
                       name=f"{infer.name}_pot")


def predict_classes(model, images, batch_size=256):
    """The predicted classes of an inference model: argmax over its output scores.

    uint8 image arrays are scaled to [0, 1] (`keras_caps.data.unit_images`), as `Calibration`
    and the training data scale them; float images and datasets are used as they are.

    Args:
        model: an inference model (image -> scores (B, J), or a dict with "lengths").
        images: array (N, H, W, C), uint8 or float in [0, 1].
        batch_size: int. Defaults to 256.
    Returns:
        (N,) int array.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization.simulate import predict_classes

    classes = predict_classes(mcu_capsnet("S"), np.zeros((4, 28, 28, 1), "float32"))
    assert classes.shape == (4,) and classes.min() >= 0 and classes.max() < 10
    ```
    """
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        images = unit_images(images)
    scores = model.predict(images, batch_size=batch_size, verbose=0)
    if isinstance(scores, dict):
        scores = scores["lengths"]
    return np.argmax(np.asarray(scores), axis=-1)


def accuracy(model, images, labels, batch_size=256):
    """Top-1 accuracy of an inference model on (images, labels).

    Args:
        model: an inference model (image -> scores (B, J), or a dict with "lengths").
        images: array (N, H, W, C).
        labels: integer labels (N,) or one-hot (N, J).
        batch_size: int. Defaults to 256.
    Returns:
        float in [0, 1].

    Example:

    ```python
    import numpy as np
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import accuracy
    from keras_caps.quantization.simulate import predict_classes

    model = mcu_capsnet("S")
    images = np.random.rand(8, 28, 28, 1).astype("float32")
    labels = predict_classes(model, images)  # the model's own predictions
    assert accuracy(model, images, labels) == 1.0
    assert accuracy(model, images, np.eye(10)[labels]) == 1.0  # one-hot works too
    ```
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    return float(np.mean(predict_classes(model, images, batch_size) == labels))


__all__ = [
    "Calibration",
    "RoutingQuantizer",
    "WeightQuantizer",
    "accuracy",
    "complete_spec",
    "frac_array",
    "inference_model",
    "layer_capabilities",
    "predict_classes",
    "quantized_model",
    "weight_axis",
    "weight_key",
]
