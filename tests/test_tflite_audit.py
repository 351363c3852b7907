"""keras_caps.lite.audit (tflite.audit): passes clean int8 models, fails float islands and float-only ops."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_caps.lite import audit
from keras_caps.lite.cli import audit_main


def _convert(model, tmp_path, int8=True):
    model.export(str(tmp_path / "sm"), verbose=False)
    conv = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    if int8:
        shape = (1,) + tuple(model.input.shape[1:])

        def rep():
            rng = np.random.RandomState(0)
            for _ in range(8):
                yield [rng.rand(*shape).astype("float32")]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


class Sqrt(keras.layers.Layer):
    def call(self, x):
        return ops.sqrt(ops.abs(x) + 1.0)


def _tiny(extra=None):
    inp = keras.Input((6, 6, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.Conv2D(3, 1)(x)  # Flatten / Dense on 4-D inputs emit dynamic shapes
    x = keras.layers.GlobalAveragePooling2D()(x)
    if extra is not None:
        x = extra(x)
    return keras.Model(inp, x)


def test_clean_int8_model_passes(tmp_path):
    report = audit.audit(_convert(_tiny(), tmp_path))
    assert report.ok, report.text()
    assert "CONV_2D" in report.op_counts() and "MEAN" in report.op_counts()
    assert all(d == "int8" for op in report.ops if op.name == "CONV_2D"
               for _, d in op.outputs)


def test_dynamic_shapes_fail(tmp_path):
    inp = keras.Input((6, 6, 1), batch_size=1)
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp))  # Flatten emits SHAPE
    report = audit.audit(_convert(keras.Model(inp, x), tmp_path))
    assert any("dynamic shape" in p for p in report.problems)


def test_float_only_op_fails(tmp_path):
    report = audit.audit(_convert(_tiny(Sqrt()), tmp_path))
    assert not report.ok
    assert any("SQRT" in p for p in report.problems)


def test_float_model_audited_as_int8_fails_and_cli_exit_codes(tmp_path):
    float_model = _convert(_tiny(), tmp_path, int8=False)
    report = audit.audit(float_model, int8=True)
    assert not report.ok and any("float tensors" in p for p in report.problems)
    assert audit.audit(float_model).ok  # a float model audited as float is fine
    path = tmp_path / "f.tflite"
    path.write_bytes(float_model)
    assert audit_main([str(path), "--int8"]) == 1
    assert audit_main([str(path)]) == 0
    assert audit_main([str(tmp_path / "missing.tflite")]) == 2


def test_pot_check(tmp_path):
    report = audit.audit(_convert(_tiny(), tmp_path), pot=True)
    # the standard converter picks min/max scales, not powers of two
    assert any("not a power of two" in p for p in report.problems)
    assert audit.is_power_of_two(0.125) and audit.is_power_of_two(2.0**-7)
    assert not audit.is_power_of_two(0.1) and not audit.is_power_of_two(0.0)
    assert not audit.is_power_of_two(-0.5)


@pytest.mark.parametrize("op", ["SQUARE", "EXP"])
def test_float_only_set(op):
    assert op in audit.FLOAT_ONLY_OPS and op not in audit.TFLM_INT8_OPS
