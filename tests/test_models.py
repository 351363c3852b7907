"""Model builders: parameter counts, outputs, views, save/load, a few training steps."""

import os

import keras
import numpy as np
import pytest

from keras_caps.losses import MarginLoss, ReconstructionLoss
from keras_caps.models import (
    capsnet,
    capsule_model,
    classifier,
    deep_capsnet,
    feature_layer_names,
    feature_model,
    has_decoder,
)


def test_sabour_default_parameter_counts():
    assert capsnet().count_params() == 8_215_568
    assert capsnet(decoder=None).count_params() == 6_804_224


def test_fastrcaps_parameter_savings():
    # weight sharing: class caps 1152*10*8*16 -> 32*10*8*16; reduced decoder 160 -> 16 inputs
    assert capsnet(weight_sharing=True).count_params() == 8_215_568 - 1_474_560 + 40_960
    assert capsnet(decoder="reduced").count_params() == 8_215_568 - 144 * 512


def _deep_params(c, d, i, filters=(64, 128, 128), in_ch=3, grid=7, classes=10, class_dim=16):
    p, prev = 0, in_ch
    for f in filters:
        p += 9 * prev * f + f + 4 * f  # conv + bias + BN (gamma, beta, mean, var)
        prev = f
    p += 9 * prev * c * d + c * d  # PrimaryCaps conv
    p += i * (9 * c) * c * d * d  # IntermediateCaps transforms
    p += grid * grid * c * classes * d * class_dim  # ClassCaps
    return p


@pytest.mark.parametrize("c,d,i", [(20, 8, 0), (10, 8, 3), (8, 12, 12)])
def test_deep_capsnet_parameter_counts(c, d, i):
    model = deep_capsnet(c, d, i)
    assert model.count_params() == _deep_params(c, d, i)
    names = [layer.name for layer in model.layers]
    assert names.count("class_caps") == 1
    assert sum(n.startswith("intermediate_caps_") for n in names) == i


def test_deep_capsnet_28x28_grid_and_taps():
    model = deep_capsnet(4, 4, 2, input_shape=(28, 28, 1), backbone_filters=(8, 8, 16))
    x = np.random.rand(2, 28, 28, 1).astype("float32")
    feats = feature_model(model)(x)
    assert feature_layer_names(model) == ["relu1", "relu2", "relu3", "primary_caps"]
    assert feats["relu1"].shape == (2, 28, 28, 8)
    assert feats["relu2"].shape == (2, 14, 14, 8)
    assert feats["primary_caps"].shape == (2, 6, 6, 16)
    assert model.get_layer("intermediate_caps_2").output.shape == (None, 6, 6, 4, 4)
    out = model(x)
    assert out["lengths"].shape == (2, 10)


def test_deep_capsnet_activations_do_not_vanish_at_init():
    model = deep_capsnet(8, 8, 12, input_shape=(28, 28, 1), backbone_filters=(8, 8, 16))
    lengths = model(np.random.rand(2, 28, 28, 1).astype("float32"))["lengths"]
    assert np.min(keras.ops.convert_to_numpy(lengths)) > 0.1


def test_deep_capsnet_intermediate_initializer_is_used_and_saved(tmp_path):
    init = keras.initializers.TruncatedNormal(stddev=0.5, seed=3)
    model = deep_capsnet(4, 4, 2, input_shape=(12, 12, 1), backbone_filters=(4, 8, 8),
                         intermediate_initializer=init)
    default = deep_capsnet(4, 4, 2, input_shape=(12, 12, 1), backbone_filters=(4, 8, 8))
    for k in (1, 2):
        std = float(np.std(model.get_layer(f"intermediate_caps_{k}").kernel.numpy()))
        assert 0.4 < std < 0.5  # truncated at 2 std: ~0.88 x 0.5
        # "capsule": std 3 C / sqrt(9 C D) = 1 here, truncated: ~0.88
        assert float(np.std(default.get_layer(f"intermediate_caps_{k}").kernel.numpy())) > 0.75
    path = str(tmp_path / "deep.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    config = loaded.get_layer("intermediate_caps_1").get_config()["kernel_initializer"]
    assert config["class_name"] == "TruncatedNormal" and config["config"]["stddev"] == 0.5
    x = np.random.rand(2, 12, 12, 1).astype("float32")
    np.testing.assert_allclose(loaded(x)["lengths"], model(x)["lengths"], atol=1e-6)


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="decoder must be one of"):
        capsnet(decoder="tiny")
    with pytest.raises(ValueError, match="num_intermediate"):
        deep_capsnet(4, 4, -1)
    with pytest.raises(ValueError, match="same length"):
        deep_capsnet(4, 4, 0, backbone_filters=(8, 8), backbone_strides=(1, 2, 1))


def _small(decoder="full", **kw):
    return capsnet(
        input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
        primary_dim=4, primary_kernel=3, class_dim=6, num_classes=3, decoder=decoder, **kw,
    )


def _batch(n=16, classes=3, seed=0):
    """Class k has a bright square in a different place: easily separable."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, classes, n)
    x = rng.rand(n, 12, 12, 1).astype("float32") * 0.1
    for i, k in enumerate(y):
        x[i, 2 + 3 * k : 5 + 3 * k, 2:6] = 1.0
    return x, np.eye(classes, dtype="float32")[y]


def test_views_share_weights_and_agree():
    model = _small()
    x, y = _batch(4)
    out = model({"image": x, "label": y})
    np.testing.assert_allclose(classifier(model)(x), out["lengths"], rtol=1e-6)
    caps = capsule_model(model)(x)
    np.testing.assert_allclose(np.linalg.norm(caps, axis=-1), out["lengths"], rtol=1e-3, atol=1e-3)
    assert has_decoder(model) and not has_decoder(_small(decoder=None))


@pytest.mark.parametrize("decoder", [None, "full", "reduced"])
def test_few_training_steps_reduce_loss(decoder):
    model = _small(decoder=decoder)
    x, y = _batch(32)
    losses = {"lengths": MarginLoss()}
    if decoder:
        losses["reconstruction"] = ReconstructionLoss()
        data_x, data_y = {"image": x, "label": y}, {"lengths": y, "reconstruction": x}
    else:
        data_x, data_y = x, {"lengths": y}
    model.compile(keras.optimizers.Adam(3e-3), losses)
    first = model.evaluate(data_x, data_y, verbose=0, return_dict=True)["loss"]
    model.fit(data_x, data_y, epochs=15, batch_size=8, verbose=0)
    last = model.evaluate(data_x, data_y, verbose=0, return_dict=True)["loss"]
    assert last < 0.7 * first


def test_model_save_load_safe_mode_identical(tmp_path):
    model = deep_capsnet(4, 4, 1, input_shape=(12, 12, 1), backbone_filters=(8, 8, 8),
                         decoder="reduced")
    x, y = _batch(3)
    inputs = {"image": x, "label": np.eye(10, dtype="float32")[[0, 1, 2]]}
    expected = model.predict(inputs, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    got = loaded.predict(inputs, verbose=0)
    for key in expected:
        np.testing.assert_allclose(expected[key], got[key], rtol=1e-6, atol=1e-6)
