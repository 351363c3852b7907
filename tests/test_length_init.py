"""Data-dependent capsule-length initialisation (grafting fresh capsule layers)."""

import numpy as np
import pytest

from keras_caps.models import deep_capsnet
from keras_caps.training.length_init import calibrate_capsule_lengths, mean_capsule_length


def _short_primary_model():
    """deep_capsnet whose primary capsules are short, like a trained backbone's."""
    model = deep_capsnet(4, 4, 2, input_shape=(12, 12, 1), backbone_filters=(4, 8, 8),
                         class_dim=4, decoder=None)
    conv = model.get_layer("primary_caps").conv
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel * 0.05, bias])
    return model


def _images(n=32):
    return np.random.RandomState(0).rand(n, 12, 12, 1).astype("float32")


def _lengths(model, x):
    import keras

    from keras_caps.models.heads import image_input

    names = ("intermediate_caps_1", "intermediate_caps_2", "class_caps")
    probe = keras.Model(image_input(model), [keras.tree.flatten(model.get_layer(n).output)[0]
                                             for n in names])
    return dict(zip(names, (mean_capsule_length(v) for v in probe(x, training=False))))


def test_mean_capsule_length_is_the_mean_norm_over_the_last_axis():
    v = np.array([[[3.0, 4.0], [0.0, 0.0]], [[0.0, 1.0], [0.6, 0.8]]])
    assert mean_capsule_length(v) == pytest.approx((5 + 0 + 1 + 1) / 4)


def test_short_inputs_vanish_and_calibration_restores_the_target_length():
    model = _short_primary_model()
    x = _images()
    before = _lengths(model, x)
    assert before["intermediate_caps_2"] < 0.05  # the grafting problem: a dead stack
    kernels = {n: model.get_layer(n).kernel.numpy() for n in before}
    report = calibrate_capsule_lengths(model, x, target_length=0.5, tolerance=0.01)
    after = _lengths(model, x)
    assert list(report) == ["intermediate_caps_1", "intermediate_caps_2", "class_caps"]
    for name in before:
        assert after[name] == pytest.approx(0.5, abs=0.011)
        assert report[name]["length_after"] == pytest.approx(after[name], abs=1e-6)
        # the kernel is only rescaled: direction and relative sizes are kept
        np.testing.assert_allclose(model.get_layer(name).kernel.numpy(),
                                   kernels[name] * np.float32(report[name]["scale"]), rtol=1e-6)
    assert report["intermediate_caps_1"]["scale"] > 1.0


def test_only_the_named_layers_change_and_bad_arguments_are_rejected():
    model = _short_primary_model()
    x = _images()
    first = model.get_layer("intermediate_caps_1").kernel.numpy()
    report = calibrate_capsule_lengths(model, x, layer_names=["class_caps"])
    assert list(report) == ["class_caps"]
    np.testing.assert_array_equal(model.get_layer("intermediate_caps_1").kernel.numpy(), first)
    with pytest.raises(ValueError, match="not ConvCapsule / DenseCapsule"):
        calibrate_capsule_lengths(model, x, layer_names=["conv1"])
    with pytest.raises(ValueError, match=r"target_length must lie in \(0, 1\)"):
        calibrate_capsule_lengths(model, x, target_length=1.5)
    with pytest.raises(ValueError, match="no images"):
        calibrate_capsule_lengths(model, x[:0])
