"""Your own data: one dataset spelling for every binary, the pipeline and the export.

Spellings (`dataset=` here, `--dataset=` on the command line):
    mnist, fashion_mnist, cifar10, svhn_cropped   the built-in names (IDX files or TFDS, keras_caps.data)
    NAME or tfds:NAME                              any TFDS image-classification dataset: one
                                                   image feature and one ClassLabel feature; shape,
                                                   class count and class names from the builder's
                                                   info; prepared data (offline) or a download
    folder:PATH                                    class subfolders of PNG / JPEG / BMP / GIF files;
                                                   PATH/train/<class>/ and PATH/test/<class>/, or
                                                   PATH/<class>/ with a seeded held-out
                                                   `test_fraction` as the test split
    npz:PATH                                       a NumPy .npz with x_train, y_train, x_test,
                                                   y_test (uint8 images, or float in [0, 1]);
                                                   integer labels; optional class_names

Every source gives uint8 images (N, H, W, C) and int64 labels (N,) (float .npz images become
round(255 x)), split names "train" / "test" with TFDS-style slices ("train[:100]", "test[:10%]"),
and a `data.DatasetInfo` with `class_names`. `image_size` (H, W) resizes (bilinear, antialiased),
`channels` (1 or 3) converts gray <-> RGB; both apply to the built-in names too.

Memory: folder, npz and TFDS sources are read into memory as uint8 arrays (the binaries train on
arrays): N x H x W x C bytes, e.g. 50,000 RGB images of 64 x 64 need 614 MB. For a folder that
does not fit, `folder_split` keeps the file list only (a `StreamedSplit`) and decodes the images
per batch through tf.data; `train_capsnet --stream` trains and evaluates on it.

Bad input raises `data.DataSourceError` (nothing to read: a missing or empty folder, an unknown
TFDS name, a dataset without an image or label feature) or `data.DataFormatError` (a corrupt
image, a class folder without images, one class only, mixed image sizes without `image_size`,
npz keys or lengths, labels out of range or not integers); both are ValueErrors whose message
names the file or folder and what to do.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from keras_caps.data.catalog import DataFormatError, DatasetInfo, DataSourceError
from keras_caps.data.images import scale_pixels
from keras_caps.data.splits import parse_split
from keras_caps.data.tfds import (
    _DOWNLOAD_HOST,
    _download_host_reachable,
    _first_line,
    tfds_data_dir,
)

BUILTIN = ("mnist", "fashion_mnist", "cifar10", "svhn_cropped")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.2
SPLIT_SEED = 0  # the held-out split of a folder (or a TFDS dataset without "test") never moves

CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "svhn_cropped": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
}

_HELP = ("use one of the supported built-in names {builtin}, any TFDS image-classification dataset name "
         "(or tfds:NAME), folder:PATH (one subfolder of images per class) or npz:PATH (x_train, "
         "y_train, x_test, y_test)").format(builtin=", ".join(BUILTIN))


@dataclasses.dataclass(frozen=True)
class Source:
    """A parsed dataset spelling: kind "builtin" | "tfds" | "folder" | "npz" and its target."""

    kind: str
    target: str

    @property
    def spelling(self):
        return self.target if self.kind in ("builtin", "tfds") else f"{self.kind}:{self.target}"


def parse(dataset):
    """'mnist' | 'NAME' | 'tfds:NAME' | 'folder:PATH' | 'npz:PATH' -> Source."""
    text = str(dataset or "").strip()
    kind, sep, target = text.partition(":")
    if sep and kind in ("folder", "npz", "tfds"):
        if not target.strip():
            raise DataSourceError(f"dataset {text!r} names no {kind}; {_HELP}.")
        target = target.strip()
        if kind in ("folder", "npz"):
            target = os.path.expanduser(target)
        return Source(kind, target)
    if not text or sep or "/" in text or os.sep in text:
        raise DataSourceError(f"bad dataset {text!r}: {_HELP}.")
    return Source("builtin" if text in BUILTIN else "tfds", text)


def is_builtin(dataset):
    """True for the four names keras_caps.data loads itself (IDX files or TFDS)."""
    return str(dataset) in BUILTIN


def parse_image_size(value):
    """'24' | '24,32' | 24 | (24, 32) | None -> (H, W) or None."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
    elif isinstance(value, (int, np.integer)):
        parts = [value]
    else:
        parts = list(value)
    try:
        size = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image size must be H or H,W with positive integers (e.g. 24 or 32,48), "
                         f"got {value!r}.")
    return size


