"""Transfer: exact channel / capsule slices, head replacement, L2, staged unfreezing, finetune."""

import json

import keras
import numpy as np
import pytest

from keras_caps import data
from keras_caps.models import capsnet, deep_capsnet
from keras_caps.runs import FinetuneConfig
from keras_caps.runs.finetune import finetune, parse_schedule
from keras_caps.training import compile_capsnet
from keras_caps.training.transfer import (
    GradualUnfreezing,
    default_stages,
    init_student_from_teacher,
    replace_head,
    trainable_layer_names,
    with_l2_regularization,
)
from tests.test_train_capsnet import _data

SMALL = dict(input_shape=(12, 12, 1), conv_kernel=3, primary_kernel=3)


def _with_l1(kernel, axis_scores):
    """Rescales `kernel` so that each slice along the last axis has L1 norm = its score."""
    k = np.abs(kernel) + 0.01
    k = k / k.sum(axis=tuple(range(k.ndim - 1)), keepdims=True)
    return (k * np.asarray(axis_scores, "float32")).astype("float32")


def _known_teacher():
    """conv 6, 4 types x 3D, 10 x 5D, full decoder (8, 16), with designed L1 norms."""
    t = capsnet(conv_filters=6, primary_capsules=4, primary_dim=3, class_dim=5, decoder="full",
                decoder_units=(8, 16), **SMALL)
    rng = np.random.RandomState(0)
    conv1 = t.get_layer("conv1")
    conv1.set_weights([_with_l1(rng.randn(3, 3, 1, 6), [1, 5, 2, 8, 0.5, 3]),
                       np.arange(6, dtype="float32")])
    # channel scores per (type, component): type sums 3, 9.1, 6, 12.5
    chan = np.array([[1, 1, 1], [5, 0.1, 4], [2, 2, 2], [3, 9, 0.5]], "float32").reshape(-1)
    primary = t.get_layer("primary_caps").conv
    primary.set_weights([_with_l1(rng.randn(3, 3, 6, 12), chan), np.arange(12, dtype="float32")])
    caps = t.get_layer("class_caps")
    caps.set_weights([_with_l1(rng.randn(*caps.kernel.shape), [1, 7, 2, 6, 3])])
    return t


def test_init_copies_the_most_important_slices_exactly():
    t = _known_teacher()
    s = capsnet(conv_filters=3, primary_capsules=2, primary_dim=2, class_dim=3, decoder="full",
                decoder_units=(4, 16), **SMALL)
    report = init_student_from_teacher(t, s)
    assert report["sliced"] == ["conv1", "primary_caps", "class_caps", "decoder"]
    assert report["skipped"] == {} and report["copied"] == []
    keep_conv = [1, 3, 5]  # L1 norms 5, 8, 3 are the largest three
    types_, comps = [1, 3], [[0, 2], [0, 1]]
    channels = [3, 5, 9, 10]  # type * 3 + component, student order
    out = [1, 3, 4]  # class-capsule output components with L1 7, 6, 3
    assert report["layers"]["conv1"]["kept_channels"] == keep_conv
    assert report["layers"]["primary_caps"]["kept_types"] == types_
    assert report["layers"]["primary_caps"]["kept_components"] == comps
    assert report["layers"]["class_caps"]["kept_output_components"] == out

    tk, tb = t.get_layer("conv1").get_weights()
    sk, sb = s.get_layer("conv1").get_weights()
    np.testing.assert_array_equal(sk, tk[..., keep_conv])
    np.testing.assert_array_equal(sb, tb[keep_conv])
    tk, tb = t.get_layer("primary_caps").conv.get_weights()
    sk, sb = s.get_layer("primary_caps").conv.get_weights()
    np.testing.assert_array_equal(sk, tk[:, :, keep_conv][..., channels])
    np.testing.assert_array_equal(sb, tb[channels])
    # class capsules: student row (p * T_s + i) = teacher row (p * T_t + types[i]),
    # Din entries comps[i], Dout entries `out`; 4 x 4 = 16 positions
    tw = t.get_layer("class_caps").get_weights()[0]
    sw = s.get_layer("class_caps").get_weights()[0]
    assert sw.shape == (16 * 2, 10, 2, 3)
    for p in range(16):
        for i in range(2):
            want = tw[p * 4 + types_[i]][:, comps[i], :][..., out]
            np.testing.assert_array_equal(sw[p * 2 + i], want)
    # decoder: full mask input j * 5 + out[d]; hidden units by column L1
    td = t.get_layer("decoder").hidden[0].get_weights()[0]
    sd = s.get_layer("decoder").hidden[0].get_weights()[0]
    rows = [j * 5 + d for j in range(10) for d in out]
    units = np.sort(np.argsort(-np.abs(td).sum(axis=0), kind="stable")[:4])
    np.testing.assert_array_equal(sd, td[rows][:, units])
    assert report["params_transferred"] == report["student_params"]


