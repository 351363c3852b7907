"""Datasets: TFDS or local IDX files, preprocessing (paper 000), augmentation, tf.data pipelines.

Shapes (legend: N examples, B batch, H/W image height/width, C channels, K classes):
    arrays:   images uint8 (N, H, W, C), labels int64 (N,)
    datasets: x float32 (B, H, W, C) in [0, 1] ("unit") or [-1, 1] ("symmetric"),
              y one-hot float32 (B, K)

Sources, in the order `source="auto"` tries them:
    1. IDX files (mnist, fashion_mnist; gzipped or not) in `data_dir`, or by default in
       /usr/share/datasets/<name with '-'> then /usr/share/datasets/<name> (Debian:
       `apt-get install dataset-fashion-mnist`). Those files are recompressed, so TFDS's checksums
       do not match them: they are read directly, and no TFDS checksum file is ever touched.
    2. TFDS with already-prepared data (in `data_dir`, or TFDS's default data dir).
    3. A TFDS download (needs internet; skipped at once when the download host is unreachable).
When nothing works, `DataSourceError` names the dataset, the folders looked in and the options.
Corrupt or mismatched files raise `DataFormatError`.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import socket
import struct
import zlib

import numpy as np
import tensorflow as tf

from keras_caps import validation
from keras_caps.errors import UserError


class DataSourceError(UserError):
    """No source could provide the dataset."""


class DataFormatError(UserError):
    """A data file is corrupt or does not match the dataset."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a supported dataset.

    Attributes:
        name: TFDS name ("mnist", "fashion_mnist", "cifar10", "svhn_cropped").
        image_shape: (H, W, C).
        num_classes: K.
        splits: split names that exist.
        idx_files: {split: (images file, labels file)} for datasets distributed as IDX files,
            else None. Names end in ".gz"; the same names without ".gz" are accepted too.
        class_names: K names (the label id indexes them), or None when unknown.
    For the other sources (any TFDS name, folder:PATH, npz:PATH) see `keras_caps.data_sources`.
    """

    name: str
    image_shape: tuple
    num_classes: int
    splits: tuple = ("train", "test")
    idx_files: dict | None = None
    class_names: tuple | None = None


IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

SUPPORTED = {
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, idx_files=IDX_FILES),
    "fashion_mnist": DatasetInfo("fashion_mnist", (28, 28, 1), 10, idx_files=IDX_FILES),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10),
    "svhn_cropped": DatasetInfo("svhn_cropped", (32, 32, 3), 10, splits=("train", "test", "extra")),
}

DEFAULT_ROOT = "/usr/share/datasets"
SOURCES = ("auto", "idx", "tfds")
NORMALIZATIONS = ("unit", "symmetric")
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def _builtin(name):
    """The DatasetInfo of a built-in name; ValueError listing them for any other name."""
    if name not in SUPPORTED:
        raise ValueError(f"unknown dataset {name!r}; supported datasets: {sorted(SUPPORTED)}.")
    return SUPPORTED[name]


def info(name, image_size=None, channels=None, data_dir=None):
    """The DatasetInfo of any dataset spelling (see `keras_caps.data_sources`), with class names.

    `image_size` (H, W) and `channels` (1 or 3) give the shape after `load_arrays` transforms.
    """
    from keras_caps import data_sources

    if name in SUPPORTED:
        return data_sources.builtin_info(SUPPORTED[name], image_size, channels)
    return data_sources.describe(name, data_dir, image_size, channels)


# ----------------------------------------------------------------------------- splits


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """A parsed split: base name plus optional TFDS-style slice bounds (ints or percents)."""

    base: str
    start: int | None = None
    stop: int | None = None
    start_percent: bool = False
    stop_percent: bool = False

    @property
    def sliced(self):
        return self.start is not None or self.stop is not None

    def indices(self, n):
        """The Python slice this split selects from `n` examples."""

        def resolve(bound, percent):
            if bound is None or not percent:
                return bound
            return int(round(n * bound / 100.0))

        return slice(resolve(self.start, self.start_percent), resolve(self.stop, self.stop_percent))


_SPLIT_RE = re.compile(r"(\w+)(?:\[(?:(-?\d+)(%?))?:(?:(-?\d+)(%?))?\])?")


def parse_split(split, valid=("train", "test")):
    """Parses "train", "test", "train[:1000]", "train[1000:2000]", "test[:10%]", "train[-10%:]".

    Returns a SplitSpec; ValueError for any other form or a base name not in `valid`.
    """
    m = _SPLIT_RE.fullmatch(str(split).replace(" ", ""))
    if not m or m.group(1) not in valid:
        raise ValueError(
            f"bad split {split!r}: use one of {list(valid)}, optionally sliced like "
            "'train[:1000]', 'train[1000:2000]' or 'test[:10%]'."
        )
    base, start, start_pct, stop, stop_pct = m.groups()
    for bound, pct in ((start, start_pct), (stop, stop_pct)):
        if pct and bound is not None and abs(int(bound)) > 100:
            raise ValueError(f"bad split {split!r}: percentages must lie in [-100, 100].")
    return SplitSpec(
        base,
        None if start is None else int(start),
        None if stop is None else int(stop),
        bool(start_pct),
        bool(stop_pct),
    )


# ----------------------------------------------------------------------------- IDX


def _read_bytes(path):
    """The decompressed bytes of `path` (gzip when it ends in .gz); DataFormatError if corrupt."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(
            f"cannot read {path}: {type(err).__name__}: {err}. The file is corrupt or truncated; "
            "re-download it or reinstall the package that provides it (e.g. "
            "`apt-get install --reinstall dataset-fashion-mnist`)."
        ) from err


