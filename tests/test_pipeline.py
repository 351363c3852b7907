"""The pipeline (train/pipeline.py) end to end on tiny models and synthetic data."""

import json

import pytest

from keras_caps.runs import PipelineConfig
from keras_caps.runs.pipeline import STAGES, pipeline
from tests.test_prune_binaries import _data


def _config(tmp_path, **overrides):
    values = dict(PipelineConfig.PRESETS["quick"])
    values.update(
        model_dir=str(tmp_path / "run"), preset="quick", conv_filters=8, conv_kernel=3,
        primary_capsules=4, primary_dim=4, primary_kernel=3, class_dim=6, decoder="none",
        epochs=1, student_epochs=1, batch_policy="fixed", batch_size=16,
        student_model="capsnet", transfer_init=True, student_init_length=0.0,
        student_conv_filters=8, student_primary_capsules=4, student_primary_dim=4,
        student_class_dim=4, ccm_epochs=1, retrain_epochs=1, ci_batches=1, ci_batch_size=8,
        calibration_batches=1, calibration_batch_size=16, tolerance=5.0, max_bits=10,
        latency_repeats=2, tflite_examples=8, verbose=0, run_eagerly=True, qat_epochs=1,
        qat_examples=32,
    )
    values.update(overrides)
    return PipelineConfig(**values)


@pytest.mark.slow
def test_pipeline_runs_every_stage_then_skips_finished_ones(tmp_path):
    data = (_data(64), _data(32, 1))
    results = pipeline(_config(tmp_path), datasets_override=data)
    run = tmp_path / "run"
    assert list(results) == list(STAGES)
    for stage in STAGES:
        assert (run / stage / "done.json").exists(), stage
    for name in ("teacher/best.keras", "student/best.keras", "prune/pruned/best.keras",
                 "quantize/spec_C.json", "export/model_int8.tflite", "export/audit_int8.json",
                 "export/model_int8_pot.tflite", "export/audit_int8_pot.json",
                 "evaluate/evaluation.json", "report/report.md", "report/summary.json",
                 "report/accuracy_vs_size.png", "report/batch_schedule.png",
                 "report/lr_schedule.png"):
        assert (run / name).exists(), name
    assert results["export"]["int8"]["audit_ok"] and results["export"]["int8_pot"]["audit_ok"]
    assert (run / "quantize" / "qat_C.keras").exists()  # QAT on the pipeline's own data
    assert results["prune"]["params"] < results["student"]["params"] < results["teacher"]["params"]
    rows = json.loads((run / "report" / "summary.json").read_text())
    assert [r["stage"] for r in rows] == ["teacher", "student", "prune", "quantize",
                                          "export+evaluate int8", "export+evaluate int8_pot"]
    assert rows[-2]["bytes"] == (run / "export" / "model_int8.tflite").stat().st_size
    assert results["evaluate"]["int8_pot"]["arena_bytes"] > 0
    report = (run / "report" / "report.md").read_text()
    assert "int8 TFLite" in report and "accuracy_vs_size.png" in report
    card = json.loads((run / "export" / "model_card.json").read_text())
    assert card["accuracy"]["int8_tflm"] == results["evaluate"]["int8"]["tflm_accuracy"]
    assert card["accuracy"]["int8_litert_nodelegate"] == \
        results["evaluate"]["int8"]["litert_nodelegate_accuracy"]
    assert card["int8_bytes"] == (run / "export" / "model_int8.tflite").stat().st_size
    assert card["params"] == results["prune"]["params"] and len(card["class_names"]) == 10
    assert "model_card.md" in report
    # the teacher, scored on the images of the int8 rows, and the gap the report states
    import keras

    from keras_caps.lite.evaluate import keras_accuracy
    from keras_caps.runs.pipeline import search_count

    xte, yte = data[1]
    start, n = search_count(_config(tmp_path), xte), results["evaluate"]["examples"]
    teacher = keras.saving.load_model(str(run / "teacher" / "best.keras"), compile=False)
    want = keras_accuracy(teacher, xte[start:start + n], yte[start:start + n])
    assert results["evaluate"]["teacher_accuracy"] == pytest.approx(want)
    gap = f"The teacher scores {want:.4f} on the same {n:,} test images as the int8 rows"
    assert gap in report and gap in (run / "report" / "summary.md").read_text()
    # A re-run skips everything finished: no stage is redone, results are the same.
    mtime = (run / "teacher" / "best.keras").stat().st_mtime
    again = pipeline(_config(tmp_path), datasets_override=data)
    assert again["evaluate"]["int8"]["accuracy"] == results["evaluate"]["int8"]["accuracy"]
    assert (run / "teacher" / "best.keras").stat().st_mtime == mtime


