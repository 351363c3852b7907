"""Layer tests: standard checks plus layer-specific behaviour."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_caps.layers import ConvCapsule, Decoder, DenseCapsule, Length, Mask, PrimaryCapsule
from tests.layer_checks import run_layer_checks

RNG = np.random.RandomState(0)


def _caps(*shape):
    x = RNG.randn(*shape).astype("float32")
    return x / (1.0 + np.linalg.norm(x, axis=-1, keepdims=True))


def test_primary_capsule_standard():
    run_layer_checks(
        PrimaryCapsule,
        dict(num_capsules=4, capsule_dim=3, kernel_size=3, strides=2, padding="valid"),
        RNG.rand(2, 9, 9, 5).astype("float32"),
        (2, 4, 4, 4, 3),
    )


def test_primary_capsule_groups_channels_into_capsules():
    layer = PrimaryCapsule(2, 3, kernel_size=1, strides=1, return_feature_map=True)
    x = RNG.rand(1, 2, 2, 4).astype("float32")
    caps, fmap = layer(x)
    fmap = ops.convert_to_numpy(fmap)
    sq = (fmap.reshape(1, 2, 2, 2, 3) ** 2).sum(-1, keepdims=True)
    expected = fmap.reshape(1, 2, 2, 2, 3) * sq / (1 + sq) / np.sqrt(sq + 1e-7)
    np.testing.assert_allclose(ops.convert_to_numpy(caps), expected, rtol=1e-5, atol=1e-7)


def test_primary_capsule_rejects_non_image_input():
    with pytest.raises(ValueError, match="feature map"):
        PrimaryCapsule(2, 4)(np.zeros((2, 8, 3), "float32"))


@pytest.mark.parametrize("sharing", [False, True])
def test_dense_capsule_standard(sharing):
    run_layer_checks(
        DenseCapsule,
        dict(num_capsules=3, capsule_dim=4, routings=3, weight_sharing=sharing),
        _caps(2, 2, 2, 5, 6),
        (2, 3, 4),
    )


def test_dense_capsule_accepts_flat_capsules():
    layer = DenseCapsule(3, 4)
    out = layer(_caps(2, 7, 6))
    assert out.shape == (2, 3, 4)
    assert layer.kernel.shape == (7, 3, 6, 4)


def test_weight_sharing_shares_one_transform_per_type():
    shared = DenseCapsule(3, 4, weight_sharing=True)
    x = _caps(2, 4, 4, 5, 6)  # 16 positions x 5 types
    shared(x)
    assert shared.kernel.shape == (5, 3, 6, 4)
    full = DenseCapsule(3, 4)
    full(x)
    assert full.kernel.shape == (80, 3, 6, 4)
    # tile the shared transform to every position: identical outputs
    full.kernel.assign(np.tile(ops.convert_to_numpy(shared.kernel), (16, 1, 1, 1)))
    np.testing.assert_allclose(
        ops.convert_to_numpy(shared(x)), ops.convert_to_numpy(full(x)), rtol=1e-5, atol=1e-6
    )


def test_weight_sharing_gradient_reaches_all_positions_of_a_type():
    layer = DenseCapsule(2, 3, weight_sharing=True)
    x = np.zeros((1, 3, 3, 2, 4), "float32")
    x[0, 0, 0, 1] = [0.5, 0.1, 0.0, 0.2]  # only one position of type 1 is non-zero
    x[0, 2, 2, 1] = [0.0, 0.3, 0.4, 0.1]  # and another position of the same type
    layer(x)
    before = ops.convert_to_numpy(layer.kernel).copy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x)))
    grad = tape.gradient(loss, layer.kernel).numpy()
    # type 0 had only zero inputs: no gradient; type 1 gathers both positions
    assert np.all(grad[0] == 0)
    assert np.any(grad[1] != 0)
    layer.kernel.assign_sub(0.1 * grad)
    after = ops.convert_to_numpy(layer.kernel)
    assert np.allclose(before[0], after[0]) and not np.allclose(before[1], after[1])


def test_weight_sharing_needs_grid_input():
    with pytest.raises(ValueError, match="capsule grid"):
        DenseCapsule(3, 4, weight_sharing=True)(_caps(2, 7, 6))


def test_dense_capsule_returns_normalised_coupling():
    layer = DenseCapsule(4, 5, routings=3, return_coupling=True)
    v, c = layer(_caps(2, 9, 6))
    np.testing.assert_allclose(ops.convert_to_numpy(c).sum(axis=1), 1.0, rtol=1e-5)
    assert c.shape == (2, 4, 9)
    assert np.all(np.linalg.norm(ops.convert_to_numpy(v), axis=-1) < 1)


def test_dense_capsule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="routings must be >= 1"):
        DenseCapsule(3, 4, routings=0)
    with pytest.raises(ValueError, match="num_capsules and capsule_dim"):
        DenseCapsule(0, 4)


def test_conv_capsule_standard():
    run_layer_checks(
        ConvCapsule,
        dict(num_capsules=3, capsule_dim=4, kernel_size=3, strides=1, padding="same"),
        _caps(2, 5, 5, 3, 4),
        (2, 5, 5, 3, 4),
    )


def test_conv_capsule_valid_padding_and_stride_shapes():
    layer = ConvCapsule(2, 3, kernel_size=3, strides=2, padding="valid")
    out = layer(_caps(1, 7, 7, 4, 5))
    assert out.shape == (1, 3, 3, 2, 3)
    assert layer.kernel.shape == (9 * 4, 2, 5, 3)


def test_conv_capsule_is_local_routing_of_the_neighbourhood():
    """The centre output equals a DenseCapsule routing its 3x3 x C neighbourhood."""
    layer = ConvCapsule(2, 3, kernel_size=3, padding="same", routings=3)
    x = _caps(1, 5, 5, 4, 6)
    out = ops.convert_to_numpy(layer(x))
    dense = DenseCapsule(2, 3, routings=3)
    patch = x[:, 1:4, 2:5]  # 3x3 neighbourhood of output (2, 3)
    dense(patch)
    dense.kernel.assign(layer.kernel)
    expected = ops.convert_to_numpy(dense(patch))
    np.testing.assert_allclose(out[:, 2, 3], expected, rtol=1e-5, atol=1e-6)


def test_conv_capsule_coupling_sums_to_one():
    layer = ConvCapsule(3, 4, return_coupling=True)
    _, c = layer(_caps(2, 4, 4, 2, 4))
    assert c.shape == (2, 4, 4, 3, 18)
    np.testing.assert_allclose(ops.convert_to_numpy(c).sum(axis=3), 1.0, rtol=1e-5)


def test_conv_capsule_rejects_bad_input():
    with pytest.raises(ValueError, match="capsule grid"):
        ConvCapsule(2, 3)(_caps(2, 8, 3))
    with pytest.raises(ValueError, match="padding"):
        ConvCapsule(2, 3, padding="full")


def test_length_standard_and_values():
    x = _caps(3, 4, 5)
    run_layer_checks(Length, dict(squared=False), x, (3, 4))
    np.testing.assert_allclose(
        ops.convert_to_numpy(Length()(x)), np.sqrt((x**2).sum(-1) + 1e-7), rtol=1e-5
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(Length(squared=True)(x)), (x**2).sum(-1), rtol=1e-5
    )


@pytest.mark.parametrize("mode,width", [("full", 4 * 5), ("reduced", 5)])
def test_mask_standard(mode, width):
    x = _caps(3, 4, 5)
    labels = np.eye(4, dtype="float32")[[0, 1, 3]]
    run_layer_checks(Mask, dict(mode=mode), [x, labels], (3, width))


def test_mask_uses_labels_in_training_and_prediction_at_inference():
    x = np.zeros((2, 3, 2), "float32")
    x[0, 2] = [0.9, 0.0]  # predicted class 2
    x[0, 0] = [0.0, 0.1]
    x[1, 1] = [0.5, 0.5]  # predicted class 1
    labels = np.eye(3, dtype="float32")[[0, 0]]
    train = ops.convert_to_numpy(Mask("reduced")([x, labels], training=True))
    infer = ops.convert_to_numpy(Mask("reduced")([x, labels], training=False))
    np.testing.assert_allclose(train, [[0.0, 0.1], [0.0, 0.0]])
    np.testing.assert_allclose(infer, [[0.9, 0.0], [0.5, 0.5]])
    full = ops.convert_to_numpy(Mask("full")(x))
    np.testing.assert_allclose(full[0], [0, 0, 0, 0, 0.9, 0])


def test_mask_rejects_unknown_mode():
    with pytest.raises(ValueError, match="'full' or 'reduced'"):
        Mask("partial")


@pytest.mark.parametrize("width,params", [(160, 1_411_344), (16, 1_337_616)])
def test_decoder_standard_and_sabour_parameter_counts(width, params):
    layer = run_layer_checks(
        Decoder,
        dict(image_shape=(28, 28, 1), hidden_units=(512, 1024)),
        RNG.rand(2, width).astype("float32"),
        (2, 28, 28, 1),
    )
    assert layer.count_params() == params


def test_decoder_outputs_are_pixels():
    out = ops.convert_to_numpy(Decoder((4, 4, 3), (8,))(RNG.randn(5, 6).astype("float32") * 10))
    assert out.shape == (5, 4, 4, 3) and out.min() >= 0 and out.max() <= 1


def test_dense_capsule_training_form_equals_inference_form():
    """training=True routes without votes (capsule_ops.dense_routing): same values, gradients."""
    layer = DenseCapsule(4, 5, routings=3, return_coupling=True)
    x = tf.constant(_caps(3, 2, 2, 3, 6))
    layer(x)
    results = []
    for training in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(x)
            v, c = layer(x, training=training)
            loss = tf.reduce_sum(v * tf.range(5, dtype=tf.float32)) + tf.reduce_sum(c[:, 0])
        results.append([v, c] + tape.gradient(loss, [x, layer.kernel]))
    for fused, votes in zip(*results):
        np.testing.assert_allclose(ops.convert_to_numpy(fused), ops.convert_to_numpy(votes),
                                   rtol=1e-4, atol=1e-6)


def test_frozen_layers_reload_with_frozen_sublayers():
    for layer in (PrimaryCapsule(2, 3, kernel_size=1, trainable=False),
                  Decoder((4, 4, 1), (8,), trainable=False)):
        clone = layer.__class__.from_config(layer.get_config())
        clone.build((1, 4, 4, 2) if isinstance(layer, PrimaryCapsule) else (1, 6))
        assert clone.trainable_weights == [] and len(clone.weights) > 0
