"""4-runtime predictions of each flatbuffer (argv) on all 10,000 test images: accuracy and agreement."""
import json
import sys

import numpy as np

from keras_caps import data
from keras_caps.lite import evaluate as ev

x, y = data.load_arrays("fashion_mnist", "test")
for p in sys.argv[1:]:
    fb = open(p, "rb").read()
    arena = ev.tflm_arena_bytes(fb)
    preds = {k: np.argmax(ev.predict_litert(fb, x, kernels=k), -1) for k in ("default", "nodelegate", "ref")}
    preds["tflm"] = np.argmax(ev.predict_tflm(fb, x, arena + 4096), -1)
    np.savez(p + ".preds.npz", **preds)
    print(json.dumps(dict(model=p, bytes=len(fb), arena=arena,
        accuracy={k: float(np.mean(v == y)) for k, v in preds.items()},
        agreement={f"{a}|{b}": float(np.mean(preds[a] == preds[b])) for a, b in
                   (("default", "ref"), ("default", "tflm"), ("nodelegate", "tflm"), ("ref", "tflm"))})), flush=True)
