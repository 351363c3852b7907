"""Preprocessing of image arrays (paper 000): class balancing, denoising, constant-feature removal."""

from __future__ import annotations

import numpy as np


def balance_classes(images, labels, method="oversample", seed=0):
    """Equal examples per class (paper 000's class balancing).

    "oversample" keeps every example and repeats random ones of the smaller classes up to the
    largest count; "undersample" keeps a random subset of each class of the smallest count.

    Args:
        images: (N, ...) array.
        labels: (N,) integer class ids.
    Returns:
        (images (M, ...), labels (M,)) shuffled, M = number of classes x target count.
    """
    if method not in ("oversample", "undersample"):
        raise ValueError(f"balance method must be 'oversample' or 'undersample', got {method!r}.")
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    if labels.size == 0:
        return images, labels
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.max() if method == "oversample" else counts.min()
    picks = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if method == "oversample":
            picks.append(np.concatenate([idx, rng.choice(idx, target - len(idx), replace=True)]))
        else:
            picks.append(rng.choice(idx, target, replace=False))
    order = rng.permutation(np.concatenate(picks))
    return images[order], labels[order]


def _gaussian_kernel(size, sigma):
    r = size // 2
    k = np.exp(-0.5 * (np.arange(-r, r + 1, dtype=np.float64) / sigma) ** 2)
    return k / k.sum()


def denoise(images, method="median", size=3, sigma=1.0, chunk=2048):
    """Noise reduction per image and channel (paper 000): median or Gaussian filter.

    Borders use edge padding. numpy only (no scipy): the median filter over sliding windows, the
    Gaussian as a separable convolution (rows, then columns).

    Args:
        images: (N, H, W, C) or (N, H, W), uint8 or float.
        method: "median" (removes salt-and-pepper noise) or "gaussian".
        size: odd window size.
        sigma: Gaussian standard deviation in pixels (method="gaussian").
        chunk: images processed at a time (bounds the memory of the median windows).
    Returns:
        array of the same shape and dtype (integers rounded and clipped to the dtype's range).
    """
    if method not in ("median", "gaussian"):
        raise ValueError(f"denoise method must be 'median' or 'gaussian', got {method!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"filter size must be a positive odd integer, got {size!r}.")
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}.")
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {images.shape}.")
    x = images[..., None] if images.ndim == 3 else images  # (N, H, W) -> (N, H, W, 1)
    n, h, w, c = x.shape
    r = size // 2
    out = np.empty(x.shape, np.float32)
    kernel = _gaussian_kernel(size, sigma) if method == "gaussian" else None
    for s in range(0, n, chunk):
        padded = np.pad(x[s : s + chunk], ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
        if method == "median":
            # (n, H, W, C, size, size) view -> median over the window
            windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
            out[s : s + chunk] = np.median(windows.reshape(windows.shape[:4] + (-1,)), axis=-1)
        else:
            p = padded.astype(np.float32)
            rows = sum(kernel[i] * p[:, i : i + h] for i in range(size))  # (n, H, W + 2r, C)
            out[s : s + chunk] = sum(kernel[i] * rows[:, :, i : i + w] for i in range(size))
    if np.issubdtype(images.dtype, np.integer):
        bounds = np.iinfo(images.dtype)
        out = np.clip(np.rint(out), bounds.min, bounds.max)
    return out.reshape(images.shape).astype(images.dtype)


def remove_constant_features(train_images, *others, threshold=0.0):
    """Zeroes the pixels that are constant over the training set (paper 000's feature removal).

    A pixel (h, w, c) is constant when its standard deviation over the training images is
    <= threshold. The image shape is kept (convolutions need it); the constant pixels are set to 0
    in the training images and in every other array given (e.g. the test images).

    Args:
        train_images: (N, H, W, C).
        *others: arrays (M, H, W, C) to treat the same way.
        threshold: std at or below which a pixel counts as constant.
    Returns:
        (keep mask bool (H, W, C), train_images, *others): copies with the constant pixels zeroed.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}.")
    train_images = np.asarray(train_images)
    keep = train_images.astype(np.float32).std(axis=0) > threshold  # (H, W, C)
    out = []
    for a in (train_images, *others):
        a = np.asarray(a)
        if a.shape[1:] != train_images.shape[1:]:
            raise ValueError(
                f"image shape {a.shape[1:]} differs from the training images' "
                f"{train_images.shape[1:]}."
            )
        out.append(np.where(keep, a, 0).astype(a.dtype))
    return (keep, *out)
