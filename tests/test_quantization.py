"""Power-of-two quantization: quantizers, spec, simulation, memory accounting, searches."""

import json

import keras
import numpy as np
import pytest

from keras_caps.models import capsnet, deep_capsnet
from keras_caps.quantization import memory, pot, progressive, simulate
from keras_caps.quantization import spec as qspec

# ---------------------------------------------------------------- quantizers


def test_representable_values_round_trip_exactly():
    for bits, f in [(2, 0), (4, 2), (8, 5), (8, -3), (16, 12)]:
        lo, hi = pot.qrange(bits)
        ints = np.arange(lo, hi + 1, dtype=np.float64) if bits <= 8 else np.array([lo, -1, 0, 7, hi])
        values = (ints * 2.0**-f).astype(np.float32)
        for mode in pot.ROUNDING_MODES:
            out = np.asarray(pot.quantize(values, bits, f, mode, seed=3))
            np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("mode", pot.ROUNDING_MODES)
def test_error_bounds_per_rounding_mode(mode):
    x = np.random.default_rng(0).uniform(-1.9, 1.9, 20000).astype(np.float32)
    bits, f = 8, 6  # range [-2, 127/64]: nothing clipped
    lsb = 2.0**-f
    e = np.asarray(pot.quantize(x, bits, f, mode, seed=1)) - x
    if mode == "nearest":
        assert np.abs(e).max() <= lsb / 2 + 1e-7
    elif mode == "truncate":
        assert e.max() <= 1e-7 and e.min() > -lsb - 1e-7
    else:
        assert np.abs(e).max() < lsb + 1e-7
    q = np.asarray(pot.quantize(x, bits, f, mode, seed=1)) * 2**f
    np.testing.assert_allclose(q, np.round(q), atol=1e-4)  # integers times 2^-f


def test_stochastic_rounding_is_unbiased():
    x = np.full(200000, 0.3, np.float32)  # between 0.25 and 0.5 at f=2
    out = np.asarray(pot.quantize(x, 8, 2, "stochastic", seed=7))
    assert set(np.unique(out)) == {0.25, 0.5}
    assert abs(out.mean() - 0.3) < 2e-3
    assert abs(np.asarray(pot.quantize(x, 8, 2, "nearest")).mean() - 0.25) < 1e-7  # biased


def test_values_outside_the_range_saturate_and_get_no_gradient():
    x = keras.ops.convert_to_tensor(np.array([-10.0, -0.3, 0.3, 10.0], np.float32))
    np.testing.assert_allclose(np.asarray(pot.quantize(x, 4, 2)), [-2.0, -0.25, 0.25, 1.75])
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = keras.ops.sum(pot.quantize(x, 4, 2))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0, 1, 1, 0])  # clipped STE


def test_per_channel_and_block_exponent_shapes():
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 10)).astype(np.float32)
    w[..., 0] *= 100.0
    f_t = pot.frac_bits_for(w, 8, "maxabs")
    f_c = pot.frac_bits_for(w, 8, "maxabs", "channel", axis=-1)
    f_b = pot.frac_bits_for(w, 8, "maxabs", "block", axis=-1, block_size=4)
    assert np.ndim(f_t) == 0 and f_c.shape == (1, 1, 1, 10) and f_b.shape == (1, 1, 1, 10)
    assert f_c[..., 0] < f_c[..., 1]  # the large channel gets a coarser scale
    np.testing.assert_array_equal(f_b.reshape(-1)[:4], f_b.reshape(-1)[0])  # one per block
    assert f_b.reshape(-1)[0] == f_c.reshape(-1)[:4].min()
    assert f_b.reshape(-1)[8] == f_c.reshape(-1)[8:].min()  # the last, shorter block
    for f in (f_t, f_c, f_b):
        q = np.asarray(pot.quantize(w, 8, f))
        assert np.abs(q - w).max() <= (2.0 ** -np.asarray(f)).max() / 2 + 1e-5  # no clipping


