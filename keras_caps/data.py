"""Datasets: TFDS or local IDX files, preprocessing (paper 000), augmentation, tf.data pipelines.

Arrays: images uint8 (N, H, W, C), labels int64 (N,). Datasets yield (x float32 (B, H, W, C) in
[0, 1] (or [-1, 1]), y one-hot float32 (B, K)).

Sources, in the order `source="auto"` tries them:
    1. IDX .gz files (mnist, fashion_mnist) in `data_dir`, or by default in
       /usr/share/datasets/<name> (Debian: apt-get install dataset-fashion-mnist). Those files
       are recompressed, so TFDS's checksums do not match them: they are read directly.
    2. TFDS with already-prepared data, then a TFDS download (needs internet).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import struct
import zlib

import numpy as np
import tensorflow as tf


class DataSourceError(ValueError):
    """No source could provide the dataset."""


class DataFormatError(ValueError):
    """A data file is corrupt or does not match the dataset."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple
    num_classes: int
    idx_files: dict | None = None


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

SUPPORTED = {
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, _IDX_FILES),
    "fashion_mnist": DatasetInfo("fashion_mnist", (28, 28, 1), 10, _IDX_FILES),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10),
    "svhn_cropped": DatasetInfo("svhn_cropped", (32, 32, 3), 10),
}

DEFAULT_ROOT = "/usr/share/datasets"


def info(name):
    """DatasetInfo of a supported dataset; ValueError listing the supported names otherwise."""
    if name not in SUPPORTED:
        raise ValueError(f"unknown dataset {name!r}; supported: {sorted(SUPPORTED)}.")
    return SUPPORTED[name]


# ----------------------------------------------------------------------------- splits


def parse_split(split):
    """'train', 'test', 'train[:1000]', 'train[100:200]', 'test[:10%]' -> (base, start, stop, pct)."""
    m = re.fullmatch(r"(train|test)(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?", split.replace(" ", ""))
    if not m:
        raise ValueError(
            f"bad split {split!r}: use 'train', 'test' or a slice like 'train[:1000]', "
            "'train[1000:2000]' or 'test[:10%]'."
        )
    base, start, pct1, stop, pct2 = m.groups()
    return base, (int(start) if start else None), (int(stop) if stop else None), bool(pct1 or pct2)


def _slice(arrays, start, stop, percent):
    n = len(arrays[0])
    if percent:
        start = None if start is None else n * start // 100
        stop = None if stop is None else n * stop // 100
    return tuple(a[start:stop] for a in arrays)


# ----------------------------------------------------------------------------- IDX


