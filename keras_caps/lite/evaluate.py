r"""Evaluates TFLite CapsNets: accuracy, size, TFLite Micro arena, latency, LiteRT/TFLM agreement.

    # one flatbuffer
    python -m tflite.evaluate --tflite=runs/demo/model_int8.tflite --dataset=fashion_mnist
    # a Keras model exported in every mode, side by side, as a markdown report
    python -m tflite.evaluate --model=runs/demo/model.keras --report=runs/demo/tflite_report.md
    # your own data (the spelling of the train/ binaries, see keras_caps.data_sources)
    python -m tflite.evaluate --tflite=runs/own/model_int8.tflite --dataset=folder:my_images \
        --image_size=24 --grayscale

Accuracy: LiteRT (`ai_edge_litert`; with its default XNNPACK delegate and without it) and
TFLite Micro (the `tflite-micro` Python interpreter:
the microcontroller accuracy) on the whole evaluated split; the class is the argmax of the
scores, so squared lengths rank like lengths. Latency: median and p90 of single-image invokes,
with 1 thread and with all threads. TFLite Micro: also its argmax agreement and max output
difference with LiteRT, and the smallest arena it allocates in.
Confusion matrix: a PNG with the dataset's class names (<tflite stem>_confusion.png, or
confusion_<mode>.png next to the --report / --model), the counts in the JSON.
"""

from __future__ import annotations

import os
import time

import numpy as np

#: MLPerf Tiny image classification reference (ResNet-8, CIFAR-10), for scale.
MLPERF_TINY_IC = {"model": "MLPerf Tiny IC reference: ResNet-8, CIFAR-10 (published)",
                  "accuracy": 0.85, "bytes": 94_000, "arena_bytes": 57_000}


#: LiteRT's kernel sets: "default" (what `Interpreter()` gives: the builtin kernels with the
#: XNNPACK delegate applied), "nodelegate" (the builtin kernels without the default delegate:
#: the PC runtime that agrees with TFLite Micro, docs/fidelity.md) and "ref" (the reference
#: kernels, `OpResolverType.BUILTIN_REF`).
LITERT_KERNELS = ("default", "nodelegate", "ref")


def litert_interpreter(flatbuffer, num_threads=None, kernels="default"):
    """An allocated LiteRT interpreter of `flatbuffer` with one of LITERT_KERNELS."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from keras_caps.lite.quiet import quiet_fds
    from keras_caps.validation import check_tflite_bytes

    check_tflite_bytes(flatbuffer)
    resolvers = {"default": OpResolverType.AUTO,
                 "nodelegate": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                 "ref": OpResolverType.BUILTIN_REF}
    if kernels not in resolvers:
        raise ValueError(f"kernels must be one of {LITERT_KERNELS}, got {kernels!r}.")
    with quiet_fds():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interp = Interpreter(model_content=bytes(flatbuffer), num_threads=num_threads,
                             experimental_op_resolver_type=resolvers[kernels])
        interp.allocate_tensors()
    return interp


_litert = litert_interpreter


def quantize_input(images, detail):
    """Images (N, H, W, C) uint8 or float in [0, 1] -> the model's input dtype."""
    from keras_caps.data.images import unit_images

    x = unit_images(images)
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize_output(y, detail):
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def predict_litert(flatbuffer, images, kernels="default"):
    """Scores (N, J) from LiteRT (one of LITERT_KERNELS), one invoke per batch of the model's
    static batch size."""
    interp = _litert(flatbuffer, kernels=kernels)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    batch = int(inp["shape"][0])
    x = quantize_input(images, inp)
    scores = []
    for start in range(0, len(x) - len(x) % batch, batch):
        interp.set_tensor(inp["index"], x[start : start + batch])
        interp.invoke()
        scores.append(dequantize_output(interp.get_tensor(out["index"]), out))
    return np.concatenate(scores) if scores else np.zeros((0,))


def accuracy(flatbuffer, images, labels):
    """Top-1 accuracy of the flatbuffer on (images, integer labels)."""
    scores = predict_litert(flatbuffer, images)
    return float(np.mean(np.argmax(scores, -1) == np.asarray(labels)[: len(scores)]))


def latency_ms(flatbuffer, image, num_threads=1, repeats=50, warmup=5):
    """Median and p90 single-invoke latency (ms) on one input."""
    interp = _litert(flatbuffer, num_threads)
    inp = interp.get_input_details()[0]
    batch = int(inp["shape"][0])
    x = quantize_input(np.repeat(np.asarray(image)[None], batch, 0), inp)
    interp.set_tensor(inp["index"], x)
    for _ in range(warmup):
        interp.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def tflm_interpreter(flatbuffer, arena_size, quiet=True):
    """A TFLite Micro host interpreter; `quiet` drops its C++ prints (allocation failures)."""
    from tflite_micro.python.tflite_micro import runtime

    from keras_caps.lite.quiet import quiet_fds

    with quiet_fds(quiet):
        return runtime.Interpreter.from_bytes(bytes(flatbuffer), arena_size=int(arena_size))


