"""tflite.export: every mode converts capsule models; int8 runs in LiteRT and TFLite Micro."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_caps.lite import audit, export
from keras_caps.models import capsnet, classifier, deep_capsnet

RNG = np.random.RandomState(0)
IMAGES = (RNG.rand(40, 12, 12, 1) ** 3 * 255).astype("uint8")


def _small(**kw):
    return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                   primary_dim=4, primary_kernel=3, class_dim=6, **kw)


def _deep():
    return deep_capsnet(4, 4, 1, input_shape=(12, 12, 1), backbone_filters=(4, 4, 8))


def test_export_form_is_static_squared_and_equal_to_training_form():
    model = _small(decoder="full")
    form = export.export_form(model)
    assert tuple(form.input.shape) == (1, 12, 12, 1)
    x = IMAGES[:1].astype("float32") / 255.0
    lengths = ops.convert_to_numpy(classifier(model)(x))
    np.testing.assert_allclose(form.predict(x, verbose=0), lengths**2, rtol=1e-4, atol=1e-6)
    plain = export.export_form(model, batch_size=4, squared=False)
    np.testing.assert_allclose(plain.predict(IMAGES[:4] / 255.0, verbose=0),
                               classifier(model).predict(IMAGES[:4] / 255.0, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build", [_small, _deep], ids=["capsnet", "deep_capsnet"])
@pytest.mark.parametrize("mode", export.MODES)
def test_every_mode_converts(build, mode):
    integer = mode in ("int8", "int8_pot")
    flatbuffer = export.convert(build(decoder=None) if build is _small else build(), mode,
                                IMAGES if integer or mode == "int16x8" else None)
    report = audit.audit(flatbuffer, int8=integer, pot=mode == "int8_pot")
    assert len(flatbuffer) > 1000
    if integer:
        assert report.ok, report.text()


def _run_litert(flatbuffer, x):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flatbuffer)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"]), inp["quantization"], out["quantization"]


@pytest.mark.parametrize("build", [lambda: _small(decoder=None, weight_sharing=True), _deep],
                         ids=["capsnet_shared", "deep_capsnet"])
def test_int8_agrees_with_float_and_runs_in_tflite_micro(build):
    from tflite_micro.python.tflite_micro import runtime

    model = build()
    flatbuffer = export.convert(model, "int8", IMAGES)
    form = export.export_form(model)
    micro = runtime.Interpreter.from_bytes(flatbuffer, arena_size=1_000_000)
    _, (s_in, z_in), (s_out, z_out) = _run_litert(flatbuffer, np.zeros((1, 12, 12, 1), np.int8))
    lite_err, micro_err, steps = [], [], []
    for img in IMAGES[:8]:
        xf = img[None].astype("float32") / 255.0
        expected = form.predict(xf, verbose=0)[0]
        q = np.clip(np.round(xf / s_in + z_in), -128, 127).astype(np.int8)
        lite = _run_litert(flatbuffer, q)[0]
        micro.set_input(q, 0)
        micro.invoke()
        tflm = micro.get_output(0)
        lite_err.append(np.abs((lite[0].astype(float) - z_out) * s_out - expected))
        micro_err.append(np.abs((tflm[0].astype(float) - z_out) * s_out - expected))
        steps.append(np.abs(tflm.astype(int) - lite.astype(int)).max())
    # squared lengths in [0, 1), min/max calibration of squash and routing, untrained model
    # with near-saturated capsules: mean errors ~0.01-0.04 measured for both runtimes
    for errors in (np.concatenate(lite_err), np.concatenate(micro_err)):
        assert errors.mean() < 0.05, errors.mean()
        assert errors.max() < 0.25, errors.max()
    # TFLite Micro's reference kernels and LiteRT's optimised ones differ by up to ~110 int8
    # steps on single inputs of untrained models (measured); a broken graph is far off
    assert max(steps) <= 128, steps


def test_missing_representative_data_and_unknown_mode():
    with pytest.raises(export.ExportError, match="needs representative data"):
        export.convert(_small(decoder=None), "int8")
    with pytest.raises(export.ExportError, match="unknown mode"):
        export.convert(_small(decoder=None), "int4")
    with pytest.raises(export.ExportError, match="non-empty"):
        export.convert(_small(decoder=None), "int8", np.zeros((0, 12, 12, 1), "uint8"))


class Custom(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def test_unsupported_layers_rejected():
    inp = keras.Input((12, 12, 1))
    x = Custom(name="custom")(inp)
    x = keras.layers.Conv2D(4, 3, name="conv1")(x)
    model = keras.Model(inp, {"lengths": keras.layers.GlobalAveragePooling2D(name="length")(x)})
    with pytest.raises(export.ExportError, match="custom"):
        export.export_form(model)
    with pytest.raises(export.ExportError, match="not a keras_caps model"):
        inp = keras.Input((3,))
        export.export_form(keras.Model(inp, keras.layers.Dense(2)(inp)))


def test_export_writes_atomically(tmp_path):
    path = tmp_path / "m.tflite"
    size = export.export(_small(decoder=None), str(path), "float32")
    assert path.stat().st_size == size > 0
    bad = tmp_path / "bad.tflite"
    with pytest.raises(export.ExportError):
        export.export(_small(decoder=None), str(bad), "int8")  # no representative data
    assert not bad.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_pot_scales_are_exact_powers_of_two_and_keep_the_model():
    from keras_caps.lite import evaluate, pot

    model = _small(decoder=None, weight_sharing=True)
    int8 = export.convert(model, "int8", IMAGES)
    assert not audit.audit(int8, int8=True, pot=True).ok  # the converter's scales are not PoT
    pot_fb = pot.to_power_of_two(int8)
    report = audit.audit(pot_fb, int8=True, pot=True)
    assert report.ok, report.text()
    for name, scales in report.scales.items():
        assert all(audit.is_power_of_two(s) for s in scales), name
    # same graph and weights up to requantization: about as close to float as int8 is
    # (classes of an untrained model are near ties, so compare scores, not argmax)
    expected = export.export_form(model).predict(IMAGES / 255.0, batch_size=1, verbose=0)
    err_int8 = np.abs(evaluate.predict_litert(int8, IMAGES) - expected).mean()
    err_pot = np.abs(evaluate.predict_litert(pot_fb, IMAGES) - expected).mean()
    assert err_pot < 3 * err_int8 + 0.02 * np.abs(expected).mean(), (err_pot, err_int8)
    # runs in TFLite Micro
    agreement = evaluate.compare_tflm_litert(pot_fb, IMAGES[:4], 1_000_000)
    assert agreement["examples"] == 4
    # "up" never shrinks a scale; "nearest" stays within a factor sqrt(2)
    s = np.array([0.003, 0.004, 1.0, 0.7])
    np.testing.assert_array_equal(pot.pot_scale(s, "up"), [2.0**-8, 2.0**-7, 1.0, 1.0])
    assert np.all(np.abs(np.log2(pot.pot_scale(s, "nearest") / s)) <= 0.5)
    with pytest.raises(ValueError, match="rounding"):
        pot.pot_scale(s, "down")
    with pytest.raises(ValueError, match="int8 models"):
        pot.to_power_of_two(export.convert(model, "int16x8", IMAGES))