def _read_bytes(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(
            f"cannot read {path}: {err}. The file is corrupt or truncated; re-download it or "
            "reinstall the package that provides it."
        ) from err


def read_idx(path):
    """Reads one IDX file (gzipped or not) into a uint8 array of its declared shape."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFormatError(
            f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex()}); "
            "expected the standard MNIST-format files."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header.")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(dims)) if dims else 0
    if len(raw) - header != expected:
        raise DataFormatError(
            f"{path}: header says {dims} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes; the file is truncated or corrupt, re-download it."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _find_idx(folder, stem):
    for candidate in (stem + ".gz", stem):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    return None


def idx_folders(name, data_dir=None):
    """Folders searched for IDX files: data_dir, or the Debian dataset folders."""
    if data_dir:
        return [data_dir, os.path.join(data_dir, name), os.path.join(data_dir, name.replace("_", "-"))]
    return [os.path.join(DEFAULT_ROOT, name.replace("_", "-")), os.path.join(DEFAULT_ROOT, name)]


def load_idx(name, split, data_dir=None):
    """(images (N, H, W, 1) uint8, labels (N,) int64) from IDX files, validated."""
    ds = info(name)
    if not ds.idx_files:
        raise DataSourceError(f"{name} has no IDX distribution; use source='tfds'.")
    base, start, stop, percent = parse_split(split)
    image_stem, label_stem = ds.idx_files[base]
    for folder in idx_folders(name, data_dir):
        image_path, label_path = _find_idx(folder, image_stem), _find_idx(folder, label_stem)
        if image_path and label_path:
            break
    else:
        raise DataSourceError(
            f"no IDX files {image_stem}[.gz] / {label_stem}[.gz] for {name} in "
            f"{idx_folders(name, data_dir)}."
        )
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != ds.image_shape[:2]:
        raise DataFormatError(
            f"{image_path}: images of shape {images.shape[1:]}, but {name} images are "
            f"{ds.image_shape[:2]}; is this the right folder for {name}?"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFormatError(
            f"{image_path} has {len(images)} images but {label_path} has {labels.shape} labels."
        )
    if labels.size and labels.max() >= ds.num_classes:
        raise DataFormatError(
            f"{label_path}: label {int(labels.max())} out of range [0, {ds.num_classes})."
        )
    images, labels = _slice((images[..., None], labels.astype(np.int64)), start, stop, percent)
    return images, labels


# ----------------------------------------------------------------------------- TFDS


def load_tfds(name, split, data_dir=None, download=True):
    """(images, labels) from TFDS (prepared data, or a download when `download`)."""
    import tensorflow_datasets as tfds

    info(name)
    ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, download=download)
    chunks = list(tfds.as_numpy(ds.batch(4096)))  # batch_size=-1 aborts under tfds mock_data
    if not chunks:
        raise DataSourceError(f"TFDS returned no examples for {name} split {split!r}.")
    images = np.concatenate([c[0] for c in chunks])
    labels = np.concatenate([c[1] for c in chunks])
    return images.astype(np.uint8), labels.astype(np.int64)


# ----------------------------------------------------------------------------- loading


def load_arrays(name, split="train", data_dir=None, source="auto", max_examples=None):
    """Loads a split as numpy arrays.

    Args:
        name: mnist, fashion_mnist, cifar10 or svhn_cropped.
        split: "train", "test" or a slice ("train[:1000]", "test[:10%]").
        data_dir: folder with IDX files (idx) or the TFDS data dir (tfds).
        source: "auto", "idx" or "tfds".
        max_examples: keep the first N examples.
    Returns:
        images uint8 (N, H, W, C), labels int64 (N,).
    """
    ds = info(name)
    if source not in ("auto", "idx", "tfds"):
        raise ValueError(f"source must be 'auto', 'idx' or 'tfds', got {source!r}.")
    parse_split(split)
    errors = []
    arrays = None
    if source in ("auto", "idx") and ds.idx_files:
        try:
            arrays = load_idx(name, split, data_dir)
        except DataSourceError as err:
            errors.append(f"IDX: {err}")
            if source == "idx":
                raise DataSourceError(_no_source_message(name, data_dir, errors)) from err
    elif source == "idx":
        raise DataSourceError(f"{name} is not distributed as IDX files; use source='tfds'.")
    if arrays is None:
        for download in (False, True):
            try:
                arrays = load_tfds(name, split, data_dir if source == "tfds" else None, download)
                break
            except Exception as err:  # noqa: BLE001 - TFDS raises many types; we report them all
                errors.append(f"TFDS ({'download' if download else 'prepared data'}): "
                              f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
        if arrays is None:
            raise DataSourceError(_no_source_message(name, data_dir, errors))
    images, labels = arrays
    if images.shape[1:] != ds.image_shape:
        raise DataFormatError(f"{name} images have shape {images.shape[1:]}, expected {ds.image_shape}.")
    if max_examples is not None:
        images, labels = images[:max_examples], labels[:max_examples]
    return images, labels


def _no_source_message(name, data_dir, errors):
    folders = ", ".join(idx_folders(name, data_dir))
    return (
        f"could not load {name}. Looked for IDX files in: {folders}. Tried: "
        + "; ".join(errors)
        + ". Options: pass --data_dir=FOLDER with the IDX .gz files; on Debian/Ubuntu "
        "`apt-get install dataset-fashion-mnist` (for fashion_mnist); or let TFDS download it "
        "(needs internet)."
    )


# ----------------------------------------------------------------------------- preprocessing


def normalize(images, mode="unit"):
    """uint8 images -> float32 in [0, 1] ("unit") or [-1, 1] ("symmetric")."""
    x = np.asarray(images, np.float32) / 255.0
    if mode == "unit":
        return x
    if mode == "symmetric":
        return x * 2.0 - 1.0
    raise ValueError(f"normalization must be 'unit' or 'symmetric', got {mode!r}.")


def balance_classes(images, labels, method="oversample", seed=0):
    """Equal examples per class: repeat minority classes or drop from majority ones."""
    rng = np.random.RandomState(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.max() if method == "oversample" else counts.min()
    if method not in ("oversample", "undersample"):
        raise ValueError(f"balance method must be 'oversample' or 'undersample', got {method!r}.")
    picks = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        picks.append(rng.choice(idx, target, replace=len(idx) < target))
    order = rng.permutation(np.concatenate(picks))
    return images[order], labels[order]


def denoise(images, method="median", size=3, sigma=1.0):
    """Noise reduction per image and channel: median or Gaussian filter (edge padding).

    images (N, H, W, C) -> same shape and dtype.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"filter size must be a positive odd integer, got {size}.")
    x = np.asarray(images, np.float32)
    r = size // 2
    padded = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    if method == "median":
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
        out = np.median(windows, axis=(-2, -1))
    elif method == "gaussian":
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        k /= k.sum()
        rows = sum(k[i] * padded[:, i : i + x.shape[1], :, :] for i in range(size))
        out = sum(k[i] * rows[:, :, i : i + x.shape[2], :] for i in range(size))
    else:
        raise ValueError(f"denoise method must be 'median' or 'gaussian', got {method!r}.")
    if np.issubdtype(np.asarray(images).dtype, np.integer):
        out = np.clip(np.rint(out), 0, 255)
    return out.astype(np.asarray(images).dtype)


