"""CCM loss (paper 003 eq. 7) and a trainer that adds it to the margin loss (eq. 5).

CCM of one layer is the mean absolute Pearson correlation between the layer's channel maps:

    CCM = 1 / (C (C - 1)) sum_{i != j} |corr(f_i, f_j)|

Choices (the paper's eq. 7 leaves them open):
    * Correlations are computed **per sample** over the H * W positions of the map and then
      averaged over the batch (`reduction="sample"`, the default). This is the quantity CHIP
      scores (a channels x positions matrix of one sample, `keras_caps.pruning.chip`), so CCM
      builds exactly the per-sample linear redundancy that CHIP's nuclear norms detect, and it
      is not inflated by between-image differences (brightness, object size) that make every
      channel co-vary across a batch. `reduction="batch"` pools all B * H * W positions instead.
    * Only off-diagonal pairs count. Eq. 7 averages over all C x C pairs, whose diagonal adds
      the constant C / C^2 = 1 / C (no gradient); dropping it makes CCM lie in [0, 1] with
      1 for identical channels and ~0 for independent ones.
    * Constant channels (e.g. a dead ReLU) have zero variance: each standard deviation is
      sqrt(var + epsilon), so their correlations are 0 and gradients stay finite.

Shapes: B batch, H x W grid, C channels.
"""

from __future__ import annotations

import keras
from keras import ops

# the replica scaling Keras applies to compiled losses (and undoes for its "loss" metric)
from keras.src.losses.loss import scale_loss_for_distribution, unscale_loss_for_distribution

from keras_caps.models.heads import feature_model, unwrap

#: Added to channel variances before the square root (finite gradients for constant channels).
CCM_EPSILON = 1e-6
REDUCTIONS = ("sample", "batch")


