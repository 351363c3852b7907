"""Augmentation: random shifts (vectorised, usable eagerly and inside tf.data)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def random_shift(images, max_shift=2, seed=None):
    """Shifts each image independently by up to `max_shift` pixels along each axis.

    Pads by `max_shift` zeros on every side and crops a random window of the original size back
    out, per image (vectorised gathers; no map_fn). Usable eagerly and inside tf.data.

    Args:
        images: one image (H, W, C) or a batch (B, H, W, C); any dtype.
        max_shift: non-negative int.
        seed: None or an int (stateful random ops with that op seed), or a shape-(2,) integer
            tensor (stateless ops: the same seed gives the same shifts).
    Returns:
        tensor of the same shape and dtype.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}.")
    images = tf.convert_to_tensor(images)
    if images.shape.rank not in (3, 4):
        raise ValueError(f"images must be (H, W, C) or (B, H, W, C), got shape {images.shape}.")
    if max_shift == 0:
        return images
    m = int(max_shift)
    x = images[None] if images.shape.rank == 3 else images  # (B, H, W, C)
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    if seed is None or isinstance(seed, (int, np.integer)):
        offsets = tf.random.uniform((b, 2), 0, 2 * m + 1, dtype=tf.int32, seed=seed)
    else:
        offsets = tf.random.stateless_uniform(
            (b, 2), seed=seed, minval=0, maxval=2 * m + 1, dtype=tf.int32
        )
    padded = tf.pad(x, [[0, 0], [m, m], [m, m], [0, 0]])  # (B, H + 2m, W + 2m, C)
    rows = offsets[:, :1] + tf.range(h)[None]  # (B, H)
    cols = offsets[:, 1:] + tf.range(w)[None]  # (B, W)
    x = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, H, W + 2m, C)
    x = tf.gather(x, cols, axis=2, batch_dims=1)  # (B, H, W, C)
    return x[0] if images.shape.rank == 3 else x
