"""Float32 export of the shipped S model and the LiteRT 1-thread latency of it and the
flatbuffers given as argv, in alternating rounds."""
import sys

import numpy as np

from keras_caps import data
from keras_caps.lite import evaluate as ev
from keras_caps.lite.export import convert
from keras_caps.models import pretrained

m = pretrained("fashion_mnist_mcu_s")
f32 = convert(m, "float32")
open("/work/scratch/s_f32.tflite","wb").write(f32)
x, _ = data.load_arrays("fashion_mnist", "test", max_examples=10)
fbs = {p: open(p,"rb").read() for p in sys.argv[1:]}
fbs["float32"] = f32
lat = {k: [] for k in fbs}
for _r in range(5):
    for k, fb in fbs.items():
        img = x[0] if k != "float32" else x[0]
        lat[k].append(ev.latency_ms(fb, img, 1, 300)[0])
for k in fbs:
    print(k.split("/")[-1], round(float(np.median(lat[k])), 4), [round(v, 4) for v in lat[k]])
