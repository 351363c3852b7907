"""Tiny learnable image data shared by the tests of the training binaries."""

import numpy as np


def striped_images(n=32, seed=0, size=12):
    """n uint8 images (n, size, size, 1) with labels in [0, 10): class k has a bright band on
    rows k..k+2 (columns 3..8) over faint noise, so a tiny CapsNet learns it in a few steps."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 10, n)
    x = (rng.rand(n, size, size, 1) * 40).astype("uint8")
    for i, k in enumerate(y):
        x[i, k : k + 3, 3:9] = 255
    return x, y
