"""Your own data through the binaries: folder / npz datasets, input sizes, class names, labels.txt,
confusion matrices, and saved models that do not match the data."""

import json
import os

import numpy as np
import pytest

from keras_caps import plots
from keras_caps.data import DataSourceError
from keras_caps.models import capsnet, deep_capsnet
from keras_caps.models.compat import InputSizeError, ModelDataMismatch, check_model_data
from keras_caps.runs import (
    DataConfig,
    DistillConfig,
    FinetuneConfig,
    PipelineConfig,
    PruneConfig,
    QuantizeConfig,
    TrainConfig,
    datasets,
)
from keras_caps.runs.distill import distill
from keras_caps.runs.finetune import finetune
from keras_caps.runs.pipeline import STAGES, pipeline
from keras_caps.runs.prune import prune
from keras_caps.runs.quantize import quantize
from keras_caps.runs.train import train
from tests.data_fixtures import write_folder, write_npz

CLASSES = ("circle", "square", "triangle")
TINY = dict(conv_filters=8, conv_kernel=3, primary_capsules=4, primary_dim=4, primary_kernel=3,
            class_dim=6, decoder="none", epochs=1, batch_size=16, verbose=0)


def _config(cls, tmp_path, **overrides):
    names = cls.field_names()  # QuantizeConfig has no model or run-folder fields
    values = {k: v for k, v in dict(model_dir=str(tmp_path / "run"), **TINY).items()
              if k in names}
    return cls(**{**values, **overrides})


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """folder:PATH of 3 classes x 20 grayscale 24x24 PNGs (no test/ folder)."""
    return write_folder(tmp_path_factory.mktemp("own") / "shapes", CLASSES, per_class=20, size=24)


# ----------------------------------------------------------------------------- input sizes


def test_architectures_name_their_minimum_size():
    with pytest.raises(InputSizeError, match=r"capsnet .*conv_kernel=9.*at least 17x17 pixels, "
                                             r"got 12x12.*--image_size=17.*--conv_kernel"):
        capsnet(input_shape=(12, 12, 1))
    capsnet(input_shape=(17, 17, 1), conv_filters=4, primary_capsules=2, decoder=None)
    with pytest.raises(InputSizeError, match=r"deep_capsnet .*at least 5x5 pixels, got 4x4"):
        deep_capsnet(input_shape=(4, 4, 1))
    with pytest.raises(InputSizeError, match=r"at least 9x9 pixels, got 40x8"):
        capsnet(input_shape=(40, 8, 3), conv_kernel=5, primary_kernel=5)


def test_train_capsnet_on_a_folder_takes_its_shape_and_classes(tmp_path, shapes):
    fl = _config(TrainConfig, tmp_path, dataset=f"folder:{shapes}",
                 image_size="20", test_fraction=0.25, balance="oversample", denoise="median",
                 remove_constant_features=True)
    metrics = train(fl)
    import keras

    model = keras.saving.load_model(os.path.join(fl.model_dir, "model.keras"), compile=False)
    assert tuple(model.input.shape[1:]) == (20, 20, 1)
    assert model.get_layer("length").output.shape[-1] == 3
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_too_small_images_fail_before_anything_is_written(tmp_path, shapes):
    fl = _config(TrainConfig, tmp_path, dataset=f"folder:{shapes}",
                 image_size="12", conv_kernel=9, primary_kernel=9)
    with pytest.raises(InputSizeError, match=r"at least 17x17 pixels, got 12x12"):
        train(fl)
    assert not os.path.exists(fl.model_dir)
    with pytest.raises(ValueError, match="--grayscale and --channels=3"):
        DataConfig(grayscale=True, channels=3)


