"""Shared model heads (lengths, mask, decoder) and sub-model views for taps.

Views (all share weights with the model they come from):
    classifier(model):   image (B, H, W, C) -> lengths (B, J), the inference head.
    capsule_model(model): image -> class capsules (B, J, D).
    feature_model(model): image -> {name: feature map (B, H, W, F)} for every backbone conv
                          (post-ReLU) and PrimaryCaps conv (pre-squash), the maps CCM and
                          channel pruning use.
"""

from __future__ import annotations

import keras

from keras_caps.layers import Decoder, Length, Mask, PrimaryCapsule


def attach_heads(image, class_caps, decoder, decoder_units, name):
    """Adds Length (and Mask + Decoder) on top of class capsules and builds the model.

    The shared tail of `capsnet` and `deep_capsnet`; use it to build a CapsNet with a
    backbone of your own.

    Args:
        image: the image `keras.Input`, (B, H, W, C).
        class_caps: the class-capsule tensor, (B, J, D).
        decoder: None or "none" (lengths only), "full" or "reduced" (see `Mask`).
        decoder_units: tuple of int, the hidden widths of the `Decoder`.
        name: str, the model name.
    Returns:
        A functional `keras.Model`: image -> {"lengths": (B, J)} without decoder, or
        {"image", "label": one-hot (B, J)} -> {"lengths", "reconstruction": (B, H, W, C)}.

    Example:

    ```python
    import keras
    from keras_caps.layers import DenseCapsule, PrimaryCapsule
    from keras_caps.models.heads import attach_heads

    image = keras.Input((12, 12, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(image)
    caps = PrimaryCapsule(4, 4, kernel_size=3, name="primary_caps")(x)  # (B, 4, 4, 4, 4)
    class_caps = DenseCapsule(10, 8, name="class_caps")(caps)  # (B, J, D)
    model = attach_heads(image, class_caps, "full", (16, 32), name="my_capsnet")
    assert model.output["reconstruction"].shape == (None, 12, 12, 1)
    ```
    """
    lengths = Length(name="length")(class_caps)  # (B, J)
    if decoder in (None, "none"):
        return keras.Model(image, {"lengths": lengths}, name=name)
    label = keras.Input(shape=(class_caps.shape[1],), name="label")
    masked = Mask(mode=decoder, name="mask")([class_caps, label])
    recon = Decoder(tuple(image.shape[1:]), decoder_units, name="decoder")(masked)
    return keras.Model(
        {"image": image, "label": label},
        {"lengths": lengths, "reconstruction": recon},
        name=name,
    )


def image_input(model):
    """The image input tensor of a keras_caps model (plain, or with a label input).

    Args:
        model: a functional keras_caps model (`capsnet`, `deep_capsnet`, ...).
    Returns:
        Its "image" input, (B, H, W, C) (the first input of a list, or the only input).
    Raises:
        ValueError: the model has no defined input, or a dict input without "image".

    Example:

    ```python
    from keras_caps.models import capsnet, image_input

    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                    primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=4,
                    decoder="full", decoder_units=(8, 8))
    assert image_input(model).shape == (None, 12, 12, 1)
    ```
    """
    try:
        inputs = model.input
    except AttributeError as err:  # a Sequential / subclassed model that was never called
        raise ValueError(
            f"model {model.name!r} has no defined input (it was never built or called); "
            "keras_caps needs a functional capsnet / deep_capsnet."
        ) from err
    if isinstance(inputs, dict):
        if "image" not in inputs:
            raise ValueError(f"model {model.name!r} has no 'image' input: {list(inputs)}.")
        return inputs["image"]
    if isinstance(inputs, (list, tuple)):
        return inputs[0]
    return inputs


def has_decoder(model):
    """Whether `model` has a decoder (a "label" input).

    Args:
        model: a keras_caps model.
    Returns:
        bool.

    Example:

    ```python
    from keras_caps.models import has_decoder, mcu_capsnet

    assert not has_decoder(mcu_capsnet("S"))
    assert has_decoder(mcu_capsnet("S", decoder="reduced"))
    ```
    """
    return isinstance(model.input, dict) and "label" in model.input


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError as err:
        raise ValueError(
            f"model {model.name!r} has no layer {name!r}; is it a keras_caps capsnet or "
            f"deep_capsnet? Layers: {[layer.name for layer in model.layers]}"
        ) from err


