"""Deep CapsNet of paper 003: conv+BN backbone, PrimaryCaps, I IntermediateCaps, ClassCaps."""

from __future__ import annotations

import keras

from keras_caps.layers import ConvCapsule, DenseCapsule, PrimaryCapsule
from keras_caps.models.capsnet import DECODERS
from keras_caps.models.compat import check_deep_capsnet_size
from keras_caps.models.heads import attach_heads


def deep_capsnet(
    num_capsules=20,
    capsule_dim=8,
    num_intermediate=0,
    input_shape=(32, 32, 3),
    num_classes=10,
    backbone_filters=(64, 128, 128),
    backbone_strides=(1, 2, 1),
    primary_kernel=3,
    primary_strides=2,
    class_dim=16,
    routings=3,
    stop_gradient=True,
    decoder=None,
    decoder_units=(512, 1024),
    intermediate_initializer="capsule",
    weight_sharing=False,
    name=None,
):
    """Builds CapsNet[C, D, I] of "Mitigating vanishing activations in deep CapsNets" (paper 003).

    Backbone: len(backbone_filters) x (Conv 3x3, padding 1 -> BatchNorm -> ReLU) with
    `backbone_strides`. PrimaryCaps: conv `primary_kernel` x `primary_kernel`, stride
    `primary_strides`, no padding, C x D channels, squash. IntermediateCaps: I `ConvCapsule`
    layers (3x3, stride 1, padding 1, local dynamic routing, the same C and D). ClassCaps:
    `num_classes` x `class_dim` capsules with dynamic routing. The paper does not give the
    backbone widths; (64, 128, 128) is this library's default (every width is a parameter, and
    channel pruning changes them).

    Spatial sizes with the defaults: 32x32 input -> 32 -> 16 -> 16 -> primary 7x7; 28x28 ->
    28 -> 14 -> 14 -> 6x6.

    Inputs and outputs as in `capsnet` (B batch, (H, W, C) = `input_shape`,
    J = `num_classes`): image (B, H, W, C) -> {"lengths": (B, J)}, or with a decoder
    {"image", "label" (B, J)} -> {"lengths", "reconstruction" (B, H, W, C)}. Named layers:
    "conv{i}", "bn{i}", "relu{i}" (the feature-map taps), "primary_caps",
    "intermediate_caps_{k}" (k = 1..I), "class_caps", "length".

    Args:
        num_capsules: int, C, the capsule types of PrimaryCaps and of every IntermediateCaps.
            Defaults to 20.
        capsule_dim: int, D, their capsule dimension. Defaults to 8.
        num_intermediate: int, I >= 0, the IntermediateCaps layers. Defaults to 0.
        input_shape: (H, W, C) of the images. Defaults to (32, 32, 3).
        num_classes: int, J. Defaults to 10.
        backbone_filters: tuple of int, the channels of each backbone conv block. Defaults
            to (64, 128, 128).
        backbone_strides: tuple of int, the strides of each block (same length as
            `backbone_filters`). Defaults to (1, 2, 1).
        primary_kernel: int, kernel size of the primary-capsule convolution. Defaults to 3.
        primary_strides: int, its strides. Defaults to 2.
        class_dim: int, the dimension of the class capsules. Defaults to 16.
        routings: int, dynamic-routing iterations of every capsule layer. Defaults to 3.
        stop_gradient: bool, gradients through the votes only in the last routing iteration.
            Defaults to True.
        decoder: None (the default), "none", "full" or "reduced", as in `capsnet`.
        decoder_units: tuple of int, the hidden widths of the decoder. Defaults to
            (512, 1024).
        intermediate_initializer: kernel initializer of every IntermediateCaps: "capsule"
            (the default, see `capsule_ops.capsule_initializer`) or any Keras initializer
            (e.g. a fixed-std TruncatedNormal to study vanishing activations).
        weight_sharing: bool, share the class-capsule transforms over positions (FasTrCaps
            Alg. 4): a (C, J, D, class_dim) kernel instead of (H * W * C, J, D, class_dim).
            The microcontroller family (`mcu_capsnet`) uses it. Defaults to False.
        name: str, the model name. Defaults to "deep_capsnet_C{C}_D{D}_I{I}".
    Returns:
        An uncompiled functional `keras.Model`.
    Raises:
        ValueError: a negative `num_intermediate`, backbone lists of different lengths or an
            unknown `decoder`.
        keras_caps.models.compat.InputSizeError: images too small for the strides and kernel.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import deep_capsnet

    # CapsNet[C=4, D=4, I=1] on 16 x 16 grey images, with a small backbone.
    model = deep_capsnet(num_capsules=4, capsule_dim=4, num_intermediate=1,
                         input_shape=(16, 16, 1), backbone_filters=(8, 16),
                         backbone_strides=(1, 2), class_dim=8)
    assert model.name == "deep_capsnet_C4_D4_I1"
    images = np.random.rand(2, 16, 16, 1).astype("float32")  # (B, H, W, C)
    assert model(images)["lengths"].shape == (2, 10)  # (B, J)
    # 16 -> 16 -> 8 (backbone) -> 3 x 3 primary grid, kept by the IntermediateCaps
    assert model.get_layer("intermediate_caps_1").output.shape == (None, 3, 3, 4, 4)
    ```
    """
    if int(num_intermediate) < 0:
        raise ValueError(f"num_intermediate must be >= 0, got {num_intermediate}.")
    if len(backbone_filters) != len(backbone_strides):
        raise ValueError(
            f"backbone_filters {tuple(backbone_filters)} and backbone_strides "
            f"{tuple(backbone_strides)} must have the same length."
        )
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
    check_deep_capsnet_size(input_shape, backbone_strides, primary_kernel, primary_strides)
    name = name or f"deep_capsnet_C{num_capsules}_D{capsule_dim}_I{num_intermediate}"
    image = keras.Input(shape=tuple(input_shape), name="image")
    x = image
    for i, (filters, stride) in enumerate(zip(backbone_filters, backbone_strides), start=1):
        x = keras.layers.Conv2D(
            filters, 3, strides=stride, padding="same", kernel_initializer="he_normal",
            name=f"conv{i}",
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    caps, _ = PrimaryCapsule(
        num_capsules,
        capsule_dim,
        kernel_size=primary_kernel,
        strides=primary_strides,
        padding="valid",
        return_feature_map=True,
        name="primary_caps",
    )(x)  # (B, H, W, C, D)
    for k in range(1, int(num_intermediate) + 1):
        caps = ConvCapsule(
            num_capsules,
            capsule_dim,
            kernel_size=3,
            strides=1,
            padding="same",
            routings=routings,
            stop_gradient=stop_gradient,
            kernel_initializer=intermediate_initializer,
            name=f"intermediate_caps_{k}",
        )(caps)  # (B, H, W, C, D)
    class_caps = DenseCapsule(
        num_classes, class_dim, routings=routings, stop_gradient=stop_gradient,
        weight_sharing=weight_sharing, name="class_caps",
    )(caps)  # (B, J, class_dim)
    return attach_heads(image, class_caps, decoder, decoder_units, name)
