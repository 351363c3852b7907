"""The shipped S model exported with fewer routing iterations (same weights): float accuracy,
int8 bytes / arena, TFLite Micro accuracy and XNNPACK = TFLM agreement on all test images.

    python benchmarks/results/session13/routings_export.py [NAME] [ROUTINGS ...]
"""
import json
import sys

import numpy as np

from benchmarks.int8_measure import int8_measurements
from keras_caps import data
from keras_caps.layers.dense_capsule import DenseCapsule
from keras_caps.lite import evaluate as ev
from keras_caps.models import pretrained

name = sys.argv[1] if len(sys.argv) > 1 else "fashion_mnist_mcu_s"
model = pretrained(name)
train_images, _ = data.load_arrays("fashion_mnist", "train", max_examples=2000)
x, y = data.load_arrays("fashion_mnist", "test")
caps = [la for la in model._flatten_layers() if isinstance(la, DenseCapsule)]
for r in [int(a) for a in sys.argv[2:]] or [3, 2, 1]:
    for la in caps:
        la.routings = r
    flt = ev.keras_accuracy(model, x, y)
    m = int8_measurements(model, train_images)
    fb = m["flatbuffer"]
    preds = {k: np.argmax(ev.predict_litert(fb, x, kernels=k), -1) for k in ("default", "ref")}
    preds["tflm"] = np.argmax(ev.predict_tflm(fb, x, m["arena_bytes"] + 4096), -1)
    print(json.dumps(dict(model=name, routings=r, float=flt, bytes=m["bytes"], arena=m["arena_bytes"],
                          audit_ok=m["audit_ok"],
                          accuracy={k: float(np.mean(v == y)) for k, v in preds.items()},
                          agreement={f"{a}|{b}": float(np.mean(preds[a] == preds[b]))
                                     for a, b in (("default", "tflm"), ("ref", "tflm"))})), flush=True)