def _persistent_floor(flatbuffer):
    """A lower bound of the arena TFLite Micro needs for its persistent structures alone.

    Below it TFLite Micro can fail to allocate tensor metadata on a path that does not check
    for it ("Unable to allocate TfLiteAffineQuantization") and crash the process, so the arena
    search never probes below it: 96 bytes per tensor plus 8 bytes per quantization scale,
    under what TFLite Micro allocates for them (TfLiteTensor, TfLiteEvalTensor, the
    quantization arrays).
    """
    details = _litert(flatbuffer).get_tensor_details()
    scales = sum(len(d.get("quantization_parameters", {}).get("scales", ())) for d in details)
    return 96 * len(details) + 8 * scales


def tflm_arena_bytes(flatbuffer, upper=4 << 20, resolution=256, verbose=False):
    """The smallest arena (bytes, within `resolution`) TFLite Micro allocates the model in.

    The probes that fail print "Failed to allocate ..." from C++; they are silenced unless
    `verbose`. Raises RuntimeError when it does not allocate even in `upper` bytes (an
    unsupported op or shape), with TFLite Micro's own message.
    """
    try:
        tflm_interpreter(flatbuffer, upper, quiet=not verbose)
    except RuntimeError as err:
        raise RuntimeError(f"TFLite Micro cannot run this model: {err}") from err
    lo, hi = min(_persistent_floor(flatbuffer), int(upper) // 2), int(upper)
    while hi - lo > resolution:
        mid = (lo + hi) // 2
        try:
            tflm_interpreter(flatbuffer, mid, quiet=not verbose)
            hi = mid
        except RuntimeError:
            lo = mid
    return hi


def predict_tflm(flatbuffer, images, arena_size=None):
    """Scores (N, J) from TFLite Micro (dequantized), one invoke per static batch."""
    lite = _litert(flatbuffer)
    inp, out = lite.get_input_details()[0], lite.get_output_details()[0]
    micro = tflm_interpreter(flatbuffer, arena_size or tflm_arena_bytes(flatbuffer) + 4096)
    batch = int(inp["shape"][0])
    x = quantize_input(images, inp)
    scores = []
    for start in range(0, len(x) - len(x) % batch, batch):
        micro.set_input(x[start : start + batch], 0)
        micro.invoke()
        scores.append(dequantize_output(np.array(micro.get_output(0)), out))
    return np.concatenate(scores) if scores else np.zeros((0,))


def compare_tflm_litert(flatbuffer, images, arena_size=None):
    """Runs images through TFLite Micro and LiteRT; returns agreement statistics.

    Returns:
        {"max_abs_diff": in output units (int steps for integer models), "argmax_agreement",
         "examples", "tflm_predictions": TFLM's argmax per example}.
    """
    lite = _litert(flatbuffer)
    inp, out = lite.get_input_details()[0], lite.get_output_details()[0]
    micro = tflm_interpreter(flatbuffer, arena_size or tflm_arena_bytes(flatbuffer) + 4096)
    batch = int(inp["shape"][0])
    x = quantize_input(images, inp)
    diffs, agree, n, predictions = [], 0, 0, []
    for start in range(0, len(x) - len(x) % batch, batch):
        xb = x[start : start + batch]
        lite.set_tensor(inp["index"], xb)
        lite.invoke()
        a = lite.get_tensor(out["index"])
        micro.set_input(xb, 0)
        micro.invoke()
        b = micro.get_output(0)
        diffs.append(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
        agree += int(np.sum(np.argmax(a, -1) == np.argmax(b, -1)))
        predictions.append(np.argmax(b, -1))
        n += batch
    return {"max_abs_diff": float(max(diffs)), "argmax_agreement": agree / max(n, 1),
            "examples": n, "tflm_predictions": np.concatenate(predictions)}


def evaluate(flatbuffer, images, labels, latency_repeats=50, tflm_examples=None, name="model"):
    """Everything about one flatbuffer: accuracy, bytes, latency, TFLM arena and agreement.

    "accuracy" is LiteRT's (default kernels, XNNPACK); "litert_nodelegate_accuracy" LiteRT's
    without the default delegate; "tflm_accuracy" is TFLite Micro's (the microcontroller
    accuracy) over the first `tflm_examples` images (None: all of them, the whole evaluated
    split), on which "tflm_argmax_agreement" and "tflm_max_abs_diff" compare it with LiteRT
    and "tflm_nodelegate_argmax_agreement" with LiteRT without the delegate.
    "confusion_matrix": K x K counts (row = true class, column = LiteRT's prediction).
    """
    from keras_caps import validation
    from keras_caps.plots import confusion_matrix

    validation.check_tflite_bytes(flatbuffer, name)
    images, labels = validation.check_dataset(images, labels, name="evaluation")
    scores = predict_litert(flatbuffer, images)
    predictions = np.argmax(scores, -1)
    truth = np.asarray(labels)[: len(predictions)]
    nodelegate = np.argmax(predict_litert(flatbuffer, images, kernels="nodelegate"), -1)
    row = {"name": name, "bytes": len(flatbuffer),
           "accuracy": float(np.mean(predictions == truth)),
           "litert_nodelegate_accuracy": float(np.mean(nodelegate == truth))}
    if scores.ndim == 2:
        row["confusion_matrix"] = confusion_matrix(truth, predictions, scores.shape[-1]).tolist()
    row["latency_ms_1t"], row["latency_p90_ms_1t"] = latency_ms(
        flatbuffer, images[0], 1, latency_repeats)
    row["latency_ms_all"], row["latency_p90_ms_all"] = latency_ms(
        flatbuffer, images[0], os.cpu_count(), latency_repeats)
    try:
        row["arena_bytes"] = tflm_arena_bytes(flatbuffer)
        n = len(images) if tflm_examples is None else min(int(tflm_examples), len(images))
        agreement = compare_tflm_litert(flatbuffer, images[:n], row["arena_bytes"] + 4096)
        row["tflm_max_abs_diff"] = agreement["max_abs_diff"]
        row["tflm_argmax_agreement"] = agreement["argmax_agreement"]
        row["tflm_examples"] = agreement["examples"]
        row["tflm_accuracy"] = float(np.mean(
            agreement["tflm_predictions"] == np.asarray(labels)[: agreement["examples"]]))
        row["tflm_nodelegate_argmax_agreement"] = float(np.mean(
            agreement["tflm_predictions"] == nodelegate[: agreement["examples"]]))
    except RuntimeError as err:
        row["arena_bytes"] = None
        row["tflm_error"] = str(err).splitlines()[0][:200]
    return row


def keras_accuracy(model, images, labels, batch_size=256):
    from keras_caps.data.images import unit_images
    from keras_caps.models.heads import classifier

    x = unit_images(images)
    scores = classifier(model).predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(scores, -1) == labels))


