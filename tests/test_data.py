"""Data loading (IDX files, TFDS mock), preprocessing, augmentation, pipelines and clear errors."""

import gzip
import os
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_caps import data
from tests.conftest import FASHION_MNIST_DIR


def write_idx(path, array, compress=True):
    """Writes `array` as a standard unsigned-byte IDX file (gzipped when `compress`)."""
    array = np.asarray(array, np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(raw + array.tobytes())


def make_idx_folder(folder, n_train=20, n_test=10, shape=(28, 28), compress=True, labels=None):
    """A folder with the four MNIST-format files; returns (folder, {split: (images, labels)})."""
    rng = np.random.RandomState(0)
    ext = ".gz" if compress else ""
    os.makedirs(folder, exist_ok=True)
    written = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.randint(0, 256, (n,) + shape).astype(np.uint8)
        lab = rng.randint(0, 10, n) if labels is None else np.asarray(labels)[:n]
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images, compress)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), lab, compress)
        written[split] = (images, lab)
    return str(folder), written


# ----------------------------------------------------------------------------- IDX loading


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_load_with_shapes_dtypes_and_values(tmp_path, compress):
    folder, written = make_idx_folder(tmp_path, compress=compress)
    images, labels = data.load_arrays("fashion_mnist", "train", data_dir=folder, source="idx")
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (20,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images[..., 0], written["train"][0])
    np.testing.assert_array_equal(labels, written["train"][1])
    test_images, test_labels = data.load_arrays("mnist", "test", data_dir=folder, source="idx")
    assert test_images.shape == (10, 28, 28, 1)
    np.testing.assert_array_equal(test_labels, written["test"][1])


def test_auto_source_prefers_idx_and_finds_named_subfolder(tmp_path):
    _, written = make_idx_folder(tmp_path / "fashion-mnist")
    images, _ = data.load_arrays("fashion_mnist", "train", data_dir=str(tmp_path))
    np.testing.assert_array_equal(images[..., 0], written["train"][0])


def test_split_slicing_and_max_examples(tmp_path):
    folder, written = make_idx_folder(tmp_path)
    full = written["train"][0]
    for split, expected in [("train[5:8]", full[5:8]), ("train[:3]", full[:3]),
                            ("train[15:]", full[15:]), ("train[:10%]", full[:2]),
                            ("train[50%:]", full[10:]), ("train[-4:]", full[-4:])]:
        images, labels = data.load_arrays("mnist", split, data_dir=folder)
        np.testing.assert_array_equal(images[..., 0], expected, err_msg=split)
        assert len(labels) == len(expected)
    images, _ = data.load_arrays("mnist", "train[2:]", data_dir=folder, max_examples=4)
    np.testing.assert_array_equal(images[..., 0], full[2:6])
    with pytest.raises(ValueError, match="bad split 'validation'"):
        data.load_arrays("mnist", "validation", data_dir=folder)
    with pytest.raises(ValueError, match="max_examples must be a positive integer"):
        data.load_arrays("mnist", data_dir=folder, max_examples=0)


def test_info_and_supported():
    assert set(data.SUPPORTED) == {"mnist", "fashion_mnist", "cifar10", "svhn_cropped"}
    assert data.info("cifar10").image_shape == (32, 32, 3)
    fm = data.info("fashion_mnist")
    assert fm.image_shape == (28, 28, 1) and fm.num_classes == 10
    assert fm.idx_files["test"] == ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    assert data.info("svhn_cropped").idx_files is None


# ----------------------------------------------------------------------------- TFDS


