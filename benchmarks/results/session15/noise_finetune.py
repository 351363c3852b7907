"""Fine-tunes a shipped model with Gaussian activation noise (a noise-robust int8 try).

PYTHONPATH=. python benchmarks/results/session15/noise_finetune.py NOISE EPOCHS OUT.keras [NAME]

NAME is a shipped model (default fashion_mnist_mcu_s).

NOISE is the noise std in int8 steps of each noised tensor (the input, every ReLU and the primary
capsules); a step is the tensor's calibrated range / 255, measured on 2,000 training images.
Fine-tunes on the first 55,000 training images (the last 5,000 stay out for the choice), margin
loss, Adam, cosine LR 2e-4 -> 1e-6, batch 64, random shifts of 2 px. The noise layers are
training-only and are not in the saved model (the architecture is the shipped one).
"""
import sys
import time

import keras
import numpy as np

from keras_caps import data
from keras_caps.data.augmentation import random_shift
from keras_caps.losses import MarginLoss
from keras_caps.models import pretrained
from keras_caps.models.heads import classifier

noise, epochs, out = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
x, y = data.load_arrays("fashion_mnist", "train")
x = x.astype("float32") / 255.0
xt, yt = x[:55000], y[:55000]
model = pretrained(sys.argv[4] if len(sys.argv) > 4 else "fashion_mnist_mcu_s")
names = [layer.name for layer in model.layers if layer.name.startswith("relu")]
probe = keras.Model(model.input, [model.get_layer(n).output for n in names]
                    + [model.get_layer("primary_caps").output[0]])
acts = probe.predict(x[:2000], batch_size=256, verbose=0)
steps = [float(np.max(a) / 255.0) for a in acts[:-1]] + [float(2 * np.max(np.abs(acts[-1])) / 255.0)]
print("steps", dict(zip(names + ["primary"], steps)), flush=True)

inp = keras.Input((28, 28, 1))
h = keras.layers.GaussianNoise(noise / 255.0)(inp) if noise else inp
for layer in model.layers[1:]:
    if layer.name == "primary_caps":
        h = layer(h)[0]
        if noise:
            h = keras.layers.GaussianNoise(noise * steps[-1])(h)
        continue
    h = layer(h)
    if noise and layer.name in names:
        h = keras.layers.GaussianNoise(noise * steps[names.index(layer.name)])(h)
noisy = keras.Model(inp, h)
per_epoch = len(xt) // 64
lr = keras.optimizers.schedules.CosineDecay(2e-4, epochs * per_epoch, alpha=1e-6 / 2e-4)
noisy.compile(keras.optimizers.Adam(lr), MarginLoss(), metrics=["accuracy"])


def batches():
    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(xt))
        for i in range(per_epoch):
            idx = order[i * 64:(i + 1) * 64]
            yield random_shift(xt[idx], 2), keras.utils.to_categorical(yt[idx], 10)


t0 = time.time()
noisy.fit(batches(), steps_per_epoch=per_epoch, epochs=epochs, verbose=2)
print("train_s", round(time.time() - t0), flush=True)
val = np.argmax(classifier(model).predict(x[55000:], batch_size=256, verbose=0), -1)
print("val_accuracy", float(np.mean(val == y[55000:])), flush=True)
model.save(out)