def remove_constant_features(train_images, *others, threshold=0.0):
    """Zeroes pixels that are constant over the training set (std <= threshold).

    Keeps the image shape (convolutions need it). Returns (mask of kept pixels (H, W, C),
    train_images, *others) with the constant pixels set to 0.
    """
    keep = np.asarray(train_images, np.float32).std(axis=0) > threshold
    out = [np.where(keep, a, 0).astype(np.asarray(a).dtype) for a in (train_images, *others)]
    return (keep, *out)


def random_shift(images, max_shift=2, seed=None):
    """Shifts each image independently by up to `max_shift` pixels per axis (zero fill).

    images: one image (H, W, C) or a batch (B, H, W, C) -> same shape.
    """
    if max_shift <= 0:
        return images
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 4:
        return tf.map_fn(lambda img: random_shift(img, max_shift, seed), images)
    pad = [[max_shift, max_shift], [max_shift, max_shift], [0, 0]]
    return tf.image.random_crop(tf.pad(images, pad), tf.shape(images), seed=seed)


# ----------------------------------------------------------------------------- tf.data


def make_dataset(images, labels, batch_size, shuffle=False, augment_shift=0, seed=0,
                 num_classes=10, drop_remainder=False, normalization="unit"):
    """A prefetching tf.data pipeline of (x (B, H, W, C) float32, one-hot y (B, K)).

    uint8 images are normalised (`normalization`); float images are used as they are.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]."
        )
    x = normalize(images, normalization) if np.asarray(images).dtype == np.uint8 else images
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    y = np.eye(num_classes, dtype=np.float32)[labels]
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(min(len(x), 20000), seed=seed, reshuffle_each_iteration=False)
    if augment_shift:  # per example, before batching
        ds = ds.map(lambda a, b: (random_shift(a, augment_shift, seed), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def load(name, split="train", batch_size=64, data_dir=None, source="auto", normalization="unit",
         max_examples=None, shuffle=None, augment_shift=0, seed=0, balance=None, denoise_method=None):
    """load_arrays + optional balancing / denoising + make_dataset, in one call."""
    images, labels = load_arrays(name, split, data_dir, source, max_examples)
    if balance:
        images, labels = balance_classes(images, labels, balance, seed)
    if denoise_method:
        images = denoise(images, denoise_method)
    if shuffle is None:
        shuffle = split.startswith("train")
    return make_dataset(images, labels, batch_size, shuffle, augment_shift, seed,
                        info(name).num_classes, normalization=normalization)
