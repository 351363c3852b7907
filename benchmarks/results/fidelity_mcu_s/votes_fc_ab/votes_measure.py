"""Side by side: bytes, op counts, arena, LiteRT latency (1 thread, alternating), accuracy and
agreement on N test images for flatbuffers given as argv."""
import collections
import json
import sys

import numpy as np
import tensorflow as tf

from keras_caps import data
from keras_caps.lite import evaluate as ev

n = int(sys.argv[1])
paths = sys.argv[2:]
test_x, test_y = data.load_arrays("fashion_mnist", "test")
x, y = test_x[:n], test_y[:n]
fbs = {p: open(p, "rb").read() for p in paths}
out = {}

for p, fb in fbs.items():
    interp = tf.lite.Interpreter(model_content=fb)
    ops = collections.Counter(d["op_name"] for d in interp._get_ops_details())
    arena = ev.tflm_arena_bytes(fb)
    preds = {k: np.argmax(ev.predict_litert(fb, x, kernels=k), -1) for k in ("default", "nodelegate", "ref")}
    preds["tflm"] = np.argmax(ev.predict_tflm(fb, x, arena + 4096), -1)
    acc = {k: float(np.mean(v == y)) for k, v in preds.items()}
    agree = {f"{a}|{b}": float(np.mean(preds[a] == preds[b])) for a, b in
             (("default", "tflm"), ("nodelegate", "tflm"), ("ref", "tflm"), ("default", "ref"))}
    out[p] = dict(bytes=len(fb), arena=arena, ops=dict(ops), accuracy=acc, agreement=agree)
lat = {p: [] for p in paths}
for _r in range(5):  # alternate the models, 5 rounds of 200 repeats
    for p, fb in fbs.items():
        lat[p].append(ev.latency_ms(fb, x[0], 1, 200)[0])
for p in paths:
    out[p]["latency_ms_1t_median_of_rounds"] = float(np.median(lat[p]))
    out[p]["latency_rounds"] = lat[p]
print(json.dumps(out, indent=1))
