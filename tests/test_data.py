"""Data loading (IDX, TFDS mock), preprocessing, augmentation and clear errors."""

import gzip
import os
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_caps import data
from tests.conftest import FASHION_MNIST_DIR


def write_idx(path, array, compress=True):
    array = np.asarray(array, np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    raw += array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(raw)


def make_idx_folder(folder, n_train=20, n_test=10, shape=(28, 28), compress=True, labels=None):
    rng = np.random.RandomState(0)
    ext = ".gz" if compress else ""
    os.makedirs(folder, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.randint(0, 256, (n,) + shape)
        lab = rng.randint(0, 10, n) if labels is None else labels[:n]
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images, compress)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), lab, compress)
    return folder


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_load_with_shapes_and_values(tmp_path, compress):
    folder = make_idx_folder(str(tmp_path), compress=compress)
    images, labels = data.load_arrays("fashion_mnist", "train", data_dir=folder, source="idx")
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (20,) and labels.dtype == np.int64
    expected = data.read_idx(os.path.join(folder, "train-images-idx3-ubyte" + (".gz" if compress else "")))
    np.testing.assert_array_equal(images[..., 0], expected)
    test_images, _ = data.load_arrays("mnist", "test", data_dir=folder, source="idx")
    assert test_images.shape == (10, 28, 28, 1)


def test_split_slicing(tmp_path):
    folder = make_idx_folder(str(tmp_path))
    full, _ = data.load_arrays("mnist", "train", data_dir=folder)
    part, _ = data.load_arrays("mnist", "train[5:8]", data_dir=folder)
    pct, _ = data.load_arrays("mnist", "train[:50%]", data_dir=folder)
    np.testing.assert_array_equal(part, full[5:8])
    assert len(pct) == 10
    assert len(data.load_arrays("mnist", "train", data_dir=folder, max_examples=4)[0]) == 4
    with pytest.raises(ValueError, match="bad split"):
        data.load_arrays("mnist", "validation", data_dir=folder)


def test_tfds_mock_source():
    with tfds.testing.mock_data(num_examples=12):
        images, labels = data.load_arrays("mnist", "train", source="tfds")
    assert images.shape == (12, 28, 28, 1) and labels.shape == (12,)
    assert images.dtype == np.uint8


def test_balance_classes_counts():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 6)
    images = np.arange(20)[:, None, None, None]
    _, over = data.balance_classes(images, labels, "oversample")
    _, under = data.balance_classes(images, labels, "undersample")
    assert np.bincount(over).tolist() == [10, 10, 10]
    assert np.bincount(under).tolist() == [4, 4, 4]
    x, y = data.balance_classes(images, labels, "undersample")
    assert np.all(labels[x[:, 0, 0, 0]] == y)  # images stay with their labels


def test_normalize_ranges():
    x = np.array([[0, 128, 255]], np.uint8)
    unit, sym = data.normalize(x, "unit"), data.normalize(x, "symmetric")
    assert unit.min() == 0 and unit.max() == 1 and sym.min() == -1 and sym.max() == 1
    with pytest.raises(ValueError, match="'unit' or 'symmetric'"):
        data.normalize(x, "zscore")


def test_median_filter_removes_salt_noise_and_gaussian_smooths():
    clean = np.full((1, 9, 9, 1), 100, np.uint8)
    noisy = clean.copy()
    noisy[0, 4, 4, 0] = 255
    noisy[0, 1, 6, 0] = 0
    out = data.denoise(noisy, "median")
    assert out.shape == noisy.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, clean)
    smooth = data.denoise(noisy.astype(np.float32), "gaussian", size=3, sigma=1.0)
    # a normalised kernel keeps the L1 deviation but spreads it: the squared error drops
    assert smooth[0, 4, 4, 0] < 255
    assert ((smooth - 100.0) ** 2).sum() < 0.5 * ((noisy - 100.0) ** 2).sum()


