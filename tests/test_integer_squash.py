"""The integer export form of squash: equal to squash in float, and short capsules survive int8.

The ranged sum of |s|^2 (`capsule_ops._ranged_rsqrt1p`) exists because one int8 grid of |s|^2
over a wide range rounds every short capsule's |s|^2 to 0, and squash then returns 0 for it.
"""

import numpy as np
import pytest

from keras_caps import capsule_ops
from keras_caps.capsule_ops import integer_form, squash


def _capsules(max_norm=140.0, n=64, d=8, seed=0):
    """(1, n, d) capsules whose norms are log-spaced over [0.3, max_norm]."""
    rng = np.random.RandomState(seed)
    direction = rng.randn(n, d)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    return (direction * np.logspace(np.log10(0.3), np.log10(max_norm), n)[:, None])[None].astype(
        "float32")


@pytest.mark.parametrize("ranges", [capsule_ops.INTEGER_SQUASH_RANGES, (16.0,), ()])
def test_integer_squash_equals_squash_in_float(ranges):
    s = _capsules()
    expected = np.asarray(squash(s))
    with integer_form():
        got = np.asarray(squash(s, ranges=ranges))
    # exact above |s| = 0.26 (the floor of r); below, at most 1/128 short
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_ranges_do_not_change_the_training_form():
    s = _capsules()
    np.testing.assert_allclose(np.asarray(squash(s, ranges=())), np.asarray(squash(s)))


def _int8_lengths(ranges, s):
    import keras
    import tensorflow as tf

    inp = keras.Input(batch_shape=s.shape)
    out = keras.layers.Lambda(
        lambda x: capsule_ops.squared_norm(squash(x, ranges=ranges), keepdims=False))(inp)
    model = keras.Model(inp, out)
    rng = np.random.RandomState(1)

    def calibration():
        for _ in range(16):
            yield [(s * rng.uniform(0.9, 1.1, size=(1, s.shape[1], 1))).astype("float32")]

    with integer_form():
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = calibration
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        flat = conv.convert()
    from keras_caps.lite.evaluate import dequantize_output, litert_interpreter, quantize_input

    interp = litert_interpreter(flat, kernels="ref")
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(i["index"], quantize_input(s, i))
    interp.invoke()
    return np.sqrt(np.maximum(dequantize_output(interp.get_tensor(o["index"]), o)[0], 0.0))


def test_short_capsules_keep_their_length_in_int8():
    s = _capsules()  # |s|^2 up to 19,600, like the M model's primary capsules
    norms = np.linalg.norm(s[0], axis=-1)
    expected = norms ** 2 / (1 + norms ** 2)  # |squash(s)|
    short = (norms > 1.3) & (norms < 6.0)  # |v| 0.63 - 0.97 (below, the input's own grid)
    ranged = _int8_lengths(capsule_ops.INTEGER_SQUASH_RANGES, s)
    one_grid = _int8_lengths((), s)
    assert np.max(np.abs(ranged[short] - expected[short])) < 0.06
    # one grid for |s|^2 in [0, 19,600]: its step rounds these capsules' |s|^2 to 0
    assert np.max(np.abs(one_grid[short] - expected[short])) > 0.3


def test_squash_ranges_for_picks_ranges_only_for_wide_squared_norms():
    assert capsule_ops.squash_ranges_for(capsule_ops.SQUASH_RANGES_ABOVE) == ()
    assert capsule_ops.squash_ranges_for(257.0) == ()
    assert capsule_ops.squash_ranges_for(5000.0) == (16.0, 256.0, 4096.0)
    assert capsule_ops.squash_ranges_for(2000.0) == (16.0, 256.0)


def test_record_squared_norms_sees_the_layers_squash_not_the_routings():
    s = _capsules(max_norm=10.0)
    votes = np.random.RandomState(0).rand(1, 3, 5, 4).astype("float32") * 50
    with capsule_ops.record_squared_norms() as seen:
        squash(s)
        capsule_ops.dynamic_routing(votes)  # ranges=ROUTING_SQUASH_RANGES: not recorded
    np.testing.assert_allclose(seen, [100.0], rtol=1e-4)
    squash(s)  # outside the context: nothing recorded
    assert len(seen) == 1


def _rsqrt_count(model, images):
    from keras_caps.lite import compare, export

    return compare.op_names(compare.read_model(export.convert(model, "int8", images))).count(
        "RSQRT")


def test_export_sums_wide_primary_squared_norms_in_ranges():
    from keras_caps.models import capsnet

    rng = np.random.RandomState(0)
    images = (rng.rand(16, 12, 12, 1) * 255).astype("uint8")

    def small():
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3,
                       primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6,
                       decoder=None)

    narrow = small()
    wide = small()
    wide.set_weights(narrow.get_weights())
    primary = wide.get_layer("primary_caps").conv
    primary.kernel.assign(primary.kernel * 400.0)  # |s|^2 far above SQUASH_RANGES_ABOVE
    # one grid: 2 RSQRT per squash; in ranges: 1 more per range
    extra = len(capsule_ops.INTEGER_SQUASH_RANGES)
    assert _rsqrt_count(wide, images) == _rsqrt_count(narrow, images) + extra
