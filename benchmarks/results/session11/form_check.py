"""Exports a pretrained model in int8 with the current integer form and scores it.

    python benchmarks/results/session11/form_check.py NAME [N] [split]

On the last N training images by default (a diagnosis of the export form: the choice of the
form is made there, not on the test split); split=test scores the first N test images.
Prints float, LiteRT (XNNPACK), LiteRT without delegate, TFLite Micro accuracies, the
agreements, the flatbuffer bytes and the TFLite Micro arena.
"""
import json
import sys

from keras_caps import data as data_lib
from keras_caps.lite import evaluate as ev
from keras_caps.lite import export as ex
from keras_caps.lite.evaluate import keras_accuracy
from keras_caps.models import pretrained

name = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
split = sys.argv[3] if len(sys.argv) > 3 else "train"
model = pretrained(name)
train = data_lib.load_arrays("fashion_mnist", "train")
if split == "test":
    x, y = data_lib.load_arrays("fashion_mnist", "test")
    x, y = x[:n], y[:n]
else:
    x, y = train[0][-n:], train[1][-n:]
flat = ex.convert(model, "int8", train[0][:50000])
out = {"name": name, "split": split, "n": n, "bytes": len(flat)}
out["float"] = keras_accuracy(model, x, y)
row = ev.evaluate(flat, x, y, latency_repeats=200)
row.pop("confusion_matrix", None)
out.update({k: row.get(k) for k in ("accuracy", "litert_nodelegate_accuracy", "tflm_accuracy",
                                    "tflm_argmax_agreement", "tflm_nodelegate_argmax_agreement",
                                    "arena_bytes", "latency_ms_1t")})
print(json.dumps(out), flush=True)
