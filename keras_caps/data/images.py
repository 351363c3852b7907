"""Image arrays: pixel scaling and batching, the one implementation every layer uses.

Scaling: uint8 pixels (0..255) become float32 in [0, 1] ("unit", the default everywhere in
keras_caps) or [-1, 1] ("symmetric") by one multiplication, x * (1 / 255) or
x * (2 / 255) - 1 (`scale_pixels`), on numpy arrays and tensors alike:
    `normalize(images)`     checked: floats already in [0, 1] pass, other floats must be 0..255
    `unit_images(images)`   unchecked: uint8 -> [0, 1], any other array as float32 as it is
    `make_dataset`          the tf.data pipeline, per batch
Batching: `image_batches(data)` yields float32 image batches (uint8 arrays scaled like
`unit_images`) from an array, (images, labels), a tf.data.Dataset or any iterable of batches;
the analysis, pruning, quantization and length-calibration code reads images through it.

Shapes: N images, B batch, H/W height/width, C channels.
"""

from __future__ import annotations

import numpy as np

from keras_caps import validation

NORMALIZATIONS = ("unit", "symmetric")


def scale_pixels(x, mode="unit"):
    """float pixel values in [0, 255] -> [0, 1] ("unit") or [-1, 1] ("symmetric").

    Works on numpy arrays and tensors alike (the tf.data pipeline uses it too); `x` must
    already be float (cast uint8 first).
    """
    if mode == "unit":
        return x * (1.0 / 255.0)
    if mode == "symmetric":
        return x * (2.0 / 255.0) - 1.0
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {mode!r}.")


def normalize(images, mode="unit"):
    """Pixel values in [0, 255] (uint8 or float) -> float32 in [0, 1] or [-1, 1].

    Float images already in [0, 1] are not divided again (they are returned as float32, mapped
    to [-1, 1] for "symmetric"); non-finite or negative values, or values above 255, are an
    InputDataError (keras_caps.validation).

    Args:
        images: (N, H, W, C) (any shape works).
        mode: "unit" -> [0, 1]; "symmetric" -> [-1, 1].
    Returns:
        float32 array of the same shape.
    """
    images = np.asarray(images)
    if validation.is_unit_float(images):  # already scaled: never divided by 255 twice
        x = images.astype(np.float32)
        return x if mode == "unit" else scale_pixels(x * 255.0, mode).astype(np.float32)
    validation.check_pixel_values(images)
    return scale_pixels(np.asarray(images, np.float32), mode).astype(np.float32)


def unit_images(images):
    """uint8 images -> float32 in [0, 1]; any other array -> float32 unchanged (unchecked).

    The scaling of model inputs that are given either as uint8 pixels or already scaled (the
    library's calibration, pruning-score and evaluation helpers); `normalize` is the checked
    form for raw pixels. images: any shape. Returns a float32 numpy array of the same shape.
    """
    images = np.asarray(images)
    x = images.astype(np.float32)
    return scale_pixels(x) if images.dtype == np.uint8 else x


def _is_dataset(data):
    return hasattr(data, "take") and hasattr(data, "element_spec")


def _images_of(element):
    """The images of one batch: x of (x, y[, ...]), {"image": x, ...}, or x itself."""
    x = element[0] if isinstance(element, (tuple, list)) else element
    return x["image"] if isinstance(x, dict) else x


def _ndim(item):
    shape = getattr(item, "shape", None)
    return None if shape is None else len(shape)


def _is_images_and_labels(data):
    """A tuple is always (images, labels[, ...]); a list is when its first item is an image
    array (N, H, W[, C]) and its second is not (labels (N,) or one-hot (N, K)); any other list
    is a list of batches."""
    if isinstance(data, tuple):
        return True
    if not isinstance(data, list) or len(data) < 2:
        return False
    first, second = _ndim(data[0]), _ndim(data[1])
    return first is not None and first >= 3 and (second is None or second <= 2)


def image_batches(data, num_batches=None, batch_size=64):
    """Yields image batches from an image array, (images, labels), a dataset or batches.

    Args:
        data: an image array (N, H, W[, C]); a tuple (images, labels[, ...]) (or such a
            list); a tf.data.Dataset of x or (x, y) batches (x images or {"image": ...}); or
            any other iterable of such batches (a list of arrays, a generator). uint8 arrays
            are scaled to [0, 1] (`unit_images`, as `make_dataset`'s "unit" normalization
            does), other arrays are used as float32 as they are; a dataset's batches are
            yielded as they are (a tf.data pipeline is scaled already, e.g. by `make_dataset`).
        num_batches: stop after this many batches (None: all).
        batch_size: batch size for arrays (the batches of a dataset or iterable are kept).
    Yields:
        (B, H, W, C) float32 numpy arrays (tensors for a dataset).
    """
    if _is_dataset(data):
        ds = data if num_batches is None else data.take(int(num_batches))
        for element in ds:
            yield _images_of(element)
        return
    if isinstance(data, np.ndarray) or _is_images_and_labels(data):
        images = np.asarray(data[0] if isinstance(data, (tuple, list)) else data)
        if images.ndim == 3:
            images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
        total = len(images) if num_batches is None else min(len(images), num_batches * batch_size)
        for start in range(0, total, batch_size):
            yield unit_images(images[start : min(start + batch_size, total)])
        return
    for count, element in enumerate(data):
        if num_batches is not None and count >= int(num_batches):
            return
        yield unit_images(_images_of(element))


__all__ = ["NORMALIZATIONS", "image_batches", "normalize", "scale_pixels", "unit_images"]