def test_remove_constant_features():
    train = np.random.RandomState(0).randint(0, 255, (10, 4, 4, 1)).astype(np.uint8)
    train[:, 0, 0, 0] = 7  # constant pixel
    test = np.full((2, 4, 4, 1), 9, np.uint8)
    keep, train2, test2 = data.remove_constant_features(train, test)
    assert not keep[0, 0, 0] and keep.sum() == 15
    assert np.all(train2[:, 0, 0, 0] == 0) and np.all(test2[:, 0, 0, 0] == 0)
    np.testing.assert_array_equal(train2[:, 1:], train[:, 1:])


def test_random_shift_moves_content_at_most_two_pixels():
    x = np.zeros((16, 9, 9, 1), np.float32)
    x[:, 4, 4, 0] = 1.0
    shifted = data.random_shift(x, 2, seed=3).numpy()
    assert shifted.shape == x.shape
    for img in shifted:
        (r,), (c,) = np.nonzero(img[..., 0])[0], np.nonzero(img[..., 0])[1]
        assert abs(r - 4) <= 2 and abs(c - 4) <= 2
    assert len({tuple(np.argwhere(img[..., 0])[0]) for img in shifted}) > 1


def test_make_dataset_batches_one_hot():
    images = np.random.RandomState(0).randint(0, 256, (10, 28, 28, 1)).astype(np.uint8)
    labels = np.arange(10) % 3
    x, y = next(iter(data.make_dataset(images, labels, 4, shuffle=True, augment_shift=2)))
    assert x.shape == (4, 28, 28, 1) and y.shape == (4, 10)
    assert float(x.numpy().max()) <= 1.0 and np.all(y.numpy().sum(-1) == 1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        data.make_dataset(images, labels, 0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        data.make_dataset(images, labels + 9, 4)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*supported"):
        data.load_arrays("imagenet")


def test_wrong_image_shape(tmp_path):
    folder = make_idx_folder(str(tmp_path), shape=(32, 32))
    with pytest.raises(data.DataFormatError, match=r"images of shape \(32, 32\)"):
        data.load_arrays("mnist", data_dir=folder, source="idx")


def test_corrupt_and_truncated_gz(tmp_path):
    folder = make_idx_folder(str(tmp_path))
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    with open(path, "wb") as f:
        f.write(b"this is not gzip at all")
    with pytest.raises(data.DataFormatError, match="corrupt or truncated"):
        data.load_arrays("mnist", data_dir=folder, source="idx")
    raw = gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">III", 20, 28, 28) + b"\x00" * 100)
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(data.DataFormatError, match=path):
        data.load_arrays("mnist", data_dir=folder, source="idx")


def test_bad_magic_count_mismatch_and_labels_out_of_range(tmp_path):
    folder = make_idx_folder(str(tmp_path / "a"))
    with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x0d\x03" + struct.pack(">III", 1, 28, 28) + bytes(784 * 4))
    with pytest.raises(data.DataFormatError, match="bad magic number"):
        data.load_arrays("mnist", data_dir=folder, source="idx")
    folder = make_idx_folder(str(tmp_path / "b"))
    write_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"), np.zeros(7))
    with pytest.raises(data.DataFormatError, match="20 images but"):
        data.load_arrays("mnist", data_dir=folder, source="idx")
    folder = make_idx_folder(str(tmp_path / "c"), labels=np.full(20, 12))
    with pytest.raises(data.DataFormatError, match=r"label 12 out of range \[0, 10\)"):
        data.load_arrays("mnist", data_dir=folder, source="idx")


def test_no_source_found_names_the_options(tmp_path):
    with pytest.raises(data.DataSourceError, match="dataset-fashion-mnist.*internet"):
        data.load_arrays("fashion_mnist", data_dir=str(tmp_path), source="idx")


@pytest.mark.real_data
@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                    reason="real Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist():
    train = data.load_arrays("fashion_mnist", "train")
    test = data.load_arrays("fashion_mnist", "test")
    assert train[0].shape == (60000, 28, 28, 1) and test[0].shape == (10000, 28, 28, 1)
    assert set(np.unique(train[1])) == set(range(10))
    assert np.bincount(test[1]).tolist() == [1000] * 10
