"""Sabour et al. (2017) CapsNet with every size a parameter (teachers and students alike)."""

from __future__ import annotations

import keras

from keras_caps.layers import DenseCapsule, PrimaryCapsule
from keras_caps.models.compat import check_capsnet_size
from keras_caps.models.heads import attach_heads

DECODERS = (None, "none", "full", "reduced")


def capsnet(
    input_shape=(28, 28, 1),
    num_classes=10,
    conv_filters=256,
    conv_kernel=9,
    primary_capsules=32,
    primary_dim=8,
    primary_kernel=9,
    primary_strides=2,
    class_dim=16,
    routings=3,
    stop_gradient=True,
    weight_sharing=False,
    decoder="full",
    decoder_units=(512, 1024),
    name="capsnet",
):
    """Builds ShallowCaps: Conv -> PrimaryCaps -> ClassCaps (dynamic routing) [-> decoder].

    Defaults are Sabour's MNIST model: conv 256 @ 9x9 ReLU, 32 primary types x 8D @ 9x9 stride 2
    (6 x 6 x 32 = 1152 capsules), 10 x 16D class capsules, 3 routing iterations, decoder
    160-512-1024-784: 8,215,568 parameters (6,804,224 without the decoder).

    Inputs/outputs (B batch, J = num_classes):
        decoder None:  input image (B, H, W, C) -> {"lengths": (B, J)}.
        with decoder:  input {"image": (B, H, W, C), "label": one-hot (B, J)} ->
                       {"lengths": (B, J), "reconstruction": (B, H, W, C)}; the label masks the
                       decoder input in training, the prediction does at inference.
    Named layers for taps: "conv1" (its ReLU output is the feature map), "primary_caps",
    "class_caps", "length", "mask", "decoder". See `keras_caps.models.heads` for the
    classifier / capsule / feature-map sub-models.

    Args:
        decoder: None/"none", "full" (J x D inputs) or "reduced" (D inputs, FasTrCaps).
        weight_sharing: share class-capsule transforms over positions (FasTrCaps Alg. 4).
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
    check_capsnet_size(input_shape, conv_kernel, primary_kernel, primary_strides)
    image = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Conv2D(
        conv_filters, conv_kernel, activation="relu", kernel_initializer="he_normal", name="conv1"
    )(image)
    caps, _ = PrimaryCapsule(
        primary_capsules,
        primary_dim,
        kernel_size=primary_kernel,
        strides=primary_strides,
        padding="valid",
        return_feature_map=True,
        name="primary_caps",
    )(x)  # (B, H', W', T, D)
    class_caps = DenseCapsule(
        num_classes,
        class_dim,
        routings=routings,
        stop_gradient=stop_gradient,
        weight_sharing=weight_sharing,
        name="class_caps",
    )(caps)  # (B, J, class_dim)
    return attach_heads(image, class_caps, decoder, decoder_units, name)


__all__ = ["DECODERS", "capsnet"]
