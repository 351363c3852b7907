"""Datasets: TFDS or local IDX files, preprocessing (paper 000), augmentation, tf.data pipelines.

One module per concept; every name is importable from `keras_caps.data`:
    catalog.py        the built-in datasets (`DatasetInfo`, `SUPPORTED`) and the data errors
    splits.py         split names with TFDS-style slices (`parse_split`)
    idx.py            IDX files (`read_idx`, `load_idx`)
    tfds.py           TensorFlow Datasets (`load_tfds`)
    loading.py        `info`, `load_arrays` (any source, see also `keras_caps.data_sources`), `load`
    images.py         pixel scaling (`normalize`, `unit_images`) and batching (`image_batches`)
    preprocessing.py  `balance_classes`, `denoise`, `remove_constant_features`
    augmentation.py   `random_shift`
    pipeline.py       `make_dataset` (tf.data)

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

from keras_caps.data.augmentation import random_shift
from keras_caps.data.catalog import (
    DEFAULT_ROOT,
    IDX_FILES,
    SOURCES,
    SUPPORTED,
    DataFormatError,
    DatasetInfo,
    DataSourceError,
)
from keras_caps.data.idx import find_idx_files, idx_folders, load_idx, read_idx
from keras_caps.data.images import (
    NORMALIZATIONS,
    image_batches,
    normalize,
    scale_pixels,
    unit_images,
)
from keras_caps.data.loading import info, load, load_arrays
from keras_caps.data.pipeline import make_dataset
from keras_caps.data.preprocessing import balance_classes, denoise, remove_constant_features
from keras_caps.data.splits import SplitSpec, parse_split
from keras_caps.data.tfds import load_tfds, tfds_data_dir

__all__ = [
    "DEFAULT_ROOT",
    "IDX_FILES",
    "NORMALIZATIONS",
    "SOURCES",
    "SUPPORTED",
    "DataFormatError",
    "DataSourceError",
    "DatasetInfo",
    "SplitSpec",
    "balance_classes",
    "denoise",
    "find_idx_files",
    "idx_folders",
    "image_batches",
    "info",
    "load",
    "load_arrays",
    "load_idx",
    "load_tfds",
    "make_dataset",
    "normalize",
    "parse_split",
    "random_shift",
    "read_idx",
    "remove_constant_features",
    "scale_pixels",
    "tfds_data_dir",
    "unit_images",
]
