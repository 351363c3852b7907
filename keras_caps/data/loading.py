"""Loading a dataset by name: `load_arrays` (numpy arrays from any source) and `load`
(arrays -> preprocessing -> tf.data pipeline); `info` describes any dataset spelling."""

from __future__ import annotations

import numpy as np

from keras_caps import data_sources
from keras_caps.data import preprocessing
from keras_caps.data.catalog import (
    DEFAULT_ROOT,
    SOURCES,
    SUPPORTED,
    DataFormatError,
    DataSourceError,
    _builtin,
)
from keras_caps.data.idx import find_idx_files, idx_folders, load_idx
from keras_caps.data.pipeline import make_dataset
from keras_caps.data.splits import parse_split
from keras_caps.data.tfds import (
    _DOWNLOAD_HOST,
    _download_host_reachable,
    _first_line,
    _tfds_split,
    load_tfds,
    tfds_data_dir,
)


def info(name, image_size=None, channels=None, data_dir=None):
    """The DatasetInfo of any dataset spelling (see `keras_caps.data_sources`), with class names.

    `image_size` (H, W) and `channels` (1 or 3) give the shape after `load_arrays` transforms.
    """
    if name in SUPPORTED:
        return data_sources.builtin_info(SUPPORTED[name], image_size, channels)
    return data_sources.describe(name, data_dir, image_size, channels)


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
        images = preprocessing.denoise(images, **options)
    if balance:
        images, labels = preprocessing.balance_classes(images, labels, balance, seed)
    if shuffle is None:
        shuffle = parse_split(split, ds_info.splits).base == "train"
    return make_dataset(images, labels, batch_size, shuffle, augment_shift, seed,
                        ds_info.num_classes, drop_remainder, normalization)

