"""tf.data pipelines: (image, one-hot label) batches from numpy arrays."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_caps.data.augmentation import random_shift
from keras_caps.data.images import NORMALIZATIONS, scale_pixels


def make_dataset(images, labels, batch_size, shuffle=False, augment_shift=0, seed=0,
                 num_classes=10, drop_remainder=False, normalization="unit"):
    """A prefetching tf.data pipeline of (x, one-hot y) batches.

    uint8 images stay uint8 in memory and are scaled per batch (`normalization`); float images
    are used as they are. Shift augmentation runs before scaling, so the padding is black.
    Shuffling and shifts are seeded and differ from one pass over the dataset to the next.

    Args:
        images: (N, H, W, C) or (N, H, W), uint8 or float.
        labels: (N,) integer class ids in [0, num_classes).
        batch_size: positive int B.
        shuffle: shuffle all N examples each pass.
        augment_shift: max random shift in pixels (0: none).
        seed: seed of shuffling and shifts.
        num_classes: K.
        drop_remainder: drop the last incomplete batch.
        normalization: "unit" ([0, 1]) or "symmetric" ([-1, 1]) for uint8 images.
    Returns:
        tf.data.Dataset of (x float32 (B, H, W, C), y float32 (B, K)).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) or (N, H, W), got shape {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be (N,) = ({len(images)},), got shape {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]."
        )
    is_uint8 = images.dtype == np.uint8
    if not is_uint8:
        images = images.astype(np.float32)

    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
    if shuffle:
        ds = ds.shuffle(max(len(images), 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    if augment_shift:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda xy, s: (random_shift(xy[0], augment_shift, seed=s), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        if is_uint8:
            x = scale_pixels(x, normalization)
        return x, tf.one_hot(y, num_classes, dtype=tf.float32)  # (B,) -> (B, K)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
