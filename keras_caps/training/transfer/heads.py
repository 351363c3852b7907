"""Cross-dataset transfer (paper 000, Sec. 3.5.1): a fresh class-capsule head on a trained backbone.

Shapes: B batch, J classes, D capsule dims.
"""

from __future__ import annotations

import keras

from keras_caps.layers import DenseCapsule
from keras_caps.models.heads import attach_heads, has_decoder, image_input


def replace_head(model, num_classes, class_dim=None, routings=None, decoder="same",
                 decoder_units=None, name=None):
    """A copy of `model` with a fresh class-capsule head for `num_classes` classes.

    Every layer before "class_caps" (conv / BN / primary / intermediate capsules) is rebuilt
    from its config and gets the model's weights exactly; the class capsules (J = num_classes),
    Length, and Mask + decoder are new. Every layer of the copy is trainable (freezing is
    GradualUnfreezing's job), even when the source was frozen. The input model is left
    untouched.

    Args:
        model: keras_caps model (capsnet / deep_capsnet).
        num_classes: J of the new task.
        class_dim: new class-capsule dim (default: the old one).
        routings: routing iterations (default: the old ones).
        decoder: "same" (the model's decoder kind and widths, fresh weights), None / "none",
            "full" or "reduced".
        decoder_units: hidden widths of a new decoder (default: the old ones or (512, 1024)).
        name: of the new model (default: the old name).
    Returns:
        The new, uncompiled model: image -> {"lengths": (B, J)} or with a decoder
        {"image", "label"} -> {"lengths", "reconstruction"}.
    """
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    try:
        model.get_layer("class_caps")
    except ValueError as err:
        raise ValueError(f"model {model.name!r} has no 'class_caps' layer: replace_head needs a "
                         "keras_caps capsnet / deep_capsnet.") from err
    old_units = None
    if has_decoder(model):
        old_units = model.get_layer("decoder").hidden_units
    if decoder == "same":
        decoder = model.get_layer("mask").mode if has_decoder(model) else None
    decoder_units = tuple(decoder_units or old_units or (512, 1024))
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    clone.trainable = True  # a frozen source (e.g. a Distiller's teacher) gives a trainable copy
    old = clone.get_layer("class_caps")
    caps = DenseCapsule(
        int(num_classes),
        int(class_dim or old.capsule_dim),
        routings=int(routings or old.routings),
        stop_gradient=old.stop_gradient,
        weight_sharing=old.weight_sharing,
        kernel_regularizer=old.kernel_regularizer,
        name="class_caps",
    )(old.input[0] if isinstance(old.input, (list, tuple)) else old.input)  # (B, J, D)
    return attach_heads(image_input(clone), caps, decoder, decoder_units, name or model.name)


__all__ = ["replace_head"]
