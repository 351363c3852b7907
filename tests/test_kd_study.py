"""The KD / TL study (train/kd_study.py) end to end on tiny synthetic data."""

import json

import pytest

from keras_caps.runs import KdStudyConfig
from keras_caps.runs.kd_study import kd_study, target_check
from tests.test_train_capsnet import _data


def _study_config(tmp_path, **overrides):
    values = dict(KdStudyConfig.PRESETS["quick"])
    values.update(
        model_dir=str(tmp_path / "study"), conv_filters=8, conv_kernel=3, primary_capsules=4,
        primary_dim=4, primary_kernel=3, class_dim=6, teacher_epochs=1,
        student_conv_filters=4, student_primary_capsules=2, student_primary_dim=4,
        student_class_dim=4, epochs=1, batch_size=16, verbose=0, train_examples=None,
        test_examples=None, latency_batch=8, latency_repeats=2, teacher=None,
    )
    values.update(overrides)
    return KdStudyConfig(**values)


def test_study_trains_teacher_and_each_method_and_reports(tmp_path):
    fv = _study_config(tmp_path, kd_methods=["baseline", "tl", "kd_tl"])  # kd: next test
    summary = kd_study(fv, datasets_override=(_data(32), _data(16, 1)))
    rows = summary["rows"]
    assert [r["method"] for r in rows] == ["teacher", "baseline", "tl", "kd_tl"]
    teacher, students = rows[0], rows[1:]
    for row in rows:
        for key in ("test_accuracy", "params", "flops", "train_time_s", "latency_ms",
                    "final_loss", "epochs"):
            assert row[key] is not None, (row["method"], key)
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["latency_ms"] > 0
        assert 0.0 <= row["int8_accuracy"] <= 1.0 and row["int8_latency_ms"] > 0
    assert students[0]["int8_bytes"] < teacher["int8_bytes"]
    # the same student architecture each way: identical size, smaller than the teacher
    assert len({(r["params"], r["flops"]) for r in students}) == 1
    assert students[0]["params"] < teacher["params"] and students[0]["flops"] < teacher["flops"]
    study = tmp_path / "study"
    assert (study / "tl_b16_fixed" / "transfer_report.json").exists()
    assert (study / "kd_tl_b16_fixed" / "transfer_report.json").exists()
    assert not (study / "baseline_b16_fixed" / "transfer_report.json").exists()
    assert "| kd_tl | 16 | fixed |" in (study / "study.md").read_text()
    assert "int8 ms / image" in (study / "study.md").read_text()
    saved = json.loads((study / "study.json").read_text())
    assert len(saved["rows"]) == 4
    (check,) = saved["target"]  # the target, worked out from the rows
    assert check["params_ratio"] == pytest.approx(students[0]["params"] / teacher["params"])
    assert check["gap"] == pytest.approx(teacher["test_accuracy"] - rows[3]["test_accuracy"])
    assert check["over_baseline"] == pytest.approx(rows[3]["test_accuracy"]
                                                   - rows[1]["test_accuracy"])
    assert check["met"] == (check["params_ratio"] <= 0.1 and check["flops_ratio"] <= 0.1
                            and check["gap"] <= 0.01 and check["over_baseline"] > 0)
    assert "teacher - KD+TL" in (study / "study.md").read_text()


def test_target_check_reads_the_teacher_and_matching_baseline():
    rows = [{"method": "teacher (given)", "test_accuracy": 0.85, "params": 1000, "flops": 10000},
            {"method": "baseline", "batch_size": 64, "lr_policy": "fixed", "test_accuracy": 0.80,
             "params": 90, "flops": 900},
            {"method": "kd_tl", "batch_size": 64, "lr_policy": "fixed", "test_accuracy": 0.845,
             "params": 90, "flops": 900},
            {"method": "kd_tl", "batch_size": 32, "lr_policy": "fixed", "test_accuracy": 0.83,
             "params": 90, "flops": 900}]
    met, missed = target_check(rows)
    assert met["met"] and met["gap"] == pytest.approx(0.005)
    assert met["over_baseline"] == pytest.approx(0.045)
    assert not missed["met"] and missed["over_baseline"] is None  # no batch-32 baseline
    assert target_check(rows[1:]) == []


def test_study_sweeps_batch_sizes_and_lr_policies_with_a_given_teacher(tmp_path):
    from tests.test_distillation import _teacher

    teacher_path = str(tmp_path / "teacher.keras")
    _teacher().save(teacher_path)
    fv = _study_config(tmp_path, teacher=teacher_path, kd_methods=["kd"], batch_sizes=["8", "16"],
                      lr_policies=["exponential"], lr_decay_steps=10)
    rows = kd_study(fv, datasets_override=(_data(16), _data(8, 1)))["rows"]
    assert [(r["method"], r.get("batch_size"), r.get("lr_policy")) for r in rows] == [
        ("teacher (given)", None, None), ("kd", 8, "exponential"), ("kd", 16, "exponential")]
    teacher = rows[0]  # evaluated on the study's test split, not trained here
    assert 0.0 <= teacher["test_accuracy"] <= 1.0 and teacher["params"] > rows[1]["params"]
    assert teacher.get("train_time_s") is None and teacher["latency_ms"] > 0
    assert (tmp_path / "study" / "kd_b8_exponential" / "model.keras").exists()


def test_study_rejects_bad_method_and_policy_lists(tmp_path):
    with pytest.raises(ValueError, match="--kd_methods must name some of"):
        kd_study(_study_config(tmp_path, kd_methods=["fitnets"]),
                 datasets_override=(_data(), _data()))
    with pytest.raises(ValueError, match=r"--lr_policies \['sgdr'\] unknown"):
        kd_study(_study_config(tmp_path, lr_policies=["sgdr"]),
                 datasets_override=(_data(), _data()))