def test_preprocessing_flags_apply_to_loaded_data_only(tmp_path, shapes):
    fl = _config(TrainConfig, tmp_path, dataset=f"folder:{shapes}",
                 balance="undersample", denoise="gaussian", remove_constant_features=True)
    (x, y), (xt, yt) = datasets.load_datasets(fl, seed=fl.seed)
    assert x.shape[1:] == (24, 24, 1) and len(set(np.bincount(y).tolist())) == 1
    raw, _ = datasets.load_datasets(_config(TrainConfig, tmp_path,
                                            dataset=f"folder:{shapes}"))[0]
    assert xt.shape[1:] == x.shape[1:] and x.std() < raw.std()  # denoised (smoother)
    override = ((x[:5], y[:5]), (xt, yt))
    (xo, yo), _ = datasets.load_datasets(fl, override)
    assert xo is override[0][0]  # an override is taken as prepared: not denoised twice


# ----------------------------------------------------------------------------- mismatches


def test_saved_model_that_does_not_match_the_data(tmp_path, shapes):
    model = capsnet(input_shape=(24, 24, 1), num_classes=3, conv_filters=4, conv_kernel=3,
                    primary_capsules=2, primary_dim=4, primary_kernel=3, decoder=None)
    check_model_data(model, (24, 24, 1), 3)
    with pytest.raises(ModelDataMismatch, match=r"m.keras does not match .*24x24x1 but the "
                                                r"data's are 20x20x1.*--image_size=24,24 "
                                                r"--grayscale"):
        check_model_data(model, (20, 20, 1), 3, "m.keras", "folder:x")
    with pytest.raises(ModelDataMismatch, match=r"3 classes but the data has 10.*finetune"):
        check_model_data(model, (24, 24, 1), 10)
    path = str(tmp_path / "m.keras")
    model.save(path)
    fl = _config(FinetuneConfig, tmp_path, dataset=f"folder:{shapes}", image_size="20",
                 pretrained=path)
    with pytest.raises(ModelDataMismatch, match=r"--pretrained .*m.keras does not match "
                                                r"--dataset=folder:.*20x20x1"):
        finetune(fl)
    df = _config(DistillConfig, tmp_path,
                 dataset=f"npz:{write_npz(tmp_path / 'd.npz')}", teacher=path)
    with pytest.raises(ModelDataMismatch, match=r"--teacher .*24x24x1 but the data's are "
                                                r"12x12x1"):
        distill(df)
    pf = _config(PruneConfig, tmp_path, dataset=f"folder:{shapes}", grayscale=False,
                 channels=3, base_model=path)
    with pytest.raises(ModelDataMismatch, match=r"--base_model .*24x24x1 but the data's are "
                                                r"24x24x3.*--grayscale"):
        prune(pf)
    assert not os.path.exists(tmp_path / "run")
    qf = _config(QuantizeConfig, tmp_path, dataset=f"folder:{shapes}", image_size="20",
                 model_path=path, output_dir=str(tmp_path / "q"), search_split="test[:6]",
                 test_split="test[6:]", calibration_batches=1, preset="none")
    with pytest.raises(ModelDataMismatch, match="--model_path"):
        quantize(qf)
    assert not os.path.exists(tmp_path / "q")
    # the pipeline: a --teacher that does not fit, or a folder that is not there, leaves no
    # model_dir behind (it takes the lock and writes config.json before the data is read)
    values = dict(PipelineConfig.PRESETS["quick"])
    values.update(PIPELINE, model_dir=str(tmp_path / "pipe"), preset="quick",
                  dataset=f"folder:{shapes}", image_size="20", teacher=path)
    with pytest.raises(ModelDataMismatch, match=r"teacher .*24x24x1 but the data's are 20x20x1"):
        pipeline(PipelineConfig(**values))
    assert not os.path.exists(tmp_path / "pipe")
    values.update(dataset=f"folder:{tmp_path / 'no_such_folder'}", teacher=None)
    with pytest.raises(DataSourceError, match="no_such_folder does not exist"):
        pipeline(PipelineConfig(**values))
    assert not os.path.exists(tmp_path / "pipe")


