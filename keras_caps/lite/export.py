r"""Keras model -> SavedModel -> TFLite, in float32, dynamic-range, int8, int8_pot and int16x8 modes.

    python -m tflite.export --model=runs/student/model.keras --mode=int8 \
        --out=runs/student/model_int8.tflite [--dataset=fashion_mnist] [--batch_size=1] \
        [--c_source=runs/student/micro] [--verbose]
    python -m tflite.export --model=runs/own/model.keras --out=runs/own/model_int8.tflite \
        --dataset=folder:my_images --image_size=24 --grayscale

--dataset takes every spelling of the train/ binaries (folder:PATH, npz:PATH, TFDS names; see
keras_caps.data_sources); the model must take the data's image shape and class count, and
labels.txt (the class names, line i = class i) is written next to the .tflite.

--c_source=DIR also writes the C sources of a TFLite Micro project (keras_caps.lite.c_source): the
model array, its op resolver, arena size, input quantization and class labels.
The exported graph is the inference head (image -> class scores) in its integer-friendly form:
    - a static batch size (1 for microcontrollers), so no SHAPE / GATHER ops: TFLite Micro
      plans every tensor at prepare time;
    - squared capsule lengths |v|^2 as the class scores (no SQRT, which TFLite Micro has only in
      float; the class ranking is the same);
    - squash as MUL + MEAN + SUB + MAXIMUM + RSQRT (no DIV, no SUM), routing with
      BATCH_MATMUL / SOFTMAX / MEAN, the first iteration's uniform coupling as a constant scale
      (no ZEROS_LIKE), the weight-shared votes as one grouped 1x1 CONV_2D: the layers' forms
      inside `capsule_ops.integer_form()`, on which LiteRT's reference kernels and TFLite Micro
      agree bit for bit (docs/fidelity.md);
    - in int8, grouped CONV_2D filters quantized per tensor (`keras_caps.lite.grouped_conv`).
int8 / int16x8 need a representative dataset (calibration images from the training split).
Files are written atomically: a failed conversion leaves no partial file.
"""

from __future__ import annotations

import tempfile

import keras
import numpy as np

from keras_caps import layers as caps_layers
from keras_caps import validation
from keras_caps.data.images import unit_images
from keras_caps.errors import UserError
from keras_caps.io_utils import write_bytes
from keras_caps.models.heads import classifier

MODES = ("float32", "dynamic_range", "int8", "int8_pot", "int16x8")

#: Layers the export form knows; anything else is rejected before conversion.
SUPPORTED_LAYERS = (
    keras.layers.InputLayer, keras.layers.Conv2D, keras.layers.BatchNormalization,
    keras.layers.ReLU, keras.layers.Activation, keras.layers.Dense,
    caps_layers.PrimaryCapsule, caps_layers.DenseCapsule, caps_layers.ConvCapsule,
    caps_layers.Length,
)


class ExportError(UserError):
    """The model or the request cannot be exported."""


def _check_supported(model):
    bad = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
           if not isinstance(layer, SUPPORTED_LAYERS)]
    if bad:
        raise ExportError(
            f"cannot export layers {bad}: the integer export supports keras_caps capsule "
            "layers, Conv2D, BatchNormalization, ReLU and Dense. Replace Lambda or custom "
            "layers with registered keras_caps layers."
        )


def export_form(model, batch_size=1, squared=True):
    """The inference head of `model` rebuilt with a static batch size (and squared lengths).

    Args:
        model: a keras_caps model (with or without decoder) or its `classifier`.
        batch_size: static batch size of the exported graph (1 for microcontrollers).
        squared: class scores |v|^2 instead of |v| (no SQRT).
    Returns:
        A functional model image (batch_size, H, W, C) -> scores (batch_size, J) sharing no
        state with `model` (weights are copied).
    """
    if int(batch_size) < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}.")
    try:
        head = classifier(validation.check_capsnet(model, "the model to export"))
    except ValueError as err:
        raise ExportError(f"not a keras_caps model: {err}") from err
    _check_supported(head)
    inp = keras.Input(batch_shape=(int(batch_size),) + tuple(head.input.shape[1:]),
                      name="image")

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, caps_layers.Length):
            config["squared"] = bool(squared)
        return layer.__class__.from_config(config)

    form = keras.models.clone_model(head, input_tensors=inp, clone_function=clone)
    form.set_weights(head.get_weights())
    return form


def calibration_sample(images, num_examples=200, seed=0):
    """The calibration images (n, H, W, C) float in [0, 1]: `num_examples` of `images` drawn
    without replacement with `seed`."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ExportError(
            f"representative data must be a non-empty (N, H, W, C) array, got shape {images.shape}."
        )
    images = validation.check_images(images, "representative (calibration) images")
    rng = np.random.RandomState(seed)
    idx = rng.choice(len(images), min(num_examples, len(images)), replace=False)
    return unit_images(images[idx])


def representative_dataset(images, num_examples=200, seed=0):
    """Calibration generator over `images` (N, H, W, C) uint8 or float in [0, 1]."""
    return _generator(calibration_sample(images, num_examples, seed))


def _generator(sample):
    """The converter's representative dataset over the calibration images `sample`."""

    def gen():
        for x in sample:
            yield [x[None]]

    return gen