@pytest.mark.slow
def test_quick_preset_student_is_the_mcu_capsnet(tmp_path):
    """The quick preset (make demo) distils into the S microcontroller CapsNet with its
    capsule-length init, prunes it and exports it; its report row and card say so."""
    from tests.synthetic import striped_images

    config = _config(tmp_path, student_model="mcu_capsnet", transfer_init=False,
                     student_init_length=0.5, stages=["teacher", "student"])
    assert PipelineConfig.PRESETS["quick"]["student_model"] == "mcu_capsnet"
    data = (striped_images(48, 0, size=16), striped_images(16, 1, size=16))
    results = pipeline(config, datasets_override=data)
    run = tmp_path / "run"
    assert (run / "student" / "init_lengths.json").exists()
    assert results["student"]["label"] == "student (mcu_capsnet S), KD (float32)"
    from keras_caps.models import mcu_capsnet

    assert results["student"]["params"] == mcu_capsnet("S", input_shape=(16, 16, 1)).count_params()


def test_a_given_teacher_is_taken_instead_of_trained_and_alpha_zero_trains_from_scratch(tmp_path):
    """--teacher skips the teacher's training: the file is copied into teacher/ and scored on
    the pipeline's test split; with alpha 0 the student learns from the labels alone."""
    import keras

    from keras_caps.io_utils import save_model
    from keras_caps.models import capsnet
    from keras_caps.runs.config import ConfigError

    data = (_data(48), _data(16, 1))
    teacher = capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                      primary_dim=4, primary_kernel=3, class_dim=6, decoder=None)
    path = str(tmp_path / "given.keras")
    save_model(teacher, path)
    config = _config(tmp_path, teacher=path, alpha=0.0, transfer_init=False,
                     stages=["teacher", "student"])
    results = pipeline(config, datasets_override=data)
    run = tmp_path / "run"
    assert results["teacher"]["source"] == path and results["teacher"]["train_time_s"] is None
    assert (run / "teacher" / "best.keras").read_bytes() == (tmp_path / "given.keras").read_bytes()
    want = keras.saving.load_model(path).predict(data[1][0] / 255.0, verbose=0)["lengths"]
    assert results["teacher"]["accuracy"] == pytest.approx(
        float((want.argmax(-1) == data[1][1]).mean()))
    assert results["student"]["label"] == "student (capsnet), from scratch (alpha 0) (float32)"
    with pytest.raises(ConfigError, match="not an existing .keras file"):
        _config(tmp_path, teacher=str(tmp_path / "missing.keras"))
    with pytest.raises(ConfigError, match="no reference model 'nope'.*pretrained:fashion_mnist"):
        _config(tmp_path, teacher="pretrained:nope")
    large = capsnet(input_shape=(28, 28, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                    primary_dim=4, primary_kernel=3, class_dim=6, decoder=None)
    save_model(large, str(tmp_path / "large.keras"))
    with pytest.raises(ValueError, match="large.keras does not match.*28x28x1"):
        pipeline(_config(tmp_path, model_dir=str(tmp_path / "run2"),
                         teacher=str(tmp_path / "large.keras"), stages=["teacher"]),
                 datasets_override=data)


@pytest.mark.slow
def test_pruning_ratio_zero_passes_the_student_through_to_export(tmp_path):
    """--pruning_ratio=0: the prune stage reuses the student (no pruning, no retraining), the
    export is of the student's own model and the report and card say it is not pruned."""
    data = (_data(48), _data(16, 1))
    stages = ["teacher", "student", "prune", "export", "evaluate", "report"]
    results = pipeline(_config(tmp_path, pruning_ratio=0.0, stages=stages),
                       datasets_override=data)
    run = tmp_path / "run"
    prune = results["prune"]
    assert prune["skipped"] and prune["model"] == results["student"]["model"]
    assert (prune["accuracy"], prune["params"]) == (results["student"]["accuracy"],
                                                   results["student"]["params"])
    assert not (run / "prune" / "pruned").exists()
    rows = json.loads((run / "report" / "summary.json").read_text())
    assert [r["stage"] for r in rows] == ["teacher", "student", "export+evaluate int8",
                                          "export+evaluate int8_pot"]
    assert rows[2]["model"] == "student, int8 TFLite (TFLM)"
    assert rows[2]["params"] == results["student"]["params"]
    report = (run / "report" / "report.md").read_text()
    assert "not pruned (pruning ratio 0)" in report and "pruned student" not in report
    card = json.loads((run / "export" / "model_card.json").read_text())
    assert card["model"].endswith("student, not pruned") and "pruned at" not in card["recipe"]
    assert PipelineConfig.from_preset("cpu", model_dir="unused").pruning_ratio == 0.0


def test_with_validation_examples_every_stage_scores_the_pipelines_held_out_images(tmp_path):
    """The stages get the pipeline's split as it is: the teacher trains on the training head
    and is scored on the held-out tail, as the int8 rows are (no second hold-out)."""
    import keras

    from keras_caps.lite.evaluate import keras_accuracy

    train_split = _data(64)
    results = pipeline(_config(tmp_path, validation_examples=16, stages=["teacher"]),
                       datasets_override=(train_split, _data(8, 1)))
    teacher = keras.saving.load_model(results["teacher"]["model"], compile=False)
    assert results["teacher"]["accuracy"] == pytest.approx(
        keras_accuracy(teacher, train_split[0][48:], train_split[1][48:]))
    assert results["teacher"]["train_examples"] == 48


def test_report_names_the_validation_split_and_states_the_teacher_gap():
    """With --validation_examples the report says which images it trained and evaluated on
    (not "test"), and the gap line compares int8 TFLite Micro with the teacher on the same
    images."""
    from keras_caps.runs.pipeline_report import columns, data_line, teacher_gap_line

    config = PipelineConfig.from_preset("quick", model_dir="unused", train_examples=22000,
                                        validation_examples=2000)
    assert data_line(config) == ("20000 training and 2000 validation images (the last 2000 of "
                                 "the first 22000 training images; the test split was not read)")
    assert data_line(PipelineConfig.from_preset("quick", model_dir="unused")) == \
        "20000 training and all test images"  # the quick preset scores on the whole split
    assert data_line(PipelineConfig.from_preset("quick", model_dir="unused",
                                                test_examples=2000)) == \
        "20000 training and 2000 test images"
    assert dict((k, h) for k, h, _ in columns("validation"))["accuracy"] == "validation acc."
    results = {"evaluate": {"examples": 1000, "teacher_accuracy": 0.882,
                            "int8": {"tflm_accuracy": 0.854}}}
    assert teacher_gap_line(results, "validation") == (
        "The teacher scores 0.8820 on the same 1,000 validation images as the int8 rows: int8 "
        "in TFLite Micro (0.8540) is 2.80 points below it.")
    results["evaluate"]["int8"]["tflm_accuracy"] = 0.9
    assert teacher_gap_line(results).endswith("(0.9000) is 1.80 points above it.")
    assert teacher_gap_line({"evaluate": {"int8": {"tflm_accuracy": 0.9}}}) == ""  # older run


def test_cpu_preset_reads_every_image_and_trains_the_s_student_from_the_teacher_channels():
    cpu = PipelineConfig.from_preset("cpu", model_dir="unused")
    assert (cpu.train_examples, cpu.test_examples, cpu.tflite_examples) == (None, None, None)
    assert (cpu.model, cpu.mcu_size, cpu.student_model, cpu.student_mcu_size) == (
        "mcu_capsnet", "M", "mcu_capsnet", "S")
    assert cpu.alpha == 0.0 and cpu.student_epochs == 30 and cpu.augment_shift == 2
    assert cpu.transfer_init and not PipelineConfig.from_preset("quick", model_dir="u").transfer_init
    with_teacher = PipelineConfig.from_preset("cpu", model_dir="unused",
                                              teacher="pretrained:fashion_mnist_mcu_m")
    assert with_teacher.teacher == "pretrained:fashion_mnist_mcu_m"


def test_pipeline_stage_subset_needs_its_inputs(tmp_path):
    with pytest.raises(ValueError, match="stage 'prune' has not finished"):
        pipeline(_config(tmp_path, stages=["quantize"]), datasets_override=(_data(), _data()))
    with pytest.raises(ValueError, match="unknown --stages"):
        pipeline(_config(tmp_path, stages=["train"]))


@pytest.mark.slow
def test_pipeline_report_has_dead_capsule_heatmaps_for_a_deep_teacher(tmp_path):
    fv = _config(tmp_path, stages=["teacher", "report"], model="deep_capsnet", num_capsules=4,
                capsule_dim=2, num_intermediate=1, backbone_filters=["4", "8", "8"])
    results = pipeline(fv, datasets_override=(_data(32), _data(16, 1)))
    run = tmp_path / "run"
    assert (run / "report" / "heatmaps" / "teacher_all_layers.png").exists()
    dead = results["report"]["dead_percentages"]
    assert "all" in dead and all(0.0 <= v <= 100.0 for v in dead.values())
    assert "Dead capsules of the teacher" in (run / "report" / "report.md").read_text()
    assert [r["stage"] for r in results["report"]["rows"]] == ["teacher"]
