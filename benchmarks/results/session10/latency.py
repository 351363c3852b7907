"""LiteRT 1-thread latency (ms / image) of the shipped S as float32 and of int8 flatbuffers
(argv), alternating rounds in one process: 5 rounds x 300 invokes, median of the rounds.
A first argument --model=NAME takes that shipped model's float32 instead (session 11: M)."""
import sys

import numpy as np

from keras_caps import data
from keras_caps.lite import evaluate as ev
from keras_caps.lite.export import convert
from keras_caps.models import pretrained

args = sys.argv[1:]
name = args.pop(0)[len("--model="):] if args and args[0].startswith("--model=") else (
    "fashion_mnist_mcu_s")
fbs = {"float32": convert(pretrained(name), "float32")}
fbs.update({p: open(p, "rb").read() for p in args})
x, _ = data.load_arrays("fashion_mnist", "test", max_examples=1)
lat = {k: [] for k in fbs}
for _ in range(5):
    for k, fb in fbs.items():
        lat[k].append(ev.latency_ms(fb, x[0], 1, 300)[0])
for k in fbs:
    print(k, round(float(np.median(lat[k])), 4), [round(v, 4) for v in lat[k]])