def test_clipping_choices_on_constructed_distributions():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 100000), [64.0]]).astype(np.float32)  # one outlier
    f_max = pot.frac_bits_for(x, 8, "maxabs")
    f_pct = pot.frac_bits_for(x, 8, "percentile", percentile=99.9)
    f_mse = pot.frac_bits_for(x, 8, "mse")
    assert f_max == 0  # 127 * 2^0 >= 64 > 127 * 2^-1
    assert f_pct == 6  # covers |x| <= 1: 127/64 >= 1
    assert f_pct > f_mse >= f_max or f_mse == f_pct
    errs = {f: np.mean((np.asarray(pot.quantize(x, 8, f)) - x) ** 2) for f in range(0, 7)}
    assert errs[int(f_mse)] == min(errs.values())  # "mse" picks the least error
    # A uniform distribution without outliers: all three agree or mse is no worse.
    u = rng.uniform(-3, 3, 10000).astype(np.float32)
    assert pot.frac_bits_for(u, 8, "maxabs") == pot.frac_bits_for(u, 8, "percentile", percentile=100)


@pytest.mark.parametrize("bad", [1, 17, 0, 4.0, True, "8"])
def test_bits_out_of_range_are_rejected(bad):
    with pytest.raises(ValueError, match="integer in 2..16"):
        pot.quantize(np.zeros(3), bad, 0)


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match="rounding mode"):
        pot.quantize(np.zeros(3), 8, 0, rounding="up")
    with pytest.raises(ValueError, match="clipping method"):
        pot.frac_bits_for(np.ones(3), 8, clipping="kl")
    with pytest.raises(ValueError, match="block_size"):
        pot.frac_bits_for(np.ones((3, 4)), 8, granularity="block")


# ---------------------------------------------------------------- models, spec, simulation


def _tiny_model():
    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                    primary_dim=4, primary_kernel=3, class_dim=6, decoder=None)
    return model


def _data(model, n=96, seed=0):
    """Images and labels = the float model's own predictions (float accuracy 1.0)."""
    x = np.random.default_rng(seed).uniform(0, 1, (n, 12, 12, 1)).astype(np.float32)
    return x, simulate.predict_classes(simulate.inference_model(model), x)


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(5)
    model = _tiny_model()
    x_cal, _ = _data(model, 64, seed=1)
    x, y = _data(model, 128, seed=2)
    cal = simulate.Calibration(model, x_cal, batch_size=32)
    return model, cal, x, y


def test_spec_validation_errors_are_clear(tiny):
    model = tiny[0]
    good = qspec.uniform_spec(model, 8)
    assert set(good["layers"]) == {"image", "conv1", "primary_caps", "class_caps", "length"}
    assert "weight_bits" not in good["layers"]["length"]
    assert good["layers"]["class_caps"]["routing_bits"] == 8

    def bad(mutate, match):
        s = json.loads(json.dumps(good))
        mutate(s)
        with pytest.raises(qspec.SpecError, match=match):
            qspec.validate(s, model)

    bad(lambda s: s["layers"]["conv1"].update(weight_bits=1), "integer in 2..16")
    bad(lambda s: s["layers"]["conv1"].update(activation_bits=17), "integer in 2..16")
    bad(lambda s: s["layers"].update(conv9={"weight_bits": 8}), "not a layer of model.*conv1")
    bad(lambda s: s["layers"]["conv1"].update(routing_bits=8), "does no dynamic routing")
    bad(lambda s: s["layers"]["length"].update(weight_bits=8), "no quantizable weights")
    bad(lambda s: s["layers"]["conv1"].update(wbits=8), "unknown keys")
    bad(lambda s: s.update(version=9), "version 1")
    bad(lambda s: s.update(rounding="up"), "rounding")
    bad(lambda s: s.update(weight_granularity="block"), "block_size")
    bad(lambda s: s["layers"]["class_caps"].update(routing_frac_bits={"u": 1}), "routing_frac")


def test_spec_json_round_trip_fixes_the_quantized_model(tiny, tmp_path):
    model, cal, x, y = tiny
    full = simulate.complete_spec(model, qspec.uniform_spec(model, 6), cal)
    path = qspec.save_spec(full, str(tmp_path / "spec.json"), model)
    loaded = qspec.load_spec(path, model)
    assert loaded == full
    a = simulate.quantized_model(model, full, cal).predict(x, verbose=0)
    b = simulate.quantized_model(model, loaded).predict(x, verbose=0)  # no calibration needed
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="pass a Calibration"):
        simulate.quantized_model(model, qspec.uniform_spec(model, 6))
    with pytest.raises(qspec.SpecError, match="no quantization spec"):
        qspec.load_spec(str(tmp_path / "missing.json"))


