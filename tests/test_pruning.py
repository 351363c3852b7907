"""Channel pruning (CCM, CHIP, selection, surgery) and magnitude pruning."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_caps.models import capsnet, deep_capsnet, feature_model
from keras_caps.pruning import (
    CCMTrainer,
    MagnitudePruning,
    ccm,
    channel_independence,
    chip_scores,
    num_pruned,
    prunable_kernels,
    prune_model,
    select_channels,
    sparsity_report,
    sparsity_schedule,
    strip_pruning,
    zero_channels,
)
from keras_caps.pruning.magnitude import magnitude_mask
from keras_caps.training import compile_capsnet, model_io
from tests.synthetic import striped_images


def _images(n=6, size=12, seed=0):
    return np.random.RandomState(seed).rand(n, size, size, 1).astype("float32")


def _deep(num_intermediate=0, **kwargs):
    model = deep_capsnet(4, 2, num_intermediate, input_shape=(12, 12, 1),
                         backbone_filters=(8, 8, 8), class_dim=4, **kwargs)
    rng = np.random.RandomState(1)
    for layer in model.layers:  # non-trivial BatchNorm statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.rand(c) + 0.5, rng.randn(c) * 0.1, rng.randn(c) * 0.1,
                               rng.rand(c) + 0.5])
    return model


# ----------------------------------------------------------------------------------------- CCM


def test_ccm_identical_channels_is_one_and_independent_near_zero():
    rng = np.random.RandomState(0)
    base = rng.randn(2, 16, 16, 1).astype("float32")
    same = np.concatenate([base, 2.0 * base + 1.0, -base], axis=-1)  # |corr| = 1 pairwise
    assert float(ccm(same)) == pytest.approx(1.0, abs=1e-4)
    assert float(ccm(same, reduction="batch")) == pytest.approx(1.0, abs=1e-4)
    independent = rng.randn(4, 32, 32, 6).astype("float32")
    assert float(ccm(independent)) < 0.05
    assert float(ccm(rng.randn(1, 12, 12, 1).astype("float32"))) == 0.0  # no pairs


def test_ccm_matches_numpy_corrcoef_and_is_safe_for_constant_channels():
    rng = np.random.RandomState(2)
    x = rng.randn(3, 5, 5, 4).astype("float32")
    expected = []
    for sample in x:
        corr = np.corrcoef(sample.reshape(-1, 4).T)
        expected.append(np.abs(corr)[~np.eye(4, dtype=bool)].mean())
    assert float(ccm(x)) == pytest.approx(np.mean(expected), abs=1e-4)
    pooled = np.abs(np.corrcoef(x.reshape(-1, 4).T))[~np.eye(4, dtype=bool)].mean()
    assert float(ccm(x, reduction="batch")) == pytest.approx(pooled, abs=1e-4)

    x[..., 0] = 3.0  # a constant channel (a dead ReLU): correlation 0, finite gradients
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = ccm(xt)
    grad = tape.gradient(value, xt).numpy()
    assert np.isfinite(float(value)) and np.isfinite(grad).all()
    assert np.abs(grad[..., 1:]).max() > 0  # the gradient flows to the other channels
    with pytest.raises(ValueError, match="reduction"):
        ccm(xt, reduction="pixels")


def _tiny_data(n=32, seed=0):
    return striped_images(n, seed)


def _eager(model):
    """Tiny models train ~4x faster eagerly than tracing them (graph mode: binaries' tests)."""
    model.run_eagerly = True
    return model


def _dataset(model, n=32, batch=8):
    from keras_caps import data

    x, y = _tiny_data(n)
    return data.make_dataset(x, y, batch_size=batch).map(model_io(model))


def test_ccm_trainer_logs_total_margin_ccm_under_a_strategy_and_saves(tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():  # graph mode (tf.function) under tf.distribute
        trainer = compile_capsnet(CCMTrainer(_deep(), alpha=0.5), jit_compile=False)
    history = trainer.fit(_dataset(trainer), epochs=1, verbose=0, shuffle=False).history
    for key in ("loss", "margin", "ccm", "ccm_relu1", "ccm_primary_caps", "accuracy"):
        assert key in history and np.isfinite(history[key][0]), key
    # total = margin - alpha * CCM, batch-averaged (equal weights, so linear)
    assert history["loss"][0] == pytest.approx(
        history["margin"][0] - 0.5 * history["ccm"][0], rel=1e-4, abs=1e-5)
    parts = sum(history[f"ccm_{t}"][0] for t in trainer.taps)
    assert history["ccm"][0] == pytest.approx(parts, rel=1e-4) and parts > 0
    path = str(tmp_path / "trainer.keras")
    trainer.save(path)
    loaded = keras.saving.load_model(path)
    x = _images()
    np.testing.assert_allclose(loaded.capsnet(x)["lengths"], trainer.capsnet(x)["lengths"],
                               atol=1e-6)
    assert loaded.alpha == 0.5 and loaded.taps == trainer.taps


def test_ccm_term_changes_the_update():
    def one_step(alpha):
        keras.utils.set_random_seed(3)
        trainer = _eager(compile_capsnet(CCMTrainer(_deep(), alpha=alpha), jit_compile=False))
        trainer.fit(_dataset(trainer, n=8), epochs=1, verbose=0, shuffle=False)
        return trainer.capsnet.get_layer("conv1").get_weights()[0]

    assert not np.allclose(one_step(0.0), one_step(5.0))


# ----------------------------------------------------------------------------------------- CHIP


def _nuclear_ci(maps):
    b, h, w, c = maps.shape
    out = np.zeros((b, c))
    for i in range(b):
        f = maps[i].reshape(h * w, c).T.astype(np.float64)  # (C, P)
        full = np.linalg.norm(f, "nuc")
        for k in range(c):
            g = f.copy()
            g[k] = 0.0
            out[i, k] = full - np.linalg.norm(g, "nuc")
    return out


@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (2, 2, 3, 9)])  # C <= P and C > P
def test_channel_independence_equals_direct_nuclear_norms(shape):
    maps = np.random.RandomState(0).randn(*shape).astype("float32")
    maps[0, ..., 1] = maps[0, ..., 0]  # a redundant channel
    np.testing.assert_allclose(channel_independence(maps), _nuclear_ci(maps), rtol=1e-7,
                               atol=1e-8)
    np.testing.assert_allclose(channel_independence(maps, max_bytes=1), _nuclear_ci(maps),
                               rtol=1e-7, atol=1e-8)  # one sample per chunk


