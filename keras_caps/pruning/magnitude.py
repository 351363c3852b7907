"""Unstructured magnitude pruning for Keras 3 models (no layer wrappers).

TF-MOT's `prune_low_magnitude` only wraps Keras 2 layers. Here the model stays as it is: a
callback keeps one mask variable per prunable kernel and

    * at the start of every training batch asks the schedule about the current step
      (`optimizer.iterations`): `should_prune, sparsity = schedule(step)`; when
      `should_prune`, each mask is recomputed to zero the `sparsity` fraction of the kernel's
      entries with the smallest magnitude (exactly round(sparsity * size) entries; per kernel,
      like TF-MOT), never reviving entries pruned before;
    * after every training batch multiplies each kernel by its mask, so pruned weights are
      exactly zero whenever a batch ends (the optimizer may move them during the step).

Schedules are TF-MOT's backend-neutral `tfmot.sparsity.keras.PolynomialDecay` and
`ConstantSparsity` (`sparsity_schedule`); importing tensorflow_model_optimization leaves `keras`
as Keras 3 (checked with keras 3.15 / TF-MOT 0.8.1: it only switches `tf.keras`, which this
project never uses). Any callable step -> (should_prune, sparsity) works too.

Prunable kernels: the `kernel` of Conv2D (PrimaryCapsule's inner conv included), Dense
(Decoder layers included), DenseCapsule and ConvCapsule. Biases, BatchNorm and embeddings are
not pruned.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_caps.layers import ConvCapsule, DenseCapsule
from keras_caps.models.heads import unwrap

PRUNABLE_TYPES = (keras.layers.Conv2D, keras.layers.Dense, DenseCapsule, ConvCapsule)


def sparsity_schedule(kind="polynomial", final_sparsity=0.5, begin_step=0, end_step=1000,
                  frequency=100, initial_sparsity=0.0, power=3):
    """A TF-MOT pruning schedule (imported lazily).

    Args:
        kind: "polynomial" (`PolynomialDecay`: initial -> final sparsity between begin_step
            and end_step with the given power) or "constant" (`ConstantSparsity` from
            begin_step on).
        frequency: steps between mask updates.
    Returns:
        schedule(step) -> (should_prune bool tensor, sparsity float tensor).
    """
    import tensorflow_model_optimization as tfmot

    if kind == "polynomial":
        return tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=initial_sparsity, final_sparsity=final_sparsity,
            begin_step=begin_step, end_step=end_step, power=power, frequency=frequency,
        )
    if kind == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(
            target_sparsity=final_sparsity, begin_step=begin_step, end_step=-1,
            frequency=frequency,
        )
    raise ValueError(f"schedule kind must be 'polynomial' or 'constant', got {kind!r}.")


def _sublayers(layer):
    """`layer` and every layer nested in its attributes (PrimaryCapsule.conv, Decoder, ...)."""
    seen, stack, out = set(), [layer], []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        children = current.layers if isinstance(current, keras.Model) else []
        for value in vars(current).values():
            if isinstance(value, keras.layers.Layer):
                children.append(value)
            elif isinstance(value, (list, tuple)):
                children.extend(v for v in value if isinstance(v, keras.layers.Layer))
        stack.extend(reversed(children))
    return out


def prunable_kernels(model, layer_names=None):
    """[(name, kernel variable)] of every prunable kernel, in model order.

    Args:
        model: a Keras model (a `CCMTrainer` is unwrapped).
        layer_names: restrict to these top-level layers (and what they contain).
    """
    model = unwrap(model)
    top = model.layers if layer_names is None else [model.get_layer(n) for n in layer_names]
    found, seen = [], set()
    for layer in top:
        for sub in _sublayers(layer):
            kernel = getattr(sub, "kernel", None)
            if isinstance(sub, PRUNABLE_TYPES) and kernel is not None and id(kernel) not in seen:
                seen.add(id(kernel))
                name = sub.name if sub is layer else f"{layer.name}/{sub.name}"
                found.append((name, kernel))
    return found


def magnitude_mask(weights, sparsity, previous=None):
    """Mask zeroing the round(sparsity * size) smallest-magnitude entries.

    Entries already masked in `previous` are treated as magnitude -1 so they stay pruned.

    Args:
        weights: array of any shape.
        sparsity: fraction in [0, 1].
        previous: previous mask of the same shape (0/1) or None.
    Returns:
        float32 0/1 array of the same shape.
    """
    w = np.abs(np.asarray(weights, dtype=np.float64)).reshape(-1)
    if previous is not None:
        w = np.where(np.asarray(previous).reshape(-1) > 0, w, -1.0)
    k = int(round(float(np.clip(sparsity, 0.0, 1.0)) * w.size))
    mask = np.ones(w.size, dtype=np.float32)
    if k:
        mask[np.argsort(w, kind="stable")[:k]] = 0.0
    return mask.reshape(np.shape(weights))


class MagnitudePruning(keras.callbacks.Callback):
    """Schedule-driven magnitude pruning of a Keras 3 model's kernels (see the module doc).

    Args:
        schedule: callable step -> (should_prune, sparsity), e.g. `sparsity_schedule(...)` or a
            `tfmot.sparsity.keras` schedule.
        layer_names: top-level layers to prune (default: every prunable kernel).
    Attributes:
        masks: {kernel name: keras.Variable mask (non-trainable, same shape)} after training
            begins (or after `build(model)`).
    """

    def __init__(self, schedule, layer_names=None):
        super().__init__()
        if not callable(schedule):
            raise ValueError("schedule must be callable: step -> (should_prune, sparsity).")
        self.schedule = schedule
        self.layer_names = None if layer_names is None else list(layer_names)
        self.masks = {}
        self._kernels = []
        self.last_sparsity = None

    def build(self, model):
        """Creates the masks (ones, or the existing zero pattern of a resumed model)."""
        self._kernels = prunable_kernels(model, self.layer_names)
        if not self._kernels:
            raise ValueError(f"model {model.name!r} has no prunable kernels.")
        self.masks = {}
        for name, kernel in self._kernels:
            current = keras.ops.convert_to_numpy(kernel)
            self.masks[name] = keras.Variable(
                (current != 0).astype("float32"), trainable=False, name=f"mask_{name}".replace(
                    "/", "_"),
            )
        return self

    def update_masks(self, sparsity):
        """Recomputes every mask for `sparsity` and applies it."""
        for name, kernel in self._kernels:
            mask = magnitude_mask(keras.ops.convert_to_numpy(kernel), sparsity,
                                  keras.ops.convert_to_numpy(self.masks[name]))
            self.masks[name].assign(mask)
        self.last_sparsity = float(sparsity)
        self.apply_masks()

    def apply_masks(self):
        """kernel <- kernel * mask for every pruned kernel."""
        for name, kernel in self._kernels:
            kernel.assign(keras.ops.multiply(kernel, keras.ops.cast(self.masks[name],
                                                                    kernel.dtype)))

    def on_train_begin(self, logs=None):
        if not self._kernels:
            self.build(self.model)
        self.apply_masks()

    def on_train_batch_begin(self, batch, logs=None):
        import tensorflow as tf

        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        should_prune, sparsity = self.schedule(tf.constant(step, dtype=tf.int64))
        if bool(should_prune):
            self.update_masks(float(sparsity))

    def on_train_batch_end(self, batch, logs=None):
        self.apply_masks()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._kernels:
            logs["sparsity"] = sparsity_report(self.model, self.layer_names)["total"]["sparsity"]


def sparsity_report(model, layer_names=None):
    """Zero fraction of every prunable kernel and overall.

    Returns:
        {"layers": [{"name", "size", "zeros", "sparsity"}], "total": {"size", "zeros",
        "sparsity"}}.
    """
    rows = []
    for name, kernel in prunable_kernels(model, layer_names):
        w = keras.ops.convert_to_numpy(kernel)
        zeros = int(np.count_nonzero(w == 0))
        rows.append({"name": name, "size": int(w.size), "zeros": zeros,
                     "sparsity": zeros / max(1, w.size)})
    size = sum(r["size"] for r in rows)
    zeros = sum(r["zeros"] for r in rows)
    return {"layers": rows,
            "total": {"size": size, "zeros": zeros, "sparsity": zeros / max(1, size)}}


def strip_pruning(model, pruning=None):
    """The model for export: a fresh copy with the pruned weights at exactly zero.

    The pruning state lives in the callback, not in the model, so there are no wrappers to
    remove: this applies the callback's masks one last time (when given) and returns a clean
    functional copy (same config and weights, not compiled) that holds no reference to the
    masks or the optimizer.

    Args:
        model: the trained model (a `CCMTrainer` is unwrapped).
        pruning: the `MagnitudePruning` callback used in training (optional).
    """
    model = unwrap(model)
    if pruning is not None and pruning.masks:
        pruning.apply_masks()
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


__all__ = [
    "MagnitudePruning",
    "PRUNABLE_TYPES",
    "magnitude_mask",
    "sparsity_schedule",
    "prunable_kernels",
    "sparsity_report",
    "strip_pruning",
]