def test_simulated_model_quantizes_weights_activations_and_routing(tiny):
    model, cal, x, _ = tiny
    before = [w.copy() for w in model.get_weights()]
    s = simulate.complete_spec(model, qspec.uniform_spec(model, 5), cal)
    qm = simulate.quantized_model(model, s)
    for a, b in zip(before, model.get_weights()):  # the float model is untouched
        np.testing.assert_array_equal(a, b)
    conv = qm.layers[-1].get_layer("conv1") if hasattr(qm.layers[-1], "get_layer") else None
    kernel = conv.get_weights()[0]
    f = np.asarray(s["layers"]["conv1"]["weight_frac_bits"]["kernel"]).reshape(1, 1, 1, -1)
    np.testing.assert_allclose(kernel * 2.0**f, np.round(kernel * 2.0**f), atol=1e-4)
    assert np.abs(np.round(kernel * 2.0**f)).max() <= 16  # 5-bit integers
    lengths = qm.predict(x, verbose=0)  # output activation: multiples of 2^-f
    f_out = s["layers"]["length"]["activation_frac_bits"][0]
    np.testing.assert_allclose(lengths * 2.0**f_out, np.round(lengths * 2.0**f_out), atol=1e-3)
    # Routing tensors are quantized too: recording them shows the PoT grid.
    seen = {}
    caps = qm.layers[-1].get_layer("class_caps")
    inner = caps.routing_quantizer

    def record(kind, t):
        out = inner(kind, t)
        seen[kind] = np.asarray(out)
        return out

    caps.routing_quantizer = record
    qm(x[:4])
    assert set(seen) == {"votes", "logits", "coupling", "s", "v"}
    for kind, values in seen.items():
        f = s["layers"]["class_caps"]["routing_frac_bits"][kind]
        np.testing.assert_allclose(values * 2.0**f, np.round(values * 2.0**f), atol=1e-3)


def test_sixteen_bits_agree_with_float_and_fewer_bits_drift_more(tiny):
    model, cal, _, _ = tiny
    x, _ = _data(model, 64, seed=1)  # the calibration images: no value beyond their range
    ref = simulate.inference_model(model).predict(x, verbose=0)
    errs = []
    for bits in (16, 8, 4):
        qm = simulate.quantized_model(model, qspec.uniform_spec(model, bits), cal)
        errs.append(np.abs(qm.predict(x, verbose=0) - ref).max())
    assert errs[0] < 1e-3 and errs[0] < errs[1] < errs[2]


def test_memory_accounting_matches_hand_counts():
    model = capsnet(input_shape=(8, 8, 1), conv_filters=2, conv_kernel=3, primary_capsules=2,
                    primary_dim=2, primary_kernel=3, primary_strides=2, num_classes=3,
                    class_dim=4, decoder=None)
    rows = {r["name"]: r for r in memory.memory_table(model)}
    # conv1: 3*3*1*2 + 2 = 20 params, output 6x6x2 = 72; primary: 3*3*2*4 + 4 = 76 params,
    # output 2x2x2x2 = 16 capsules values (+ its returned feature map when tapped).
    assert rows["conv1"]["params"] == 20 and rows["conv1"]["activation_elements"] == 72
    assert rows["primary_caps"]["params"] == 76
    n, j, d = 2 * 2 * 2, 3, 4  # class caps: N = 8 inputs, J = 3, D = 4
    assert rows["class_caps"]["params"] == n * j * 2 * d
    assert rows["class_caps"]["routing_elements"] == j * n * d + 2 * j * n + 2 * j * d
    floats = memory.memory_summary(model)
    assert floats["weights"] == 32 * sum(r["params"] for r in rows.values())
    s = qspec.uniform_spec(model, 4, weight_granularity="tensor")
    s["layers"]["class_caps"]["routing_bits"] = 8
    q = memory.memory_summary(model, s)
    exponents = 2 + 2 + 1  # conv1 kernel+bias, primary kernel+bias, class kernel
    assert q["weights"] == 4 * sum(r["params"] for r in rows.values()) + 8 * exponents
    acts = sum(r["activation_elements"] for r in rows.values())
    assert q["activations_total"] == 4 * acts + 8 * rows["class_caps"]["routing_elements"]
    cc = rows["class_caps"]
    assert floats["activations_peak"] == 32 * (n * 2 + cc["activation_elements"]
                                               + cc["routing_elements"])
    s_ch = qspec.uniform_spec(model, 4)  # per-channel: one exponent per output channel/capsule
    assert memory.memory_summary(model, s_ch)["weights"] == (
        4 * sum(r["params"] for r in rows.values()) + 8 * ((2 + 1) + (4 + 1) + 3))
    factors = memory.reduction_factors(model, s)
    assert factors["activations_total"] == floats["activations_total"] / q["activations_total"]


