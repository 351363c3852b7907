"""Squash |s|^2 ranges against runtime agreement: exports a pretrained model in int8 once per
setting "LAYERS:ROUTING" and scores every runtime. LAYERS: the primary capsules' ranges
(`integer_form(squash_ranges=...)`; "auto": what `tflite.export` picks); ROUTING:
capsule_ops.ROUTING_SQUASH_RANGES (the class capsules' squash in the routing).

    python benchmarks/results/session12/routing_ranges.py NAME N auto: auto:16 16: 16,256: ...

On the last N training images (a diagnosis of the export form; nothing chosen on the test
split). One JSON line per setting: accuracies of XNNPACK / no delegate / ref / TFLM, the
agreements, bytes, arena.
"""
import json
import sys

import numpy as np

from keras_caps import capsule_ops
from keras_caps import data as data_lib
from keras_caps.lite import evaluate as ev
from keras_caps.lite import export as ex
from keras_caps.models import pretrained

name, n = sys.argv[1], int(sys.argv[2])
model = pretrained(name)
train_x, train_y = data_lib.load_arrays("fashion_mnist", "train")
x, y = train_x[-n:], train_y[-n:]
auto = ex.squash_ranges


def ranges(text):
    return tuple(float(v) for v in text.split(",") if v)


for setting in sys.argv[3:]:
    layers, routing = setting.split(":")
    capsule_ops.ROUTING_SQUASH_RANGES = ranges(routing)
    fixed = ranges(layers)
    ex.squash_ranges = auto if layers == "auto" else (lambda form, sample, r=fixed: r)
    fb = ex.convert(model, "int8", train_x[:2000])
    arena = ev.tflm_arena_bytes(fb)
    preds = {k: np.argmax(ev.predict_litert(fb, x, kernels=k), -1)
             for k in ("default", "nodelegate", "ref")}
    preds["tflm"] = np.argmax(ev.predict_tflm(fb, x, arena + 4096), -1)
    print(json.dumps(dict(
        setting=setting, bytes=len(fb), arena=arena,
        accuracy={k: float(np.mean(v == y)) for k, v in preds.items()},
        agreement={f"{a}|{b}": float(np.mean(preds[a] == preds[b])) for a, b in
                   (("default", "tflm"), ("nodelegate", "tflm"), ("ref", "tflm"))})), flush=True)
