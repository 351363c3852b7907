"""Measurements the binaries report: accuracy, size, FLOPs and latency of trained models.

    accuracy(model, (x_test, y_test), num_classes)   compiled Keras model, its own metric
    model_stats(model)                               {"params", "flops"} of a CapsNet
    measure(path)                                    params / inference params / FLOPs, saved
    classifier_stats(path)                           the classifier's params / FLOPs + file size
    latencies({key: path}, images, batch, repeats)   median ms of predict_on_batch, interleaved
    int8_measurements({key: path}, ...)              int8 TFLite accuracy, latency, bytes
"""

from __future__ import annotations

import os
import statistics
import time


def float_batch(images, batch):
    """The first `batch` images as float32 (N, H, W, C) in [0, 1] (uint8 scaled by 1/255)."""
    import numpy as np

    from keras_caps.data.images import unit_images

    x = np.asarray(images[:batch])
    return unit_images(x[..., None] if x.ndim == 3 else x)


def accuracy(model, test_data, num_classes, batch_size=256):
    """Accuracy of a compiled keras_caps model on (images, integer labels) or a
    `StreamedSplit`, by its own accuracy metric (`keras_caps.training.accuracy_key`)."""
    from keras_caps.data_sources import streamed_errors
    from keras_caps.training import accuracy_key, model_io
    from keras_caps.training.loop import split_dataset

    ds = split_dataset(test_data, batch_size=batch_size, num_classes=num_classes)
    with streamed_errors(test_data):
        results = model.evaluate(ds.map(model_io(model)), verbose=0, return_dict=True)
    return float(results[accuracy_key(model)])


def model_stats(model):
    """{"params", "flops"} of a CapsNet (a CCMTrainer is unwrapped; FLOPs per example,
    forward)."""
    from keras_caps.analysis import total_flops
    from keras_caps.pruning import unwrap

    model = unwrap(model)
    return {"params": int(model.count_params()), "flops": int(total_flops(model))}


def measure(model_path):
    """{"params", "inference_params", "flops"} of a saved model (FLOPs per image of its
    classifier view)."""
    import keras

    from keras_caps.analysis.flops import total_flops
    from keras_caps.models import classifier

    model = keras.saving.load_model(model_path, compile=False)
    clf = classifier(model)
    return {"params": int(model.count_params()), "inference_params": int(clf.count_params()),
            "flops": int(total_flops(clf))}


def classifier_stats(path):
    """{"params", "flops", "keras_bytes"} of the saved CapsNet's classifier (the inference
    head) and the size of the .keras file."""
    from keras_caps.analysis.flops import total_flops
    from keras_caps.models.heads import classifier
    from keras_caps.runs.models import load_capsnet

    model = load_capsnet(path)
    return {"params": int(classifier(model).count_params()),
            "flops": int(total_flops(classifier(model))),
            "keras_bytes": os.path.getsize(path)}


def latencies(model_paths, images, batch, repeats):
    """Median ms of `predict_on_batch` of each saved model's float classifier on one batch.

    The models are timed in interleaved rounds (each round calls every model once, after 3
    warm-up rounds), so load changes on a shared machine hit all of them alike.

    Args:
        model_paths: {key: .keras path}.
        images: (N, H, W[, C]) images; the first `batch` are timed.
        batch: batch size of the timed call.
        repeats: timed rounds (the median is reported).
    Returns:
        {key: median milliseconds}.
    """
    import keras

    from keras_caps.models import classifier

    x = float_batch(images, batch)
    models = {key: classifier(keras.saving.load_model(path, compile=False))
              for key, path in model_paths.items()}
    times = {key: [] for key in models}
    for round_ in range(3 + int(repeats)):
        for key, clf in models.items():
            start = time.perf_counter()
            clf.predict_on_batch(x)
            if round_ >= 3:
                times[key].append(time.perf_counter() - start)
    return {key: 1000 * statistics.median(t) for key, t in times.items()}


def int8_measurements(model_paths, train_images, test_images, test_labels, repeats):
    """{key: {"int8_accuracy", "int8_latency_ms", "int8_bytes"}}: each saved model exported
    to int8 TFLite (calibrated on `train_images`) and run with LiteRT, one image, 1 thread."""
    import keras

    from keras_caps.lite import evaluate, export

    out = {}
    for key, path in model_paths.items():
        flatbuffer = export.convert(keras.saving.load_model(path, compile=False), "int8",
                                    train_images)
        median, _ = evaluate.latency_ms(flatbuffer, test_images[0], 1, repeats)
        out[key] = {"int8_accuracy": evaluate.accuracy(flatbuffer, test_images, test_labels),
                    "int8_latency_ms": median, "int8_bytes": len(flatbuffer)}
    return out


__all__ = ["accuracy", "classifier_stats", "float_batch", "int8_measurements", "latencies",
           "measure", "model_stats"]