def read_idx(path):
    """Reads one unsigned-byte IDX file (gzipped or not).

    Returns:
        uint8 array of the shape the header declares: (N, H, W) for images, (N,) for labels.
    Raises:
        DataFormatError: unreadable/corrupt gzip, bad magic number, or a size that disagrees with
            the header.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise DataFormatError(
            f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex() or 'none'}, "
            "expected 00000801 or 00000803); is it the standard MNIST-format file? Re-download "
            "or reinstall it."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header; re-download or reinstall the file.")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataFormatError(
            f"{path}: header declares shape {dims} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes; the file is truncated or corrupt, re-download or "
            "reinstall it."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def idx_folders(name, data_dir=None):
    """Folders searched for IDX files of `name`, in order.

    With `data_dir`: data_dir itself, then data_dir/<name>, data_dir/<name with '-'>.
    Without: /usr/share/datasets/<name with '-'> (Debian's layout), /usr/share/datasets/<name>.
    """
    dashed = name.replace("_", "-")
    if data_dir:
        folders = [data_dir, os.path.join(data_dir, name), os.path.join(data_dir, dashed)]
    else:
        folders = [os.path.join(DEFAULT_ROOT, dashed), os.path.join(DEFAULT_ROOT, name)]
    return list(dict.fromkeys(folders))


def _find_file(folder, filename):
    """folder/filename, or the same name without ".gz"; None when neither exists."""
    candidates = [filename]
    if filename.endswith(".gz"):
        candidates.append(filename[: -len(".gz")])
    for candidate in candidates:
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def find_idx_files(name, split="train", data_dir=None):
    """(images path, labels path) of the first folder holding both files, or None."""
    spec = parse_split(split, _builtin(name).splits)
    image_file, label_file = _builtin(name).idx_files[spec.base]
    for folder in idx_folders(name, data_dir):
        image_path, label_path = _find_file(folder, image_file), _find_file(folder, label_file)
        if image_path and label_path:
            return image_path, label_path
    return None


def load_idx(name, split="train", data_dir=None):
    """Loads and validates a split from IDX files.

    Returns:
        images uint8 (N, H, W, 1), labels int64 (N,).
    Raises:
        DataSourceError: the dataset has no IDX form, or no folder holds the files.
        DataFormatError: corrupt files, count mismatch, wrong image shape, labels out of range.
    """
    ds = _builtin(name)
    if not ds.idx_files:
        raise DataSourceError(
            f"{name} is not distributed as IDX files; load it with source='tfds' (or 'auto')."
        )
    spec = parse_split(split, tuple(ds.idx_files))
    paths = find_idx_files(name, spec.base, data_dir)
    if paths is None:
        image_file, label_file = ds.idx_files[spec.base]
        raise DataSourceError(
            f"no IDX files {image_file} and {label_file} (or the same without .gz) for {name} in "
            f"{idx_folders(name, data_dir)}."
        )
    image_path, label_path = paths
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != ds.image_shape[:2]:
        raise DataFormatError(
            f"{image_path}: images of shape {images.shape[1:]}, but {name} images are "
            f"{ds.image_shape[:2]}; is this the right folder for {name}?"
        )
    if labels.ndim != 1:
        raise DataFormatError(
            f"{label_path} is not a label file: it holds an array of shape {labels.shape}."
        )
    if len(labels) != len(images):
        raise DataFormatError(
            f"count mismatch: {image_path} has {len(images)} images but {label_path} has "
            f"{len(labels)} labels; the files come from different releases or one is damaged."
        )
    if labels.size and labels.max() >= ds.num_classes:
        raise DataFormatError(
            f"{label_path}: label {int(labels.max())} out of range [0, {ds.num_classes}) for "
            f"{name}; is this the right folder for {name}?"
        )
    rows = spec.indices(len(images))
    return images[rows, :, :, None], labels[rows].astype(np.int64)  # (N, H, W) -> (N, H, W, 1)


# ----------------------------------------------------------------------------- TFDS


def tfds_data_dir(data_dir=None):
    """The TFDS data dir that `tfds.load` uses for `data_dir` (its default when None)."""
    if data_dir:
        return data_dir
    try:
        from tensorflow_datasets.core import constants

        return constants.get_default_data_dir()
    except Exception:  # noqa: BLE001 - only used in messages
        return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def load_tfds(name, split="train", data_dir=None, download=False):
    """Loads a split through TFDS (prepared data, or a download and prepare when `download`).

    Returns:
        images uint8 (N, H, W, C), labels int64 (N,).
    """
    import tensorflow_datasets as tfds

    _builtin(name)
    ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, download=download)
    # Batched conversion: batch_size=-1 aborts under tfds.testing.mock_data.
    chunks = list(tfds.as_numpy(ds.batch(4096)))
    if not chunks:
        raise DataSourceError(f"TFDS returned no examples for {name} split {split!r}.")
    images = np.concatenate([c[0] for c in chunks]).astype(np.uint8)  # (N, H, W, C)
    labels = np.concatenate([c[1] for c in chunks]).astype(np.int64)  # (N,)
    return images, labels


def _download_host_reachable(timeout=3.0):
    """False when TFDS's download host is plainly unreachable (offline), so that a download
    attempt does not spend minutes in retries. Behind a proxy the check is left to TFDS."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        socket.create_connection(_DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _tfds_split(split, max_examples):
    """Reads only the first `max_examples` through TFDS when the split is not sliced already."""
    if max_examples is not None and "[" not in split:
        return f"{split}[:{int(max_examples)}]"
    return split


def _first_line(err):
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}"


