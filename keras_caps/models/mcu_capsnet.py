"""Microcontroller CapsNets: a family of deep CapsNets sized for TFLite Micro (S / M / L).

Each size is a `deep_capsnet` with a small 3x3 conv + BatchNorm + ReLU backbone that halves the
image twice, 3x3 stride-2 primary capsules on the 7 x 7 map (a 3 x 3 capsule grid) and class
capsules with dynamic routing whose transforms are shared over positions (FasTrCaps weight
sharing). The structure was chosen by measurement (BENCHMARKS.md, "Microcontroller CapsNets"):

- a BatchNorm backbone of 3x3 convs (the S model reaches 0.91 on Fashion-MNIST where the
  45k-parameter Sabour-style student with one 9x9 conv reached 0.86);
- in the int8 export the TFLite Micro arena is dominated by the routing tensors, whose size is
  J x N x class_dim bytes for N input capsules (votes, their transposed copies and the
  BATCH_MATMUL scratch): a 3 x 3 grid (N = 9 x C) keeps the S model under 64 KB, where a
  5 x 5 grid (N = 25 x C) needs ~83 KB;
- weight sharing makes the class-capsule kernel C x J x D x class_dim (5,120 weights for
  C = 8) instead of N times that, so the flatbuffer is mostly backbone.

Sizes (28 x 28 x 1 input, 10 classes; int8 bytes and arena from `benchmarks/mcu_family.py`):

    size  backbone           strides     C x D   class  params   int8 bytes  TFLM arena
    S     16, 32, 64         1, 2, 2     8 x 8   8D     65,792   88,992      49,664
    M     32, 64, 64, 96     1, 2, 1, 2  12 x 8  8D     202,880  230,304     78,592
    L     32, 64, 128, 128   1, 2, 1, 2  16 x 8  16D    409,728  440,008     138,240

Example:

```python
from keras_caps.models import MCU_SIZES, mcu_capsnet

model = mcu_capsnet("S", input_shape=(28, 28, 1), num_classes=10)
assert model.output["lengths"].shape == (None, 10)  # (B, J)
assert sorted(MCU_SIZES) == ["L", "M", "S"]
```
"""

from __future__ import annotations

from keras_caps.models.deep_capsnet import deep_capsnet

#: Size name -> deep_capsnet arguments. Every size uses 3x3 stride-2 primary capsules and
#: weight-shared class capsules (see the module docstring for why).
MCU_SIZES = {
    "S": dict(backbone_filters=(16, 32, 64), backbone_strides=(1, 2, 2),
              num_capsules=8, capsule_dim=8, class_dim=8),
    "M": dict(backbone_filters=(32, 64, 64, 96), backbone_strides=(1, 2, 1, 2),
              num_capsules=12, capsule_dim=8, class_dim=8),
    "L": dict(backbone_filters=(32, 64, 128, 128), backbone_strides=(1, 2, 1, 2),
              num_capsules=16, capsule_dim=8, class_dim=16),
}


def mcu_capsnet(size="S", input_shape=(28, 28, 1), num_classes=10, routings=3, decoder=None,
                name=None, **overrides):
    """Builds the microcontroller CapsNet of the given size.

    A `deep_capsnet` with the size's backbone and capsule widths (`MCU_SIZES`), 3x3 stride-2
    primary capsules and weight-shared class capsules.

    Args:
        size: "S", "M" or "L" (case-insensitive; see `MCU_SIZES`; S meets the 100 KB
            flatbuffer / 64 KB arena budget in int8). Defaults to "S".
        input_shape: (H, W, C) of the images; H and W at least 16 (two stride-2 convs then a
            3x3 stride-2 primary conv need a map of at least 3 x 3 after the backbone).
            Defaults to (28, 28, 1).
        num_classes: int, J. Defaults to 10.
        routings: int, dynamic-routing iterations. Defaults to 3.
        decoder: None (the default, the microcontroller form), "reduced" or "full".
        name: str, the model name. Defaults to "mcu_capsnet_<size>".
        **overrides: any other `deep_capsnet` argument, replacing the size's value (e.g.
            `backbone_filters`, `num_intermediate`).
    Returns:
        An uncompiled `keras.Model` (see `deep_capsnet` for inputs and outputs).
    Raises:
        ValueError: an unknown size, or images too small for the backbone.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import mcu_capsnet

    model = mcu_capsnet("S", input_shape=(28, 28, 1), num_classes=10)
    assert model.count_params() == 65_792
    images = np.random.rand(2, 28, 28, 1).astype("float32")  # (B, H, W, C)
    assert model(images)["lengths"].shape == (2, 10)  # (B, J)

    # A narrower S for a quick experiment: overrides replace the size's values.
    small = mcu_capsnet("s", backbone_filters=(8, 16, 16), name="tiny")
    assert small.count_params() < model.count_params()
    ```
    """
    key = str(size).upper()
    if key not in MCU_SIZES:
        raise ValueError(f"unknown microcontroller CapsNet size {size!r}; choose one of "
                         f"{sorted(MCU_SIZES)}.")
    height, width = int(input_shape[0]), int(input_shape[1])
    if min(height, width) < 16:
        raise ValueError(
            f"mcu_capsnet needs images of at least 16 x 16 pixels, got {height} x {width}: "
            "resize the images (e.g. --image_size=28) or use a smaller backbone_strides."
        )
    kwargs = dict(MCU_SIZES[key], primary_kernel=3, primary_strides=2, weight_sharing=True)
    kwargs.update(overrides)
    return deep_capsnet(
        input_shape=tuple(input_shape), num_classes=num_classes, routings=routings,
        decoder=decoder, name=name or f"mcu_capsnet_{key}", **kwargs,
    )


__all__ = ["MCU_SIZES", "mcu_capsnet"]
