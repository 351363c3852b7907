"""Does a model fit the data? Input-size minimums of the builders and model/data checks.

`check_capsnet_size` / `check_deep_capsnet_size`: the smallest image each architecture takes
(valid convolutions shrink the image; a stage with no pixels left cannot be built) as a
`InputSizeError` that names the size and the flags to change.
`check_model_data`: a saved model's input shape and class count against the data's, as a
`ModelDataMismatch` naming the model file and the dataset.
"""

from __future__ import annotations

from keras_caps.errors import UserError


class InputSizeError(UserError):
    """The images are too small for the architecture (raised by the builders' size checks)."""


class ModelDataMismatch(UserError):
    """A saved model's input shape or class count differs from the data's (`check_model_data`)."""


def _valid(size, kernel, stride=1):
    return (size - kernel) // stride + 1


def _same(size, stride):
    return -(-size // stride)


def _smallest(fits):
    """The smallest size >= 1 for which `fits(size)` holds (sizes are monotone)."""
    size = 1
    while not fits(size) and size < 10_000:
        size += 1
    return size


def _check(input_shape, fits, what, hint):
    if len(tuple(input_shape)) != 3:
        raise InputSizeError(f"{what}: input_shape must be (H, W, C), got {tuple(input_shape)}.")
    h, w = int(input_shape[0]), int(input_shape[1])
    if fits(h) and fits(w):
        return
    need = _smallest(fits)
    raise InputSizeError(
        f"{what} needs images of at least {need}x{need} pixels, got {h}x{w}: resize them with "
        f"--image_size={need} (or larger; image_size= in Python), or {hint}."
    )


def check_capsnet_size(input_shape, conv_kernel=9, primary_kernel=9, primary_strides=2):
    """Checks that a Sabour CapsNet can take `input_shape` images.

    The conv (valid) then the primary capsules (valid, strided) must leave at least one
    pixel. With the paper's 9x9 kernels and stride 2 that is 17x17 (conv 9x9: H - 8; primary
    9x9 / 2).

    Args:
        input_shape: (H, W, C) of the images.
        conv_kernel: int, the first convolution's kernel size. Defaults to 9.
        primary_kernel: int, the primary-capsule kernel size. Defaults to 9.
        primary_strides: int, the primary-capsule strides. Defaults to 2.
    Raises:
        InputSizeError: the images are too small; the message names the smallest size and
            the flags to change.

    Example:

    ```python
    from keras_caps.models.compat import InputSizeError, check_capsnet_size

    check_capsnet_size((28, 28, 1))  # fits: returns None
    try:
        check_capsnet_size((16, 16, 1))
    except InputSizeError as err:
        assert "at least 17x17" in str(err)
    else:
        raise AssertionError("16x16 is too small for 9x9 kernels")
    check_capsnet_size((12, 12, 1), conv_kernel=3, primary_kernel=3)  # small kernels fit
    ```
    """
    def fits(size):
        return _valid(_valid(size, conv_kernel), primary_kernel, primary_strides) >= 1

    _check(input_shape, fits,
           f"capsnet (conv_kernel={conv_kernel}, primary_kernel={primary_kernel}, "
           f"primary_strides={primary_strides})",
           "use smaller kernels (--conv_kernel, --primary_kernel; --student_conv_kernel, "
           "--student_primary_kernel for a distilled student)")


def check_deep_capsnet_size(input_shape, backbone_strides=(1, 2, 1), primary_kernel=3,
                            primary_strides=2):
    """Checks that a deep CapsNet can take `input_shape` images.

    The "same" backbone divides the size by its strides (rounding up), then the primary
    capsules (valid) must leave at least one pixel.

    Args:
        input_shape: (H, W, C) of the images.
        backbone_strides: tuple of int, the backbone strides. Defaults to (1, 2, 1).
        primary_kernel: int, the primary-capsule kernel size. Defaults to 3.
        primary_strides: int, the primary-capsule strides. Defaults to 2.
    Raises:
        InputSizeError: the images are too small; the message names the smallest size.

    Example:

    ```python
    from keras_caps.models.compat import InputSizeError, check_deep_capsnet_size

    check_deep_capsnet_size((32, 32, 3))
    try:
        check_deep_capsnet_size((4, 4, 1), backbone_strides=(1, 2, 2))
    except InputSizeError as err:
        assert "at least 9x9" in str(err)
    else:
        raise AssertionError("4x4 is too small")
    ```
    """
    def fits(size):
        for stride in backbone_strides:
            size = _same(size, stride)
        return _valid(size, primary_kernel, primary_strides) >= 1

    _check(input_shape, fits,
           f"deep_capsnet (backbone_strides={tuple(backbone_strides)}, "
           f"primary_kernel={primary_kernel}, primary_strides={primary_strides})",
           "use a smaller primary kernel or fewer strided backbone layers")


def model_signature(model):
    """The (image shape (H, W, C), number of classes J) of a keras_caps model.

    Args:
        model: a `capsnet` / `deep_capsnet` (or any model `classifier` accepts).
    Returns:
        ((H, W, C), J) as ints.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.models.compat import model_signature

    assert model_signature(mcu_capsnet("S", num_classes=4)) == ((28, 28, 1), 4)
    ```
    """
    from keras_caps.models.heads import classifier, image_input

    shape = tuple(int(d) for d in image_input(model).shape[1:])
    return shape, int(classifier(model).output.shape[-1])


def check_model_data(model, image_shape, num_classes=None, model_name="the model",
                     dataset="the data"):
    """Checks that `model` takes `image_shape` images and predicts `num_classes` classes.

    Args:
        model: a keras_caps model (or its classifier).
        image_shape: (H, W, C) of the data (after --image_size / --channels).
        num_classes: int, the classes of the data, or None (not checked).
        model_name: str, how the message names the model (e.g. its file). Defaults to
            "the model".
        dataset: str, how the message names the data (e.g. the --dataset). Defaults to
            "the data".
    Raises:
        ModelDataMismatch: the shapes or class counts differ; the message says which flags
            fix it.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.models.compat import ModelDataMismatch, check_model_data

    model = mcu_capsnet("S")
    check_model_data(model, (28, 28, 1), num_classes=10)  # matches: returns None
    try:
        check_model_data(model, (32, 32, 3), 10, model_name="s.keras", dataset="cifar10")
    except ModelDataMismatch as err:
        assert "--image_size=28,28 --grayscale" in str(err)
    else:
        raise AssertionError("a 28x28x1 model does not take 32x32x3 images")
    ```
    """
    check_signature(model_signature(model), image_shape, num_classes, model_name, dataset)


def check_signature(signature, image_shape, num_classes=None, model_name="the model",
                    dataset="the data"):
    """Checks a model's (image shape, classes) `signature` against data.

    The signature may come from a Keras model (`model_signature`) or from a flatbuffer.

    Args:
        signature: ((H, W, C), J) of the model.
        image_shape: (H, W, C) of the data.
        num_classes: int, the classes of the data, or None (not checked).
        model_name: str, how the message names the model. Defaults to "the model".
        dataset: str, how the message names the data. Defaults to "the data".
    Raises:
        ModelDataMismatch: the shapes or class counts differ.

    Example:

    ```python
    from keras_caps.models.compat import ModelDataMismatch, check_signature

    check_signature(((28, 28, 1), 10), (28, 28, 1), 10)
    try:
        check_signature(((28, 28, 1), 10), (28, 28, 1), num_classes=5)
    except ModelDataMismatch as err:
        assert "10 classes but the data has 5" in str(err)
    else:
        raise AssertionError("class counts differ")
    ```
    """
    shape, classes = signature
    image_shape = tuple(int(d) for d in image_shape)
    problems = []
    if shape != image_shape:
        problems.append(f"input images {shape[0]}x{shape[1]}x{shape[2]} but the data's are "
                        f"{image_shape[0]}x{image_shape[1]}x{image_shape[2]} (pass "
                        f"--image_size={shape[0]},{shape[1]}"
                        + (" --grayscale" if shape[2] == 1 else " --channels=3")
                        + " to match the model, or train a model on this data)")
    if num_classes is not None and classes != int(num_classes):
        problems.append(f"{classes} classes but the data has {num_classes} (use data with the "
                        "model's classes, or fine-tune it with train.finetune, which replaces "
                        "the head)")
    if problems:
        raise ModelDataMismatch(f"{model_name} does not match {dataset}: it expects "
                                + "; and ".join(problems) + ".")
