"""Training images/s of candidate 10x teachers against M, side by side in one process.

python benchmarks/results/session14/time_teachers.py  (random 28x28 images, batch 64, two
rounds of 1,280 images each after a warm-up fit; output: time_teachers.txt)
"""
import time

import keras
import numpy as np

from keras_caps.models import deep_capsnet, mcu_capsnet
from keras_caps.models.compiling import compile_capsnet


def big(types, dim, backbone):
    """A deep CapsNet on the M / L stride pattern (3 x 3 capsule grid), 16D class capsules,
    transforms not shared over positions (where a 10x teacher's parameters are cheap)."""
    return deep_capsnet(types, dim, 0, input_shape=(28, 28, 1), num_classes=10,
                        backbone_filters=backbone, backbone_strides=(1, 2, 1, 2),
                        primary_kernel=3, primary_strides=2, class_dim=16,
                        name=f"big_{types}x{dim}")


CANDIDATES = {"M": lambda: mcu_capsnet("M"),
              "A48x16": lambda: big(48, 16, (32, 64, 128, 128)),
              "B32x16_256": lambda: big(32, 16, (32, 64, 128, 256)),
              "C64x16": lambda: big(64, 16, (32, 64, 96, 128))}

x = np.random.rand(1280, 28, 28, 1).astype("float32")
y = keras.utils.to_categorical(np.random.randint(0, 10, 1280), 10)
models = {}
for key, make in CANDIDATES.items():
    model = make()
    compile_capsnet(model)
    model.fit(x[:128], y[:128], batch_size=64, verbose=0)
    models[key] = model
    print(key, f"{model.count_params():,}", flush=True)
for round_ in range(2):
    for key, model in models.items():
        start = time.perf_counter()
        model.fit(x, y, batch_size=64, verbose=0)
        print(round_, key, f"{len(x) / (time.perf_counter() - start):.0f} img/s", flush=True)
