"""The weight-shared votes' integer export form: one grouped 1x1 CONV_2D with a per-tensor
filter (capsule_ops.predict_votes_shared, keras_caps.lite.grouped_conv)."""

import keras
import numpy as np
import tensorflow as tf

from keras_caps.capsule_ops import integer_form, predict_votes_shared
from keras_caps.lite import compare, evaluate, export
from keras_caps.lite.grouped_conv import grouped_conv_ops, per_tensor_grouped_convs
from keras_caps.models import capsnet

RNG = np.random.RandomState(0)
IMAGES = (RNG.rand(32, 28, 28, 1) ** 2 * 255).astype("uint8")


def test_integer_form_votes_equal_the_training_form_in_float():
    u = RNG.randn(2, 9, 4, 8).astype("float32")  # (B, P, T, Din)
    kernel = RNG.randn(4, 10, 8, 16).astype("float32")  # (T, J, Din, Dout)
    expected = np.asarray(predict_votes_shared(u, kernel))
    with integer_form():
        got = np.asarray(predict_votes_shared(u, kernel))
    assert got.shape == (2, 10, 36, 16)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _filters(flatbuffer):
    model = compare.read_model(flatbuffer)
    graph = model.subgraphs[0]
    return model, graph, [graph.tensors[graph.operators[i].inputs[1]]
                          for i in grouped_conv_ops(model)]


def test_shared_capsnet_exports_its_votes_as_one_per_tensor_grouped_conv():
    keras.utils.set_random_seed(1)
    shared = capsnet(conv_filters=8, primary_capsules=4, class_dim=4, decoder=None,
                     weight_sharing=True)
    flatbuffer = export.convert(shared, "int8", IMAGES, num_calibration=32)
    model, graph, filters = _filters(flatbuffer)
    assert len(filters) == 1
    (w,) = filters
    assert list(w.shape) == [4 * 10 * 4, 1, 1, 8]  # (T * J * Dout, 1, 1, Din)
    assert len(w.quantization.scale) == 1  # per tensor
    names = compare.op_names(model)
    # no BATCH_MATMUL with a constant 3-D (T, Din, J * Dout) kernel is left
    for op, name in zip(graph.operators, names):
        if name == "BATCH_MATMUL":
            rhs = graph.tensors[op.inputs[1]]
            assert not (compare._is_constant(model, op.inputs[1]) and int(rhs.shape[-1]) == 40)
    # and the ungrouped model has none
    keras.utils.set_random_seed(1)
    plain = capsnet(conv_filters=8, primary_capsules=4, class_dim=4, decoder=None)
    plain_int8 = export.convert(plain, "int8", IMAGES, num_calibration=32)
    assert _filters(plain_int8)[2] == []
    assert per_tensor_grouped_convs(plain_int8) == plain_int8  # nothing to do


def _grouped_conv_int8():
    """An int8 flatbuffer of Conv2D(groups=2): the converter's per-channel filter."""
    keras.utils.set_random_seed(2)
    inp = keras.Input(batch_shape=(1, 3, 3, 8))
    conv = keras.layers.Conv2D(24, 1, groups=2, use_bias=True)
    model = keras.Model(inp, conv(inp))
    conv.bias.assign(RNG.randn(24).astype("float32") * 0.1)
    w = conv.kernel.numpy()
    w[..., :12] *= 0.05  # channels of very different ranges: per tensor is coarser for them
    conv.kernel.assign(w)

    def calibration():
        for _ in range(16):
            yield [RNG.randn(1, 3, 3, 8).astype("float32")]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert(), model


def _dequantized(tensor, model):
    q = np.frombuffer(bytes(bytearray(model.buffers[tensor.buffer].data)), np.int8)
    scale = np.asarray(tensor.quantization.scale, np.float64)
    return q.reshape(list(tensor.shape)).astype(np.float64) * scale.reshape(-1, 1, 1, 1)


def test_per_tensor_grouped_convs_requantizes_filter_and_bias():
    per_channel, keras_model = _grouped_conv_int8()
    m0, _, (w0,) = _filters(per_channel)
    assert len(w0.quantization.scale) == 24
    per_tensor = per_tensor_grouped_convs(per_channel)
    assert len(per_tensor) < len(per_channel)
    m1, g1, (w1,) = _filters(per_tensor)
    (scale,) = w1.quantization.scale
    before, after = _dequantized(w0, m0), _dequantized(w1, m1)
    assert np.isclose(np.abs(after).max(), np.abs(before).max(), rtol=1e-2)
    assert np.abs(after - before).max() <= scale / 2 + 1e-9  # rounding to the new grid only
    bias = g1.tensors[g1.operators[grouped_conv_ops(m1)[0]].inputs[2]]
    x_scale = g1.tensors[g1.operators[grouped_conv_ops(m1)[0]].inputs[0]].quantization.scale[0]
    np.testing.assert_allclose(bias.quantization.scale, [x_scale * scale], rtol=1e-6)
    # the result runs the same on LiteRT's reference kernels and TFLite Micro, near the float
    x = RNG.randn(8, 3, 3, 8).astype("float32") * 0.5
    inp = evaluate.litert_interpreter(per_tensor).get_input_details()[0]
    scale_in, zero_in = inp["quantization"]
    images = np.clip(np.round(x / scale_in) + zero_in, -128, 127).astype("int8")
    ref = compare._Runner("litert_ref", per_tensor)
    tflm = compare._Runner("tflm", per_tensor)
    for image in images:
        np.testing.assert_array_equal(ref.run(image[None])[-1], tflm.run(image[None])[-1])
    out = evaluate.litert_interpreter(per_tensor).get_output_details()[0]
    s_out, z_out = out["quantization"]
    got = (ref.run(images[:1])[-1].astype(np.float64) - z_out) * s_out
    want = keras_model.predict((images[:1].astype(np.float32) - zero_in) * scale_in, verbose=0)
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max() + 4 * s_out
    # a second pass finds the filter per tensor already and keeps its scale
    (w2,) = _filters(per_tensor_grouped_convs(per_tensor))[2]
    assert list(w2.quantization.scale) == [scale]