def test_chip_scores_average_the_feature_maps_scores():
    model = _deep()
    x = _images(10)
    scores = chip_scores(model, x, num_batches=2, batch_size=4)  # 8 of the 10 images
    maps = feature_model(model)(x[:8])
    assert list(scores) == ["relu1", "relu2", "relu3", "primary_caps"]
    for name, value in scores.items():
        assert value.shape == (maps[name].shape[-1],)
        np.testing.assert_allclose(value, _nuclear_ci(np.asarray(maps[name])).mean(axis=0),
                                   rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ selection


def test_selection_counts_are_multiples_of_d_and_small_layers_are_skipped():
    assert num_pruned(12, 0.25, 4) == 4  # the paper's example: 3 rounded up to 4
    assert num_pruned(64, 0.125, 8) == 8 and num_pruned(20, 0.6, 4) == 12
    assert num_pruned(3, 0.5, 4) == 0  # fewer channels than D: untouched
    assert num_pruned(12, 0.0, 4) == 0
    rng = np.random.RandomState(0)
    scores = {"relu1": rng.rand(12), "tiny": rng.rand(3), "primary_caps": rng.rand(16)}
    kept = select_channels(scores, 0.25, 4)
    assert len(kept["relu1"]) == 8 and len(kept["tiny"]) == 3
    dropped = np.setdiff1d(np.arange(12), kept["relu1"])
    assert scores["relu1"][dropped].max() <= scores["relu1"][kept["relu1"]].min()
    # PrimaryCaps: 4 types of D = 4; the lowest-mean type goes as a whole
    type_means = scores["primary_caps"].reshape(4, 4).mean(axis=1)
    worst = int(np.argmin(type_means))
    expected = np.array([c for c in range(16) if c // 4 != worst])
    np.testing.assert_array_equal(kept["primary_caps"], expected)


def test_selection_rejects_bad_ratios_and_pruning_everything():
    scores = {"relu1": np.arange(8.0), "primary_caps": np.arange(8.0)}  # 2 types of D = 4
    for ratio in (1.0, -0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="pruning ratio"):
            select_channels(scores, ratio, 4)
    with pytest.raises(ValueError, match="no capsule"):
        select_channels(scores, 0.6, 4)  # 4.8 -> 8 channels: both types
    with pytest.raises(ValueError, match="leaving no capsule input"):
        select_channels({"relu1": np.arange(4.0)}, 0.5, 4)
    with pytest.raises(ValueError, match="multiple of D"):
        select_channels({"primary_caps": np.arange(6.0)}, 0.25, 4)


# -------------------------------------------------------------------------------------- surgery


def _kept(model, ratio=0.25, dim=2):
    return select_channels(chip_scores(model, _images(), num_batches=1), ratio, dim)


@pytest.mark.parametrize("num_intermediate,mode", [(0, "prune"), (2, "keep")])
def test_pruned_model_computes_the_zeroed_original(num_intermediate, mode):
    model = _deep(num_intermediate)
    kept = _kept(model)
    pruned = prune_model(model, kept, class_caps="transfer", intermediate_caps=mode)
    zeroed = zero_channels(model, kept)
    x = _images()
    # backbone maps: the kept channels are identical, the pruned ones are zero in the reference
    ref_maps, new_maps = feature_model(zeroed)(x), feature_model(pruned)(x)
    for name, idx in kept.items():
        np.testing.assert_allclose(new_maps[name], np.asarray(ref_maps[name])[..., idx],
                                   atol=1e-6)
        dropped = np.setdiff1d(np.arange(ref_maps[name].shape[-1]), idx)
        if name != "primary_caps":
            assert np.abs(np.asarray(ref_maps[name])[..., dropped]).max() == 0.0
    # outputs: equal up to float32 summation order (see surgery's module docstring)
    np.testing.assert_allclose(pruned(x)["lengths"], zeroed(x)["lengths"], atol=2e-5)
    assert not np.allclose(model(x)["lengths"], zeroed(x)["lengths"], atol=1e-3)


def test_pruning_intermediate_types_keeps_primary_capsules_exactly():
    model = _deep(1)
    kept = _kept(model)
    pruned = prune_model(model, kept, class_caps="transfer", intermediate_caps="prune")
    zeroed = zero_channels(model, kept)
    types = np.unique(kept["primary_caps"] // 2)
    x = _images()

    def primary(m):
        return keras.Model(m.input, m.get_layer("primary_caps").output[0])(x)

    np.testing.assert_allclose(primary(pruned), np.asarray(primary(zeroed))[..., types, :],
                               atol=1e-6)
    assert pruned.get_layer("intermediate_caps_1").kernel.shape == (9 * 3, 3, 2, 2)
    assert np.isfinite(pruned(x)["lengths"]).all()


@pytest.mark.parametrize("weight_sharing", [False, True])
def test_shallow_capsnet_with_decoder_prunes_exactly(weight_sharing):
    model = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                    primary_dim=4, primary_kernel=3, class_dim=6, decoder="reduced",
                    weight_sharing=weight_sharing)
    kept = select_channels(chip_scores(model, _images(), num_batches=1), 0.5, 4)
    pruned = prune_model(model, kept, class_caps="transfer")
    zeroed = zero_channels(model, kept)
    inputs = {"image": _images(), "label": np.eye(10, dtype="float32")[:6]}
    a, b = pruned(inputs), zeroed(inputs)
    for key in ("lengths", "reconstruction"):
        np.testing.assert_allclose(a[key], b[key], atol=2e-5)


def test_pruned_parameter_counts_match_hand_counts():
    model = _deep(1)
    kept = {"relu1": [0, 1, 2, 3, 4, 5], "relu2": [1, 2, 3, 4], "relu3": [0, 2, 4, 6, 7],
            "primary_caps": [2, 3, 6, 7]}  # types 1 and 3 of C = 4, D = 2
    pruned = prune_model(model, kept)  # fresh class caps, intermediate types pruned
    f1, f2, f3, c, d = 6, 4, 5, 2, 2
    grid = 2  # 12 -> 12 -> 6 -> 6 -> primary (6 - 3) // 2 + 1 = 2
    conv = (9 * 1 * f1 + f1) + (9 * f1 * f2 + f2) + (9 * f2 * f3 + f3)
    bn = 4 * (f1 + f2 + f3)
    primary = 9 * f3 * c * d + c * d
    intermediate = 9 * c * c * d * d
    class_caps = grid * grid * c * 10 * d * 4
    expected = conv + bn + primary + intermediate + class_caps
    assert pruned.count_params() == expected
    assert pruned.get_layer("class_caps").kernel.shape == (grid * grid * c, 10, d, 4)
    for mode in ("keep", "fresh"):
        other = prune_model(model, kept, intermediate_caps=mode)
        c_out = 4 if mode == "keep" else c
        assert other.get_layer("intermediate_caps_1").kernel.shape == (9 * c, c_out, d, d)


def test_fresh_modes_leave_the_new_capsule_layers_untouched():
    model = _deep(1)
    kept = {"primary_caps": [2, 3, 6, 7]}  # types 1 and 3 of C = 4, D = 2
    sliced = prune_model(model, kept, class_caps="transfer", intermediate_caps="prune")
    fresh = prune_model(model, kept, class_caps="fresh", intermediate_caps="fresh")
    rows = (np.arange(9)[:, None] * 4 + np.array([1, 3])).reshape(-1)  # offset p, type t
    want = model.get_layer("intermediate_caps_1").kernel.numpy()[rows][:, [1, 3]]
    np.testing.assert_array_equal(sliced.get_layer("intermediate_caps_1").kernel.numpy(), want)
    for name in ("intermediate_caps_1", "class_caps"):
        assert fresh.get_layer(name).kernel.shape == sliced.get_layer(name).kernel.shape
        assert not np.allclose(fresh.get_layer(name).kernel.numpy(),
                               sliced.get_layer(name).kernel.numpy())
    np.testing.assert_array_equal(fresh.get_layer("primary_caps").conv.kernel.numpy(),
                                  sliced.get_layer("primary_caps").conv.kernel.numpy())


def test_surgery_rejects_partial_capsule_types_and_unknown_layers():
    model = _deep()
    with pytest.raises(ValueError, match="whole capsule types"):
        prune_model(model, {"primary_caps": [0, 1, 2]})
    with pytest.raises(ValueError, match="only backbone"):
        prune_model(model, {"class_caps": [0]})
    with pytest.raises(ValueError, match="class_caps must be"):
        prune_model(model, {}, class_caps="reuse")


# ------------------------------------------------------------------------- magnitude pruning


def test_magnitude_mask_zeroes_the_smallest_and_keeps_old_zeros():
    w = np.array([[0.5, -0.1], [0.3, -2.0]])
    np.testing.assert_array_equal(magnitude_mask(w, 0.5), [[1, 0], [0, 1]])
    previous = np.array([[0, 1], [1, 1]])  # 0.5 was pruned before: it stays pruned
    np.testing.assert_array_equal(magnitude_mask(w, 0.5, previous), [[0, 0], [1, 1]])


def test_magnitude_pruning_reaches_the_schedule_and_masked_weights_stay_zero():
    model = _eager(compile_capsnet(_deep(1), jit_compile=False))
    schedule = sparsity_schedule("polynomial", final_sparsity=0.75, begin_step=0, end_step=2,
                             frequency=1)
    pruning = MagnitudePruning(schedule)
    model.fit(_dataset(model, n=48), epochs=1, verbose=0, shuffle=False,
              callbacks=[pruning])  # 6 steps
    report = sparsity_report(model)
    names = [row["name"] for row in report["layers"]]
    assert {"conv1", "primary_caps/conv", "intermediate_caps_1", "class_caps"} <= set(names)
    for row in report["layers"]:
        assert row["zeros"] == round(0.75 * row["size"]), row
    masks = {name: np.asarray(m) for name, m in pruning.masks.items()}
    model.fit(_dataset(model, n=16), epochs=1, verbose=0, shuffle=False, callbacks=[pruning])
    for name, kernel in prunable_kernels(model):
        w = np.asarray(kernel)
        assert np.all(w[masks[name] == 0] == 0), name
    stripped = strip_pruning(model, pruning)
    x = _images()
    np.testing.assert_allclose(stripped(x)["lengths"], model(x)["lengths"], atol=1e-6)
    assert sparsity_report(stripped)["total"]["sparsity"] == pytest.approx(0.75, abs=0.01)


def test_constant_schedule_from_tfmot_keeps_keras_3():
    schedule = sparsity_schedule("constant", final_sparsity=0.5, begin_step=1, frequency=1)
    should, sparsity = schedule(tf.constant(1, tf.int64))
    assert bool(should) and float(sparsity) == pytest.approx(0.5)
    assert keras.__version__.startswith("3.")
    with pytest.raises(ValueError, match="schedule kind"):
        sparsity_schedule("cubic")
