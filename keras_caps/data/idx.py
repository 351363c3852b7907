"""IDX files (the MNIST format, gzipped or not): reading, finding and loading a split."""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from keras_caps.data.catalog import DEFAULT_ROOT, DataFormatError, DataSourceError, _builtin
from keras_caps.data.splits import parse_split


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
