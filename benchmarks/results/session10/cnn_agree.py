"""Trains the plain CNN twin cnn_like('S') 8 epochs (all 60,000 images, 2-px shifts, Adam cosine
2e-3, batch 64) and saves it to runs/session10/cnn_s.keras; cnn_conv.py converts it to int8,
agree10k.py measures the runtimes."""
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_caps import data
from keras_caps.models import cnn_like

keras.utils.set_random_seed(0)
xtr, ytr = data.load_arrays("fashion_mnist", "train")
x, y = data.load_arrays("fashion_mnist", "test")
m = cnn_like("S")
steps = 8 * (60000 // 64)
m.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=5e-3)),
          "sparse_categorical_crossentropy", metrics=["accuracy"])
aug = keras.Sequential([keras.layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant")])
ds = (tf.data.Dataset.from_tensor_slices((xtr, ytr)).shuffle(60000, seed=0).batch(64)
      .map(lambda a, b: (aug(a, training=True), b)).prefetch(2))
t0 = time.time()
m.fit(ds, epochs=8, verbose=2)
os.makedirs("runs/session10", exist_ok=True)
m.save("runs/session10/cnn_s.keras")
accuracy = float(np.mean(np.argmax(m.predict(x, verbose=0, batch_size=512), -1) == y))
print("float accuracy", accuracy, "train s", time.time() - t0)