def report(model, train_images, test_images, test_labels, modes=None, out_dir=None,
           latency_repeats=50):
    """Exports `model` in each mode and evaluates it; returns (rows, markdown)."""
    from keras_caps.io_utils import markdown_table, write_bytes
    from keras_caps.lite import export
    from keras_caps.lite.pot import to_power_of_two

    rows = [{"name": "float Keras", "accuracy": keras_accuracy(model, test_images, test_labels)}]
    converted = {}
    for mode in modes or export.MODES:
        if mode == "int8_pot" and "int8" in converted:  # the int8 model, rescaled: no reconvert
            flatbuffer = to_power_of_two(converted["int8"])
        else:
            flatbuffer = export.convert(model, mode, train_images)
        converted[mode] = flatbuffer
        if out_dir:
            write_bytes(os.path.join(out_dir, f"model_{mode}.tflite"), flatbuffer)
        rows.append(evaluate(flatbuffer, test_images, test_labels, latency_repeats,
                             name=f"TFLite {mode}"))
    rows.append({"name": MLPERF_TINY_IC["model"], "accuracy": MLPERF_TINY_IC["accuracy"],
                 "bytes": MLPERF_TINY_IC["bytes"], "arena_bytes": MLPERF_TINY_IC["arena_bytes"]})
    table = markdown_table(rows, [
        ("name", "model", "s"), ("accuracy", "LiteRT accuracy", ".4f"),
        ("litert_nodelegate_accuracy", "LiteRT accuracy, no delegate", ".4f"),
        ("tflm_accuracy", "TFLM accuracy", ".4f"), ("bytes", "file bytes", ",d"),
        ("arena_bytes", "TFLM arena bytes", ",d"), ("latency_ms_1t", "ms (1 thread)", ".3f"),
        ("latency_p90_ms_1t", "p90 ms (1 thread)", ".3f"),
        ("latency_ms_all", "ms (all threads)", ".3f"),
        ("tflm_argmax_agreement", "TFLM = LiteRT argmax", ".3f"),
        ("tflm_nodelegate_argmax_agreement", "TFLM = LiteRT no-delegate argmax", ".4f"),
        ("tflm_max_abs_diff", "TFLM vs LiteRT max diff", ".0f"),
    ])
    return rows, table
