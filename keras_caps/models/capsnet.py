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
    """Builds Sabour's ShallowCaps: Conv -> PrimaryCaps -> ClassCaps (dynamic routing) [-> decoder].

    The defaults are Sabour's MNIST model: conv 256 @ 9x9 ReLU, 32 primary types x 8D @ 9x9
    stride 2 (6 x 6 x 32 = 1152 capsules), 10 x 16D class capsules, 3 routing iterations,
    decoder 160-512-1024-784: 8,215,568 parameters (6,804,224 without the decoder). Every size
    is a parameter, so the same builder makes teachers and small students.

    Inputs and outputs (B batch, (H, W, C) = `input_shape`, J = `num_classes`):
        decoder None / "none": image (B, H, W, C) -> {"lengths": (B, J)}.
        with a decoder: {"image": (B, H, W, C), "label": one-hot (B, J)} ->
            {"lengths": (B, J), "reconstruction": (B, H, W, C)}; the label masks the decoder
            input in training, the prediction does at inference.
    Named layers, for taps: "conv1" (its ReLU output is the feature map), "primary_caps",
    "class_caps", "length", "mask", "decoder". `keras_caps.models.heads` gives the
    classifier / capsule / feature-map sub-models.

    Args:
        input_shape: (H, W, C) of the images. Defaults to (28, 28, 1). H and W must leave
            at least one pixel after both valid convolutions (17 x 17 for the defaults).
        num_classes: int, J, the class capsules. Defaults to 10.
        conv_filters: int, channels of the first convolution. Defaults to 256.
        conv_kernel: int, kernel size of the first convolution ("valid"). Defaults to 9.
        primary_capsules: int, C, the primary capsule types. Defaults to 32.
        primary_dim: int, D, the dimension of the primary capsules. Defaults to 8.
        primary_kernel: int, kernel size of the primary-capsule convolution ("valid").
            Defaults to 9.
        primary_strides: int, its strides. Defaults to 2.
        class_dim: int, the dimension of the class capsules. Defaults to 16.
        routings: int, dynamic-routing iterations (>= 1). Defaults to 3.
        stop_gradient: bool, gradients through the votes only in the last routing iteration.
            Defaults to True.
        weight_sharing: bool, share the class-capsule transforms over positions (FasTrCaps
            Alg. 4): a (C, J, D, class_dim) kernel instead of (N, J, D, class_dim). Defaults
            to False.
        decoder: None or "none" (no decoder), "full" (the default: J x class_dim inputs,
            Sabour) or "reduced" (class_dim inputs, FasTrCaps).
        decoder_units: tuple of int, the hidden widths of the decoder. Defaults to
            (512, 1024).
        name: str, the model name. Defaults to "capsnet".
    Returns:
        An uncompiled functional `keras.Model` (compile it with
        `keras_caps.losses.MarginLoss`, and `ReconstructionLoss` for the reconstruction).
    Raises:
        ValueError: an unknown `decoder`.
        keras_caps.models.compat.InputSizeError: images too small for the kernels.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    # A small CapsNet without decoder: image -> {"lengths"}.
    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=8,
                    decoder=None)
    images = np.random.rand(2, 12, 12, 1).astype("float32")  # (B, H, W, C)
    assert model(images)["lengths"].shape == (2, 10)  # (B, J)

    # With the reduced decoder the model also takes the one-hot labels.
    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=8,
                    decoder="reduced", decoder_units=(16, 32))
    labels = np.eye(10, dtype="float32")[[3, 7]]  # (B, J)
    outputs = model({"image": images, "label": labels})
    assert outputs["reconstruction"].shape == (2, 12, 12, 1)  # (B, H, W, C)
    ```
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
