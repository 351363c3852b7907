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
    """Builds CapsNet[C, D, I] of "Mitigating vanishing activations in deep CapsNets".

    Backbone: len(backbone_filters) x (Conv 3x3, padding 1 -> BatchNorm -> ReLU), strides
    (1, 2, 1). PrimaryCaps: conv 3x3 stride 2, no padding, C x D channels, squash.
    IntermediateCaps: I ConvCapsule layers (3x3, stride 1, padding 1, local dynamic routing,
    same C and D). ClassCaps: num_classes x class_dim capsules with dynamic routing.
    The paper does not give the backbone widths; (64, 128, 128) is this library's default
    (every width is a parameter, and channel pruning changes them).

    Spatial sizes: 32x32 input -> 32 -> 16 -> 16 -> primary 7x7; 28x28 -> 28 -> 14 -> 14 -> 6x6.

    Inputs/outputs as in `capsnet` (image -> {"lengths"}, or with a decoder
    {"image", "label"} -> {"lengths", "reconstruction"}). Named layers: "conv{i}", "bn{i}",
    "relu{i}" (feature-map taps), "primary_caps", "intermediate_caps_{k}" (k = 1..I),
    "class_caps", "length".

    Args:
        num_capsules: C, capsule types in PrimaryCaps and every IntermediateCaps.
        capsule_dim: D.
        num_intermediate: I >= 0.
        intermediate_initializer: kernel initializer of every IntermediateCaps: "capsule"
            (the library's, see `capsule_ops.capsule_initializer`) or any Keras initializer
            (e.g. a fixed-std TruncatedNormal to study vanishing activations).
        weight_sharing: share the class-capsule transforms over positions (FasTrCaps Alg. 4):
            a (C, J, D, class_dim) kernel instead of (H * W * C, J, D, class_dim). The
            microcontroller family (`mcu_capsnet`) uses it.
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
