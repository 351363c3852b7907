"""TensorFlow Datasets: loading a built-in split, its data dir, whether a download can work."""

from __future__ import annotations

import os
import socket

import numpy as np

from keras_caps.data.catalog import DataSourceError, _builtin

_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


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
