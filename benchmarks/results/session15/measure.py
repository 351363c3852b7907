"""Float / XNNPACK / reference-kernel agreement of .keras models (argv), exported int8 as shipped.

PYTHONPATH=. python benchmarks/results/session15/measure.py A.keras [B.keras ...]

Exports each model int8 as `benchmarks.reference_model` does (200 calibration images from the
first 2,000 training images), then predicts the last 5,000 training images ("val", held out of
the noise fine-tuning) and all 10,000 test images in float, LiteRT default (XNNPACK) and LiteRT
reference kernels (= TFLite Micro, bit for bit since session 10). One JSON line per model.
"""
import json
import sys

import keras
import numpy as np

from benchmarks.int8_measure import int8_measurements
from keras_caps import data
from keras_caps.data.images import unit_images
from keras_caps.lite import evaluate as ev
from keras_caps.models.heads import classifier

train_x, train_y = data.load_arrays("fashion_mnist", "train")
splits = {"val": (train_x[55000:], train_y[55000:]), "test": data.load_arrays("fashion_mnist", "test")}
for path in sys.argv[1:]:
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    int8 = int8_measurements(model, train_x[:2000])
    fb = int8["flatbuffer"]
    with open(path.replace(".keras", "_int8.tflite"), "wb") as f:
        f.write(fb)
    row = dict(model=path, bytes=int8["bytes"], arena=int8["arena_bytes"])
    for split, (x, y) in splits.items():
        scores = classifier(model).predict(unit_images(x), batch_size=256, verbose=0)
        pred = {"float": np.argmax(scores, -1)}
        for k in ("default", "ref"):
            pred[k] = np.argmax(ev.predict_litert(fb, x, kernels=k), -1)
        row[split] = dict(accuracy={k: float(np.mean(v == y)) for k, v in pred.items()},
                          disagree={f"{a}|{b}": int(np.sum(pred[a] != pred[b])) for a, b in
                                    (("float", "ref"), ("float", "default"), ("default", "ref"))})
    print(json.dumps(row), flush=True)
