"""Does a model fit the data? Input-size minimums of the builders and model/data checks.

`check_capsnet_size` / `check_deep_capsnet_size`: the smallest image each architecture takes
(valid convolutions shrink the image; a stage with no pixels left cannot be built) as a
`InputSizeError` that names the size and the flags to change.
`check_model_data`: a saved model's input shape and class count against the data's, as a
`ModelDataMismatch` naming the model file and the dataset.
"""

from __future__ import annotations


class InputSizeError(ValueError):
    """The images are too small for the architecture."""


class ModelDataMismatch(ValueError):
    """A saved model's input shape or class count differs from the data's."""


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
    """Sabour CapsNet: conv (valid) then primary caps (valid, strided) must leave >= 1 pixel.

    With the paper's 9x9 kernels and stride 2 that is 17x17 (conv 9x9: H - 8; primary 9x9 / 2).
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
    """Deep CapsNet: the 'same' backbone divides by its strides, then primary caps (valid)."""
    def fits(size):
        for stride in backbone_strides:
            size = _same(size, stride)
        return _valid(size, primary_kernel, primary_strides) >= 1

    _check(input_shape, fits,
           f"deep_capsnet (backbone_strides={tuple(backbone_strides)}, "
           f"primary_kernel={primary_kernel}, primary_strides={primary_strides})",
           "use a smaller primary kernel or fewer strided backbone layers")


def model_signature(model):
    """(image shape (H, W, C), number of classes J) of a keras_caps model."""
    from keras_caps.models.heads import classifier, image_input

    shape = tuple(int(d) for d in image_input(model).shape[1:])
    return shape, int(classifier(model).output.shape[-1])


def check_model_data(model, image_shape, num_classes=None, model_name="the model",
                     dataset="the data"):
    """Raises ModelDataMismatch when `model` cannot take `image_shape` images or predicts a
    different number of classes than `num_classes` (None: not checked).

    Args:
        model: a keras_caps model (or its classifier).
        image_shape: (H, W, C) of the data (after --image_size / --channels).
        num_classes: K of the data, or None.
        model_name, dataset: named in the message (e.g. the model file and the --dataset).
    """
    check_signature(model_signature(model), image_shape, num_classes, model_name, dataset)


def check_signature(signature, image_shape, num_classes=None, model_name="the model",
                    dataset="the data"):
    """ModelDataMismatch when a model's (image shape, classes) `signature` (of a Keras model or
    a flatbuffer) does not fit data of `image_shape` and `num_classes` (None: not checked)."""
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