def test_deep_capsnet_routing_memory_counts_conv_capsule_positions():
    model = deep_capsnet(4, 2, 1, input_shape=(12, 12, 1))
    conv_caps = [layer for layer in model.layers if layer.__class__.__name__ == "ConvCapsule"][0]
    counts = memory.routing_elements(conv_caps)
    out = conv_caps.output.shape
    positions, n = out[1] * out[2], 9 * conv_caps.input_types
    assert counts["votes"] == positions * out[3] * n * out[4]
    caps = simulate.layer_capabilities(model)
    assert caps[conv_caps.name] == {"weights": True, "routing": True}
    assert not any(caps[n]["weights"] for n in caps if n.startswith("bn"))


@pytest.mark.slow
def test_searches_meet_their_tolerance_on_the_evaluation_data(tiny):
    model, cal, x, y = tiny
    ev = progressive.Evaluator(model, cal, x, y, batch_size=64)
    assert ev.float_accuracy == 1.0
    tol = 0.02
    a = progressive.uniform_search(ev, tol, max_bits=12)
    assert a.meets_tolerance and a.accuracy >= 1.0 - tol
    assert a.accuracy == simulate.accuracy(simulate.quantized_model(model, a.spec), x, y)
    bits = {e.get("weight_bits") for e in a.spec["layers"].values()} - {None}
    assert len(bits) == 1 and bits.pop() < 12
    c = progressive.refinement_search(ev, tol, base=a)
    assert c.meets_tolerance
    assert c.accuracy == simulate.accuracy(simulate.quantized_model(model, c.spec), x, y)
    assert c.reductions["weights"] >= a.reductions["weights"]
    assert c.reductions["activations_total"] >= a.reductions["activations_total"]
    b = progressive.layerwise_search(ev, tol, weight_reduction=4.0, base=a)
    assert b.reductions["weights"] >= 4.0
    names = [n for n, e in b.spec["layers"].items() if e.get("weight_bits")]
    wbits = [b.spec["layers"][n]["weight_bits"] for n in names]
    assert wbits == sorted(wbits, reverse=True)  # deeper layers: fewer or equal bits
    if b.meets_tolerance:
        assert b.accuracy >= 1.0 - tol
    with pytest.raises(ValueError, match="lower --weight_reduction"):
        progressive.layerwise_search(ev, tol, weight_reduction=100.0, base=a)


@pytest.mark.slow
def test_qat_lowers_the_quantized_loss_and_keeps_the_spec(tiny):
    from keras_caps.losses import MarginLoss
    from keras_caps.quantization import qat

    model, cal, x, y = tiny
    spec = simulate.complete_spec(model, qspec.uniform_spec(model, 3), cal)
    before = simulate.quantized_model(model, spec)
    original = [w.copy() for w in model.get_weights()]
    tuned, losses = qat.qat_finetune(model, spec, x, y, epochs=4, batch_size=32,
                                     learning_rate=3e-3)
    after = simulate.quantized_model(tuned, spec)
    onehot = np.eye(10, dtype=np.float32)[y]
    loss = MarginLoss()
    l0 = float(loss(onehot, before.predict(x, verbose=0)))
    l1 = float(loss(onehot, after.predict(x, verbose=0)))
    assert l1 < l0 and len(losses) == 4
    kernel = after.layers[-1].get_layer("conv1").get_weights()[0]
    f = np.asarray(spec["layers"]["conv1"]["weight_frac_bits"]["kernel"]).reshape(1, 1, 1, -1)
    assert np.abs(np.round(kernel * 2.0**f)).max() <= 4  # still 3-bit PoT weights
    for a, b in zip(original, model.get_weights()):  # the float model is untouched
        np.testing.assert_array_equal(a, b)
    incomplete = qspec.uniform_spec(model, 3)
    with pytest.raises(ValueError, match="complete spec"):
        qat.qat_finetune(model, incomplete, x, y)
