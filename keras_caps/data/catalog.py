"""The built-in datasets: their facts (`DatasetInfo`), IDX file names and the data errors."""

from __future__ import annotations

import dataclasses

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


def _builtin(name):
    """The DatasetInfo of a built-in name; ValueError listing them for any other name."""
    if name not in SUPPORTED:
        raise ValueError(f"unknown dataset {name!r}; supported datasets: {sorted(SUPPORTED)}.")
    return SUPPORTED[name]
