"""PrimaryCapsule: a convolution whose channels are grouped into capsules and squashed."""

from __future__ import annotations

import keras
from keras import ops

from keras_caps.capsule_ops import squash


@keras.saving.register_keras_serializable(package="keras_caps")
class PrimaryCapsule(keras.layers.Layer):
    """Primary capsules: a convolution whose channels are grouped into capsules, then squashed.

    A `Conv2D` with `num_capsules * capsule_dim` output channels. Channel k of the convolution
    is component k % D of capsule type k // D; every capsule is squashed
    (`keras_caps.capsule_ops.squash`), so its length lies in [0, 1).

    Shapes (B batch, H_in x W_in x F input feature map, H x W output grid,
    C = `num_capsules` capsule types, D = `capsule_dim`):
        input:  (B, H_in, W_in, F) feature map.
        output: (B, H, W, C, D) capsules; with `return_feature_map=True` the tuple
                (capsules, feature map), the feature map being the convolution's pre-squash
                output (B, H, W, C * D), the map that CCM and channel pruning work on.

    Args:
        num_capsules: int, C, the capsule types at every grid position.
        capsule_dim: int, D, the dimension of every capsule.
        kernel_size: int or (int, int), the kernel size of the convolution. Defaults to 9
            (Sabour's CapsNet).
        strides: int or (int, int), the strides of the convolution. Defaults to 2.
        padding: "valid" (the default, as in Sabour's CapsNet) or "same".
        return_feature_map: bool, also return the pre-squash feature map. Defaults to False.
        kernel_initializer: initializer of the convolution kernel. Defaults to "he_normal":
            with Glorot the 9x9x256 convolution starts at std ~0.03 and squash, ~|s|^2 for
            small s, leaves the capsules near zero.
        kernel_regularizer: optional regularizer of the convolution kernel.
        **kwargs: other keyword arguments of `keras.layers.Layer` (`name`, `trainable`,
            `dtype`, ...).

    Call arguments:
        inputs: the feature map, (B, H_in, W_in, F).

    Example:

    ```python
    import numpy as np
    from keras_caps.layers import PrimaryCapsule

    features = np.random.rand(2, 13, 13, 16).astype("float32")  # (B, H_in, W_in, F)
    layer = PrimaryCapsule(num_capsules=4, capsule_dim=8, kernel_size=3, strides=2)
    capsules = layer(features)
    assert capsules.shape == (2, 6, 6, 4, 8)  # (B, H, W, C, D)

    # The feature map too, for CCM and channel pruning:
    layer = PrimaryCapsule(4, 8, kernel_size=3, return_feature_map=True)
    capsules, fmap = layer(features)
    assert fmap.shape == (2, 6, 6, 32)  # (B, H, W, C * D)
    ```
    """

    def __init__(
        self,
        num_capsules,
        capsule_dim,
        kernel_size=9,
        strides=2,
        padding="valid",
        return_feature_map=False,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_capsules) < 1 or int(capsule_dim) < 1:
            raise ValueError(
                f"num_capsules and capsule_dim must be >= 1, got {num_capsules}, {capsule_dim}."
            )
        self.num_capsules = int(num_capsules)
        self.capsule_dim = int(capsule_dim)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.return_feature_map = bool(return_feature_map)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.conv = keras.layers.Conv2D(
            self.num_capsules * self.capsule_dim,
            kernel_size,
            strides=strides,
            padding=padding,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            trainable=self.trainable,  # a deserialised trainable=False must reach the conv too
            name="conv",
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"PrimaryCapsule expects a (batch, height, width, channels) feature map, "
                f"got shape {tuple(input_shape)}."
            )
        self.conv.build(input_shape)

    def call(self, inputs):
        fmap = self.conv(inputs)  # (B, H, W, C * D)
        # static grid sizes and -1 for the batch: no SHAPE ops in exported graphs
        h, w = fmap.shape[1], fmap.shape[2]
        caps = ops.reshape(fmap, (-1, h, w, self.num_capsules, self.capsule_dim))  # (B, H, W, C, D)
        caps = squash(caps)
        if self.return_feature_map:
            return caps, fmap
        return caps

    def compute_output_shape(self, input_shape):
        b, h, w, _ = self.conv.compute_output_shape(input_shape)
        caps = (b, h, w, self.num_capsules, self.capsule_dim)
        if self.return_feature_map:
            return caps, (b, h, w, self.num_capsules * self.capsule_dim)
        return caps

    def get_config(self):
        config = super().get_config()
        config.update(
            num_capsules=self.num_capsules,
            capsule_dim=self.capsule_dim,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            return_feature_map=self.return_feature_map,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