def test_tfds_mock_source():
    with tfds.testing.mock_data(num_examples=12):
        images, labels = data.load_arrays("mnist", "train", source="tfds")
        small, _ = data.load_arrays("cifar10", "test", source="tfds", max_examples=5)
    assert images.shape == (12, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (12,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 10
    assert small.shape == (5, 32, 32, 3)


def test_auto_falls_back_to_tfds_when_no_idx_files(tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        images, _ = data.load_arrays("mnist", "test", data_dir=str(tmp_path / "empty"))
    assert images.shape == (6, 28, 28, 1)


# ----------------------------------------------------------------------------- preprocessing


def test_balance_classes_counts():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 6)
    images = np.arange(20)[:, None, None, None]
    x_over, over = data.balance_classes(images, labels, "oversample", seed=1)
    x_under, under = data.balance_classes(images, labels, "undersample", seed=1)
    assert np.bincount(over).tolist() == [10, 10, 10]
    assert np.bincount(under).tolist() == [4, 4, 4]
    assert set(x_over[:, 0, 0, 0]) == set(range(20))  # oversampling keeps every example
    assert len(set(x_under[:, 0, 0, 0])) == 12  # undersampling never repeats one
    for x, y in ((x_over, over), (x_under, under)):
        np.testing.assert_array_equal(labels[x[:, 0, 0, 0]], y)  # images keep their labels
    with pytest.raises(ValueError, match="'oversample' or 'undersample'"):
        data.balance_classes(images, labels, "smote")


def test_normalize_ranges():
    x = np.array([[0, 128, 255]], np.uint8)
    unit, sym = data.normalize(x, "unit"), data.normalize(x, "symmetric")
    assert unit.dtype == np.float32 and sym.dtype == np.float32
    np.testing.assert_allclose(unit, [[0.0, 128 / 255, 1.0]], atol=1e-6)
    np.testing.assert_allclose(sym, [[-1.0, 2 * 128 / 255 - 1, 1.0]], atol=1e-6)
    assert unit.min() == 0.0 and unit.max() == 1.0 and sym.min() == -1.0 and sym.max() == 1.0
    with pytest.raises(ValueError, match="normalization must be one of"):
        data.normalize(x, "zscore")


def test_median_filter_removes_salt_noise_and_gaussian_smooths():
    rng = np.random.RandomState(0)
    clean = np.full((3, 12, 12, 1), 100, np.uint8)
    noisy = clean.copy()
    noisy[rng.rand(*noisy.shape) < 0.05] = 255  # isolated salt
    noisy[0, 4, 4, 0], noisy[1, 7, 2, 0] = 255, 0  # and pepper
    out = data.denoise(noisy, "median", size=3)
    assert out.shape == noisy.shape and out.dtype == np.uint8
    err_noisy = np.abs(noisy.astype(float) - clean).sum()
    assert np.abs(out.astype(float) - clean).sum() < 0.1 * err_noisy
    np.testing.assert_array_equal(data.denoise(noisy[:, :, :, 0], "median", chunk=2), out[..., 0])
    smooth = data.denoise(noisy.astype(np.float32), "gaussian", size=3, sigma=1.0)
    assert smooth.shape == noisy.shape and smooth.dtype == np.float32
    # a normalised kernel keeps the mean but spreads the spikes: the squared error drops
    np.testing.assert_allclose(smooth.mean(), noisy.mean(), rtol=0.05)
    assert ((smooth - 100.0) ** 2).sum() < 0.5 * ((noisy - 100.0) ** 2).sum()
    with pytest.raises(ValueError, match="positive odd integer"):
        data.denoise(noisy, "median", size=2)
    with pytest.raises(ValueError, match="'median' or 'gaussian'"):
        data.denoise(noisy, "bilateral")


def test_remove_constant_features():
    train = np.random.RandomState(0).randint(1, 255, (10, 4, 4, 1)).astype(np.uint8)
    train[:, 0, 0, 0] = 7  # constant pixel
    test = np.full((2, 4, 4, 1), 9, np.uint8)
    keep, train2, test2 = data.remove_constant_features(train, test)
    assert keep.shape == (4, 4, 1) and not keep[0, 0, 0] and keep.sum() == 15
    assert train2.shape == train.shape and train2.dtype == np.uint8
    assert np.all(train2[:, 0, 0, 0] == 0) and np.all(test2[:, 0, 0, 0] == 0)
    np.testing.assert_array_equal(train2[:, 1:], train[:, 1:])
    np.testing.assert_array_equal(test2[:, 1:], test[:, 1:])
    assert train[0, 0, 0, 0] == 7  # the inputs are not modified
    with pytest.raises(ValueError, match="differs from the training images"):
        data.remove_constant_features(train, np.zeros((1, 5, 5, 1)))


# ----------------------------------------------------------------------------- augmentation


def _bright_pixel(images):
    return [tuple(np.argwhere(img[..., 0] > 0)[0]) for img in images]


def test_random_shift_moves_content_at_most_two_pixels():
    x = np.zeros((32, 9, 9, 1), np.float32)
    x[:, 4, 4, 0] = 1.0
    shifted = data.random_shift(x, 2, seed=3).numpy()
    assert shifted.shape == x.shape and shifted.dtype == np.float32
    assert np.all(shifted.sum(axis=(1, 2, 3)) == 1.0)  # the pixel stays inside the image
    positions = _bright_pixel(shifted)
    assert all(abs(r - 4) <= 2 and abs(c - 4) <= 2 for r, c in positions)
    assert len(set(positions)) > 3  # each image gets its own shift
    single = data.random_shift(x[0], 2).numpy()  # one image (H, W, C)
    assert single.shape == (9, 9, 1) and single.sum() == 1.0
    stateless = [data.random_shift(x, 2, seed=np.array([1, 2])).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*stateless)
    np.testing.assert_array_equal(data.random_shift(x, 0), x)
    with pytest.raises(ValueError, match="non-negative integer"):
        data.random_shift(x, -1)


# ----------------------------------------------------------------------------- tf.data


def test_make_dataset_batches_one_hot():
    images = np.random.RandomState(0).randint(0, 256, (10, 28, 28, 1)).astype(np.uint8)
    labels = np.arange(10) % 3
    batches = list(data.make_dataset(images, labels, 4, shuffle=False))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 28, 28, 1) and x.dtype == "float32" and y.shape == (4, 10)
    np.testing.assert_allclose(x.numpy(), images[:4] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy().argmax(-1), labels[:4])
    assert np.all(y.numpy().sum(-1) == 1)
    dropped = list(data.make_dataset(images, labels, 4, shuffle=True, drop_remainder=True))
    assert len(dropped) == 2
    sym = next(iter(data.make_dataset(images, labels, 10, normalization="symmetric")))[0]
    assert sym.numpy().min() >= -1.0 and sym.numpy().max() <= 1.0 and sym.numpy().min() < 0


def test_make_dataset_shuffle_and_shift_are_seeded_and_vary_per_epoch():
    images = np.full((8, 9, 9, 1), 0, np.uint8)
    images[:, 4, 4, 0] = 255
    labels = np.arange(8) % 10

    def epochs(ds):
        return [[(tuple(y.numpy().argmax(-1)), tuple(_bright_pixel(x.numpy()))) for x, y in ds]
                for _ in range(2)]

    a = epochs(data.make_dataset(images, labels, 8, shuffle=True, augment_shift=2, seed=5))
    b = epochs(data.make_dataset(images, labels, 8, shuffle=True, augment_shift=2, seed=5))
    assert a == b  # same seed, same batches
    assert a[0] != a[1]  # a new order and new shifts each pass
    positions = [p for epoch in a for batch in epoch for p in batch[1]]
    assert all(abs(r - 4) <= 2 and abs(c - 4) <= 2 for r, c in positions)
    # the shift happens before scaling: the padding is black (-1 in symmetric mode)
    x, _ = next(iter(data.make_dataset(np.full((4, 9, 9, 1), 255, np.uint8), labels[:4], 4,
                                       augment_shift=2, normalization="symmetric")))
    assert set(np.unique(x.numpy())) <= {-1.0, 1.0}


def test_load_composes_loading_preprocessing_and_batching(tmp_path):
    folder, written = make_idx_folder(tmp_path, labels=np.array([0] * 15 + [1] * 5))
    ds = data.load("mnist", "train", batch_size=8, data_dir=folder, balance="undersample",
                   denoise="median", augment_shift=1, normalization="symmetric")
    batches = list(ds)
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.shape == (10, 28, 28, 1) and y.shape == (10, 10)
    assert np.bincount(y.argmax(-1)).tolist() == [5, 5]
    assert x.min() >= -1.0 and x.max() <= 1.0
    test_x, test_y = next(iter(data.load("mnist", "test", batch_size=64, data_dir=folder)))
    np.testing.assert_allclose(test_x.numpy()[..., 0], written["test"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(test_y.numpy().argmax(-1), written["test"][1])  # unshuffled


# ----------------------------------------------------------------------------- clear errors


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'.*supported.*fashion_mnist"):
        data.load_arrays("imagenet")
    with pytest.raises(ValueError, match="source must be one of"):
        data.load_arrays("mnist", source="web")


def test_wrong_image_shape(tmp_path):
    folder, _ = make_idx_folder(tmp_path, shape=(32, 32))
    with pytest.raises(data.DataFormatError, match=r"images of shape \(32, 32\).*right folder"):
        data.load_arrays("mnist", data_dir=folder, source="idx")


def test_corrupt_and_truncated_gz(tmp_path):
    folder, _ = make_idx_folder(tmp_path)
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    with open(path, "wb") as f:
        f.write(b"this is not gzip at all")
    with pytest.raises(data.DataFormatError, match="corrupt or truncated.*re-download"):
        data.load_arrays("mnist", data_dir=folder, source="idx")
    raw = gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">III", 20, 28, 28) + bytes(20 * 784))
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])  # a gzip stream cut short
    with pytest.raises(data.DataFormatError, match=path):
        data.load_arrays("mnist", data_dir=folder, source="idx")
    with gzip.open(path, "wb") as f:  # valid gzip, IDX payload cut short
        f.write(b"\x00\x00\x08\x03" + struct.pack(">III", 20, 28, 28) + bytes(100))
    with pytest.raises(data.DataFormatError, match="truncated or corrupt"):
        data.load_arrays("mnist", data_dir=folder, source="idx")


