"""Where LiteRT's XNNPACK and TFLite Micro part on an int8 model: the int8 margin between the
top two class scores of the images whose argmax differs, against all images.

    python benchmarks/results/session12/margins.py MODEL_int8.tflite
"""
import sys

import numpy as np

from keras_caps import data
from keras_caps.lite import evaluate as ev

x, y = data.load_arrays("fashion_mnist", "test")
fb = open(sys.argv[1], "rb").read()
arena = ev.tflm_arena_bytes(fb)
out = {"xnnpack": ev.predict_litert(fb, x, kernels="default"),
       "tflm": ev.predict_tflm(fb, x, arena + 4096)}
scale, zero = ev.litert_interpreter(fb).get_output_details()[0]["quantization"]
out = {k: np.round(v / scale).astype(np.int32) + zero for k, v in out.items()}  # int8 steps
print(f"output scale {scale:.5f}, zero point {zero}")


def margin(s):
    top = np.sort(s.astype(np.int32), -1)
    return top[:, -1] - top[:, -2]


flip = np.argmax(out["xnnpack"], -1) != np.argmax(out["tflm"], -1)
m = margin(out["tflm"])
diff = np.max(np.abs(out["xnnpack"].astype(int) - out["tflm"].astype(int)), -1)
print(f"flips {flip.sum()} of {len(x)}")
for k in range(6):
    print(f"TFLM top-2 margin {k} steps: {np.sum(m == k)} images, {np.sum(flip & (m == k))} flips")
print(f"margin >= 6: {np.sum(m >= 6)} images, {np.sum(flip & (m >= 6))} flips")
print("max |xnnpack - tflm| over the scores of the flipped images:",
      np.bincount(diff[flip]).tolist())
pct = [0, 25, 50, 75, 100]
print("top-1 score (steps) of the flipped images, percentiles", pct, ":",
      np.percentile(np.max(out["tflm"][flip], -1), pct).tolist())
print("top-1 score (steps), all images:", np.percentile(np.max(out["tflm"], -1), pct).tolist())
