"""LiteRT 1-thread latency of the shipped S, float32 and int8, on two LiteRT builds in one
process: ai_edge_litert (what keras_caps uses) and TensorFlow's bundled tf.lite.Interpreter;
alternating rounds (5 x 300 invokes after 30 warm-up), median of the rounds, ms per image,
on a zero input and on the first test image.

    python benchmarks/results/session12/latency_runtimes.py
"""
import time

import ai_edge_litert
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType as LiteRTResolver

from keras_caps import data
from keras_caps.lite.evaluate import quantize_input
from keras_caps.lite.export import convert
from keras_caps.models import pretrained

x, _ = data.load_arrays("fashion_mnist", "test", max_examples=1)
fbs = {"float32": convert(pretrained("fashion_mnist_mcu_s"), "float32"),
       "int8": open("keras_caps/pretrained_models/fashion_mnist_mcu_s_int8.tflite", "rb").read()}
RUNTIMES = [("tf.lite", tf.lite.Interpreter, tf.lite.experimental.OpResolverType.AUTO),
            ("ai_edge_litert", Interpreter, LiteRTResolver.AUTO)]


def latency_ms(fb, cls, resolver, image, n=300):
    it = cls(model_content=fb, experimental_op_resolver_type=resolver, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]) if image is None
                  else quantize_input(image[None], d))
    for _ in range(30):
        it.invoke()
    start = time.perf_counter()
    for _ in range(n):
        it.invoke()
    return (time.perf_counter() - start) / n * 1e3


res = {}
for _ in range(5):
    for k, fb in fbs.items():
        for name, cls, resolver in RUNTIMES:
            for im in ("zeros", "image"):
                res.setdefault((k, name, im), []).append(
                    latency_ms(fb, cls, resolver, None if im == "zeros" else x[0]))
for k, v in res.items():
    print(k, round(float(np.median(v)), 4))
print(tf.__version__, getattr(ai_edge_litert, "__version__", None))