def check_channels(channels):
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    return channels


def check_test_fraction(test_fraction):
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1): the fraction of each class held out "
                         f"as the test split when a dataset has none, got {test_fraction!r}.")
    return float(test_fraction)


# ----------------------------------------------------------------------------- transforms


def transform(images, image_size=None, channels=None, name="images"):
    """Resizes to `image_size` (H, W) and converts to `channels` (1 or 3).

    Args:
        images: uint8 (N, H, W, C), C in {1, 3}.
    Returns:
        uint8 (N, H', W', C'); the input itself when nothing changes.
    """
    import tensorflow as tf

    image_size, channels = parse_image_size(image_size), check_channels(channels)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
    resize = image_size is not None and tuple(images.shape[1:3]) != image_size
    convert = channels is not None and images.shape[-1] != channels
    if not (resize or convert):
        return images
    out = []
    for start in range(0, len(images), 1024):  # bounded float memory
        x = tf.convert_to_tensor(images[start : start + 1024])
        x = _convert_channels(x, channels) if convert else x
        if resize:
            x = tf.image.resize(tf.cast(x, tf.float32), image_size, antialias=True)
            x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
        out.append(x.numpy())
    if not out:
        return np.zeros((0, *(image_size or images.shape[1:3]), channels or images.shape[-1]),
                        np.uint8)
    return np.concatenate(out)


def _convert_channels(x, channels):
    """uint8 tensor (..., C) -> (..., channels); C in {1, 2, 3, 4} (alpha is dropped)."""
    import tensorflow as tf

    c = x.shape[-1]
    if c in (2, 4):  # gray + alpha, RGB + alpha
        x, c = x[..., : c - 1], c - 1
    if channels is None or c == channels:
        return x
    if channels == 1:
        return tf.image.rgb_to_grayscale(x)
    return tf.image.grayscale_to_rgb(x)