def _no_source_message(name, split, data_dir, source, attempts):
    ds = _builtin(name)
    looked = []
    if ds.idx_files and source in ("auto", "idx"):
        looked.append("IDX files in " + ", ".join(idx_folders(name, data_dir)))
    if source in ("auto", "tfds"):
        looked.append(f"TFDS data dir {tfds_data_dir(data_dir)}")
    lines = [f"could not load dataset {name!r} (split {split!r}, source={source!r})."]
    if looked:
        lines.append("Looked for: " + "; ".join(looked) + ".")
    if attempts:
        lines.append("Attempts: " + "; ".join(attempts) + ".")
    options = []
    if ds.idx_files:
        image_file, label_file = ds.idx_files["train"]
        options.append(
            f"pass --data_dir (data_dir=) a folder holding the IDX files ({image_file}, "
            f"{label_file}, {ds.idx_files['test'][0]}, {ds.idx_files['test'][1]})"
        )
    options.append(
        "on Debian/Ubuntu `apt-get install dataset-fashion-mnist` (real Fashion-MNIST in "
        f"{DEFAULT_ROOT}/fashion-mnist, for fashion_mnist)"
    )
    options.append(
        "let TFDS download and prepare it (needs internet; source='tfds' or 'auto'), or point "
        "--data_dir at a TFDS data dir where it is already prepared"
    )
    lines.append("Options: " + "; or ".join(f"({i + 1}) {o}" for i, o in enumerate(options)) + ".")
    return " ".join(lines)


