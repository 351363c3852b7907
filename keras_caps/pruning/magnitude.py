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
    """A TF-MOT pruning schedule (tensorflow_model_optimization is imported lazily).

    Args:
        kind: "polynomial" (the default; `PolynomialDecay`: `initial_sparsity` ->
            `final_sparsity` between `begin_step` and `end_step` with the given `power`) or
            "constant" (`ConstantSparsity`: `final_sparsity` from `begin_step` on).
        final_sparsity: float in [0, 1), the target fraction of zero weights. Defaults to 0.5.
        begin_step: int, the first training step that prunes. Defaults to 0.
        end_step: int, the step "polynomial" reaches `final_sparsity` (ignored by
            "constant"). Defaults to 1000.
        frequency: int, the steps between mask updates. Defaults to 100.
        initial_sparsity: float, the sparsity of "polynomial" at `begin_step`. Defaults to 0.
        power: int, the exponent of "polynomial". Defaults to 3.
    Returns:
        A callable schedule(step) -> (should_prune bool tensor, sparsity float tensor).
    Raises:
        ValueError: an unknown `kind`.

    Example:

    ```python
    import tensorflow as tf
    from keras_caps.pruning import sparsity_schedule

    schedule = sparsity_schedule("polynomial", final_sparsity=0.8, begin_step=0,
                                 end_step=100, frequency=10)
    should_prune, sparsity = schedule(tf.constant(100, tf.int64))
    assert bool(should_prune) and abs(float(sparsity) - 0.8) < 1e-6
    ```
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
    """The prunable kernels of a model, in model order.

    Prunable: the `kernel` of Conv2D (PrimaryCapsule's inner conv included), Dense (Decoder
    layers included), DenseCapsule and ConvCapsule.

    Args:
        model: a Keras model (a `CCMTrainer` is unwrapped).
        layer_names: optional list of top-level layer names to restrict to (with the layers
            they contain). Defaults to None (every layer).
    Returns:
        list of (name, kernel variable); nested kernels are named "<layer>/<sublayer>".

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.pruning import prunable_kernels

    names = [name for name, _ in prunable_kernels(mcu_capsnet("S"))]
    assert names == ["conv1", "conv2", "conv3", "primary_caps/conv", "class_caps"]
    ```
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
    """A mask zeroing the round(sparsity * size) smallest-magnitude entries.

    Entries already masked in `previous` are treated as magnitude -1 so they stay pruned.

    Args:
        weights: array of any shape.
        sparsity: float, the fraction in [0, 1] to zero (clipped to that range).
        previous: optional previous 0/1 mask of the same shape. Defaults to None.
    Returns:
        float32 0/1 array of the shape of `weights`.

    Example:

    ```python
    import numpy as np
    from keras_caps.pruning.magnitude import magnitude_mask

    w = np.array([[0.5, -0.1], [0.3, -2.0]])
    np.testing.assert_array_equal(magnitude_mask(w, 0.5), [[1, 0], [0, 1]])
    # 0.5 was pruned before: it stays pruned, so 0.1 and 0.5 are the zeros
    np.testing.assert_array_equal(magnitude_mask(w, 0.5, previous=[[0, 1], [1, 1]]),
                                  [[0, 0], [1, 1]])
    ```
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
    """Schedule-driven magnitude pruning of a Keras 3 model's kernels, as a callback.

    At the start of every training batch the schedule is asked about the current step
    (`optimizer.iterations`); when it says so, every mask is recomputed to zero the
    `sparsity` fraction of its kernel's smallest-magnitude entries (see the module
    docstring). After every batch the kernels are multiplied by their masks. The epoch logs
    get a "sparsity" entry (the overall zero fraction).

    Args:
        schedule: callable step -> (should_prune, sparsity), e.g. `sparsity_schedule(...)` or a
            `tfmot.sparsity.keras` schedule.
        layer_names: optional list of top-level layers to prune. Defaults to None (every
            prunable kernel, see `prunable_kernels`).
    Attributes:
        masks: {kernel name: keras.Variable mask (non-trainable, same shape)} after training
            begins (or after `build(model)`).
        last_sparsity: float, the sparsity of the last mask update (None before).
    Raises:
        ValueError: `schedule` is not callable.

    Example:

    ```python
    import numpy as np
    from keras_caps.losses import MarginLoss
    from keras_caps.models import deep_capsnet
    from keras_caps.pruning import MagnitudePruning, sparsity_report, strip_pruning

    model = deep_capsnet(num_capsules=4, capsule_dim=4, input_shape=(16, 16, 1),
                         backbone_filters=(8, 16), backbone_strides=(1, 2), class_dim=4)
    model.compile(optimizer="adam", loss={"lengths": MarginLoss()})
    images = np.random.rand(8, 16, 16, 1).astype("float32")
    labels = np.eye(10, dtype="float32")[np.arange(8)]  # one-hot (B, J)

    pruning = MagnitudePruning(lambda step: (True, 0.5))  # or sparsity_schedule(...)
    model.fit(images, {"lengths": labels}, batch_size=4, epochs=1, verbose=0,
              callbacks=[pruning])
    assert sparsity_report(model)["total"]["sparsity"] == 0.5
    exported = strip_pruning(model, pruning)  # a clean copy for export
    ```
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
        """Creates the masks: ones, or the existing zero pattern of a resumed model.

        Called by `on_train_begin`; call it yourself to use `update_masks` outside `fit`.

        Args:
            model: the model to prune (a `CCMTrainer` is unwrapped).
        Returns:
            self.
        Raises:
            ValueError: the model has no prunable kernels.
        """
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
        """Recomputes every mask for `sparsity` and applies it.

        Args:
            sparsity: float, the fraction in [0, 1] of every kernel to zero.
        """
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
    """The zero fraction of every prunable kernel and of all of them together.

    Args:
        model: a Keras model (a `CCMTrainer` is unwrapped).
        layer_names: optional list of top-level layers, as in `prunable_kernels`.
    Returns:
        {"layers": [{"name", "size", "zeros", "sparsity"}], "total": {"size", "zeros",
        "sparsity"}}.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.pruning import sparsity_report

    model = mcu_capsnet("S")
    conv1 = model.get_layer("conv1")
    conv1.kernel.assign(conv1.kernel * 0.0)
    report = sparsity_report(model)
    row = report["layers"][0]
    assert row["name"] == "conv1" and row["sparsity"] == 1.0
    assert 0.0 < report["total"]["sparsity"] < 0.01
    ```
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
        pruning: optional `MagnitudePruning` callback used in training. Defaults to None.
    Returns:
        A new, uncompiled model of the same class.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import mcu_capsnet
    from keras_caps.pruning import MagnitudePruning, sparsity_report, strip_pruning

    model = mcu_capsnet("S")
    pruning = MagnitudePruning(lambda step: (True, 0.5)).build(model)
    pruning.update_masks(0.5)  # outside fit: prune once now
    clean = strip_pruning(model, pruning)
    assert clean is not model and not clean.compiled
    assert abs(sparsity_report(clean)["total"]["sparsity"] - 0.5) < 1e-3
    x = np.zeros((1, 28, 28, 1), "float32")
    np.testing.assert_allclose(clean(x)["lengths"], model(x)["lengths"], atol=1e-6)
    ```
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
