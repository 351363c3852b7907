"""Length and Mask: from class capsules to class scores and to the decoder's input."""

from __future__ import annotations

import keras
from keras import ops

from keras_caps.capsule_ops import safe_length, squared_norm


@keras.saving.register_keras_serializable(package="keras_caps")
class Length(keras.layers.Layer):
    """Capsule lengths, the class scores of a CapsNet.

    Shapes (B batch, J capsules, D capsule dim):
        input:  (B, J, D).
        output: (B, J).

    Args:
        squared: bool, return |v|^2 instead of |v| (no SQRT: the integer-export form; the
            ranking of the classes is the same). Defaults to False.
        **kwargs: other keyword arguments of `keras.layers.Layer` (`name`, `trainable`,
            `dtype`, ...).

    Call arguments:
        inputs: the capsules, (B, J, D).

    Example:

    ```python
    import numpy as np
    from keras_caps.layers import Length

    capsules = np.array([[[0.6, 0.8], [0.0, 0.5]]], "float32")  # (B, J, D) = (1, 2, 2)
    np.testing.assert_allclose(Length()(capsules), [[1.0, 0.5]], atol=1e-6)
    np.testing.assert_allclose(Length(squared=True)(capsules), [[1.0, 0.25]], atol=1e-6)
    ```
    """

    def __init__(self, squared=False, **kwargs):
        super().__init__(**kwargs)
        self.squared = bool(squared)

    def call(self, inputs):
        if self.squared:
            return squared_norm(inputs)
        return safe_length(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update(squared=self.squared)
        return config


@keras.saving.register_keras_serializable(package="keras_caps")
class Mask(keras.layers.Layer):
    """Keeps one class capsule for the decoder: the true class in training, else the predicted.

    Shapes (B batch, J capsules, D capsule dim):
        input:  `capsules` (B, J, D), or `[capsules, labels]` with one-hot labels (B, J).
        output: mode "full": (B, J * D), every other capsule zeroed (Sabour's decoder input);
                mode "reduced": (B, D), only the selected capsule (FasTrCaps reduced decoder).

    Args:
        mode: "full" (the default) or "reduced", see the shapes.
        **kwargs: other keyword arguments of `keras.layers.Layer` (`name`, `trainable`,
            `dtype`, ...).

    Call arguments:
        inputs: `capsules` (B, J, D) or `[capsules, labels]`.
        training: bool; the labels select the capsule when they are given and `training` is
            true, otherwise (inference, or no labels) the longest capsule is kept.

    Example:

    ```python
    import numpy as np
    from keras_caps.layers import Mask

    capsules = np.array([[[0.1, 0.0], [0.0, 0.9], [0.3, 0.0]]], "float32")  # (1, 3, 2)
    labels = np.array([[1.0, 0.0, 0.0]], "float32")  # one-hot (B, J)
    # inference: the longest capsule (class 1) is kept
    np.testing.assert_allclose(Mask()(capsules), [[0, 0, 0, 0.9, 0, 0]])
    # training with labels: the true class (0) is kept
    np.testing.assert_allclose(Mask()([capsules, labels], training=True), [[0.1, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(Mask(mode="reduced")(capsules), [[0.0, 0.9]])  # (B, D)
    ```
    """

    def __init__(self, mode="full", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("full", "reduced"):
            raise ValueError(f"Mask mode must be 'full' or 'reduced', got {mode!r}.")
        self.mode = mode

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            capsules, labels = inputs
        else:
            capsules, labels = inputs, None
        num_classes = capsules.shape[1]
        by_prediction = ops.one_hot(ops.argmax(squared_norm(capsules), axis=-1), num_classes)
        if labels is not None and training:
            mask = ops.cast(labels, capsules.dtype)
        else:
            mask = ops.cast(by_prediction, capsules.dtype)  # (B, J)
        masked = ops.multiply(capsules, ops.expand_dims(mask, -1))  # (B, J, D)
        if self.mode == "reduced":
            return ops.sum(masked, axis=1)  # (B, D)
        return ops.reshape(masked, (-1, capsules.shape[1] * capsules.shape[2]))  # (B, J * D)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)
        ) else input_shape
        if self.mode == "reduced":
            return (shape[0], shape[2])
        return (shape[0], shape[1] * shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config
