"""Reconstruction decoder: masked class capsules -> image."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_caps")
class Decoder(keras.layers.Layer):
    """Fully connected reconstruction decoder (Sabour et al.): ReLU hidden layers, sigmoid pixels.

    Full variant: the input (B, J * D) comes from `Mask(mode="full")` (10 x 16 = 160 inputs for
    Sabour's CapsNet, 1.41 M parameters). Reduced variant (FasTrCaps): the input (B, D) comes
    from `Mask(mode="reduced")` (16 inputs, 1.34 M parameters). The layer itself is the same;
    the input width decides.

    Shapes (B batch, F input features, (H, W, C) = `image_shape`):
        input:  (B, F).
        output: (B, H, W, C), values in (0, 1).

    Args:
        image_shape: (H, W, C), the shape of the reconstructed image.
        hidden_units: tuple of int, the widths of the hidden ReLU layers. Defaults to
            (512, 1024).
        **kwargs: other keyword arguments of `keras.layers.Layer` (`name`, `trainable`,
            `dtype`, ...).

    Call arguments:
        inputs: the masked capsules, (B, F).

    Example:

    ```python
    import numpy as np
    from keras_caps.layers import Decoder

    decoder = Decoder(image_shape=(12, 12, 1), hidden_units=(32, 64))
    images = decoder(np.random.rand(2, 40).astype("float32"))  # (B, J * D) = (2, 10 * 4)
    assert images.shape == (2, 12, 12, 1)  # (B, H, W, C)
    assert float(np.min(images)) > 0.0 and float(np.max(images)) < 1.0
    ```
    """

    def __init__(self, image_shape, hidden_units=(512, 1024), **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (H, W, C), got {image_shape}.")
        self.hidden = [
            keras.layers.Dense(u, activation="relu", trainable=self.trainable, name=f"dense_{i}")
            for i, u in enumerate(self.hidden_units)
        ]
        self.pixels = keras.layers.Dense(  # trainable: a deserialised False reaches sublayers
            math.prod(self.image_shape), activation="sigmoid", trainable=self.trainable,
            name="pixels",
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.pixels.build(shape)

    def call(self, inputs):
        x = inputs
        for layer in self.hidden:
            x = layer(x)
        return ops.reshape(self.pixels(x), (-1,) + self.image_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.image_shape

    def get_config(self):
        config = super().get_config()
        config.update(image_shape=self.image_shape, hidden_units=self.hidden_units)
        return config