def classifier(model):
    """The inference view: image (B, H, W, C) -> capsule lengths (B, J).

    Shares its weights with `model` (no copy); it drops the label input and the decoder.

    Args:
        model: a `capsnet` / `deep_capsnet` (any model with "length" layer).
    Returns:
        A `keras.Model` named "classifier".
    Raises:
        ValueError: `model` has no "length" layer.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import classifier, mcu_capsnet

    model = mcu_capsnet("S", decoder="reduced")  # {"image", "label"} -> {...}
    scores = classifier(model)(np.random.rand(2, 28, 28, 1).astype("float32"))
    assert scores.shape == (2, 10)  # (B, J)
    ```
    """
    return keras.Model(image_input(model), _layer(model, "length").output, name="classifier")


def capsule_model(model):
    """The capsule view: image (B, H, W, C) -> class capsules (B, J, D), sharing weights.

    Args:
        model: a `capsnet` / `deep_capsnet` (any model with a "class_caps" layer).
    Returns:
        A `keras.Model` named "capsules".
    Raises:
        ValueError: `model` has no "class_caps" layer.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsule_model, mcu_capsnet

    capsules = capsule_model(mcu_capsnet("S"))(np.zeros((2, 28, 28, 1), "float32"))
    assert capsules.shape == (2, 10, 8)  # (B, J, class_dim)
    ```
    """
    return keras.Model(image_input(model), _layer(model, "class_caps").output, name="capsules")


def feature_layer_names(model):
    """Names of the layers whose outputs are the prunable feature maps, input to output.

    Backbone taps are post-activation (the "relu{i}" after a conv + BN block, or the conv
    itself when its ReLU is built in, as capsnet's "conv1"); the PrimaryCapsule layer stands
    for its pre-squash convolution output.

    Args:
        model: a `capsnet` / `deep_capsnet`.
    Returns:
        list of str.

    Example:

    ```python
    from keras_caps.models import capsnet, feature_layer_names, mcu_capsnet

    assert feature_layer_names(mcu_capsnet("S")) == ["relu1", "relu2", "relu3", "primary_caps"]
    tiny = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                   primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)
    assert feature_layer_names(tiny) == ["conv1", "primary_caps"]
    ```
    """
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("conv"):
            names.append(_feature_tap(model, layer.name))
        elif isinstance(layer, PrimaryCapsule):
            names.append(layer.name)
    return names


def _feature_tap(model, conv_name):
    """Backbone taps are post-activation: the ReLU layer after a conv+BN block if present."""
    relu = conv_name.replace("conv", "relu")
    try:
        model.get_layer(relu)
        return relu
    except ValueError:
        return conv_name


def feature_model(model):
    """The feature view: image -> {tap name: feature map (B, H', W', F)}, sharing weights.

    The maps of `feature_layer_names` (backbone ReLU outputs, the PrimaryCaps convolution
    before squash): what CCM training and channel pruning work on.

    Args:
        model: a `capsnet` / `deep_capsnet`.
    Returns:
        A `keras.Model` named "features" with a dict output.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import feature_model, mcu_capsnet

    maps = feature_model(mcu_capsnet("S"))(np.zeros((2, 28, 28, 1), "float32"))
    assert maps["relu3"].shape == (2, 7, 7, 64)  # (B, H', W', F)
    assert maps["primary_caps"].shape == (2, 3, 3, 64)  # (B, H, W, C * D)
    ```
    """
    outputs = {}
    for name in feature_layer_names(model):
        layer = model.get_layer(name)
        out = layer.output
        outputs[name] = out[1] if isinstance(layer, PrimaryCapsule) else out
    return keras.Model(image_input(model), outputs, name="features")


def unwrap(model):
    """The capsnet inside a training wrapper that holds it as `.capsnet`, or `model` itself.

    Args:
        model: a keras_caps model, or a wrapper with a `.capsnet` attribute (e.g. a
            `keras_caps.pruning.CCMTrainer`).
    Returns:
        The wrapped `keras.Model`, or `model` when it wraps nothing.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.models.heads import unwrap

    model = mcu_capsnet("S")
    assert unwrap(model) is model
    ```
    """
    inner = getattr(model, "capsnet", None)
    return inner if isinstance(inner, keras.Model) else model


__all__ = [
    "Decoder",
    "attach_heads",
    "capsule_model",
    "classifier",
    "feature_layer_names",
    "feature_model",
    "has_decoder",
    "image_input",
    "unwrap",
]
