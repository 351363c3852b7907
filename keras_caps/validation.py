"""Input validation in one place: images, labels, and the files a user hands in.

Every entry point (the training loops, the binaries' data loading, distillation, fine-tuning,
quantization, the TFLite export's calibration data and the TFLite evaluation) calls these, so
a bad input gives the same clear `keras_caps.errors.UserError` wherever it enters.

Images: uint8 (0..255), or floats in [0, 1], finite, (N, H, W) or (N, H, W, C). Float images
in 0..255 are refused (dividing them is the caller's explicit choice: `data.normalize`), so
they are never silently used unscaled, and images already in [0, 1] are never divided again.
Labels: integer class ids (N,), in [0, num_classes). Float labels are refused, never truncated.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from keras_caps.errors import FileKindError, InputDataError

# slack for float rounding of images scaled to [0, 1] (e.g. x / 255 computed in float16)
UNIT_TOLERANCE = 1e-3
TFLITE_IDENTIFIER = b"TFL3"


def _where_not_finite(x):
    bad = ~np.isfinite(x)
    count = int(bad.sum())
    first = np.unravel_index(int(np.argmax(bad)), x.shape)
    return count, tuple(int(i) for i in first)


def is_unit_float(images):
    """Whether `images` are floats already scaled to [0, 1] (finite)."""
    x = np.asarray(images)
    return (np.issubdtype(x.dtype, np.floating) and x.size > 0 and bool(np.isfinite(x).all())
            and float(x.min()) >= -UNIT_TOLERANCE and float(x.max()) <= 1.0 + UNIT_TOLERANCE)


def check_pixel_values(images, name="images"):
    """Checks raw pixel values (before `data.normalize`): finite, in [0, 255]."""
    x = np.asarray(images)
    if x.size == 0 or x.dtype == np.uint8:
        return x
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InputDataError(f"{name} have dtype {x.dtype}; pixels must be numbers (uint8).")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        count, first = _where_not_finite(x)
        raise InputDataError(f"{name} contain {count} non-finite value(s) (NaN or Inf), the "
                             f"first at index {first}.")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise InputDataError(f"{name} have values in [{lo:g}, {hi:g}]; pixel values must lie "
                             "in [0, 255] (or [0, 1] when already scaled).")
    return x


def check_images(images, name="images", expected_shape=None):
    """Checks images for training or inference; returns them as a numpy array.

    Args:
        images: (N, H, W) or (N, H, W, C), uint8 or float in [0, 1].
        name: what the images are, for the message (e.g. "training images").
        expected_shape: (H, W, C) the model takes, or None.
    Raises:
        InputDataError: wrong rank or shape, empty, non-finite values, floats outside [0, 1],
            or a dtype that is neither uint8 nor float.
    """
    x = np.asarray(images)
    if x.ndim not in (3, 4):
        raise InputDataError(f"{name} must be an array (N, H, W, C) or (N, H, W), got shape "
                             f"{x.shape}.")
    if len(x) == 0:
        raise InputDataError(f"{name} are empty (0 images).")
    if expected_shape is not None:
        shape = tuple(x.shape[1:]) if x.ndim == 4 else tuple(x.shape[1:]) + (1,)
        if shape != tuple(expected_shape):
            raise InputDataError(
                f"{name} have shape {tuple(x.shape[1:])} but the model expects "
                f"{tuple(expected_shape)}; choose the matching dataset or model."
            )
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise InputDataError(
            f"{name} have dtype {x.dtype}; use uint8 pixels (0..255) or floats scaled to "
            "[0, 1] (e.g. images.astype('uint8'), or keras_caps.data.normalize(images))."
        )
    if not np.isfinite(x).all():
        count, first = _where_not_finite(x)
        raise InputDataError(
            f"{name} contain {count} non-finite value(s) (NaN or Inf), the first at index "
            f"{first}; clean or drop those images before training or evaluating."
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < -UNIT_TOLERANCE or hi > 1.0 + UNIT_TOLERANCE:
        hint = (" They look like 0..255 pixel values: pass them as uint8, or scale them with "
                "keras_caps.data.normalize(images) (divides by 255)." if lo >= 0 and hi <= 255
                else "")
        raise InputDataError(
            f"{name} are {x.dtype} with values in [{lo:g}, {hi:g}]; float images must lie in "
            f"[0, 1].{hint}"
        )
    return x


def check_labels(labels, num_classes=None, name="labels", count=None, hint=""):
    """Checks integer class labels; returns them as an int64 numpy array.

    Args:
        labels: (N,) integer class ids.
        num_classes: K; labels must lie in [0, K). None: only >= 0.
        name: what the labels are, for the message (e.g. "training labels").
        count: N, the number of images they label, or None.
        hint: appended to the range message (e.g. "; set --num_classes").
    Raises:
        InputDataError: not 1-D, not integers (float labels are never truncated), a count
            that differs from the images', or values out of range.
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise InputDataError(
            f"{name} must be a 1-D array of class ids (N,), got shape {y.shape}"
            + ("; one-hot labels: pass labels.argmax(-1)." if y.ndim == 2 else ".")
        )
    if count is not None and len(y) != count:
        raise InputDataError(f"{name}: {len(y)} labels for {count} images; they must match.")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise InputDataError(
            f"{name} have dtype {y.dtype}; labels must be integer class ids (e.g. "
            "labels.astype('int64') after checking they are whole numbers)."
        )
    if y.size:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise InputDataError(f"{name} must lie in {bound}, got [{lo}, {hi}]{hint}.")
    return y.astype(np.int64, copy=False)


