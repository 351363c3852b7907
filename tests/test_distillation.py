"""Distillation: score mapping, KL maths, gradients to the student only, saving, the binary."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_caps import data
from keras_caps.models import capsnet, mcu_capsnet
from keras_caps.runs import DistillConfig
from keras_caps.runs.distill import distill
from keras_caps.training.distillation import (
    Distiller,
    distillation_kl,
    length_crossentropy,
    soft_probabilities,
)
from tests.test_train_capsnet import _data

SMALL = dict(input_shape=(12, 12, 1), conv_kernel=3, primary_kernel=3)


def _teacher(**kw):
    params = dict(conv_filters=8, primary_capsules=4, primary_dim=4, class_dim=6, decoder=None)
    params.update(kw)
    return capsnet(**SMALL, **params)


def _student(**kw):
    params = dict(conv_filters=4, primary_capsules=2, primary_dim=4, class_dim=4, decoder=None)
    params.update(kw)
    return capsnet(**SMALL, **params)


def _np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_scores_at_temperature_one_recover_normalised_scores():
    rng = np.random.RandomState(0)
    p = rng.dirichlet(np.ones(5), size=4).astype("float32")  # already probabilities
    got = keras.ops.convert_to_numpy(soft_probabilities(p, temperature=1.0, epsilon=1e-9))
    np.testing.assert_allclose(got, p, rtol=1e-4, atol=1e-6)
    # unnormalised lengths: T = 1 normalises them; T = 2 takes square roots first
    lengths = np.array([[0.9, 0.1, 0.3, 0.05]], "float32")
    got1 = keras.ops.convert_to_numpy(soft_probabilities(lengths, 1.0, epsilon=1e-9))
    np.testing.assert_allclose(got1, lengths / lengths.sum(), rtol=1e-5)
    got2 = keras.ops.convert_to_numpy(soft_probabilities(lengths, 2.0, epsilon=1e-9))
    root = np.sqrt(lengths)
    np.testing.assert_allclose(got2, root / root.sum(), rtol=1e-5)
    # higher temperature = softer (higher entropy)
    got3 = keras.ops.convert_to_numpy(soft_probabilities(lengths, 3.0))
    assert got3.max() < got2.max() < got1.max()


def _caps_with_lengths(lengths, dim=3):
    caps = np.zeros(lengths.shape + (dim,), "float32")
    caps[..., 0] = lengths
    return caps


def test_loss_terms_match_hand_computation():
    rng = np.random.RandomState(1)
    t_len = rng.uniform(0.02, 0.95, (3, 10)).astype("float32")
    s_len = rng.uniform(0.02, 0.95, (3, 10)).astype("float32")
    y = np.eye(10, dtype="float32")[[2, 5, 7]]
    temperature, alpha, beta, eps = 3.0, 0.7, 0.4, 1e-6
    d = Distiller(_teacher(), _teacher(), temperature=temperature, alpha=alpha, beta=beta)
    terms = d.compute_losses(y, _caps_with_lengths(t_len), {"capsules": _caps_with_lengths(s_len)})
    # the Distiller measures lengths as sqrt(|v|^2 + 1e-7) (safe_length)
    tl, sl = np.sqrt(t_len.astype("float64") ** 2 + 1e-7), np.sqrt(s_len.astype("float64") ** 2
                                                                    + 1e-7)
    pt = _np_softmax(np.log(tl + eps) / temperature)
    ps = _np_softmax(np.log(sl + eps) / temperature)
    kl = np.mean(np.sum(pt * np.log(pt / ps), axis=-1))
    margin = np.mean(np.sum(y * np.maximum(0, 0.9 - sl) ** 2
                            + 0.5 * (1 - y) * np.maximum(0, sl - 0.1) ** 2, axis=-1))
    assert float(terms["kd_loss"]) == pytest.approx(kl, rel=1e-4)
    assert float(terms["task_loss"]) == pytest.approx(margin, rel=1e-4)
    assert float(terms["loss"]) == pytest.approx(alpha * temperature**2 * kl + beta * margin,
                                                 rel=1e-4)
    # the functional form agrees and is zero for proportional lengths (same distribution)
    per_sample = keras.ops.convert_to_numpy(distillation_kl(tl, sl, temperature, eps))
    np.testing.assert_allclose(per_sample.mean(), kl, rtol=1e-4)
    assert float(keras.ops.max(distillation_kl(tl, tl * 1.0, temperature, eps))) < 1e-9
    ce = keras.ops.convert_to_numpy(length_crossentropy(y, sl, eps))
    np.testing.assert_allclose(ce, -np.log(np.sum(y * (sl + eps), -1) / np.sum(sl + eps, -1)),
                               rtol=1e-5)


def test_kd_term_is_zero_when_student_equals_teacher():
    teacher, student = _teacher(), _teacher()
    student.set_weights(teacher.get_weights())
    d = Distiller(teacher, student, capsule_weight=1.0)
    d.compile("adam")
    x, y = _data(16)
    res = d.evaluate(data.make_dataset(x, y, 8), verbose=0, return_dict=True)
    assert res["kd_loss"] < 1e-6 and res["capsule_loss"] < 1e-10
    assert res["loss"] == pytest.approx(res["task_loss"], abs=1e-5)


def test_alpha_zero_trains_on_the_task_loss_without_running_the_teacher():
    teacher, student = _teacher(), _student()
    teacher.set_weights([np.full_like(w, np.nan) for w in teacher.get_weights()])  # NaN if run
    x, y = _data(16)
    ds = data.make_dataset(x, y, 8)
    scratch = Distiller(teacher, student, alpha=0.0)
    assert not scratch.uses_teacher
    scratch.compile("adam")
    res = scratch.evaluate(ds, verbose=0, return_dict=True)
    assert np.isfinite(res["loss"]) and res["kd_loss"] == 0.0
    assert res["loss"] == pytest.approx(res["task_loss"], rel=1e-6)
    kd = Distiller(teacher, student, alpha=0.5)  # the KD term needs the teacher: NaN here
    assert kd.uses_teacher and Distiller(teacher, student, alpha=0.0, capsule_weight=1.0).uses_teacher
    kd.compile("adam")
    assert np.isnan(kd.evaluate(ds, verbose=0, return_dict=True)["kd_loss"])


def test_fit_updates_the_student_only_and_logs_each_term(tmp_path):
    teacher = _teacher()
    student = _student(decoder="reduced")  # class dim 4 != 6: capsule matching via lengths
    d = Distiller(teacher, student, capsule_weight=0.5, task_loss="crossentropy")
    d.compile(keras.optimizers.Adam(1e-2))
    t_before = [w.copy() for w in teacher.get_weights()]
    s_before = [w.copy() for w in student.get_weights()]
    x, y = _data(32)
    ds = data.make_dataset(x, y, 8)
    hist = d.fit(ds, epochs=1, validation_data=ds, verbose=0, shuffle=False).history
    for key in ("loss", "kd_loss", "task_loss", "capsule_loss", "reconstruction_loss",
                "accuracy", "val_accuracy", "val_kd_loss"):
        assert key in hist, key
    assert all(np.array_equal(a, b) for a, b in zip(t_before, teacher.get_weights()))
    changed = [not np.array_equal(a, b) for a, b in zip(s_before, student.get_weights())]
    assert all(changed)  # every student weight got gradients (decoder included)
    assert len(d.trainable_weights) == len(student.trainable_weights)
    # the student saved alone predicts what the distiller predicts
    path = d.save_student(str(tmp_path / "student.keras"))
    loaded = keras.saving.load_model(path)
    want = d.predict(x[:4].astype("float32") / 255, verbose=0)
    got = loaded.predict({"image": x[:4].astype("float32") / 255,
                          "label": np.zeros((4, 10), "float32")}, verbose=0)["lengths"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_mismatched_teacher_and_student_are_rejected():
    with pytest.raises(ValueError, match="10 classes but student .* has 5"):
        Distiller(_teacher(), _student(num_classes=5))
    with pytest.raises(ValueError, match=r"input shape \(12, 12, 1\) differs from student input "
                                         r"shape \(14, 14, 1\)"):
        Distiller(_teacher(), capsnet(input_shape=(14, 14, 1), conv_filters=4, conv_kernel=3,
                                      primary_capsules=2, primary_dim=4, primary_kernel=3,
                                      class_dim=4, decoder=None))
    plain = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="no 'class_caps' layer"):
        Distiller(_teacher(), plain)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Distiller(_teacher(), _student(), temperature=0)
    with pytest.raises(ValueError, match="task_loss must be one of"):
        Distiller(_teacher(), _student(), task_loss="hinge")
    with pytest.raises(ValueError, match="computes its own loss"):
        Distiller(_teacher(), _student()).compile("adam", loss="mse")


def _flags(tmp_path, **overrides):
    values = dict(
        model_dir=str(tmp_path / "kd"), student_conv_filters=4, student_primary_capsules=2,
        student_primary_dim=4, student_class_dim=4, epochs=1, batch_size=8, verbose=0,
        transfer_init=True, temperature=3.0, alpha=1.0, beta=1.0,
    )
    values.update(overrides)
    return DistillConfig(**values)


def test_distill_binary_writes_artifacts_and_resumes(tmp_path):
    teacher_path = str(tmp_path / "teacher.keras")
    _teacher().save(teacher_path)
    data_pair = (_data(32), _data(16, 1))
    fv = _flags(tmp_path, teacher=teacher_path)
    metrics = distill(fv, datasets_override=data_pair)
    run_dir = tmp_path / "kd"
    for name in ("model.keras", "best.keras", "metrics.json", "history.csv",
                 "transfer_report.json", "checkpoints/last.keras", "checkpoints/state.json"):
        assert (run_dir / name).exists(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["epochs"] == 1 and 0 <= saved["test_accuracy"] <= 1
    assert saved["transfer"]["sliced"] == ["conv1", "primary_caps", "class_caps"]
    assert metrics["params"] < metrics["teacher_params"]
    student = keras.saving.load_model(str(run_dir / "model.keras"))
    assert student.get_layer("class_caps").capsule_dim == 4  # the student alone
    again = distill(_flags(tmp_path, teacher=teacher_path, epochs=2),
                    datasets_override=data_pair)
    assert [row["epoch"] for row in again["history"]] == [1, 2]
    with pytest.raises(ValueError, match="--teacher .* does not exist"):
        distill(_flags(tmp_path, teacher=str(tmp_path / "nope.keras")),
                datasets_override=data_pair)


def test_distill_into_an_mcu_student_with_length_init(tmp_path):
    """--student_model=mcu_capsnet: the microcontroller CapsNet as the student, its fresh
    capsule lengths calibrated (--student_init_length), and the choice recorded in
    config.json; the default capsnet student records exactly the fields it always did."""
    from keras_caps.runs.distill import STUDENT_FIELDS, build_student, student_fields
    from tests.synthetic import striped_images

    teacher_path = str(tmp_path / "teacher.keras")
    capsnet(input_shape=(16, 16, 1), conv_kernel=3, primary_kernel=3, conv_filters=8,
            primary_capsules=4, primary_dim=4, class_dim=6, decoder=None).save(teacher_path)
    data_pair = (striped_images(32, 0, size=16), striped_images(16, 1, size=16))
    config = _flags(tmp_path, teacher=teacher_path, transfer_init=False,
                    student_model="mcu_capsnet", student_mcu_size="S", student_init_length=0.5)
    student = build_student(config, keras.saving.load_model(teacher_path), 10)
    assert student.get_layer("class_caps").weight_sharing
    assert student.count_params() == mcu_capsnet("S", input_shape=(16, 16, 1)).count_params()
    metrics = distill(config, datasets_override=data_pair)
    assert metrics["epochs"] == 1 and 0 <= metrics["test_accuracy"] <= 1
    lengths = json.loads((tmp_path / "kd" / "init_lengths.json").read_text())
    assert abs(lengths["class_caps"]["length_after"] - 0.5) < 0.05
    recorded = json.loads((tmp_path / "kd" / "config.json").read_text())["architecture"]
    assert recorded["student_model"] == "mcu_capsnet" and recorded["student_init_length"] == 0.5
    assert student_fields(_flags(tmp_path, teacher=teacher_path)) == STUDENT_FIELDS
    assert "student_model" not in STUDENT_FIELDS
    with pytest.raises(ValueError, match="student_model"):
        _flags(tmp_path, teacher=teacher_path, student_model="resnet")


def test_fit_distiller_runs_user_callbacks_before_the_checkpoint(tmp_path):
    """The loop of fit_capsnet: what a user callback adds to the logs reaches history.csv."""
    from keras_caps.training.distillation import fit_distiller

    class AddMetric(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["user_metric"] = 1.0 + epoch

    def build():
        d = Distiller(_teacher(), _student())
        d.compile(keras.optimizers.Adam(1e-2))
        return d

    metrics = fit_distiller(build, _data(16), _data(8, 1), str(tmp_path / "kd"), epochs=1,
                            batch_size=8, verbose=0, callbacks=[AddMetric()])
    assert metrics["history"][0]["user_metric"] == 1.0
    assert "user_metric" in (tmp_path / "kd" / "history.csv").read_text().splitlines()[0]
    assert (tmp_path / "kd" / "best.keras").exists()
    best = keras.saving.load_model(str(tmp_path / "kd" / "best.keras"))
    assert best.get_layer("class_caps").capsule_dim == 4  # the student alone


MIRRORED_SCRIPT = r"""
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from keras_caps.models import capsnet, mcu_capsnet
from keras_caps.training.distillation import Distiller
rng = np.random.RandomState(0)
y = rng.randint(0, 3, 64)
x = rng.rand(64, 12, 12, 1).astype("float32") * 0.1
for i, k in enumerate(y):
    x[i, 2 + 3 * k:5 + 3 * k, 2:6] = 1.0
ds = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[y])).batch(16)
small = dict(input_shape=(12, 12, 1), conv_kernel=3, primary_kernel=3, num_classes=3,
             decoder=None)
out = {}
for name, strategy in (("one", tf.distribute.get_strategy()),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        t = capsnet(conv_filters=8, primary_capsules=4, primary_dim=4, class_dim=6, **small)
        s = capsnet(conv_filters=4, primary_capsules=2, primary_dim=4, class_dim=4, **small)
        d = Distiller(t, s)
        d.compile(keras.optimizers.SGD(0.5))
    h = d.fit(ds, epochs=3, verbose=0)
    out[name] = {"loss": h.history["loss"], "replicas": strategy.num_replicas_in_sync}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(tmp_path):
    script = tmp_path / "mirrored_kd.py"
    script.write_text(MIRRORED_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=300, check=True)
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["mirrored"]["replicas"] == 2
    one, two = np.array(runs["one"]["loss"]), np.array(runs["mirrored"]["loss"])
    assert two[-1] < two[0]
    np.testing.assert_allclose(one, two, rtol=0.05)
