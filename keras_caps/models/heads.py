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
    """Adds Length (and Mask + Decoder) on top of class capsules and builds the model."""
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
    """The image input tensor of a keras_caps model (plain or with a label input)."""
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
    """image -> capsule lengths (B, J), sharing weights with `model`."""
    return keras.Model(image_input(model), _layer(model, "length").output, name="classifier")


def capsule_model(model):
    """image -> class capsules (B, J, D), sharing weights with `model`."""
    return keras.Model(image_input(model), _layer(model, "class_caps").output, name="capsules")


def feature_layer_names(model):
    """Names of the layers whose outputs are the prunable feature maps, input to output."""
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
    """image -> {tap name: feature map (B, H, W, F)} (backbone ReLU outputs, PrimaryCaps conv)."""
    outputs = {}
    for name in feature_layer_names(model):
        layer = model.get_layer(name)
        out = layer.output
        outputs[name] = out[1] if isinstance(layer, PrimaryCapsule) else out
    return keras.Model(image_input(model), outputs, name="features")


def unwrap(model):
    """The capsnet inside a training wrapper that holds it as `.capsnet` (e.g. a
    `keras_caps.pruning.CCMTrainer`), or `model` itself."""
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