def check_dataset(images, labels, num_classes=None, name="training", expected_shape=None,
                  hint=""):
    """check_images + check_labels for one split; returns (images, labels)."""
    x = check_images(images, f"{name} images", expected_shape)
    y = check_labels(labels, num_classes, f"{name} labels", count=len(x), hint=hint)
    return x, y


# ----------------------------------------------------------------------------- files


def _require_file(path, what):
    if not path:
        raise FileKindError(f"{what} is required.")
    if not os.path.exists(path):
        raise FileKindError(f"{what} {path!r} does not exist.")
    if not os.path.isfile(path):
        raise FileKindError(f"{what} {path!r} is not a file.")


def check_keras_file(path, what="model file", hint=""):
    """Checks that `path` is a Keras 3 `.keras` archive (a zip with config.json)."""
    _require_file(path, what)
    if not zipfile.is_zipfile(path):
        raise FileKindError(
            f"{what} {path!r} is not a .keras model (not a zip archive: truncated, damaged, or "
            f"another kind of file){hint}."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise FileKindError(f"{what} {path!r} is a damaged .keras archive ({err}){hint}.") from err
    if "config.json" not in names:
        raise FileKindError(f"{what} {path!r} is a zip but not a .keras model (no config.json)"
                            f"{hint}.")
    if damaged is not None:
        raise FileKindError(f"{what} {path!r} is damaged (bad entry {damaged}){hint}.")
    return path


def load_keras_model(path, what="model file", compile=True, hint=""):
    """`keras.saving.load_model(path)` after `check_keras_file`, with load failures reported
    as a FileKindError naming the file (the cause stays chained)."""
    import keras  # the layers are registered: importing any keras_caps module ran keras_caps/__init__

    check_keras_file(path, what, hint)
    try:
        return keras.saving.load_model(path, compile=compile)
    except (ValueError, TypeError, KeyError, OSError) as err:
        first = " ".join(str(err).split())[:300]
        raise FileKindError(f"{what} {path!r} could not be loaded as a keras_caps model: "
                            f"{first}{hint}") from err


def check_tflite_bytes(flatbuffer, what="TFLite model"):
    """Checks that `flatbuffer` (bytes) is a TFLite flatbuffer (file identifier 'TFL3')."""
    if not isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        raise FileKindError(f"{what} must be the bytes of a .tflite flatbuffer, got "
                            f"{type(flatbuffer).__name__}.")
    head = bytes(flatbuffer[:8])
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise FileKindError(f"{what} is not a TFLite flatbuffer (no 'TFL3' identifier); "
                            "export one with `python -m tflite.export`.")
    return flatbuffer


def read_tflite_file(path, what="--tflite"):
    """The bytes of a .tflite file, checked to be a TFLite flatbuffer."""
    _require_file(path, what)
    with open(path, "rb") as f:
        flatbuffer = f.read()
    return check_tflite_bytes(flatbuffer, f"{what} {path!r}")


def read_json_file(path, what="JSON file"):
    """A JSON file's content, with a clear error for a missing or malformed file."""
    _require_file(path, what)
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileKindError(f"{what} {path!r} is not valid JSON: {err}.") from err


def check_capsnet(model, what="model"):
    """Checks that `model` is a built keras_caps capsnet / deep_capsnet (a functional model
    with an image input and a `length` layer), so callers fail here, not deep in Keras."""
    import keras

    if not isinstance(model, keras.Model):
        raise InputDataError(f"{what} must be a keras.Model, got {type(model).__name__}.")
    try:
        model.input  # noqa: B018 - raises AttributeError for a model that was never called
    except (AttributeError, ValueError) as err:
        raise InputDataError(
            f"{what} {model.name!r} has no defined input (a model that was never built or "
            "called); keras_caps needs a functional capsnet / deep_capsnet."
        ) from err
    names = {layer.name for layer in model.layers}
    if "length" not in names:
        raise InputDataError(
            f"{what} {model.name!r} is not a keras_caps CapsNet (no 'length' layer; its layers "
            f"are {sorted(names)[:12]}); build it with keras_caps.models.capsnet or "
            "deep_capsnet, e.g. `python -m train.train_capsnet`."
        )
    return model


__all__ = [
    "check_capsnet",
    "check_dataset",
    "check_images",
    "check_pixel_values",
    "check_keras_file",
    "check_labels",
    "check_tflite_bytes",
    "is_unit_float",
    "load_keras_model",
    "read_json_file",
    "read_tflite_file",
]
