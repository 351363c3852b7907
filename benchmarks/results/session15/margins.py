"""How many test images a shipped model hardly decides: float top-2 margin counts, and the
output grid of its int8 flatbuffer.  PYTHONPATH=. python benchmarks/results/session15/margins.py NAME"""
import json
import sys

import numpy as np

from keras_caps import data
from keras_caps.data.images import unit_images
from keras_caps.lite import evaluate as ev
from keras_caps.models import pretrained
from keras_caps.models.heads import classifier

name = sys.argv[1]
x, _ = data.load_arrays("fashion_mnist", "test")
scores = classifier(pretrained(name)).predict(unit_images(x), batch_size=256, verbose=0)
top2 = np.sort(scores, -1)[:, -2:]
margin = top2[:, 1] - top2[:, 0]
fb = open(f"keras_caps/pretrained_models/{name}_int8.tflite", "rb").read()
scale = float(ev.litert_interpreter(fb).get_output_details()[0]["quantization"][0])
print(json.dumps(dict(model=name, output_step=scale, images_with_margin_below={
    f"{k} steps ({k * scale:.4f})": int(np.sum(margin < k * scale)) for k in (1, 2, 4, 8, 16)})))
