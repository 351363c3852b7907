"""A plain CNN with the backbone of a CapsNet: the honest comparison at the same budget.

`cnn_baseline` keeps a CapsNet's conv + BatchNorm + ReLU backbone and its primary-capsule
convolution (as a plain conv + BN + ReLU with the same filters, kernel and stride), then global
average pooling and a softmax dense layer in place of the capsules. Trained with the same data,
augmentation, optimizer, LR schedule, batch size and epochs (`benchmarks/mcu_family.py`), it
shows what the capsule head buys at a given parameter count.

Example:

```python
from keras_caps.models import cnn_baseline

model = cnn_baseline((16, 32, 64), (1, 2, 2), head_filters=64)
assert model.output.shape == (None, 10)  # (B, num_classes)
```
"""

from __future__ import annotations

import keras


def cnn_baseline(backbone_filters=(16, 32, 64), backbone_strides=(1, 2, 2), head_filters=64,
                 head_kernel=3, head_strides=2, input_shape=(28, 28, 1), num_classes=10,
                 name="cnn_baseline"):
    """Builds a plain CNN: image (B, H, W, C) -> class probabilities (B, num_classes).

    Blocks of 3x3 conv ("same") + BatchNorm + ReLU, then one more conv + BN + ReLU block
    ("valid") in the place of the CapsNet's primary capsules, global average pooling and a
    softmax `Dense`. Layers are named "conv{i}", "bn{i}", "relu{i}", "pool", "probs".

    Args:
        backbone_filters: tuple of int, the channels of each 3x3 backbone block (as in
            `deep_capsnet`). Defaults to (16, 32, 64).
        backbone_strides: tuple of int, the strides of each block (same length). Defaults
            to (1, 2, 2).
        head_filters: int, the channels of the last block, in the place (and with the
            channels C x D) of the CapsNet's primary capsules. Defaults to 64.
        head_kernel: int, its kernel size. Defaults to 3.
        head_strides: int, its strides. Defaults to 2.
        input_shape: (H, W, C) of the images. Defaults to (28, 28, 1).
        num_classes: int, the classes. Defaults to 10.
        name: str, the model name. Defaults to "cnn_baseline".
    Returns:
        An uncompiled `keras.Model`; compile it with a cross-entropy loss.
    Raises:
        ValueError: `backbone_filters` and `backbone_strides` of different lengths.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import cnn_baseline

    model = cnn_baseline(backbone_filters=(8, 16), backbone_strides=(1, 2), head_filters=16,
                         input_shape=(16, 16, 1), num_classes=4)
    probs = model(np.random.rand(2, 16, 16, 1).astype("float32"))
    assert probs.shape == (2, 4)  # (B, num_classes)
    np.testing.assert_allclose(np.sum(probs, axis=-1), [1.0, 1.0], rtol=1e-5)
    ```
    """
    if len(backbone_filters) != len(backbone_strides):
        raise ValueError(
            f"backbone_filters {tuple(backbone_filters)} and backbone_strides "
            f"{tuple(backbone_strides)} must have the same length."
        )
    image = keras.Input(shape=tuple(input_shape), name="image")
    x = image
    blocks = [(f, 3, s, "same") for f, s in zip(backbone_filters, backbone_strides)]
    blocks.append((head_filters, head_kernel, head_strides, "valid"))
    for i, (filters, kernel, stride, padding) in enumerate(blocks, start=1):
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                                kernel_initializer="he_normal", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # (B, head_filters)
    probs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(image, probs, name=name)


def cnn_like(size, input_shape=(28, 28, 1), num_classes=10, **overrides):
    """The `cnn_baseline` with the backbone and primary-conv channels of `mcu_capsnet(size)`.

    Args:
        size: "S", "M" or "L", a key of `MCU_SIZES` (case-insensitive).
        input_shape: (H, W, C) of the images. Defaults to (28, 28, 1).
        num_classes: int, the classes. Defaults to 10.
        **overrides: the `mcu_capsnet(size, **overrides)` structure keys that shape the CNN
            (backbone_filters, backbone_strides, num_capsules, capsule_dim): the twin of a
            variant; other keys are ignored (they only change the capsule layers).
    Returns:
        An uncompiled `keras.Model` named "cnn_like_<size>": image -> probabilities
        (B, num_classes).

    Example:

    ```python
    from keras_caps.models import cnn_like

    model = cnn_like("S")  # backbone (16, 32, 64), head 8 x 8 = 64 channels
    assert model.name == "cnn_like_S"
    assert model.get_layer("conv4").filters == 64
    assert model.output.shape == (None, 10)
    ```
    """
    from keras_caps.models.mcu_capsnet import MCU_SIZES

    spec = dict(MCU_SIZES[str(size).upper()])
    spec.update({k: v for k, v in overrides.items() if k in (
        "backbone_filters", "backbone_strides", "num_capsules", "capsule_dim")})
    return cnn_baseline(spec["backbone_filters"], spec["backbone_strides"],
                        head_filters=spec["num_capsules"] * spec["capsule_dim"],
                        input_shape=input_shape, num_classes=num_classes,
                        name=f"cnn_like_{str(size).upper()}")


__all__ = ["cnn_baseline", "cnn_like"]
