"""Your own data: TFDS names outside the built-in four, image folders, .npz; transforms; errors."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_caps import data, data_sources
from keras_caps.data import DataFormatError, DataSourceError
from tests.data_fixtures import write_folder, write_npz

CLASSES = ("circle", "square", "triangle")


# ----------------------------------------------------------------------------- spellings


def test_parse_spellings():
    assert data_sources.parse("mnist") == data_sources.Source("builtin", "mnist")
    assert data_sources.parse("beans") == data_sources.Source("tfds", "beans")
    assert data_sources.parse("tfds:beans") == data_sources.Source("tfds", "beans")
    assert data_sources.parse("folder:/x/y").kind == "folder"
    assert data_sources.parse("npz:/x/y.npz").target == "/x/y.npz"
    with pytest.raises(DataSourceError, match="names no folder"):
        data_sources.parse("folder:")
    with pytest.raises(DataSourceError, match="folder:PATH"):
        data_sources.parse("/some/path")
    assert data_sources.parse_image_size("24") == (24, 24)
    assert data_sources.parse_image_size("24,32") == (24, 32)
    assert data_sources.parse_image_size(None) is None
    with pytest.raises(ValueError, match="image size"):
        data_sources.parse_image_size("0,4")


# ----------------------------------------------------------------------------- folders


def test_folder_with_held_out_fraction(tmp_path):
    root = write_folder(tmp_path / "shapes", CLASSES, per_class=20, size=24)
    spelling = f"folder:{root}"
    info = data.info(spelling)
    assert info.class_names == CLASSES and info.num_classes == 3
    assert info.image_shape == (24, 24, 1)
    x, y = data.load_arrays(spelling, "train")
    xt, yt = data.load_arrays(spelling, "test", test_fraction=0.25)
    assert x.dtype == np.uint8 and x.shape == (48, 24, 24, 1)  # 20 % of 20 = 4 per class held out
    assert xt.shape == (15, 24, 24, 1) and sorted(np.bincount(yt)) == [5, 5, 5]
    assert np.bincount(y).tolist() == [16, 16, 16]
    assert len(set(y[:6].tolist())) > 1  # shuffled: the first examples mix classes
    again, _ = data.load_arrays(spelling, "train")
    np.testing.assert_array_equal(again, x)  # seeded: the same split every time
    # the default 0.2 split: train and test disjoint
    _, ytest = data.load_arrays(spelling, "test")
    assert len(ytest) == 12
    small, _ = data.load_arrays(spelling, "train[:10]", max_examples=5)
    assert small.shape[0] == 5


def test_folder_train_test_layout_resize_and_channels(tmp_path):
    root = tmp_path / "ds"
    write_folder(root, CLASSES, per_class=6, size=30, split="train", channels=3, ext="jpg")
    write_folder(root, CLASSES, per_class=2, size=30, split="test", channels=3, ext="bmp")
    spelling = f"folder:{root}"
    x, y = data.load_arrays(spelling, "train", image_size=(20, 16), channels=1)
    xt, yt = data.load_arrays(spelling, "test", image_size=(20, 16), channels=1)
    assert x.shape == (18, 20, 16, 1) and xt.shape == (6, 20, 16, 1)
    info = data.info(spelling, image_size="20,16", channels=1)
    assert info.image_shape == (20, 16, 1) and info.class_names == CLASSES
    rgb, _ = data.load_arrays(spelling, "test")
    assert rgb.shape == (6, 30, 30, 3)


def test_folder_gif_and_streamed_dataset(tmp_path):
    root = write_folder(tmp_path / "g", ("a", "b"), per_class=5, size=24, ext="gif")
    x, y = data.load_arrays(f"folder:{root}", "train", image_size=24, channels=1)
    assert x.shape[1:] == (24, 24, 1) and set(y.tolist()) == {0, 1}
    ds = data_sources.folder_dataset(root, "train", batch_size=4, image_size=(12, 12), channels=1)
    xb, yb = next(iter(ds))
    assert xb.shape == (4, 12, 12, 1) and yb.shape == (4, 2)
    assert 0.0 <= float(np.min(xb)) and float(np.max(xb)) <= 1.0


def test_preprocessing_options_on_a_folder(tmp_path):
    root = write_folder(tmp_path / "s", CLASSES, per_class=8, size=24)
    spelling = f"folder:{root}"
    x, y = data.load_arrays(spelling, "train")
    ds = data.load(spelling, "train", batch_size=8, balance="undersample", denoise="median",
                   augment_shift=2, normalization="symmetric", image_size=20)
    xb, yb = next(iter(ds))
    assert xb.shape == (8, 20, 20, 1) and yb.shape == (8, 3)
    assert float(np.min(xb)) >= -1.0
    keep, xa, _ = data.remove_constant_features(x, x[:2])
    assert keep.shape == (24, 24, 1) and xa.shape == x.shape
    bx, by = data.balance_classes(x[:-3], y[:-3], "oversample")
    assert len(set(np.bincount(by).tolist())) == 1


# ----------------------------------------------------------------------------- npz


def test_npz_uint8_and_float(tmp_path):
    path = write_npz(tmp_path / "d.npz", class_names=np.array(["cat", "dog", "owl"]))
    info = data.info(f"npz:{path}")
    assert info.class_names == ("cat", "dog", "owl") and info.image_shape == (12, 12, 1)
    x, y = data.load_arrays(f"npz:{path}", "train")
    assert x.dtype == np.uint8 and x.shape == (30, 12, 12, 1) and y.dtype == np.int64
    fpath = write_npz(tmp_path / "f.npz", dtype="float32")
    xf, _ = data.load_arrays(f"npz:{fpath}", "test", image_size=16, channels=3)
    assert xf.dtype == np.uint8 and xf.shape == (12, 16, 16, 3)
    assert data.info(f"npz:{fpath}").class_names == ("0", "1", "2")
    np.testing.assert_array_equal(data.load_arrays(f"npz:{fpath}", "train")[0], x)


# ----------------------------------------------------------------------------- TFDS


def test_tfds_name_outside_the_four():
    with tfds.testing.mock_data(num_examples=6):
        info = data.info("rock_paper_scissors")
        assert info.class_names == ("rock", "paper", "scissors")
        assert info.image_shape == (300, 300, 3) and info.num_classes == 3
        x, y = data.load_arrays("rock_paper_scissors", "train", image_size=24, channels=1)
        assert x.shape == (6, 24, 24, 1) and x.dtype == np.uint8
        assert y.min() >= 0 and y.max() < 3
        xt, _ = data.load_arrays("tfds:rock_paper_scissors", "test", image_size=(20, 20),
                                 max_examples=3)
        assert xt.shape == (3, 20, 20, 3)


def test_tfds_varying_sizes_need_image_size():
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(DataFormatError, match="varying size.*--image_size"):
            data.load_arrays("cats_vs_dogs", "train")
        x, _ = data.load_arrays("cats_vs_dogs", "train", image_size=16)
        assert x.shape == (4, 16, 16, 3)


def test_tfds_without_image_or_label_feature():
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(DataSourceError, match=r"'imdb_reviews' has no image feature.*folder:PATH"):
            data.load_arrays("imdb_reviews")
        with pytest.raises(DataSourceError, match=r"'celeb_a' has no class label feature"):
            data.load_arrays("celeb_a")


def test_tfds_not_prepared_and_offline_is_a_clear_error(tmp_path, monkeypatch):
    # no prepared data under data_dir and the download host unreachable: the one message
    # that says where it looked and what to do (it used to end in an UnboundLocalError)
    monkeypatch.setattr(data_sources, "_download_host_reachable", lambda: False)
    with pytest.raises(DataSourceError, match=r"could not load TFDS dataset 'mnist'.*"
                       r"unreachable \(offline\).*download_and_prepare"):
        data_sources.load_tfds("mnist", "train", data_dir=str(tmp_path / "no_data"))


# ----------------------------------------------------------------------------- bad input


def test_folder_errors(tmp_path):
    with pytest.raises(DataSourceError, match=r"missing.*does not exist.*subfolder"):
        data.load_arrays(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match=r"empty has no class subfolders"):
        data.load_arrays(f"folder:{tmp_path / 'empty'}")
    loose = tmp_path / "loose"
    write_folder(loose, ("a",), per_class=2)
    os.replace(loose / "a" / "000.png", loose / "000.png")
    os.replace(loose / "a" / "001.png", loose / "001.png")
    os.rmdir(loose / "a")
    with pytest.raises(DataSourceError, match="image files lie directly in it"):
        data.load_arrays(f"folder:{loose}")
    root = write_folder(tmp_path / "noimg", CLASSES, per_class=3)
    os.makedirs(os.path.join(root, "zebra"))
    (tmp_path / "noimg" / "zebra" / "notes.txt").write_text("hi")
    with pytest.raises(DataFormatError, match=r"class folder .*zebra holds no images"):
        data.load_arrays(f"folder:{root}")
    one = write_folder(tmp_path / "one", ("only",), per_class=4)
    with pytest.raises(DataFormatError, match=r"1 class only.*at least 2"):
        data.load_arrays(f"folder:{one}")
    with pytest.raises(DataFormatError, match=r"1 class only"):
        data.info(f"folder:{one}")


def test_corrupt_image_and_mixed_sizes(tmp_path):
    root = write_folder(tmp_path / "bad", CLASSES, per_class=3)
    bad = tmp_path / "bad" / "square" / "001.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataFormatError, match=r"cannot read image .*square.001\.png.*corrupt") as e:
        data.load_arrays(f"folder:{root}", "train", test_fraction=0.01)
    assert "{{" not in str(e.value) and "[Op:" not in str(e.value)  # TF's decoration dropped
    bad.write_bytes(b"")  # an empty file
    with pytest.raises(DataFormatError, match=r"square.001\.png: Input is empty\. The file"):
        data.load_arrays(f"folder:{root}", "train", test_fraction=0.01)
    mixed = write_folder(tmp_path / "mixed", CLASSES, per_class=3, size=24)
    write_folder(tmp_path / "mixed", ("square",), per_class=1, size=30, seed=5)
    os.replace(tmp_path / "mixed" / "square" / "000.png", tmp_path / "mixed" / "square" / "z.png")
    write_folder(tmp_path / "mixed", ("square",), per_class=1, size=24)
    with pytest.raises(DataFormatError, match=r"different sizes.*30x30.*--image_size"):
        for split in ("train", "test"):
            data.load_arrays(f"folder:{mixed}", split)
    x, _ = data.load_arrays(f"folder:{mixed}", "train", image_size=24)
    assert x.shape[1:] == (24, 24, 1)
    extra = tmp_path / "extra"
    write_folder(extra, ("a", "b"), per_class=2, split="train")
    write_folder(extra, ("a", "c"), per_class=1, split="test")
    with pytest.raises(DataFormatError, match=r"classes \['c'\]"):
        data.load_arrays(f"folder:{extra}", "test")


@pytest.mark.parametrize("kind, match", [
    ("missing_key", r"lacks the keys \['y_test'\]"),
    ("lengths", r"x_train has 30 images but y_train has 29 labels"),
    ("range", r"y_test out of range.*\[0, 3\).*class_names"),
    ("negative", r"y_train out of range"),
    ("float_labels", r"y_train must be integer class ids"),
    ("one_hot", r"1-D array.*argmax"),
    ("float_pixels", r"float x_train must lie in \[0, 1\]"),
    ("one_class", r"1 class only"),
    ("sizes", r"x_train images are \(12, 12\) but x_test images are \(10, 10\).*--image_size"),
])
def test_npz_errors(tmp_path, kind, match):
    path = tmp_path / "bad.npz"
    good = dict(np.load(write_npz(tmp_path / "good.npz")))
    if kind == "missing_key":
        good.pop("y_test")
    elif kind == "lengths":
        good["y_train"] = good["y_train"][:-1]
    elif kind == "range":
        good["y_test"][0] = 3
        good["class_names"] = np.array(["a", "b", "c"])
    elif kind == "negative":
        good["y_train"][0] = -1
    elif kind == "float_labels":
        good["y_train"] = good["y_train"] + 0.5
    elif kind == "one_hot":
        good["y_train"] = np.eye(3)[good["y_train"]].astype("int64")
    elif kind == "float_pixels":
        good["x_train"] = good["x_train"].astype("float32")
    elif kind == "one_class":
        good["y_train"][:] = 0
        good["y_test"][:] = 0
    elif kind == "sizes":
        good["x_test"] = good["x_test"][:, :10, :10]
    np.savez(path, **good)
    with pytest.raises(DataFormatError, match=match):
        data.load_arrays(f"npz:{path}", "train")


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataSourceError, match=r"nope\.npz does not exist.*np\.savez"):
        data.load_arrays(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataFormatError, match="cannot read .*junk.npz as a NumPy"):
        data.info(f"npz:{tmp_path / 'junk.npz'}")


def test_builtin_names_keep_working_and_transform(tmp_path):
    info = data.info("cifar10", image_size=(16, 16), channels=1)
    assert info.image_shape == (16, 16, 1) and info.class_names[0] == "airplane"
    assert data.info("mnist").image_shape == (28, 28, 1)
    x = np.random.RandomState(0).randint(0, 255, (3, 28, 28, 1)).astype(np.uint8)
    y = data_sources.transform(x, (20, 20), 3)
    assert y.shape == (3, 20, 20, 3) and y.dtype == np.uint8
    assert data_sources.transform(x) is x
