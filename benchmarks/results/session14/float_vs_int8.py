"""How often int8 parts from float, against how often XNNPACK parts from the reference kernels.

python benchmarks/results/session14/float_vs_int8.py NAME  (a shipped reference model)
All 10,000 Fashion-MNIST test images; LiteRT reference kernels = TFLite Micro (100 %, session 10).
"""
import json
import sys

import numpy as np

from keras_caps import data
from keras_caps.lite import evaluate as ev
from keras_caps.models import pretrained

name = sys.argv[1]
x, y = data.load_arrays("fashion_mnist", "test")
model = pretrained(name)
scores = model.predict(x.astype("float32") / 255.0, batch_size=256, verbose=0)["lengths"]
fb = open(f"keras_caps/pretrained_models/{name}_int8.tflite", "rb").read()
pred = {"float": np.argmax(scores, -1)}
for k in ("default", "ref"):
    pred[k] = np.argmax(ev.predict_litert(fb, x, kernels=k), -1)
top2 = np.sort(scores, -1)[:, -2:]
margin = top2[:, 1] - top2[:, 0]
flip = pred["default"] != pred["ref"]
out = dict(model=name, accuracy={k: float(np.mean(v == y)) for k, v in pred.items()},
           disagree={f"{a}|{b}": int(np.sum(pred[a] != pred[b])) for a, b in
                     (("float", "ref"), ("float", "default"), ("default", "ref"))},
           xnnpack_flips=dict(count=int(flip.sum()),
                              float_sides_with_ref=int(np.sum(flip & (pred["float"] == pred["ref"]))),
                              float_sides_with_default=int(np.sum(flip & (pred["float"] == pred["default"]))),
                              float_margin_median=float(np.median(margin[flip])),
                              all_images_float_margin_median=float(np.median(margin)),
                              also_float_ref_disagree=int(np.sum(flip & (pred["float"] != pred["ref"])))))
print(json.dumps(out))