def test_bad_magic(tmp_path):
    folder, _ = make_idx_folder(tmp_path)
    with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x0d\x03" + struct.pack(">III", 1, 28, 28) + bytes(784 * 4))
    with pytest.raises(data.DataFormatError, match="bad magic number 00000d03"):
        data.load_arrays("mnist", data_dir=folder, source="idx")


def test_count_mismatch(tmp_path):
    folder, _ = make_idx_folder(tmp_path)
    write_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"), np.zeros(7))
    with pytest.raises(data.DataFormatError, match="count mismatch.*20 images.*7 labels"):
        data.load_arrays("mnist", data_dir=folder, source="idx")


def test_labels_out_of_range(tmp_path):
    folder, _ = make_idx_folder(tmp_path, labels=np.full(20, 12))
    with pytest.raises(data.DataFormatError, match=r"label 12 out of range \[0, 10\)"):
        data.load_arrays("mnist", data_dir=folder, source="idx")
    images = np.zeros((4, 28, 28, 1), np.uint8)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        data.make_dataset(images, np.array([0, 1, 2, 10]), 2)


def test_no_source_found_names_dataset_folders_and_options(tmp_path):
    empty = str(tmp_path / "empty")
    with pytest.raises(data.DataSourceError) as err:
        data.load_arrays("fashion_mnist", data_dir=empty, source="idx")
    message = str(err.value)
    for part in ("'fashion_mnist'", empty, "--data_dir", "apt-get install dataset-fashion-mnist",
                 "internet", "train-images-idx3-ubyte.gz"):
        assert part in message, part
    with pytest.raises(data.DataSourceError, match="cifar10 is not distributed as IDX"):
        data.load_arrays("cifar10", source="idx")


def test_batch_size_must_be_positive():
    images, labels = np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4, np.int64)
    for bad in (0, -2, 2.5, None):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            data.make_dataset(images, labels, bad)


# ----------------------------------------------------------------------------- real data


@pytest.mark.real_data
@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                    reason="real Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist():
    train_x, train_y = data.load_arrays("fashion_mnist", "train", source="idx")
    test_x, test_y = data.load_arrays("fashion_mnist", "test")
    assert train_x.shape == (60000, 28, 28, 1) and test_x.shape == (10000, 28, 28, 1)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int64
    assert sorted(np.unique(train_y)) == list(range(10))
    assert np.bincount(test_y).tolist() == [1000] * 10
    assert np.bincount(train_y).tolist() == [6000] * 10