def squash_ranges(form, sample):
    """`capsule_ops.integer_form`'s squash ranges for the export form `form`, from the largest
    |s|^2 its squash layers compute in float on the calibration images `sample` (n, H, W, C).
    """
    from keras_caps.capsule_ops import record_squared_norms, squash_ranges_for

    batch = int(form.input.shape[0])
    sample = np.asarray(sample, "float32")
    if len(sample) % batch:  # whole static batches: repeat the first images
        sample = np.concatenate([sample, sample[: batch - len(sample) % batch]])
    with record_squared_norms() as seen:
        for start in range(0, len(sample), batch):
            form(sample[start : start + batch], training=False)
    return squash_ranges_for(max(seen)) if seen else ()


def converter_for(form, folder):
    """A `tf.lite.TFLiteConverter` of the export form `form` (see `export_form`), written as a
    SavedModel with a static input signature into `folder` (which must outlive the
    conversion). `model.export` would relax the batch to None, and the converter would then
    declare wrong shapes for the -1 reshapes that TFLite Micro rejects."""
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(form)
    spec = tf.TensorSpec(tuple(form.input.shape), tf.float32, name="image")
    archive.add_endpoint("serve", lambda x: form(x, training=False), input_signature=[spec])
    archive.write_out(folder, verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=["serve"])


def convert(model, mode="int8", representative_images=None, batch_size=1, squared=True,
            num_calibration=200, verbose=False):
    """Converts a keras_caps model's inference head to TFLite flatbuffer bytes.

    Args:
        model: keras_caps model.
        mode: "float32", "dynamic_range", "int8" (int8 in/out, TFLITE_BUILTINS_INT8 only: the
            microcontroller mode), "int8_pot" (int8 with every scale a power of two, see
            `keras_caps.lite.pot`) or "int16x8" (int16 activations, int8 weights, for LiteRT;
            ops without int16 kernels may stay in float).
        representative_images: calibration images (N, H, W, C), required for int8 / int16x8.
        batch_size, squared: see `export_form`.
        verbose: show TensorFlow's C++ log lines of the conversion (SavedModel, calibration);
            by default they are silenced (errors still raise, with the converter's message).
    """
    import tensorflow as tf

    if mode not in MODES:
        raise ExportError(f"unknown mode {mode!r}; choose one of {list(MODES)}.")
    if mode in ("int8", "int8_pot", "int16x8") and representative_images is None:
        raise ExportError(
            f"mode {mode!r} needs representative data: pass calibration images from the "
            "training split (representative_images=..., or --dataset on the command line)."
        )
    if mode == "int8_pot":  # int8, then every scale rounded up to a power of two
        from keras_caps.lite.pot import to_power_of_two

        return to_power_of_two(convert(model, "int8", representative_images, batch_size,
                                       squared, num_calibration, verbose))
    from keras_caps.capsule_ops import integer_form
    from keras_caps.lite.quiet import quiet_fds

    form = export_form(model, batch_size, squared)
    sample, ranges = None, ()
    if mode in ("int8", "int16x8"):  # wide |s|^2 is summed in ranges (capsule_ops)
        sample = calibration_sample(representative_images, num_calibration)
        ranges = squash_ranges(form, sample)
    # the integer form of the capsule ops (MEAN reductions, bounded squash): every runtime
    # computes the same on it (docs/fidelity.md); float32 keeps the training graph
    with tempfile.TemporaryDirectory() as tmp, integer_form(mode != "float32", ranges), \
            quiet_fds(not verbose):
        conv = converter_for(form, tmp)
        if mode != "float32":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode in ("int8", "int16x8"):
            conv.representative_dataset = _generator(sample)
        if mode == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        elif mode == "int16x8":
            # ops without an int16 kernel may fall back to float: int16x8 is a
            # LiteRT (mobile) mode; the microcontroller mode is int8
            conv.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS]
            conv.inference_input_type = tf.int16
            conv.inference_output_type = tf.int16
        try:
            flatbuffer = conv.convert()
        except Exception as err:  # the converter raises ConverterError and friends
            raise ExportError(f"TFLite conversion ({mode}) failed: {err}") from err
    if mode == "int8":  # the votes' grouped CONV_2D: one filter scale (lite/grouped_conv.py)
        from keras_caps.lite.grouped_conv import per_tensor_grouped_convs

        flatbuffer = per_tensor_grouped_convs(flatbuffer)
    return flatbuffer


def export(model, path, mode="int8", representative_images=None, **kwargs):
    """`convert` and write the flatbuffer to `path` atomically. Returns the byte size."""
    flatbuffer = convert(model, mode, representative_images, **kwargs)
    write_bytes(path, flatbuffer)
    return len(flatbuffer)
