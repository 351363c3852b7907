"""Issue 17, "nothing lost, nothing silent": one test per mechanism, on tiny models and data.

Run-directory safety (lock, damaged checkpoint, results without a checkpoint, config
mismatch, permissions), input validation (NaN, image range, label dtype), the NaN-loss stop,
pipeline stage-done semantics, and the clean one-line error of every binary.
"""

import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from keras_caps import validation
from keras_caps.errors import (
    FileKindError,
    InputDataError,
    NonFiniteLossError,
    RunDirError,
    UserError,
)
from keras_caps.runs import PipelineConfig, TrainConfig
from keras_caps.runs.train import train
from keras_caps.training.run_dir import RunLock
from tests.synthetic import striped_images

ENV = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3",
           CUDA_VISIBLE_DEVICES="")


def _config(tmp_path, **overrides):
    values = dict(
        model_dir=str(tmp_path / "run"), conv_filters=8, conv_kernel=3, primary_capsules=4,
        primary_dim=4, primary_kernel=3, class_dim=6, decoder="none", epochs=1,
        batch_size=16, verbose=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _data():
    return striped_images(32, 0), striped_images(16, 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 1-epoch run (copied per test, so each test may damage its own)."""
    root = tmp_path_factory.mktemp("trained")
    train(_config(root), datasets_override=_data())
    return root / "run"


def _copy_run(trained, tmp_path):
    import shutil

    shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "run"


# ----------------------------------------------------------------------------- run directory


def test_second_run_on_a_locked_model_dir_fails_naming_the_holder(tmp_path):
    with RunLock(str(tmp_path / "run")):
        with pytest.raises(RunDirError, match=rf"in use by another run \(pid {os.getpid()} on"):
            train(_config(tmp_path), datasets_override=_data())
    # released: the same folder trains now
    assert train(_config(tmp_path), datasets_override=_data())["epochs"] == 1


def test_lock_is_held_across_processes(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from keras_caps.training.run_dir import "
         "RunLock; l = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); "
         "time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"pid {holder.pid} on"):
            RunLock(str(folder)).acquire()
    finally:
        holder.kill()
        holder.wait()
    RunLock(str(folder)).acquire().release()  # a killed holder's lock is gone


def test_damaged_checkpoint_is_an_error_never_a_silent_restart(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    best = (run / "best.keras").read_bytes()
    # state.json without last.keras (the case that lost a user's best.keras)
    (run / "checkpoints" / "last.keras").unlink()
    with pytest.raises(RunDirError, match="damaged or incomplete.*last.keras is missing.*--overwrite"):
        train(_config(tmp_path, epochs=2), datasets_override=_data())
    # a truncated last.keras
    full = (trained / "checkpoints" / "last.keras").read_bytes()
    (run / "checkpoints" / "last.keras").write_bytes(full[: len(full) // 2])
    with pytest.raises(RunDirError, match="not a readable .keras archive"):
        train(_config(tmp_path, epochs=2), datasets_override=_data())
    assert (run / "best.keras").read_bytes() == best  # nothing was overwritten


def test_checkpoint_state_lives_inside_last_keras(trained):
    with zipfile.ZipFile(trained / "checkpoints" / "last.keras") as archive:
        state = json.loads(archive.read("keras_caps_state.json"))
    readable = json.loads((trained / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == readable["epoch"] == 1
    from keras_caps.training.callbacks import file_sha256

    assert readable["model_sha256"] == file_sha256(trained / "checkpoints" / "last.keras")


def test_results_without_checkpoint_need_overwrite(trained, tmp_path):
    import shutil

    run = _copy_run(trained, tmp_path)
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(RunDirError, match="holds results of an earlier run.*best.keras"):
        train(_config(tmp_path), datasets_override=_data())
    metrics = train(_config(tmp_path, overwrite=True), datasets_override=_data())
    assert metrics["epochs"] == 1
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("run.previous-")]
    assert len(backups) == 1 and (backups[0] / "best.keras").exists()  # moved, not deleted


def test_resume_with_changed_architecture_or_data_is_an_error(trained, tmp_path):
    _copy_run(trained, tmp_path)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["architecture"]["conv_filters"] == 8 and "data_fingerprint" in saved
    with pytest.raises(RunDirError, match=r"conv_filters: 8 -> 6.*new --model_dir.*--overwrite"):
        train(_config(tmp_path, epochs=2, conv_filters=6), datasets_override=_data())
    other = (striped_images(32, 5), striped_images(16, 1))
    with pytest.raises(RunDirError, match="data_fingerprint"):
        train(_config(tmp_path, epochs=2), datasets_override=other)
    # the same flags resume (more epochs is not a config change)
    assert train(_config(tmp_path, epochs=2), datasets_override=_data())["epochs"] == 2


def test_output_files_follow_the_umask(trained, tmp_path):
    from keras_caps.io_utils import write_json

    old = os.umask(0o022)
    try:
        write_json(str(tmp_path / "x.json"), {"a": 1})
        assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
    finally:
        os.umask(old)
    # the module-scoped run was written under the test process's umask
    want = 0o666 & ~old
    for name in ("best.keras", "model.keras", "metrics.json", "history.csv", "config.json",
                 "checkpoints/last.keras", "checkpoints/state.json"):
        assert stat.S_IMODE((trained / name).stat().st_mode) == want, name


# ----------------------------------------------------------------------------- inputs


def test_nan_pixel_is_rejected_before_training(tmp_path):
    (x, y), test = _data()
    x = x.astype("float32") / 255.0
    x[3, 2, 2, 0] = np.nan
    with pytest.raises(InputDataError, match=r"1 non-finite value.*index \(3, 2, 2, 0\)"):
        train(_config(tmp_path), datasets_override=((x, y), test))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_float_images_in_0_255_are_rejected_and_never_scaled_twice(tmp_path):
    from keras_caps import data

    (x, y), test = _data()
    with pytest.raises(InputDataError, match="float images must lie in.*0..255 pixel values"):
        train(_config(tmp_path), datasets_override=((x.astype("float32"), y), test))
    unit = data.normalize(x)
    assert unit.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(data.normalize(unit), unit)  # not divided again
    np.testing.assert_allclose(data.normalize(unit, "symmetric"), data.normalize(x, "symmetric"),
                               atol=1e-6)
    with pytest.raises(InputDataError, match="non-finite"):
        data.normalize(np.full((2, 4, 4, 1), np.nan, "float32"))


def test_float_or_out_of_range_labels_are_rejected(tmp_path):
    (x, y), test = _data()
    with pytest.raises(InputDataError, match="labels have dtype float64; labels must be integer"):
        train(_config(tmp_path), datasets_override=((x, y + 0.5), test))
    with pytest.raises(InputDataError, match=r"labels must lie in \[0, 10\)"):
        train(_config(tmp_path), datasets_override=((x, y + 5), test))
    with pytest.raises(InputDataError, match="one-hot labels"):
        validation.check_labels(np.eye(10)[y])
    with pytest.raises(InputDataError, match="32 labels for 31 images"):
        validation.check_dataset(x[:31], y)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(trained, tmp_path):
    import keras

    from keras_caps.training import fit_capsnet
    from keras_caps.training.callbacks import load_last_model

    run = _copy_run(trained, tmp_path)
    before = (run / "checkpoints" / "last.keras").read_bytes()

    class Poison(keras.callbacks.Callback):  # a diverging run: weights turn NaN in epoch 2
        def on_train_batch_begin(self, batch, logs=None):
            # the class-capsule kernel: NaN reaches the loss from there on every TensorFlow
            # (TF 2.21's oneDNN ReLU maps a NaN conv1 output to 0, so a NaN conv1 kernel
            # only kills the model)
            kernel = self.model.get_layer("class_caps").trainable_weights[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 2, batch 1.*kept in"):
        fit_capsnet(lambda: None, *_data(), str(run), epochs=2, batch_size=16, verbose=0,
                    callbacks=[Poison()],
                    run_config=_config(tmp_path).run_config())
    assert (run / "checkpoints" / "last.keras").read_bytes() == before
    weights = load_last_model(str(run / "checkpoints")).get_weights()
    assert all(np.isfinite(w).all() for w in weights)


# ----------------------------------------------------------------------------- files, models


def test_files_are_checked_for_what_they_are(tmp_path):
    import keras

    from keras_caps.lite import export

    text = tmp_path / "model.keras"
    text.write_text("not a model")
    with pytest.raises(FileKindError, match="is not a .keras model"):
        validation.load_keras_model(str(text), "--teacher")
    with pytest.raises(FileKindError, match="does not exist"):
        validation.check_keras_file(str(tmp_path / "missing.keras"), "--model")
    with pytest.raises(FileKindError, match="no 'TFL3' identifier"):
        validation.check_tflite_bytes(b"PK\x03\x04 a zip, not a flatbuffer")
    plain = keras.Sequential([keras.layers.Dense(3)])  # never built: no input
    with pytest.raises(UserError, match="no defined input"):
        validation.check_capsnet(plain, "--teacher")
    with pytest.raises(export.ExportError, match="not a keras_caps model"):
        export.export_form(plain)
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(UserError, match="not a keras_caps CapsNet"):
        validation.check_capsnet(functional, "--teacher")


def test_quantization_rejects_inverted_bit_range_and_extreme_exponents():
    from keras_caps.quantization import pot, spec

    with pytest.raises(UserError, match=r"min_bits \(8\) must not exceed max_bits \(4\)"):
        pot.check_bit_range(8, 4)
    bad = {"format": spec.FORMAT, "version": spec.VERSION,
           "layers": {"conv1": {"weight_bits": 8, "weight_frac_bits": {"kernel": 400}}}}
    with pytest.raises(spec.SpecError, match=r"exponent\(s\) \[400\] outside"):
        spec.validate(bad)
    assert int(pot.maxabs_frac_bits(1e-30, 8)) == pot.FRAC_BITS_LIMIT  # calibration clamps


# ----------------------------------------------------------------------------- pipeline


def test_pipeline_report_on_an_empty_dir_is_an_error_and_not_marked_done(tmp_path):
    from keras_caps.runs.pipeline import mark_done, pipeline

    config = PipelineConfig(model_dir=str(tmp_path / "pipe"), stages=["report"], verbose=0)
    with pytest.raises(UserError, match="no stage has finished"):
        pipeline(config)
    assert not (tmp_path / "pipe" / "report" / "done.json").exists()
    # a stage whose result names a file that was not written is not marked done
    with pytest.raises(UserError, match="did not write its outputs"):
        mark_done(str(tmp_path / "pipe"), "export",
                            {"int8": {"tflite": str(tmp_path / "pipe" / "missing.tflite")}})
    assert not (tmp_path / "pipe" / "export" / "done.json").exists()


def test_done_stage_with_missing_outputs_is_not_trusted(tmp_path):
    from keras_caps.io_utils import write_json
    from keras_caps.runs.pipeline import load_done

    root = tmp_path / "pipe"
    write_json(str(root / "teacher" / "done.json"), {"model": str(root / "teacher" / "best.keras")})
    with pytest.raises(UserError, match="marked done.*missing"):
        load_done(str(root), "teacher")


# ----------------------------------------------------------------------------- clean errors


def _run_binary(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


def test_user_errors_print_one_line_and_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"this is not a flatbuffer")
    cases = [
        (("train.train_capsnet", f"--model_dir={tmp_path / 'r'}", "--init_length=2"),
         "--init_length must lie in [0, 1)"),
        (("tflite.evaluate", f"--tflite={bad}"), "not a TFLite flatbuffer"),
        (("tflite.export", f"--model={bad}", f"--out={tmp_path / 'o.tflite'}"),
         "is not a .keras model"),
    ]
    for args, message in cases:
        out = _run_binary(*args)
        assert out.returncode == 2, (args, out.stderr[-2000:])
        assert "Traceback" not in out.stderr, out.stderr[-2000:]
        lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
        assert len(lines) == 1 and message in lines[0], out.stderr[-2000:]


def test_unexpected_errors_keep_their_traceback():
    from keras_caps import cli

    def bug(_):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        cli.guarded(bug)(None)
    try:
        np.ones(3).reshape(2)  # a ValueError from numpy, not from this project
    except ValueError as err:
        assert not cli.is_user_error(err)
    try:
        validation.check_labels(np.ones(3))
    except ValueError as err:
        assert cli.is_user_error(err)
    from keras_caps.models import capsnet

    try:  # raised inside a Keras model builder's size check: still the user's input
        capsnet(input_shape=(16, 16, 1))
    except ValueError as err:
        assert cli.is_user_error(err) and "--image_size" in cli.user_message(err)
    with pytest.raises(SystemExit) as exit_info:
        cli.guarded(lambda _: validation.check_labels(np.ones(3)))(None)
    assert exit_info.value.code == cli.USER_ERROR_STATUS


def test_remove_if_only_scaffolding_never_removes_a_result(tmp_path):
    from keras_caps.training.run_dir import remove_if_only_scaffolding

    run = tmp_path / "run"
    (run / "teacher").mkdir(parents=True)
    (run / ".lock").write_text("")
    (run / "config.json").write_text("{}")
    (run / "teacher" / "best.keras").write_bytes(b"trained")
    assert not remove_if_only_scaffolding(str(run))  # a result inside: everything stays
    assert (run / "teacher" / "best.keras").exists() and (run / "config.json").exists()
    (run / "teacher" / "best.keras").unlink()
    (run / "teacher" / "config.json").write_text("{}")  # a stage's own config is not scaffolding
    assert not remove_if_only_scaffolding(str(run))
    (run / "teacher" / "config.json").unlink()
    assert remove_if_only_scaffolding(str(run)) and not run.exists()
    assert not remove_if_only_scaffolding(str(run))  # nothing there: nothing done
