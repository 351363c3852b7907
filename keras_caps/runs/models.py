"""The model a run config describes, saved models a run loads, and their checks against the data.

    model = build_model(config, input_shape=(28, 28, 1), num_classes=10)   # uncompiled
    model = load_capsnet("runs/demo/model.keras")                          # a saved CapsNet
"""

from __future__ import annotations

import os


def check_input_size(config, input_shape):
    """InputSizeError (naming the size and the flags to change) when the model `config`
    describes (a ModelConfig) cannot take `input_shape` (H, W, C) images; before anything is
    written."""
    from keras_caps.models.compat import check_capsnet_size, check_deep_capsnet_size

    if config.model == "capsnet":
        check_capsnet_size(input_shape, config.conv_kernel, config.primary_kernel)
    elif config.model == "mcu_capsnet":  # backbone strides (1, 2, 2[, ...]), primary 3x3 / 2
        from keras_caps.models.mcu_capsnet import MCU_SIZES

        check_deep_capsnet_size(input_shape, MCU_SIZES[config.mcu_size]["backbone_strides"])
    else:
        check_deep_capsnet_size(input_shape, tuple(config.backbone_strides))


def check_loaded_model(model, path, flag, dataset, image_shape, num_classes=None):
    """ModelDataMismatch when the model saved at `path` (given as --`flag`) does not take the
    data's (H, W, C) images (or, with `num_classes`, predicts another number of classes)."""
    from keras_caps.models.compat import check_model_data

    check_model_data(model, image_shape, num_classes, model_name=f"--{flag} {path}",
                     dataset=f"--dataset={dataset}")


def build_model(config, input_shape, num_classes):
    """The uncompiled model a ModelConfig describes.

    Args:
        config: a ModelConfig (any run config): `model` and its sizes.
        input_shape: (H, W, C) of the images.
        num_classes: J, the number of class capsules.
    Returns:
        A keras_caps model image (B, H, W, C) -> {"lengths": (B, J)[, "reconstruction"]}.

    Example:
        >>> model = build_model(TrainConfig(model_dir="x", model="mcu_capsnet"), (28, 28, 1), 10)
    """
    from keras_caps.models import capsnet, deep_capsnet, mcu_capsnet

    decoder = _decoder(config)
    if config.model == "mcu_capsnet":
        return mcu_capsnet(config.mcu_size, input_shape=input_shape, num_classes=num_classes,
                           routings=config.routings, decoder=decoder)
    if config.model == "capsnet":
        return capsnet(
            input_shape=input_shape, num_classes=num_classes,
            conv_filters=config.conv_filters, conv_kernel=config.conv_kernel,
            primary_capsules=config.primary_capsules, primary_dim=config.primary_dim,
            primary_kernel=config.primary_kernel, class_dim=config.class_dim,
            routings=config.routings, weight_sharing=config.weight_sharing,
            decoder=decoder,
        )
    return deep_capsnet(**deep_capsnet_arguments(config, input_shape, num_classes))


def _decoder(config):
    """The model builders' `decoder` argument: None for --decoder=none, else its name."""
    return None if config.decoder == "none" else config.decoder


def deep_capsnet_arguments(config, input_shape, num_classes):
    """The `keras_caps.models.deep_capsnet` keyword arguments a ModelConfig describes.

    Args:
        config: a ModelConfig (any run config): C, D, I, the backbone widths and strides,
            weight sharing and the class-capsule head.
        input_shape: (H, W, C) of the images.
        num_classes: J, the number of class capsules.
    Returns:
        A dict for `deep_capsnet(**arguments)`; a caller may replace entries (the vanishing
        study's grafts take the widths of their source model).

    Example:
        >>> args = deep_capsnet_arguments(TrainConfig(model_dir="x", model="deep_capsnet"),
        ...                               (28, 28, 1), 10)
        >>> args["backbone_strides"]
        (1, 2, 1)
    """
    return dict(
        num_capsules=config.num_capsules, capsule_dim=config.capsule_dim,
        num_intermediate=config.num_intermediate, input_shape=tuple(input_shape),
        num_classes=num_classes, backbone_filters=tuple(config.backbone_filters),
        backbone_strides=tuple(config.backbone_strides), weight_sharing=config.weight_sharing,
        class_dim=config.class_dim, routings=config.routings,
        decoder=_decoder(config),
    )


PRETRAINED_PREFIX = "pretrained:"


def model_file(spec, flag):
    """The .keras file a model flag names: a path, or "pretrained:NAME" for a reference model
    shipped with the package (keras_caps.models.reference).

    Args:
        spec: the flag's value, e.g. "runs/m/model.keras" or "pretrained:fashion_mnist_mcu_m".
        flag: the flag's name, for the error message.
    Returns:
        str, the path of an existing .keras file.
    Raises:
        ConfigError: no such reference model, or not an existing .keras file.

    Example:
        >>> model_file("pretrained:fashion_mnist_mcu_s", "teacher").endswith(".keras")
        True
    """
    from keras_caps.runs.config import ConfigError

    if spec.startswith(PRETRAINED_PREFIX):
        from keras_caps.models import reference

        name = spec[len(PRETRAINED_PREFIX):]
        if name not in reference.available():
            raise ConfigError(f"--{flag}={spec}: no reference model {name!r}; shipped: "
                              f"{[PRETRAINED_PREFIX + n for n in reference.available()]}.")
        return os.fspath(reference.model_file(name))
    if not spec.endswith(".keras") or not os.path.isfile(spec):
        raise ConfigError(f"--{flag}={spec}: not an existing .keras file; give a trained model "
                          "(e.g. runs/x/model.keras) or pretrained:NAME (a shipped reference "
                          "model).")
    return spec


def load_capsnet(path):
    """The keras_caps CapsNet saved at `path` (a saved CCMTrainer is unwrapped); a clear
    error for a missing file, another kind of file or a model that is not a CapsNet."""
    import keras_caps.pruning  # noqa: F401  (registers CCMTrainer)
    from keras_caps import validation
    from keras_caps.pruning import unwrap

    return validation.check_capsnet(unwrap(validation.load_keras_model(path, "model file")),
                                    f"model {path!r}")


__all__ = ["PRETRAINED_PREFIX", "build_model", "check_input_size", "check_loaded_model",
           "load_capsnet", "model_file"]
