"""Quantization-aware fine-tuning with the same power-of-two quantizers and spec.

For a complete spec (every exponent fixed), `qat_finetune` trains float "shadow" weights
through the simulated quantized model of `simulate.quantized_model`:

    every step:  w_q = quantize(w_float, bits, f)       (the spec's bits and exponents)
                 loss = margin(y, quantized_model(x))    (activations and routing quantized)
                 w_float -= optimizer(d loss / d w_q)    (straight-through for the weights)

so the forward pass is exactly the fixed-point model, and gradients pass the activation and
routing quantizers with their clipped straight-through estimator. BatchNormalization runs in
inference mode (its statistics stay frozen), as usual when fine-tuning a quantized model.

Returns a float copy of the model's inference head with the fine-tuned weights; rebuild the
quantized model from it with the same spec: `quantized_model(tuned, spec)`.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_caps.losses import MarginLoss
from keras_caps.quantization.pot import quantize
from keras_caps.quantization.simulate import (
    frac_array,
    quantized_model,
    weight_axis,
    weight_key,
)
from keras_caps.quantization.spec import inference_model, validate


def _inner(qmodel):
    """The cloned functional model inside a `quantized_model` wrapper."""
    nested = [layer for layer in qmodel.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError("expected a model built by keras_caps.quantization.quantized_model.")
    return nested[0]


def qat_finetune(model, spec, images, labels, epochs=1, batch_size=64, learning_rate=1e-4,
                 seed=0, progress=None):
    """Fine-tunes `model`'s weights for the quantized model of `spec` (see module docstring).

    Args:
        model: the float keras_caps model (left unchanged).
        spec: a complete spec (from a search or `simulate.complete_spec`).
        images: training images (N, H, W, C) float in [0, 1]; labels: (N,) int.
        epochs, batch_size, learning_rate, seed: the fine-tuning run (Adam).
        progress: optional callable(str), told the mean loss of every epoch.
    Returns:
        (tuned float inference model, list of mean training losses per epoch).
    """
    import tensorflow as tf

    spec = validate(spec, model)
    missing = [n for n, e in spec["layers"].items()
               if e.get("weight_bits") is not None and "weight_frac_bits" not in e]
    if missing:
        raise ValueError(f"spec has no weight exponents for {missing}; pass a complete spec "
                         "(simulate.complete_spec or a search result).")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images (> 0), got {len(images)} images and "
                         f"{len(labels)} labels.")
    infer = inference_model(model)
    tuned = keras.models.clone_model(infer)
    tuned.set_weights(infer.get_weights())
    qmodel = quantized_model(tuned, spec)
    inner = _inner(qmodel)
    float_vars, quant_vars, fns = [], [], []
    for layer in tuned.layers:
        if not layer.trainable_weights:
            continue
        entry = spec["layers"].get(layer.name) or {}
        bits = entry.get("weight_bits")
        target = {weight_key(layer, w): w for w in inner.get_layer(layer.name).weights}
        for w in layer.trainable_weights:
            key = weight_key(layer, w)
            float_vars.append(w)
            quant_vars.append(target[key])
            if bits is None:
                fns.append(None)
            else:
                f = frac_array(entry["weight_frac_bits"][key], w.shape, weight_axis(layer, w))
                fns.append((bits, f))
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(float_vars)
    loss_fn = MarginLoss()
    num_classes = int(qmodel.output.shape[-1])

    def sync():
        for fv, qv, fn in zip(float_vars, quant_vars, fns):
            qv.assign(fv if fn is None else quantize(fv, fn[0], fn[1]))

    @tf.function
    def step(x, y):
        sync()
        with tf.GradientTape() as tape:
            scores = qmodel(x, training=False)
            loss = loss_fn(tf.one_hot(y, num_classes), scores)
        grads = tape.gradient(loss, quant_vars)
        optimizer.apply(grads, float_vars)
        return loss

    rng = np.random.default_rng(seed)
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int32)
    losses = []
    for epoch in range(int(epochs)):
        order = rng.permutation(len(images))
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            total += float(step(images[idx], labels[idx])) * len(idx)
            count += len(idx)
        losses.append(total / count)
        if progress:
            progress(f"  QAT epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}")
    return tuned, losses


__all__ = ["qat_finetune"]