def test_equal_architectures_copy_everything():
    t = _known_teacher()
    s = capsnet(conv_filters=6, primary_capsules=4, primary_dim=3, class_dim=5, decoder="full",
                decoder_units=(8, 16), **SMALL)
    report = init_student_from_teacher(t, s)
    assert report["copied"] == ["conv1", "primary_caps", "class_caps", "decoder"]
    for a, b in zip(t.get_weights(), s.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fresh_layers_keep_their_initialisation_and_later_layers_still_transfer():
    t = _known_teacher()
    s = capsnet(conv_filters=3, primary_capsules=2, primary_dim=2, class_dim=3, decoder="full",
                decoder_units=(4, 16), **SMALL)
    fresh_kernel = s.get_layer("class_caps").get_weights()[0].copy()
    reference = capsnet(conv_filters=3, primary_capsules=2, primary_dim=2, class_dim=3,
                        decoder="full", decoder_units=(4, 16), **SMALL)
    init_student_from_teacher(t, reference)
    report = init_student_from_teacher(t, s, fresh=["class_caps"])
    assert report["fresh"] == ["class_caps"]
    assert report["sliced"] == ["conv1", "primary_caps", "decoder"]
    np.testing.assert_array_equal(s.get_layer("class_caps").get_weights()[0], fresh_kernel)
    # the decoder reads the class-capsule components the transfer would have kept
    for name in ("conv1", "primary_caps", "decoder"):
        for a, b in zip(s.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert report["params_transferred"] == (report["student_params"]
                                           - s.get_layer("class_caps").count_params())
    with pytest.raises(ValueError, match="student lacks"):
        init_student_from_teacher(t, s, fresh=["class_capz"])


def test_student_matches_teacher_when_dropped_parts_are_zero():
    """Zero the teacher's unimportant channels / types / dims: the sliced student computes the
    same capsule lengths (dropped capsules vote 0, dropped dims add 0 to the norms)."""
    t = capsnet(conv_filters=6, primary_capsules=4, primary_dim=3, class_dim=5, decoder=None,
                **SMALL)
    conv1, primary, caps = (t.get_layer(n) for n in ("conv1", "primary_caps", "class_caps"))
    k, b = conv1.get_weights()
    k[..., [0, 2, 4]] = 0
    b[:] = 0.01
    b[[0, 2, 4]] = 0
    conv1.set_weights([k, b])
    k, b = primary.conv.get_weights()
    dropped = [0, 1, 2, 6, 7, 8, 4, 11]  # types 0 and 2, and one component of types 1 and 3
    k[..., dropped] = 0
    b[dropped] = 0
    primary.conv.set_weights([k, b])
    (w,) = caps.get_weights()
    w[..., [0, 2]] = 0
    caps.set_weights([w])
    s = capsnet(conv_filters=3, primary_capsules=2, primary_dim=2, class_dim=3, decoder=None,
                **SMALL)
    report = init_student_from_teacher(t, s)
    assert report["layers"]["primary_caps"]["kept_types"] == [1, 3]
    x = np.random.RandomState(0).rand(4, 12, 12, 1).astype("float32")
    np.testing.assert_allclose(s(x)["lengths"], t(x)["lengths"], rtol=1e-4, atol=1e-6)


def test_deep_capsnet_narrower_backbone_transfers_through_batchnorm():
    t = deep_capsnet(2, 4, 1, input_shape=(12, 12, 1), backbone_filters=(6, 6, 6), class_dim=4)
    for i in (1, 2, 3):
        conv = t.get_layer(f"conv{i}")
        k, b = conv.get_weights()
        k[..., ::2] = 0
        b[::2] = 0
        conv.set_weights([k, b])
    s = deep_capsnet(2, 4, 1, input_shape=(12, 12, 1), backbone_filters=(3, 3, 3), class_dim=4)
    report = init_student_from_teacher(t, s)
    assert report["sliced"] == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "primary_caps"]
    assert report["copied"] == ["intermediate_caps_1", "class_caps"]
    assert report["layers"]["conv2"]["kept_channels"] == [1, 3, 5]
    x = np.random.RandomState(1).rand(3, 12, 12, 1).astype("float32")
    np.testing.assert_allclose(s(x)["lengths"], t(x)["lengths"], rtol=1e-4, atol=1e-6)


def test_importance_scores_override_l1_and_are_checked():
    t = _known_teacher()
    s = capsnet(conv_filters=3, primary_capsules=2, primary_dim=3, class_dim=5, decoder=None,
                **SMALL)
    report = init_student_from_teacher(
        t, s, importance={"conv1": [0, 0, 0, 1, 1, 1], "primary_caps": [4, 3, 2, 1]})
    assert report["layers"]["conv1"]["kept_channels"] == [3, 4, 5]
    assert report["layers"]["primary_caps"]["kept_types"] == [0, 1]
    with pytest.raises(ValueError, match=r"importance\['conv1'\] has 2 scores but the teacher "
                                         "layer has 6"):
        init_student_from_teacher(t, s, importance={"conv1": [1, 2]})
    with pytest.raises(ValueError, match="teacher lacks"):
        init_student_from_teacher(t, s, importance={"conv9": [1]})


def test_unmappable_layers_keep_fresh_weights_and_are_reported():
    t = _known_teacher()
    s = capsnet(input_shape=(12, 12, 1), conv_filters=3, conv_kernel=5, primary_capsules=2,
                primary_dim=3, primary_kernel=3, class_dim=5, decoder=None)
    before = [w.copy() for w in s.get_weights()]
    report = init_student_from_teacher(t, s)
    assert "kernel size (5, 5)" in report["skipped"]["conv1"]
    assert "do not map" in report["skipped"]["primary_caps"]
    assert "class_caps" in report["skipped"]
    for a, b in zip(before, s.get_weights()):
        np.testing.assert_array_equal(a, b)
    wide = capsnet(conv_filters=12, primary_capsules=2, primary_dim=3, class_dim=5,
                   decoder=None, **SMALL)
    assert "more outputs (12) than the teacher (6)" in init_student_from_teacher(
        t, wide)["skipped"]["conv1"]


def test_a_student_with_fewer_blocks_transfers_only_the_layers_that_read_the_same_inputs():
    """M -> S microcontroller CapsNets: conv1-3 correspond; the teacher's primary capsules read
    conv4, the student's conv3, so they (and the class capsules after them) stay fresh."""
    from keras_caps.models import mcu_capsnet

    t, s = mcu_capsnet("M", input_shape=(16, 16, 1)), mcu_capsnet("S", input_shape=(16, 16, 1))
    before = s.get_layer("primary_caps").get_weights()
    report = init_student_from_teacher(t, s)
    assert report["sliced"] == ["conv1", "bn1", "conv2", "bn2", "conv3"]
    assert "reads ['relu3'] where the teacher's reads ['relu4']" in report["skipped"][
        "primary_caps"]
    assert "class_caps" in report["skipped"]
    for a, b in zip(before, s.get_layer("primary_caps").get_weights()):
        np.testing.assert_array_equal(a, b)
    kernel = t.get_layer("conv1").get_weights()[0][..., report["layers"]["conv1"][
        "kept_channels"]]
    np.testing.assert_array_equal(s.get_layer("conv1").get_weights()[0], kernel)


def test_replace_head_keeps_every_other_weight_exactly():
    t = _known_teacher()
    new = replace_head(t, 4)
    for name in ("conv1", "primary_caps"):
        for a, b in zip(t.get_layer(name).get_weights(), new.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert new.get_layer("class_caps").kernel.shape == (64, 4, 3, 5)
    assert new.get_layer("decoder").hidden[0].kernel.shape == (4 * 5, 8)  # same decoder kind
    assert t.get_layer("class_caps").kernel.shape[1] == 10  # the input model is untouched
    x = np.random.RandomState(0).rand(2, 12, 12, 1).astype("float32")
    out = new({"image": x, "label": np.eye(4, dtype="float32")[[0, 1]]})
    assert out["lengths"].shape == (2, 4) and out["reconstruction"].shape == (2, 12, 12, 1)
    plain = replace_head(t, 3, class_dim=7, decoder=None)
    assert plain(x)["lengths"].shape == (2, 3)
    assert plain.get_layer("class_caps").capsule_dim == 7
    # the new backbone is a copy: training it leaves the original alone
    new.get_layer("conv1").kernel.assign(np.zeros((3, 3, 1, 6), "float32"))
    assert np.abs(t.get_layer("conv1").kernel.numpy()).sum() > 0


def test_l2_regularization_is_lambda_sum_of_squared_kernels(tmp_path):
    t = _known_teacher()
    reg = with_l2_regularization(t, 1e-3)
    kernels = [t.get_layer("conv1").kernel, t.get_layer("primary_caps").conv.kernel,
               t.get_layer("class_caps").kernel]
    want = 1e-3 * sum(float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert float(sum(reg.losses)) == pytest.approx(want, rel=1e-5)
    for a, b in zip(t.get_weights(), reg.get_weights()):
        np.testing.assert_array_equal(a, b)
    path = str(tmp_path / "reg.keras")
    reg.save(path)
    assert float(sum(keras.saving.load_model(path).losses)) == pytest.approx(want, rel=1e-5)
    assert with_l2_regularization(t, 0.0) is t


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.trainable, self.lr, self.weights = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.trainable.append(trainable_layer_names(self.model))
        self.lr.append(float(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append({n: [w.copy() for w in self.model.get_layer(n).get_weights()]
                             for n in ("conv1", "primary_caps", "class_caps")})


def _changed(before, after, name):
    return any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))


def test_gradual_unfreezing_trains_only_the_unfrozen_stages():
    model = capsnet(conv_filters=4, primary_capsules=2, primary_dim=4, class_dim=4,
                    decoder=None, **SMALL)
    compile_capsnet(model, keras.optimizers.Adam(1e-2))
    assert default_stages(model) == [["class_caps"], ["primary_caps"], ["conv1"]]
    start = {n: [w.copy() for w in model.get_layer(n).get_weights()]
             for n in ("conv1", "primary_caps", "class_caps")}
    unfreeze, rec = GradualUnfreezing("auto", lr_factor=0.5), _Recorder()
    x, y = _data(16)
    ds = data.make_dataset(x, y, 8).map(lambda a, b: (a, {"lengths": b}))
    model.fit(ds, epochs=3, callbacks=[unfreeze, rec], verbose=0)
    assert rec.trainable == [["class_caps"], ["primary_caps", "class_caps"],
                             ["conv1", "primary_caps", "class_caps"]]
    np.testing.assert_allclose(rec.lr, [1e-2, 5e-3, 2.5e-3], rtol=1e-6)
    w0, w1, w2 = rec.weights
    assert _changed(start, w0, "class_caps")
    assert not _changed(start, w0, "primary_caps") and not _changed(start, w0, "conv1")
    assert _changed(w0, w1, "primary_caps") and not _changed(w0, w1, "conv1")
    assert _changed(w1, w2, "conv1")
    assert [e["stage"] for e in unfreeze.log] == [0, 1, 2]


def test_gradual_unfreezing_rejects_bad_schedules():
    with pytest.raises(ValueError, match="must list the layers trainable from epoch 0"):
        GradualUnfreezing({2: ["conv1"]})
    with pytest.raises(ValueError, match="epochs_per_stage must be >= 1"):
        GradualUnfreezing("auto", epochs_per_stage=0)
    model = capsnet(conv_filters=4, primary_capsules=2, primary_dim=4, class_dim=4,
                    decoder=None, **SMALL)
    with pytest.raises(ValueError, match=r"has no layers \['caps9'\]"):
        GradualUnfreezing({0: ["caps9"]}).resolve(model)
    assert parse_schedule("0:class_caps,length;2:conv1") == {
        0: ["class_caps", "length"], 2: ["conv1"]}
    assert parse_schedule("none") is None
    with pytest.raises(ValueError, match="is not EPOCH:LAYER"):
        parse_schedule("class_caps")


def _finetune_flags(tmp_path, **overrides):
    values = dict(model_dir=str(tmp_path / "ft"), epochs=1, batch_size=8, verbose=0,
                  num_classes=4, unfreeze_schedule="auto", l2=1e-4, learning_rate=4e-3)
    values.update(overrides)
    return FinetuneConfig(**values)


def test_finetune_binary_new_head_staged_unfreezing_and_resume(tmp_path):
    pretrained = capsnet(conv_filters=4, primary_capsules=2, primary_dim=4, class_dim=4,
                         decoder=None, **SMALL)
    path = str(tmp_path / "pretrained.keras")
    pretrained.save(path)
    (x, y), (xt, yt) = _data(16), _data(8, 1)
    pair = ((x, y % 4), (xt, yt % 4))
    fv = _finetune_flags(tmp_path, pretrained=path)
    finetune(fv, datasets_override=pair)  # epoch 1: head only
    mid = keras.saving.load_model(str(tmp_path / "ft" / "checkpoints" / "last.keras"))
    np.testing.assert_array_equal(mid.get_layer("conv1").kernel.numpy(),
                                  pretrained.get_layer("conv1").kernel.numpy())
    # resumed: epoch 2 unfreezes primary_caps after reloading the checkpoint (whose optimizer
    # must know the variables frozen when it was saved)
    metrics = finetune(_finetune_flags(tmp_path, pretrained=path, epochs=2,
                                           unfreeze_schedule="0:class_caps;1:primary_caps,conv1"),
                           datasets_override=pair)
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert [e["stage"] for e in metrics["unfreezing"]] == [1]
    assert metrics["unfreezing"][-1]["learning_rate"] == pytest.approx(2e-3)
    for name in ("model.keras", "best.keras", "metrics.json", "history.csv"):
        assert (tmp_path / "ft" / name).exists(), name
    final = keras.saving.load_model(metrics["model_path"])
    assert final.output["lengths"].shape[-1] == 4 and metrics["head_replaced"]
    assert not np.array_equal(final.get_layer("conv1").kernel.numpy(),
                              pretrained.get_layer("conv1").kernel.numpy())
    assert sum(final.losses) > 0  # the L2 term travels with the saved model
    saved = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert saved["num_classes"] == 4 and saved["l2"] == 1e-4
    with pytest.raises(ValueError, match="--pretrained must name an existing"):
        finetune(_finetune_flags(tmp_path, pretrained=str(tmp_path / "x.keras")),
                 datasets_override=pair)


def test_frozen_source_gives_a_trainable_new_head_and_unfreezing_rejects_frozen_layers():
    t = _known_teacher()
    t.trainable = False  # as a Distiller leaves its teacher
    new = replace_head(t, 4, decoder=None)
    assert all(layer.trainable for layer in new.layers)
    assert {"conv1", "primary_caps"} <= set(trainable_layer_names(new))
    assert not t.get_layer("conv1").trainable  # the source is untouched
    frozen = replace_head(t, 4, decoder=None)
    frozen.get_layer("conv1").trainable = False
    compile_capsnet(frozen, keras.optimizers.Adam(1e-3))
    x, y = _data(8)
    ds = data.make_dataset(x, y % 4, 8, num_classes=4).map(lambda a, b: (a, {"lengths": b}))
    with pytest.raises(ValueError, match=r"layers \['conv1'\] .* no trainable weights"):
        frozen.fit(ds, epochs=1, callbacks=[GradualUnfreezing("auto")], verbose=0)