# ----------------------------------------------------------------------------- loading


def load_arrays(name, split="train", data_dir=None, source="auto", max_examples=None,
                image_size=None, channels=None, test_fraction=None):
    """Loads a split as numpy arrays.

    Args:
        name: "mnist", "fashion_mnist", "cifar10" or "svhn_cropped"; or any other spelling of
            `keras_caps.data_sources` (a TFDS name, "folder:PATH", "npz:PATH"), which
            `data_sources.resolve` loads (`source` is then ignored).
        split: "train", "test" (svhn_cropped also "extra"), optionally sliced TFDS-style:
            "train[:1000]", "train[1000:2000]", "test[:10%]".
        data_dir: folder with IDX files, or a TFDS data dir. None: Debian's dataset folders for
            IDX and TFDS's default data dir.
        source: "auto" (IDX when the files exist, then prepared TFDS data, then a TFDS download),
            "idx" or "tfds" (prepared data, then a download).
        max_examples: keep only the first `max_examples` of the (sliced) split.
        image_size: None, or (H, W) (or "H,W" / H) to resize to.
        channels: None, 1 (grayscale) or 3 (RGB) to convert to.
        test_fraction: for sources without a test split (a folder without test/, a TFDS
            dataset without "test"): the seeded per-class fraction of train held out as "test"
            (default `data_sources.DEFAULT_TEST_FRACTION`).
    Returns:
        images uint8 (N, H, W, C), labels int64 (N,).
    Raises:
        ValueError: unknown dataset, source or split, or a bad max_examples.
        DataSourceError: no source could provide the data (the message names the options).
        DataFormatError: the files found are corrupt or do not match the dataset.
    """
    from keras_caps import data_sources

    if name not in SUPPORTED:
        if max_examples is not None and (isinstance(max_examples, bool) or not isinstance(
                max_examples, (int, np.integer)) or max_examples < 1):
            raise ValueError(
                f"max_examples must be a positive integer or None, got {max_examples!r}.")
        images, labels, _ = data_sources.resolve(
            name, split, data_dir, image_size, channels,
            data_sources.DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction,
            max_examples)
        return images, labels
    ds = _builtin(name)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}.")
    parse_split(split, ds.splits)
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, (int, np.integer))
        or max_examples < 1
    ):
        raise ValueError(f"max_examples must be a positive integer or None, got {max_examples!r}.")

    attempts = []
    arrays = None
    use_idx = source == "idx" or (
        source == "auto" and ds.idx_files and find_idx_files(name, split, data_dir) is not None
    )
    if use_idx:
        try:
            arrays = load_idx(name, split, data_dir)
        except DataSourceError as err:
            attempts.append(f"IDX: {err}")
            raise DataSourceError(
                _no_source_message(name, split, data_dir, source, attempts)
            ) from err
    elif source == "auto" and ds.idx_files:
        attempts.append(f"IDX: no files in {idx_folders(name, data_dir)}")

    if arrays is None:
        tfds_split = _tfds_split(split, max_examples)
        for download in (False, True):
            if download and not _download_host_reachable():
                attempts.append(f"TFDS download: {_DOWNLOAD_HOST[0]} unreachable (offline)")
                break
            try:
                arrays = load_tfds(name, tfds_split, data_dir, download=download)
                break
            except Exception as err:  # noqa: BLE001 - TFDS raises many types; all are reported
                kind = "download" if download else "prepared data"
                attempts.append(f"TFDS ({kind}): {_first_line(err)}")
        if arrays is None:
            raise DataSourceError(_no_source_message(name, split, data_dir, source, attempts))

    images, labels = arrays
    if images.shape[1:] != ds.image_shape:
        raise DataFormatError(
            f"{name} images have shape {images.shape[1:]}, expected {ds.image_shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= ds.num_classes):
        raise DataFormatError(
            f"{name} labels out of range [0, {ds.num_classes}): got "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    if max_examples is not None:
        images, labels = images[:max_examples], labels[:max_examples]
    return data_sources.transform(images, image_size, channels), labels


# ----------------------------------------------------------------------------- preprocessing


def _scale(x, mode):
    """float pixel values in [0, 255] -> [0, 1] ("unit") or [-1, 1] ("symmetric").

    Works on numpy arrays and tensors alike (the tf.data pipeline uses it too).
    """
    if mode == "unit":
        return x * (1.0 / 255.0)
    if mode == "symmetric":
        return x * (2.0 / 255.0) - 1.0
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {mode!r}.")


def normalize(images, mode="unit"):
    """Pixel values in [0, 255] (uint8 or float) -> float32 in [0, 1] or [-1, 1].

    Float images already in [0, 1] are not divided again (they are returned as float32, mapped
    to [-1, 1] for "symmetric"); non-finite or negative values, or values above 255, are an
    InputDataError (keras_caps.validation).

    Args:
        images: (N, H, W, C) (any shape works).
        mode: "unit" -> [0, 1]; "symmetric" -> [-1, 1].
    Returns:
        float32 array of the same shape.
    """
    images = np.asarray(images)
    if validation.is_unit_float(images):  # already scaled: never divided by 255 twice
        x = images.astype(np.float32)
        return x if mode == "unit" else _scale(x * 255.0, mode).astype(np.float32)
    validation.check_pixel_values(images)
    return _scale(np.asarray(images, np.float32), mode).astype(np.float32)


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


# ----------------------------------------------------------------------------- augmentation


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


# ----------------------------------------------------------------------------- tf.data


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
            x = _scale(x, normalization)
        return x, tf.one_hot(y, num_classes, dtype=tf.float32)  # (B,) -> (B, K)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def load(name, split="train", batch_size=32, data_dir=None, source="auto", normalization="unit",
         max_examples=None, shuffle=None, augment_shift=0, seed=0, balance=None, denoise=None,
         drop_remainder=False, image_size=None, channels=None, test_fraction=None):
    """load_arrays, then optional denoising and class balancing, then make_dataset.

    Args:
        name, split, data_dir, source, max_examples, image_size, channels, test_fraction: as
            in `load_arrays` (any dataset spelling).
        batch_size, normalization, augment_shift, seed, drop_remainder: as in `make_dataset`.
        shuffle: None shuffles training splits only.
        balance: None, "oversample" or "undersample" (see `balance_classes`).
        denoise: None, "median", "gaussian", or a dict of `denoise` keyword arguments.
    Returns:
        tf.data.Dataset of (x float32 (B, H, W, C), y one-hot float32 (B, K)).
    """
    ds_info = info(name, image_size, channels, data_dir)
    images, labels = load_arrays(name, split, data_dir, source, max_examples, image_size,
                                 channels, test_fraction)
    if denoise:
        options = dict(denoise) if isinstance(denoise, dict) else {"method": denoise}
        images = _denoise(images, **options)
    if balance:
        images, labels = balance_classes(images, labels, balance, seed)
    if shuffle is None:
        shuffle = parse_split(split, ds_info.splits).base == "train"
    return make_dataset(images, labels, batch_size, shuffle, augment_shift, seed,
                        ds_info.num_classes, drop_remainder, normalization)


_denoise = denoise  # `load`'s `denoise` argument shadows the function inside `load`
