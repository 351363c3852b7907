"""The microcontroller CapsNet family, its CNN baseline, and the shipped reference models."""

import os

import keras
import numpy as np
import pytest

from keras_caps.models import MCU_SIZES, cnn_baseline, cnn_like, mcu_capsnet
from keras_caps.models import reference as pretrained_lib
from tests.conftest import FASHION_MNIST_DIR

RNG = np.random.RandomState(0)


def _sizes_params():
    return {size: mcu_capsnet(size).count_params() for size in MCU_SIZES}


def test_family_shapes_and_growing_sizes():
    params = _sizes_params()
    assert params["S"] < params["M"] < params["L"]
    model = mcu_capsnet("S")
    # 28 -> 28 -> 14 -> 7 backbone, 3x3 stride-2 primary caps -> a 3 x 3 grid of C = 8 types
    assert tuple(model.get_layer("primary_caps").output[0].shape[1:]) == (3, 3, 8, 8)
    caps = model.get_layer("class_caps")
    assert caps.weight_sharing and tuple(caps.kernel.shape) == (8, 10, 8, 8)
    out = model(RNG.rand(2, 28, 28, 1).astype("float32"))
    assert tuple(out["lengths"].shape) == (2, 10)
    lengths = keras.ops.convert_to_numpy(out["lengths"])
    assert np.all((lengths >= 0) & (lengths < 1))


def test_s_parameter_count_is_the_documented_one():
    # backbone 3x3 convs with BN (16, 32, 64), primary 3x3 64 -> 64, shared class kernel
    conv = (9 * 1 * 16 + 16) + (9 * 16 * 32 + 32) + (9 * 32 * 64 + 64)
    bn = 4 * (16 + 32 + 64)
    primary = 9 * 64 * 64 + 64
    class_caps = 8 * 10 * 8 * 8
    assert mcu_capsnet("S").count_params() == conv + bn + primary + class_caps == 65_792


def test_family_other_inputs_and_errors():
    model = mcu_capsnet("S", input_shape=(32, 32, 3), num_classes=4)
    assert tuple(model.output["lengths"].shape) == (None, 4)
    with pytest.raises(ValueError, match="at least 16 x 16"):
        mcu_capsnet("S", input_shape=(12, 12, 1))
    with pytest.raises(ValueError, match="unknown microcontroller CapsNet size"):
        mcu_capsnet("XL")
    assert mcu_capsnet("s", num_capsules=4).get_layer("class_caps").kernel.shape[0] == 4


def test_family_saves_and_loads_with_safe_mode(tmp_path):
    model = mcu_capsnet("S")
    path = str(tmp_path / "s.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = RNG.rand(2, 28, 28, 1).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["lengths"],
                               model.predict(x, verbose=0)["lengths"], rtol=1e-5, atol=1e-6)


def test_s_int8_export_is_integer_only_and_runs_in_tflite_micro():
    from keras_caps.lite import audit, export
    from keras_caps.lite.evaluate import compare_tflm_litert, tflm_arena_bytes

    images = (RNG.rand(24, 28, 28, 1) ** 2 * 255).astype("uint8")
    flatbuffer = export.convert(mcu_capsnet("S"), "int8", images)
    report = audit.audit(flatbuffer, int8=True)
    assert report.ok, report.text()
    assert len(flatbuffer) <= 100_000  # the S budget: a 100 KB flatbuffer ...
    arena = tflm_arena_bytes(flatbuffer)
    assert arena <= 64 * 1024  # ... and a 64 KB TFLite Micro arena
    agreement = compare_tflm_litert(flatbuffer, images[:4], arena + 4096)
    assert agreement["examples"] == 4


def test_cnn_baseline_matches_the_capsnet_backbone():
    cnn = cnn_like("S")
    caps = mcu_capsnet("S")
    for i in (1, 2, 3):
        assert (cnn.get_layer(f"conv{i}").kernel.shape
                == caps.get_layer(f"conv{i}").kernel.shape)
    assert cnn.get_layer("conv4").kernel.shape == (3, 3, 64, 64)
    probs = keras.ops.convert_to_numpy(cnn(RNG.rand(3, 28, 28, 1).astype("float32")))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="same length"):
        cnn_baseline((8, 8), (1,))
    # the twin of a structure variant takes the variant's backbone and head width
    variant = dict(backbone_filters=(8, 16, 32), num_capsules=6, capsule_dim=6)
    cnn, caps = cnn_like("S", **variant), mcu_capsnet("S", **variant)
    for i in (1, 2, 3):
        assert (cnn.get_layer(f"conv{i}").kernel.shape
                == caps.get_layer(f"conv{i}").kernel.shape)
    assert cnn.get_layer("conv4").kernel.shape == (3, 3, 32, 36)
    assert cnn.count_params() < caps.count_params() < 20_000


# ----------------------------------------------------------------------------- reference models

def test_reference_models_are_shipped_with_cards():
    names = pretrained_lib.available()
    assert {"fashion_mnist_mcu_s", "fashion_mnist_mcu_m"} <= set(names)
    for name in names:
        card = pretrained_lib.pretrained_card(name)
        for key in ("dataset", "command", "accuracy", "int8_bytes", "arena_bytes", "params"):
            assert key in card, (name, key)
        assert len(pretrained_lib.pretrained_tflite(name)) == card["int8_bytes"]


@pytest.mark.parametrize("name", ["fashion_mnist_mcu_s", "fashion_mnist_mcu_m"])
def test_reference_model_loads_with_safe_mode_and_matches_its_card(name):
    model = pretrained_lib.pretrained(name)
    card = pretrained_lib.pretrained_card(name)
    assert model.count_params() == card["params"]
    flatbuffer = pretrained_lib.pretrained_tflite(name)
    from keras_caps.lite import audit

    assert audit.audit(flatbuffer, int8=True).ok
    with pytest.raises(ValueError, match="no reference model"):
        pretrained_lib.pretrained("nope")


@pytest.mark.real_data
@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                    reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
@pytest.mark.parametrize("name", ["fashion_mnist_mcu_s", "fashion_mnist_mcu_m"])
def test_reference_model_accuracy_on_real_test_images(name):
    from keras_caps import data
    from keras_caps.lite.evaluate import accuracy as litert_accuracy
    from keras_caps.lite.evaluate import keras_accuracy

    card = pretrained_lib.pretrained_card(name)
    images, labels = data.load_arrays("fashion_mnist", "test", max_examples=1000)
    float_acc = keras_accuracy(pretrained_lib.pretrained(name), images, labels)
    int8_acc = litert_accuracy(pretrained_lib.pretrained_tflite(name), images, labels)
    # the card gives the whole split and, for this check, the first 1,000 test images
    first = card["accuracy_first_1000"]
    assert abs(float_acc - first["float"]) <= 0.01, (float_acc, first)
    assert abs(int8_acc - first["int8_litert"]) <= 0.01, (int8_acc, first)
    assert abs(card["accuracy"]["float"] - first["float"]) <= 0.03  # the split agrees too
