"""Tiny generated image-folder and .npz datasets for the data-source tests."""

import os

import numpy as np
from PIL import Image


def class_image(label, size=24, seed=0, channels=1):
    """uint8 (size, size[, 3]) image: class k is a bright band at rows 2 + 6k .. 6 + 6k."""
    rng = np.random.RandomState(seed)
    x = (rng.rand(size, size) * 40).astype(np.uint8)
    top = (2 + 6 * label) % max(size - 4, 1)
    x[top : top + 4, 3 : size - 3] = 255
    return np.repeat(x[..., None], 3, -1) if channels == 3 else x


def write_folder(root, classes=("circle", "square", "triangle"), per_class=20, size=24,
                 split=None, ext="png", channels=1, seed=0):
    """root/<class>/<i>.<ext> (or root/<split>/<class>/...); returns root."""
    base = os.path.join(root, split) if split else root
    for k, name in enumerate(classes):
        folder = os.path.join(base, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            image = class_image(k, size, seed * 1000 + k * 100 + i, channels)
            Image.fromarray(image).save(os.path.join(folder, f"{i:03d}.{ext}"))
    return str(root)


def write_npz(path, n_train=30, n_test=12, size=12, num_classes=3, dtype="uint8", **extra):
    """An .npz with x_train / y_train / x_test / y_test; `extra` adds or overrides keys."""
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % num_classes
        x = np.stack([class_image(k, size, i) for i, k in enumerate(y)])[..., None]
        arrays[f"x_{split}"] = (x / 255.0).astype(dtype) if dtype != "uint8" else x
        arrays[f"y_{split}"] = y
    arrays.update(extra)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return str(path)
