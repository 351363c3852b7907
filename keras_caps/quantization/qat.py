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
import tensorflow as tf
from keras import ops

# the replica scaling Keras undoes for its "loss" metric (as in its own train_step)
from keras.src.losses.loss import unscale_loss_for_distribution

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


class _Shadow:
    """The quantized model and its float shadow weights, out of Keras tracking (the float copy
    and the quantized model own these variables; tracking them again would save and
    optimise them twice)."""

    __slots__ = ("qmodel", "float_vars", "quant_vars", "fns")

    def __init__(self, qmodel, float_vars, quant_vars, fns):
        self.qmodel, self.float_vars, self.quant_vars, self.fns = (qmodel, float_vars,
                                                                   quant_vars, fns)


class _QATModel(keras.Model):
    """The quantized model of a spec, `fit` through float shadow weights (straight-through).

    `call` is the quantized model in inference mode (BatchNormalization frozen); the loss is
    Keras' `compute_loss` (the compiled margin loss); `train_step` re-quantizes the shadow
    weights into the quantized model before each step and applies the gradients of its
    weights to the shadow weights.
    """

    def __init__(self, qmodel, float_vars, quant_vars, fns, **kwargs):
        kwargs.setdefault("name", "qat")
        super().__init__(**kwargs)
        self._shadow = _Shadow(qmodel, float_vars, quant_vars, fns)
        self.built = True

    def call(self, inputs, training=False):
        return self._shadow.qmodel(inputs, training=False)

    def _sync(self):
        shadow = self._shadow
        for fv, qv, fn in zip(shadow.float_vars, shadow.quant_vars, shadow.fns):
            qv.assign(fv if fn is None else quantize(fv, fn[0], fn[1]))

    def train_step(self, data):
        # A train_step of its own for the straight-through estimator of the weights: the
        # gradient is taken w.r.t. the quantized model's weights (w_q = quantize(w_float),
        # assigned by _sync) and applied to the float shadow weights, which Keras' step
        # (gradients of `trainable_weights` applied to themselves) cannot express. The rest is
        # Keras' step: the loss is `compute_loss` (the compiled MarginLoss, per replica),
        # Keras' "loss" metric records it unscaled, weighted by the batch size.
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._sync()
        with tf.GradientTape() as tape:
            y_pred = self(x, training=False)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
            self._loss_tracker.update_state(unscale_loss_for_distribution(loss),
                                            sample_weight=ops.shape(x)[0])
            loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self._shadow.quant_vars)
        self.optimizer.apply(grads, self._shadow.float_vars)
        return self.compute_metrics(x, y, y_pred, sample_weight)


def _progress_callback(progress, epochs):
    def on_epoch_end(epoch, logs=None):
        progress(f"  QAT epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}")

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def qat_finetune(model, spec, images, labels, epochs=1, batch_size=64, learning_rate=1e-4,
                 seed=0, progress=None):
    """Fine-tunes `model`'s weights for the quantized model of `spec` (see module docstring).

    Runs Keras' `fit`, one call per epoch over a fresh permutation of the images (numpy,
    `seed`), with Adam on the float shadow weights; no run directory (a quick fine-tuning
    stage of `train.quantize`, not a resumable run like `fit_capsnet`).

    Args:
        model: the float keras_caps model (left unchanged).
        spec: a complete spec (from a search or `simulate.complete_spec`).
        images: training images (N, H, W, C) float in [0, 1].
        labels: (N,) int class ids.
        epochs: passes over the images.
        batch_size: images per step (the last batch of an epoch may be smaller).
        learning_rate: Adam's learning rate.
        seed: seed of the per-epoch permutations.
        progress: optional callable(str), told the mean loss of every epoch.
    Returns:
        (tuned float inference model, list of mean training losses per epoch).
    Raises:
        ValueError: an incomplete spec (no weight exponents), or images and labels that
            differ in number or are empty.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet
    from keras_caps.quantization import Calibration, complete_spec, quantized_model, uniform_spec
    from keras_caps.quantization.qat import qat_finetune

    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                    decoder=None)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (16, 12, 12, 1)).astype("float32")  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)
    spec = complete_spec(model, uniform_spec(model, 4), Calibration(model, images))
    tuned, losses = qat_finetune(model, spec, images, labels, epochs=2, batch_size=8)
    assert len(losses) == 2
    qmodel = quantized_model(tuned, spec)  # the fine-tuned fixed-point model
    assert qmodel.predict(images[:2], verbose=0).shape == (2, 10)  # (B, J)
    ```
    """
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
    trainer = _QATModel(qmodel, float_vars, quant_vars, fns)
    trainer.compile(optimizer=optimizer, loss=MarginLoss(), jit_compile=False)
    num_classes = int(qmodel.output.shape[-1])

    rng = np.random.default_rng(seed)
    images = np.asarray(images, np.float32)
    onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, np.int32)]
    callbacks = [_progress_callback(progress, epochs)] if progress else []
    losses = []
    for epoch in range(int(epochs)):
        order = rng.permutation(len(images))
        history = trainer.fit(images[order], onehot[order], batch_size=batch_size,
                              initial_epoch=epoch, epochs=epoch + 1, shuffle=False,
                              verbose=0, callbacks=callbacks)
        losses.append(float(history.history["loss"][-1]))
    return tuned, losses


__all__ = ["qat_finetune"]
