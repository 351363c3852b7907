"""Fully integer int16-activation exports of a shipped CapsNet, and one int16 RSQRT alone.

    python benchmarks/results/int16_probe/probe.py model fashion_mnist_mcu_m 2000 [--integer_form]
    python benchmarks/results/int16_probe/probe.py rsqrt

`model`: the shipped model converted with only the int16 x int8 op set (no float fallback), in
the training form of the capsule ops (or, with --integer_form, the int8 export form), scored on
the last N test images by LiteRT (three kernel sets) and TFLite Micro. `rsqrt`: one int16 RSQRT
on three input ranges, LiteRT's and TFLite Micro's outputs against 1 / sqrt(x).
"""

import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_caps.lite.evaluate import litert_interpreter, tflm_interpreter

INT16_OPS = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]


def int16_converter(converter, samples):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = INT16_OPS
    converter.inference_input_type = converter.inference_output_type = tf.int16
    return converter.convert()


def probe_model(name, n, integer):
    from keras_caps import data
    from keras_caps.capsule_ops import integer_form
    from keras_caps.lite import export
    from keras_caps.lite.evaluate import (
        compare_tflm_litert,
        keras_accuracy,
        predict_litert,
        tflm_arena_bytes,
    )
    from keras_caps.models import pretrained

    model = pretrained(name)
    train = data.load_arrays("fashion_mnist", "train", max_examples=2000)
    xt, yt = data.load_arrays("fashion_mnist", "test")
    xt, yt = xt[-n:], yt[-n:]
    print("float", keras_accuracy(model, xt, yt), flush=True)
    form = export.export_form(model)
    with tempfile.TemporaryDirectory() as tmp, integer_form(integer):
        flatbuffer = int16_converter(export.converter_for(form, tmp),
                                     export.representative_dataset(train[0], 200))
    print("bytes", len(flatbuffer), flush=True)
    for kernels in ("default", "nodelegate", "ref"):
        try:
            scores = predict_litert(flatbuffer, xt, kernels=kernels)
            print(kernels, float(np.mean(np.argmax(scores, -1) == yt)), flush=True)
        except Exception as err:  # LiteRT's reference RSQRT refuses inputs quantized to 0
            print(kernels, "failed:", str(err)[:300], flush=True)
    arena = tflm_arena_bytes(flatbuffer)
    result = compare_tflm_litert(flatbuffer, xt, arena + 4096)
    accuracy = float(np.mean(result["tflm_predictions"] == yt[: result["examples"]]))
    print("arena", arena, "tflm", accuracy, "tflm = litert", result["argmax_agreement"])


def probe_rsqrt():
    rng = np.random.RandomState(0)
    for lo, hi in ((1, 2), (1, 100), (0.01, 10)):
        inp = keras.Input(batch_shape=(1, 64))
        model = keras.Model(inp, keras.layers.Lambda(keras.ops.rsqrt)(inp))
        flatbuffer = int16_converter(
            tf.lite.TFLiteConverter.from_keras_model(model),
            lambda lo=lo, hi=hi: ([rng.uniform(lo, hi, (1, 64)).astype("float32")]
                                  for _ in range(64)))
        lite = litert_interpreter(flatbuffer, kernels="nodelegate")
        i, o = lite.get_input_details()[0], lite.get_output_details()[0]
        s_in, s_out = i["quantization"][0], o["quantization"][0]
        x = np.linspace(lo, hi, 64).astype(np.float32)[None]
        xq = np.clip(np.round(x / s_in), -32768, 32767).astype(np.int16)
        lite.set_tensor(i["index"], xq)
        lite.invoke()
        a = lite.get_tensor(o["index"]).astype(float) * s_out
        micro = tflm_interpreter(flatbuffer, 1 << 16)
        micro.set_input(xq, 0)
        micro.invoke()
        b = micro.get_output(0).astype(float) * s_out
        ref = 1 / np.sqrt(xq * s_in)
        print(f"inputs [{lo}, {hi}], output range {s_out * 32767:.3g}: max relative error "
              f"LiteRT {np.max(np.abs(a - ref) / ref):.4f}, TFLite Micro "
              f"{np.max(np.abs(b - ref) / ref):.4f}")


if __name__ == "__main__":
    if sys.argv[1] == "rsqrt":
        probe_rsqrt()
    else:
        probe_model(sys.argv[2], int(sys.argv[3]), "--integer_form" in sys.argv)