def _check_labels(labels, num_classes, where, what="labels"):
    """int64 (N,) labels in [0, num_classes); DataFormatError naming `where` otherwise."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataFormatError(
            f"{where}: {what} must be a 1-D array of integer class ids (N,), got shape "
            f"{labels.shape}; for one-hot labels save labels.argmax(-1)."
        )
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)):
        if not np.issubdtype(labels.dtype, np.floating) or (
                labels.size and not np.all(np.isfinite(labels) & (labels == np.round(labels)))):
            raise DataFormatError(
                f"{where}: {what} must be integer class ids, got dtype {labels.dtype}"
                + (f" with values like {labels.flat[0]!r}" if labels.size else "")
                + "; save them as an integer array (e.g. labels.astype('int64'))."
            )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or (num_classes and labels.max() >= num_classes)):
        raise DataFormatError(
            f"{where}: {what} out of range: got [{labels.min()}, {labels.max()}], expected "
            f"[0, {num_classes}) (the class count"
            + (" from class_names" if num_classes else "") + "); fix the labels or class_names."
        )
    return labels


def _check_classes(num_classes, where):
    if num_classes < 2:
        raise DataFormatError(
            f"{where}: {num_classes} class only; a classifier needs at least 2 classes (add "
            "another class folder, or labels of another class)."
        )


def _take(images, labels, split, max_examples):
    rows = parse_split(split, SPLITS).indices(len(images))
    images, labels = images[rows], labels[rows]
    if max_examples is not None:
        images, labels = images[:max_examples], labels[:max_examples]
    return images, labels


def holdout(labels, test_fraction=DEFAULT_TEST_FRACTION, seed=SPLIT_SEED):
    """(train indices, test indices): a seeded, per-class (stratified) held-out fraction.

    Each class with n >= 2 examples gives round(n x test_fraction) (at least 1, at most n - 1)
    to the test split. Both index arrays are shuffled (seeded), so "train[:100]" mixes classes.
    """
    test_fraction = check_test_fraction(test_fraction)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(int(round(len(idx) * test_fraction)), 1), len(idx) - 1) if len(idx) > 1 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    def cat(parts):
        return (rng.permutation(np.concatenate(parts)) if parts
               else np.zeros((0,), np.int64))
    return cat(train), cat(test)


# ----------------------------------------------------------------------------- folders


def _folder_layout(path):
    """{split: folder or None} and whether the test split is held out of train."""
    if not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.exists(path) else "does not exist"
        raise DataSourceError(
            f"dataset folder {path} {what}; pass folder:PATH with one subfolder of images per "
            "class (PATH/<class>/*.png), or PATH/train/<class>/ and PATH/test/<class>/."
        )
    train = os.path.join(path, "train")
    if os.path.isdir(train):
        test = os.path.join(path, "test")
        return {"train": train, "test": test if os.path.isdir(test) else None}
    return {"train": path, "test": None}


def _is_image(name):
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _class_folders(folder):
    """Sorted class subfolder names of `folder`; DataSourceError when there are none."""
    names = sorted(d for d in os.listdir(folder)
                   if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))
    if not names:
        loose = [f for f in os.listdir(folder) if _is_image(f)]
        hint = (f" ({len(loose)} image files lie directly in it: move them into one subfolder "
                "per class)" if loose else "")
        raise DataSourceError(
            f"dataset folder {folder} has no class subfolders{hint}; lay it out as "
            f"{folder}/<class name>/<image>.png (PNG, JPEG, BMP or GIF), one subfolder per class."
        )
    return names


def _list_images(folder, class_names):
    """(file paths, labels) of `folder`/<class>/*, sorted; every class folder must hold images."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        sub = os.path.join(folder, name)
        if not os.path.isdir(sub):
            continue  # a test folder may lack a class
        files = sorted(f for f in os.listdir(sub) if _is_image(f)
                       and os.path.isfile(os.path.join(sub, f)))
        if not files:
            raise DataFormatError(
                f"class folder {sub} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add "
                "images or remove the folder."
            )
        paths += [os.path.join(sub, f) for f in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, np.int64)


def folder_classes(path):
    """The class names of folder dataset `path` (its training class subfolders, sorted)."""
    layout = _folder_layout(path)
    names = _class_folders(layout["train"])
    _check_classes(len(names), layout["train"])
    if layout["test"]:
        extra = sorted(set(_class_folders(layout["test"])) - set(names))
        if extra:
            raise DataFormatError(
                f"test folder {layout['test']} has classes {extra} that {layout['train']} does "
                "not have; every test class needs a training folder of the same name."
            )
    return tuple(names)


def _op_error_text(err):
    """The reason of a TensorFlow op error without its op and device decoration:
    "{{function_node __wrapped__DecodeImage_device_...}} Input is empty. [Op:DecodeImage]"
    -> "Input is empty"."""
    import re

    lines = str(getattr(err, "message", err)).strip().splitlines()
    text = re.sub(r"\{\{[^}]*\}\}", "", lines[0] if lines else "")
    text = re.sub(r"\[Op:[^\]]*\].*$", "", text).strip().rstrip(".")
    return text[:200] or type(err).__name__


def _decode(path, channels=None):
    """uint8 (H, W, C) of one image file, C in {1, 3} (alpha dropped); DataFormatError if corrupt."""
    import tensorflow as tf

    try:
        raw = tf.io.read_file(path)
        image = tf.io.decode_image(raw, expand_animations=False)  # GIF: the first frame
    except (tf.errors.OpError, ValueError) as err:
        raise DataFormatError(
            f"cannot read image {path}: {_op_error_text(err)}. The file is corrupt or not a "
            "PNG / JPEG / BMP / GIF; replace or delete it."
        ) from err
    return _convert_channels(image, channels).numpy()


def _folder_files(path, split, test_fraction):
    """(paths, labels, class names) of one split of folder dataset `path`."""
    base = parse_split(split, SPLITS).base
    layout = _folder_layout(path)
    class_names = folder_classes(path)
    paths, labels = _list_images(layout["train"], class_names)
    if base == "test" and layout["test"]:
        paths, labels = _list_images(layout["test"], class_names)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(paths))
    elif layout["test"]:
        order = np.random.default_rng(SPLIT_SEED).permutation(len(paths))
    else:
        train, test = holdout(labels, test_fraction)
        order = test if base == "test" else train
    return [paths[i] for i in order], labels[order], class_names


def load_folder(path, split="train", image_size=None, channels=None,
                test_fraction=DEFAULT_TEST_FRACTION, max_examples=None):
    """Reads one split of a folder dataset into memory.

    Returns:
        images uint8 (N, H, W, C), labels int64 (N,), class names (K,).
    """
    image_size, channels = parse_image_size(image_size), check_channels(channels)
    paths, labels, class_names = _folder_files(path, split, test_fraction)
    rows = parse_split(split, SPLITS).indices(len(paths))
    paths, labels = paths[rows], labels[rows]
    if max_examples is not None:
        paths, labels = paths[:max_examples], labels[:max_examples]
    images, first = [], {}
    decoded = [_decode(p, channels) for p in paths]
    if channels is None and len({d.shape[-1] for d in decoded}) > 1:
        decoded = [_convert_channels(d, 3).numpy() for d in decoded]  # gray and RGB: all RGB
    for p, image in zip(paths, decoded):
        if image_size is None:
            first.setdefault(image.shape, p)
            if len(first) > 1:
                (s1, p1), (s2, p2) = list(first.items())[:2]
                raise DataFormatError(
                    f"images of different sizes in {path}: {p1} is {s1[0]}x{s1[1]} but {p2} is "
                    f"{s2[0]}x{s2[1]}; pass --image_size=H,W (image_size=) to resize them all."
                )
        else:
            image = transform(image[None], image_size)[0]
        images.append(image)
    if images:
        images = np.stack(images)
    else:
        shape = (*(image_size or (0, 0)), channels or 1)
        images = np.zeros((0, *shape), np.uint8)
    return images, labels, class_names


@dataclasses.dataclass(frozen=True)
class StreamedSplit:
    """One split of a folder dataset that stays on disk: its file list, decoded per batch.

    What a binary trains on with `--stream` instead of in-memory arrays (train_capsnet's
    `keras_caps.training.fit_resumable` accepts it as train_data / val_data). Made by
    `folder_split`.

    Attributes:
        paths: (N,) image files, in the split's fixed (seeded) order.
        labels: int64 (N,) class ids.
        class_names: (K,) the folder's class names (class i = labels == i).
        image_shape: (H, W, C) every image is decoded to (resized when `resize`).
        resize: True when `image_size` was given (else every image must have that size; a
            different one fails as it streams, naming the problem).
        source: the folder (for messages and the run's data fingerprint).

    Example:
        >>> split = folder_split("my_images", "train", image_size=32, channels=1)  # doctest: +SKIP
        >>> ds = split.dataset(batch_size=64, shuffle=True, augment_shift=2)  # doctest: +SKIP
        >>> images, labels = split.arrays(256)  # the first 256 in memory  # doctest: +SKIP
    """

    paths: tuple
    labels: np.ndarray
    class_names: tuple
    image_shape: tuple
    resize: bool
    source: str

    def __len__(self):
        return len(self.paths)

    @property
    def num_classes(self):
        return len(self.class_names)

    def take(self, rows):
        """The split restricted to `rows` (a slice or index array), e.g. a held-out tail."""
        paths = np.asarray(self.paths, dtype=object)[rows]
        return dataclasses.replace(self, paths=tuple(paths.tolist()), labels=self.labels[rows])

    def _read(self, path):
        import tensorflow as tf

        # 3 channels decode every format (GIF has no 1-channel decode); gray from RGB after
        x = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        x = tf.image.rgb_to_grayscale(x) if self.image_shape[-1] == 1 else x
        x = tf.cast(x, tf.float32)
        if self.resize:
            return tf.round(tf.image.resize(x, self.image_shape[:2], antialias=True))
        return tf.ensure_shape(x, self.image_shape)

    def dataset(self, batch_size, shuffle=False, augment_shift=0, seed=0, num_classes=None,
                normalization="unit"):
        """tf.data of (x float32 (B, H, W, C), y one-hot float32 (B, K)), as
        `keras_caps.data.make_dataset` makes from arrays: seeded shuffling, shifts before
        scaling (black padding), pixels scaled by `normalization`."""
        import tensorflow as tf

        from keras_caps.data.augmentation import random_shift

        k = int(num_classes or self.num_classes)
        ds = tf.data.Dataset.from_tensor_slices((list(self.paths), self.labels))
        if shuffle:
            ds = ds.shuffle(max(len(self), 1), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda p, y: (self._read(p), y), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(int(batch_size))
        if augment_shift:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda xy, s: (random_shift(xy[0], augment_shift, seed=s), xy[1]),
                num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.map(lambda x, y: (scale_pixels(x, normalization), tf.one_hot(y, k)),
                    num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def arrays(self, max_examples=None):
        """(uint8 images (n, H, W, C), int64 labels (n,)) of the first `max_examples` (all:
        None) in memory, e.g. for the capsule-length init or int8 calibration."""
        n = len(self) if max_examples is None else min(int(max_examples), len(self))
        with streamed_errors(self):
            images = [self._read(p).numpy().astype(np.uint8) for p in self.paths[:n]]
        images = np.stack(images) if images else np.zeros((0, *self.image_shape), np.uint8)
        return images, self.labels[:n]

    def find_bad_image(self):
        """The DataFormatError of the first file that does not decode to `image_shape` (a
        corrupt file, or another size without `resize`), or None. Decodes file by file: what
        a failed streamed read calls to name the culprit."""
        for p in self.paths:
            try:
                image = _decode(p, self.image_shape[-1])
            except DataFormatError as err:
                return err
            if not self.resize and tuple(image.shape) != tuple(self.image_shape):
                h, w = self.image_shape[:2]
                return DataFormatError(
                    f"image {p} is {image.shape[0]}x{image.shape[1]} but the other images of "
                    f"{self.source} are {h}x{w}; pass --image_size=H,W (image_size=) to resize "
                    "them all.")
        return None

    def fingerprint(self):
        """A cheap identity of the split (file names, sizes of a sample, labels, shape)."""
        import hashlib

        digest = hashlib.sha1()
        step = max(1, len(self) // 64)
        for p in self.paths[::step]:
            digest.update(f"{os.path.relpath(p, self.source)}:{os.path.getsize(p)}".encode())
        digest.update(self.labels.astype(np.int64).tobytes())
        return {"streamed": self.source, "examples": len(self),
                "image_shape": list(self.image_shape), "sha1": digest.hexdigest()}


def folder_split(path, split="train", image_size=None, channels=None,
                 test_fraction=DEFAULT_TEST_FRACTION, max_examples=None):
    """A `StreamedSplit` of folder dataset `path`: the same images, order and labels as
    `load_folder(path, split, ...)`, read from disk as they are needed.

    Only the first image is decoded here (for the shape and channel count when `image_size`
    / `channels` are not given); a corrupt or differently sized file fails as it streams,
    with its path in the message.
    """
    image_size, channels = parse_image_size(image_size), check_channels(channels)
    paths, labels, class_names = _folder_files(path, split, test_fraction)
    rows = parse_split(split, SPLITS).indices(len(paths))
    paths, labels = list(np.asarray(paths, dtype=object)[rows]), labels[rows]
    if max_examples is not None:
        paths, labels = paths[:max_examples], labels[:max_examples]
    if not paths:
        raise DataSourceError(f"split {split!r} of {path} has no images.")
    first = _decode(paths[0], channels)
    shape = (*(image_size or first.shape[:2]), channels or first.shape[-1])
    return StreamedSplit(tuple(paths), np.asarray(labels, np.int64), tuple(class_names),
                         tuple(int(d) for d in shape), image_size is not None,
                         os.path.abspath(path))


def streamed_errors(*splits):
    """A context manager for consuming streamed splits: a TensorFlow read or decode failure
    inside tf.data becomes the DataFormatError that names the bad file (found by
    `StreamedSplit.find_bad_image`); other errors pass through unchanged."""
    import contextlib

    import tensorflow as tf

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except tf.errors.OpError as err:
            for split in splits:
                if isinstance(split, StreamedSplit):
                    bad = split.find_bad_image()
                    if bad is not None:
                        raise bad from err
            raise

    return guard()


def folder_dataset(path, split="train", batch_size=32, image_size=None, channels=None,
                   test_fraction=DEFAULT_TEST_FRACTION, shuffle=None, seed=0,
                   normalization="unit", augment_shift=0):
    """The same split streamed from disk through tf.data (for folders too large for memory):
    `folder_split(...).dataset(...)`, shuffled by default for the "train" split.

    Returns:
        tf.data.Dataset of (x float32 (B, H, W, C), y one-hot float32 (B, K)).
    """
    split_ = folder_split(path, split, image_size, channels, test_fraction)
    if shuffle is None:
        shuffle = parse_split(split, SPLITS).base == "train"
    return split_.dataset(batch_size, shuffle=shuffle, augment_shift=augment_shift, seed=seed,
                          normalization=normalization)


# ----------------------------------------------------------------------------- npz


def _npz(path):
    if not os.path.isfile(path):
        raise DataSourceError(
            f"npz file {path} does not exist; pass npz:PATH to a NumPy .npz holding "
            f"{', '.join(NPZ_KEYS)} (np.savez(PATH, x_train=..., ...))."
        )
    try:
        f = np.load(path, allow_pickle=False)
        keys = set(f.files)
    except Exception as err:  # noqa: BLE001 - zipfile / pickle / OS errors alike
        raise DataFormatError(f"cannot read {path} as a NumPy .npz: {type(err).__name__}: "
                              f"{err}; write it with np.savez.") from err
    missing = [k for k in NPZ_KEYS if k not in keys]
    if missing:
        raise DataFormatError(
            f"{path} lacks the keys {missing} (it has {sorted(keys)}); save it with "
            "np.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...[, class_names=...])."
        )
    return f


def _npz_class_names(f, path):
    labels = [np.asarray(f["y_train"]), np.asarray(f["y_test"])]
    if "class_names" in f.files:
        names = tuple(str(n) for n in np.asarray(f["class_names"]).reshape(-1))
        if len(set(names)) != len(names):
            raise DataFormatError(f"{path}: class_names {names} are not unique.")
    else:
        top = [int(np.max(y)) for y in labels if y.size and np.issubdtype(y.dtype, np.number)]
        names = tuple(str(i) for i in range(max(top, default=-1) + 1))
    return names


def _npz_images(x, path, key):
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]  # (N, H, W) -> (N, H, W, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataFormatError(
            f"{path}: {key} must be images (N, H, W) or (N, H, W, C) with C = 1 or 3, got shape "
            f"{x.shape}."
        )
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0):
            raise DataFormatError(
                f"{path}: float {key} must lie in [0, 1], got [{np.nanmin(x)}, {np.nanmax(x)}]; "
                "divide 0..255 images by 255 or save them as uint8."
            )
        return np.round(x * 255.0).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer) and x.size and x.min() >= 0 and x.max() <= 255:
        return x.astype(np.uint8)
    raise DataFormatError(f"{path}: {key} has dtype {x.dtype}; save uint8 images (0..255) or "
                          "float images in [0, 1].")


def load_npz(path, split="train", image_size=None, channels=None, max_examples=None):
    """Reads one split of an .npz dataset: images uint8 (N, H, W, C), labels int64, class names."""
    base = parse_split(split, SPLITS).base
    f = _npz(path)
    class_names = _npz_class_names(f, path)
    _check_classes(len(class_names), path)
    xs, ys = {}, {}
    for s in SPLITS:  # both splits checked, so train and test never disagree silently
        x, y = f[f"x_{s}"], f[f"y_{s}"]
        if len(x) != len(y):
            raise DataFormatError(
                f"{path}: x_{s} has {len(x)} images but y_{s} has {len(y)} labels; save one "
                "label per image."
            )
        ys[s] = _check_labels(y, len(class_names), path, f"y_{s}")
        xs[s] = x
    shape_train = np.asarray(xs["train"]).shape[1:3]
    shape_test = np.asarray(xs["test"]).shape[1:3]
    if image_size is None and shape_train != shape_test and len(xs["test"]):
        raise DataFormatError(
            f"{path}: x_train images are {shape_train} but x_test images are {shape_test}; pass "
            "--image_size=H,W (image_size=) to resize both."
        )
    images, labels = _take(_npz_images(xs[base], path, f"x_{base}"), ys[base], split,
                           max_examples)
    return transform(images, image_size, channels), labels, class_names


# ----------------------------------------------------------------------------- TFDS


def _tfds_builder(name, data_dir=None):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # noqa: BLE001 - DatasetNotFoundError and friends
        first = str(err).strip().splitlines()
        reason = (first[0][:200] if first else type(err).__name__).rstrip(".")
        raise DataSourceError(
            f"unknown dataset {name!r}: TFDS says {reason}. "
            f"{_HELP[0].upper() + _HELP[1:]}."
        ) from err


def tfds_features(builder):
    """(image key, label key) of a TFDS builder; DataSourceError if it has no such features."""
    import tensorflow_datasets as tfds

    name = builder.info.name
    features = builder.info.features
    items = dict(features.items()) if hasattr(features, "items") else {}
    images = [k for k, v in items.items() if isinstance(v, tfds.features.Image)]
    labels = [k for k, v in items.items() if isinstance(v, tfds.features.ClassLabel)]
    keys = builder.info.supervised_keys
    if isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        if keys[0] in images and keys[1] in labels:
            return keys
    for kind, found in (("image feature (tfds.features.Image)", images),
                        ("class label feature (tfds.features.ClassLabel)", labels)):
        if not found:
            raise DataSourceError(
                f"TFDS dataset {name!r} has no {kind} (its features: "
                f"{sorted(items)}); only image-classification datasets can be used, or convert "
                "it to folder:PATH or npz:PATH."
            )
    preferred = [k for k in images if k == "image"] or images
    preferred_label = [k for k in labels if k == "label"] or labels
    return preferred[0], preferred_label[0]


def tfds_info(name, data_dir=None):
    """(builder, image key, label key, feature shape (H, W, C) with None for varying sizes,
    class names)."""
    builder = _tfds_builder(name, data_dir)
    image_key, label_key = tfds_features(builder)
    shape = tuple(builder.info.features[image_key].shape)
    names = tuple(builder.info.features[label_key].names)
    _check_classes(len(names), f"TFDS dataset {name!r}")
    return builder, image_key, label_key, shape, names


def load_tfds(name, split="train", data_dir=None, image_size=None, channels=None,
              test_fraction=DEFAULT_TEST_FRACTION, max_examples=None):
    """Reads one split of any TFDS image-classification dataset (prepared data, else a download).

    A dataset without a "test" split holds a seeded per-class fraction of "train" out instead.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    image_size, channels = parse_image_size(image_size), check_channels(channels)
    spec = parse_split(split, SPLITS)
    builder, image_key, label_key, shape, names = tfds_info(name, data_dir)
    if image_size is None and None in shape[:2]:
        raise DataFormatError(
            f"TFDS dataset {name!r} has images of varying size {shape}; pass --image_size=H,W "
            "(image_size=) to resize them."
        )
    known = set(builder.info.splits or ())
    held_out = bool(known) and "test" not in known
    tfds_split = "train" if held_out else split
    if not held_out and max_examples is not None and "[" not in split:
        tfds_split = f"{split}[:{int(max_examples)}]"
    c = channels or (shape[-1] if shape[-1] in (1, 3) else None)

    def prepare(example):
        x = example[image_key]
        x = _convert_channels(x, c)
        if image_size is not None:
            x = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
                tf.cast(x, tf.float32), image_size, antialias=True)), 0, 255), tf.uint8)
        return x, example[label_key]

    attempts = []
    chunks = None  # stays None when every attempt fails, the offline break included
    for download in (False, True):
        if download and not _download_host_reachable():
            attempts.append(f"TFDS download: {_DOWNLOAD_HOST[0]} unreachable (offline)")
            break
        try:
            ds = tfds.load(name, split=tfds_split, data_dir=data_dir, download=download)
            chunks = list(tfds.as_numpy(ds.map(prepare).batch(1024)))
            break
        except Exception as err:  # noqa: BLE001 - TFDS raises many types; all are reported
            attempts.append(f"TFDS ({'download' if download else 'prepared data'}): "
                            f"{_first_line(err)}")
    if chunks is None:
        raise DataSourceError(
            f"could not load TFDS dataset {name!r} split {tfds_split!r} from "
            f"{tfds_data_dir(data_dir)}: {'; '.join(attempts)}. Prepare it there (python -m "
            "tensorflow_datasets.scripts.download_and_prepare --datasets=NAME), pass --data_dir, "
            "or use folder:PATH / npz:PATH."
        )
    if not chunks:
        raise DataSourceError(f"TFDS returned no examples for {name!r} split {tfds_split!r}.")
    images = np.concatenate([x for x, _ in chunks]).astype(np.uint8)  # (N, H, W, C)
    labels = _check_labels(np.concatenate([y for _, y in chunks]), len(names), f"TFDS {name!r}")
    if held_out:
        train, test = holdout(labels, test_fraction)
        rows = test if spec.base == "test" else train
        images, labels = _take(images[rows], labels[rows], split, max_examples)
    elif max_examples is not None:
        images, labels = images[:max_examples], labels[:max_examples]
    return images, labels, names


# ----------------------------------------------------------------------------- one resolver


def resolve(dataset, split="train", data_dir=None, image_size=None, channels=None,
            test_fraction=DEFAULT_TEST_FRACTION, max_examples=None):
    """Loads one split of any non-built-in source.

    Args:
        dataset: "NAME", "tfds:NAME", "folder:PATH" or "npz:PATH" (see the module docstring).
        split: "train" or "test", optionally sliced ("train[:100]", "test[:10%]").
        data_dir: TFDS data dir (TFDS sources).
        image_size: None or (H, W) / "H,W" / H: resize.
        channels: None, 1 or 3: convert.
        test_fraction: held out of train as "test" when the source has no test split.
        max_examples: keep the first N of the (sliced) split.
    Returns:
        (images uint8 (N, H, W, C), labels int64 (N,), DatasetInfo with class_names).
    """
    src = parse(dataset)
    if src.kind == "builtin":
        raise ValueError(f"{dataset!r} is a built-in dataset: load it with data.load_arrays.")
    if src.kind == "folder":
        images, labels, names = load_folder(src.target, split, image_size, channels,
                                            test_fraction, max_examples)
    elif src.kind == "npz":
        images, labels, names = load_npz(src.target, split, image_size, channels, max_examples)
    else:
        images, labels, names = load_tfds(src.target, split, data_dir, image_size, channels,
                                          test_fraction, max_examples)
    shape = tuple(int(d) for d in images.shape[1:]) if len(images) else None
    info = DatasetInfo(src.spelling, shape, len(names), class_names=names)
    return images, labels, info


def describe(dataset, data_dir=None, image_size=None, channels=None):
    """The DatasetInfo of a non-built-in source without reading all of it.

    Folders decode one image (the shape), npz files read their labels, TFDS reads the builder's
    info. `image_shape` is None where it cannot be known without loading (a folder of mixed
    sizes is only detected when loaded).
    """
    src = parse(dataset)
    image_size, channels = parse_image_size(image_size), check_channels(channels)
    if src.kind == "folder":
        names = folder_classes(src.target)
        layout = _folder_layout(src.target)
        paths, _ = _list_images(layout["train"], names)
        shape = _decode(paths[0], channels).shape if paths else None
    elif src.kind == "npz":
        f = _npz(src.target)
        names = _npz_class_names(f, src.target)
        _check_classes(len(names), src.target)
        x = np.asarray(f["x_train"])
        shape = (*x.shape[1:3], x.shape[3] if x.ndim == 4 else 1) if x.ndim >= 3 else None
        if shape and channels is not None:
            shape = (*shape[:2], channels)
    elif src.kind == "tfds":
        _, _, _, shape, names = tfds_info(src.target, data_dir)
        if channels is not None:
            shape = (*shape[:2], channels)
    else:
        raise ValueError(f"{dataset!r} is a built-in dataset: use data.info.")
    if shape is not None:
        shape = (*(image_size or shape[:2]), channels or shape[2])
        shape = None if None in shape else tuple(int(d) for d in shape)
    return DatasetInfo(src.spelling, shape, len(names), class_names=tuple(names))


def builtin_info(info, image_size=None, channels=None):
    """A built-in DatasetInfo with its class names and the transformed image shape."""
    image_size, channels = parse_image_size(image_size), check_channels(channels)
    h, w, c = info.image_shape
    shape = (*(image_size or (h, w)), channels or c)
    return dataclasses.replace(info, image_shape=tuple(shape),
                               class_names=CLASS_NAMES.get(info.name))


def class_names_for(names, num_classes):
    """`names` when it has `num_classes` entries, else "0" .. "K-1" (e.g. a new head)."""
    names = tuple(names or ())
    return names if len(names) == int(num_classes) else tuple(str(i) for i in range(num_classes))