def test_tflite_export_and_evaluate_with_class_names(tmp_path, shapes):
    from keras_caps.lite.cli import evaluate_main, export_main

    model = capsnet(input_shape=(24, 24, 1), num_classes=3, conv_filters=4, conv_kernel=3,
                    primary_capsules=2, primary_dim=4, primary_kernel=3, decoder=None)
    path = str(tmp_path / "m.keras")
    model.save(path)
    out = tmp_path / "exp" / "m_int8.tflite"
    args = ["--model", path, "--out", str(out), "--dataset", f"folder:{shapes}",
            "--num_calibration", "8"]
    assert export_main(args) == 0
    assert (tmp_path / "exp" / "labels.txt").read_text().splitlines() == list(CLASSES)
    bad = tmp_path / "bad" / "m.tflite"
    with pytest.raises(ModelDataMismatch, match=r"24x24x1 but the data's are 20x20x1"):
        export_main(["--model", path, "--out", str(bad), "--dataset", f"folder:{shapes}",
                     "--image_size", "20"])
    assert not bad.exists() and not (tmp_path / "bad" / "labels.txt").exists()
    assert evaluate_main(["--tflite", str(out), "--dataset", f"folder:{shapes}",
                          "--latency_repeats", "1"]) == 0
    assert (tmp_path / "exp" / "m_int8_confusion.png").stat().st_size > 0
    with pytest.raises(ModelDataMismatch, match=r"--tflite .* 24x24x1 but the data's are "
                                                r"24x24x3.*--grayscale"):
        evaluate_main(["--tflite", str(out), "--dataset", f"folder:{shapes}", "--channels", "3"])


def test_confusion_matrix_png(tmp_path):
    m = plots.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3)
    assert m.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    path = plots.plot_confusion_matrix(m, str(tmp_path / "c.png"), CLASSES)
    assert os.path.getsize(path) > 0
    with pytest.raises(ValueError, match="2 class names for a 3x3"):
        plots.plot_confusion_matrix(m, str(tmp_path / "d.png"), ("a", "b"))


def test_npz_dataset_trains(tmp_path):
    path = write_npz(tmp_path / "d.npz", n_train=24, n_test=9, size=12,
                     class_names=np.array(["a", "b", "c"]))
    fl = _config(TrainConfig, tmp_path, dataset=f"npz:{path}")
    metrics = train(fl)
    assert datasets.class_names(fl) == ("a", "b", "c")
    assert "test_accuracy" in metrics


# ----------------------------------------------------------------------------- pipeline


PIPELINE = dict(
    conv_filters=8, conv_kernel=3, primary_capsules=4, primary_dim=4, primary_kernel=3,
    class_dim=6, decoder="none", epochs=1, student_epochs=1, batch_policy="fixed", batch_size=16,
    student_conv_filters=8, student_primary_capsules=4, student_primary_dim=4,
    student_class_dim=4, ccm_epochs=1, retrain_epochs=1, ci_batches=1, ci_batch_size=8,
    calibration_batches=1, calibration_batch_size=16, tolerance=5.0, max_bits=10,
    latency_repeats=2, tflite_examples=8, verbose=0, run_eagerly=True, qat_epochs=0,
)


@pytest.mark.slow
def test_pipeline_end_to_end_on_a_folder_dataset(tmp_path, shapes):
    values = dict(PipelineConfig.PRESETS["quick"])
    values.update(PIPELINE, model_dir=str(tmp_path / "run"), preset="quick",
                  dataset=f"folder:{shapes}", grayscale=True, image_size="24", search_examples=4)
    results = pipeline(PipelineConfig(**values))
    run = tmp_path / "run"
    assert list(results) == list(STAGES)
    assert (run / "export" / "labels.txt").read_text().splitlines() == list(CLASSES)
    assert results["export"]["class_names"] == list(CLASSES)
    assert len(results["evaluate"]["int8"]["confusion_matrix"]) == 3
    for name in ("confusion_int8.png", "confusion_int8_pot.png", "report.md"):
        assert (run / "report" / name).stat().st_size > 0, name
    report = (run / "report" / "report.md").read_text()
    assert "circle, square, triangle" in report and "confusion_int8.png" in report
    import keras

    teacher = keras.saving.load_model(str(run / "teacher" / "best.keras"), compile=False)
    assert tuple(teacher.input.shape[1:]) == (24, 24, 1)
    assert json.loads((run / "evaluate" / "done.json").read_text())["examples"] > 0