def channel_correlations(feature_map, reduction="sample", epsilon=CCM_EPSILON):
    """Pearson correlation matrices between the channels of a feature map.

    Args:
        feature_map: (B, H, W, C) (any float dtype; computed in float32).
        reduction: "sample": one matrix per sample over its H * W positions, (B, C, C);
            "batch": one matrix over all B * H * W positions, (1, C, C).
        epsilon: added to each variance (constant channels get correlation 0).
    Returns:
        (B, C, C) or (1, C, C) correlations; the diagonal is var / (var + epsilon) (~1).

    Example:

    ```python
    import numpy as np
    from keras_caps.pruning.ccm import channel_correlations

    base = np.random.default_rng(0).normal(size=(2, 5, 5, 1)).astype("float32")
    maps = np.concatenate([base, -2.0 * base], axis=-1)  # (B, H, W, C): C = 2, anticorrelated
    corr = np.asarray(channel_correlations(maps))  # (B, C, C)
    assert corr.shape == (2, 2, 2)
    np.testing.assert_allclose(corr[:, 0, 1], -1.0, atol=1e-4)
    ```
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    if len(feature_map.shape) != 4:
        raise ValueError(
            f"CCM expects a (batch, height, width, channels) feature map, got shape "
            f"{tuple(feature_map.shape)}."
        )
    _, h, w, c = feature_map.shape
    x = ops.cast(feature_map, "float32")
    if reduction == "sample":
        x = ops.reshape(x, (-1, h * w, c))  # (B, P, C), P = H * W
    else:
        x = ops.reshape(x, (1, -1, c))  # (1, B * H * W, C)
    x = ops.subtract(x, ops.mean(x, axis=1, keepdims=True))  # centre each channel
    positions = ops.cast(ops.shape(x)[1], "float32")
    cov = ops.divide(ops.matmul(ops.transpose(x, (0, 2, 1)), x), positions)  # (B, C, C)
    var = ops.diagonal(cov, axis1=1, axis2=2)  # (B, C)
    inv_std = ops.rsqrt(ops.add(var, epsilon))  # (B, C)
    return cov * ops.expand_dims(inv_std, 2) * ops.expand_dims(inv_std, 1)  # (B, C, C)


def ccm(feature_map, reduction="sample", epsilon=CCM_EPSILON):
    """CCM loss of one layer: mean |Pearson correlation| over off-diagonal channel pairs.

    Differentiable; 1 for identical (or affinely related) channels, ~0 for independent ones,
    0 for a layer with a single channel.

    Args:
        feature_map: (B, H, W, C).
        reduction: "sample" (default, per sample then averaged over B) or "batch" (pooled
            over B * H * W positions); see the module docstring.
        epsilon: variance epsilon.
    Returns:
        Scalar float32 tensor in [0, 1].

    Example:

    ```python
    import numpy as np
    from keras_caps.pruning import ccm

    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 8, 8, 1)).astype("float32")
    same = np.concatenate([base, 2.0 * base + 1.0], axis=-1)  # (B, H, W, C): redundant
    assert abs(float(ccm(same)) - 1.0) < 1e-4
    assert float(ccm(rng.normal(size=(4, 16, 16, 3)).astype("float32"))) < 0.1  # independent
    ```
    """
    c = feature_map.shape[-1]
    if c is None:
        raise ValueError("CCM needs a known channel count (the last axis of the feature map).")
    if c < 2:
        return ops.zeros((), "float32")
    corr = channel_correlations(feature_map, reduction, epsilon)  # (B, C, C)
    off_diagonal = ops.subtract(1.0, ops.eye(c, dtype="float32"))  # (C, C)
    per_matrix = ops.sum(ops.abs(corr) * off_diagonal, axis=(1, 2)) / float(c * (c - 1))  # (B,)
    return ops.mean(per_matrix)


class _View:
    """Holds a functional view of the wrapped model out of Keras tracking and saving.

    The view shares every layer with the wrapped model; tracking it too would save each
    weight twice (and hand the optimizer duplicate variables).
    """

    __slots__ = ("model",)

    def __init__(self, model):
        self.model = model


@keras.saving.register_keras_serializable(package="keras_caps")
class CCMTrainer(keras.Model):
    """Trains a capsnet / deep_capsnet with total = task loss - alpha * sum_l CCM_l (eq. 5).

    CCM_l runs over the prunable feature maps of `keras_caps.models.feature_model` (the
    backbone ReLU outputs and the PrimaryCaps convolution before squash); `taps` selects a
    subset. The task loss is the loss `compile` was given (`compile_capsnet`: the margin loss,
    plus the reconstruction loss when the model has a decoder), plus regularisation losses.
    One forward pass (`call`) gives both the outputs and the feature maps; the loss is Keras'
    `compute_loss` hook and training runs Keras' own train_step / test_step (no GradientTape
    of its own): the task loss is scaled per replica by Keras, the CCM term by the same Keras
    function, and Keras records the total as "loss".

    Works with `fit`/`evaluate`, callbacks and tf.distribute, and with
    `keras_caps.training.fit_capsnet`: `input`, `get_layer` and `output` are those of the
    wrapped model, so `model_io`, `accuracy_key` and the checkpoints work unchanged, and the
    trainer saves and loads as a `.keras` file (registered, complete config). Calling the
    trainer returns {"outputs", "features"} (see `call`); `predict` returns the outputs. The
    trained network is `trainer.capsnet`: use that one for inference, pruning or export.

    Logs (train and "val_"): loss (the total), margin (the compiled task loss), ccm (sum over
    layers), ccm_<tap> per layer, and the compiled metrics (accuracy).

    Args:
        capsnet: a built functional keras_caps model (image or {"image", "label"} input,
            {"lengths"[, "reconstruction"]} output).
        alpha: weight of the CCM term (>= 0). The paper calls it "a small constant".
        taps: feature-map layer names (default: all of `feature_layer_names`).
        reduction: "sample" or "batch", see `ccm`.
        epsilon: CCM variance epsilon.
        **kwargs: keras.Model arguments (name, default "ccm_trainer").

    Call arguments:
        inputs: the wrapped model's inputs (images (B, H, W, C), or {"image", "label"}).
        training: training mode (BatchNormalization).

    Example:

    ```python
    import keras
    import numpy as np
    from keras_caps.data import unit_images
    from keras_caps.models import deep_capsnet
    from keras_caps.pruning import CCMTrainer, unwrap
    from keras_caps.training import compile_capsnet, fit_capsnet

    def build():
        capsnet = deep_capsnet(4, 2, input_shape=(12, 12, 1), backbone_filters=(8, 8, 8),
                               class_dim=4)
        return compile_capsnet(CCMTrainer(capsnet, alpha=0.1))

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)
    metrics = fit_capsnet(build, (images, labels), (images, labels), "ccm_run", epochs=1,
                          batch_size=8, verbose=0)
    assert {"loss", "margin", "ccm", "ccm_relu1"} <= set(metrics["history"][0])
    capsnet = unwrap(keras.saving.load_model(metrics["model_path"]))  # for pruning / export
    assert capsnet.predict(unit_images(images[:2]), verbose=0)["lengths"].shape \
        == (2, 10)
    ```
    """

    def __init__(self, capsnet, alpha=0.1, taps=None, reduction="sample", epsilon=CCM_EPSILON,
                 **kwargs):
        kwargs.setdefault("name", "ccm_trainer")
        super().__init__(**kwargs)
        if not isinstance(capsnet, keras.Model) or not hasattr(capsnet, "inputs"):
            raise ValueError(
                f"CCMTrainer wraps a functional keras_caps model, got {type(capsnet).__name__}."
            )
        if float(alpha) < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}.")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
        features = feature_model(capsnet).output  # {tap: (B, H, W, C)}
        taps = list(features) if taps is None else list(taps)
        unknown = [t for t in taps if t not in features]
        if unknown or not taps:
            raise ValueError(
                f"taps {taps} must be a non-empty subset of the feature maps {list(features)}."
            )
        self.capsnet = capsnet
        self.alpha = float(alpha)
        self.taps = tuple(taps)
        self.reduction = reduction
        self.epsilon = float(epsilon)
        view = keras.Model(
            capsnet.input,
            {"outputs": capsnet.output, "features": {t: features[t] for t in self.taps}},
            name=f"{capsnet.name}_ccm_view",
        )
        self._view = _View(view)
        self.margin_tracker = keras.metrics.Mean(name="margin")
        self.ccm_tracker = keras.metrics.Mean(name="ccm")
        self.layer_trackers = [keras.metrics.Mean(name=f"ccm_{t}") for t in self.taps]
        self.built = True  # the wrapped functional model is built

    # --- the wrapped model's interface (for fit_capsnet, model_io, accuracy_key) ---
    @property
    def input(self):
        return self.capsnet.input

    @property
    def output(self):
        return self.capsnet.output

    def get_layer(self, name=None, index=None):
        """A layer of the wrapped model (so `fit_capsnet` finds "length" and the heads).

        Args:
            name: the layer's name.
            index: or its index in the wrapped model's layers.
        Returns:
            The layer.
        """
        return self.capsnet.get_layer(name=name, index=index)

    def call(self, inputs, training=None):
        """One forward pass: the wrapped model's outputs and the tapped feature maps.

        Args:
            inputs: the wrapped model's inputs (images (B, H, W, C), or {"image", "label"}).
            training: training mode (BatchNormalization).
        Returns:
            {"outputs": the wrapped model's outputs, "features": {tap: (B, H, W, C)}}; the
            loss (`compute_loss`) needs both. `predict` returns the outputs alone.
        """
        return self._view.model(inputs, training=training)

    # --- training: Keras' train_step / test_step with these two hooks ---
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """total = task loss - alpha * sum_l CCM_l for one batch, per replica.

        The task loss is Keras' own `compute_loss` of the outputs (the compiled losses plus
        regularization losses, scaled per replica by Keras); the CCM sum gets the same
        scaling (`scale_loss_for_distribution`). Updates the margin / ccm / ccm_<tap>
        metrics with the unscaled values, weighted by the batch size like Keras' "loss".

        Args:
            x: the batch's inputs.
            y: the targets ({"lengths": one-hot (B, J)[, "reconstruction": images]}).
            y_pred: `call`'s output {"outputs": ..., "features": ...}.
            sample_weight: passed to the compiled losses.
            training: passed to Keras' `compute_loss`.
        Returns:
            Scalar loss per replica.

        Example:

        ```python
        import numpy as np
        from keras_caps.models import deep_capsnet
        from keras_caps.pruning import CCMTrainer
        from keras_caps.training import compile_capsnet

        trainer = compile_capsnet(CCMTrainer(deep_capsnet(
            4, 2, input_shape=(12, 12, 1), backbone_filters=(8, 8, 8), class_dim=4), alpha=0.5))
        x = np.random.default_rng(0).uniform(0, 1, (4, 12, 12, 1)).astype("float32")
        y = {"lengths": np.eye(10, dtype="float32")[[0, 1, 2, 3]]}
        loss = trainer.compute_loss(x, y, trainer(x, training=True))
        margin, ccm = trainer.margin_tracker.result(), trainer.ccm_tracker.result()
        np.testing.assert_allclose(float(loss), float(margin) - 0.5 * float(ccm), rtol=1e-5)
        ```
        """
        task = super().compute_loss(x, y, y_pred["outputs"], sample_weight, training)
        per_layer = [ccm(y_pred["features"][t], self.reduction, self.epsilon)
                     for t in self.taps]
        ccm_total = ops.sum(ops.stack(per_layer))
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        self.margin_tracker.update_state(unscale_loss_for_distribution(task),
                                         sample_weight=batch)
        self.ccm_tracker.update_state(ccm_total, sample_weight=batch)
        for tracker, value in zip(self.layer_trackers, per_layer):
            tracker.update_state(value, sample_weight=batch)
        return task - self.alpha * scale_loss_for_distribution(ccm_total)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The compiled metrics (accuracy) of the wrapped model's outputs.

        Args:
            x: the batch's inputs.
            y: the targets.
            y_pred: `call`'s output {"outputs": ..., "features": ...}.
            sample_weight: passed to the compiled metrics.
        Returns:
            {metric name: value} of every metric of the trainer.
        """
        return super().compute_metrics(x, y, y_pred["outputs"], sample_weight=sample_weight)

    def predict_step(self, data):
        """The wrapped model's outputs for one batch (`call` also returns the feature maps).

        Args:
            data: a batch of inputs (or (inputs, targets)).
        Returns:
            The wrapped model's outputs ({"lengths"[, "reconstruction"]}).
        """
        return super().predict_step(data)["outputs"]

    # --- serialization ---
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "capsnet": keras.saving.serialize_keras_object(self.capsnet),
            "alpha": self.alpha,
            "taps": list(self.taps),
            "reduction": self.reduction,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        capsnet = keras.saving.deserialize_keras_object(
            config.pop("capsnet"), custom_objects=custom_objects
        )
        return cls(capsnet, **config)


__all__ = [
    "CCM_EPSILON",
    "CCMTrainer",
    "ccm",
    "channel_correlations",
    "unwrap",
]
