"""The L2 weight penalty lambda R(w) of paper 000, eq. 16, as part of a saved model."""

from __future__ import annotations

import keras

REGULARIZED = ("Conv2D", "Dense", "PrimaryCapsule", "DenseCapsule", "ConvCapsule")


def with_l2_regularization(model, strength, layer_types=REGULARIZED):
    """A copy of `model` whose kernels carry an L2 penalty: lambda * sum(w^2) (eq. 16).

    The penalty is set as each layer's `kernel_regularizer` in the config (Conv2D, Dense,
    PrimaryCapsule's convolution, DenseCapsule / ConvCapsule transforms; biases, BatchNorm and
    the Decoder's internal Dense layers are not penalised) and the model is rebuilt with the
    same weights. So the penalty is part of the saved model, survives checkpoint resumes, and
    Keras adds it to the loss (`model.losses`); frozen weights add nothing (Keras only
    regularises trainable weights). Any previous kernel regularizer is replaced.

    Args:
        model: functional keras_caps model.
        strength: lambda >= 0 (0 returns `model` itself).
        layer_types: class names of the layers to regularise.
    """
    strength = float(strength)
    if strength < 0:
        raise ValueError(f"L2 strength must be >= 0, got {strength}.")
    if strength == 0:
        return model
    config = model.get_config()
    reg = keras.regularizers.serialize(keras.regularizers.L2(strength))
    for layer in config["layers"]:
        if layer["class_name"] in layer_types and "kernel_regularizer" in layer["config"]:
            layer["config"]["kernel_regularizer"] = reg
    new = model.__class__.from_config(config)
    new.set_weights(model.get_weights())
    return new


__all__ = ["REGULARIZED", "with_l2_regularization"]
