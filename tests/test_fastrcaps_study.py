"""The FasTrCaps study (train/fastrcaps_study.py) on tiny synthetic data."""

import json

import pytest

from keras_caps.analysis.convergence import convergence_summary
from keras_caps.io_utils import markdown_table
from keras_caps.runs import FastrcapsStudyConfig
from keras_caps.runs.fastrcaps_study import fastrcaps_study
from tests.test_train_capsnet import _data


def _study_config(tmp_path, **overrides):
    values = dict(FastrcapsStudyConfig.PRESETS["quick"])
    values.update(
        model_dir=str(tmp_path / "study"), conv_filters=8, conv_kernel=3, primary_capsules=4,
        primary_dim=4, primary_kernel=3, class_dim=6, epochs=2, batch_size=16,
        batch_warmup_size=4, batch_warmup_epochs=1, batch_exponent=4, verbose=0,
        policies=["fixed", "warmadabatch", "one_cycle"], train_examples=None,
        test_examples=None,
    )
    values.update(overrides)
    return FastrcapsStudyConfig(**values)


def test_study_trains_each_policy_and_reports(tmp_path):
    summary = fastrcaps_study(_study_config(tmp_path),
                              datasets_override=(_data(48), _data(16, 1)))
    assert [r["policy"] for r in summary["rows"]] == ["fixed", "warmadabatch", "one_cycle"]
    fixed = summary["rows"][0]
    assert fixed["max_accuracy"] == summary["baseline_max_accuracy"]
    assert fixed["epochs_to_target"] == fixed["max_epoch"]  # the baseline reaches its own max
    study = tmp_path / "study"
    for name in ("study.md", "study.json", "accuracy.png", "lr.png", "batch.png",
                 "warmadabatch/metrics.json"):
        assert (study / name).exists(), name
    assert "| warmadabatch |" in (study / "study.md").read_text()
    saved = json.loads((study / "study.json").read_text())
    assert len(saved["curves"]["one_cycle"]) == 2


def test_study_rejects_bad_policy_lists(tmp_path):
    with pytest.raises(ValueError, match="unknown policies"):
        fastrcaps_study(_study_config(tmp_path, policies=["fixed", "sgdr"]),
                        datasets_override=(_data(), _data()))
    with pytest.raises(ValueError, match="needs the 'fixed' baseline"):
        fastrcaps_study(_study_config(tmp_path, policies=["one_cycle"]),
                        datasets_override=(_data(), _data()))


def test_convergence_summary_hand_computed():
    s = convergence_summary([0.5, 0.7, 0.8, 0.8, 0.75], [10, 10, 20, 10, 10], target=0.7)
    assert s["max_accuracy"] == 0.8 and s["max_epoch"] == 3 and s["final_accuracy"] == 0.75
    assert s["epochs_to_target"] == 2 and s["time_to_target_s"] == 20 and s["total_time_s"] == 60
    assert convergence_summary([0.1], [1.0], target=0.9)["epochs_to_target"] is None
    with pytest.raises(ValueError, match="2 accuracies but 1 epoch times"):
        convergence_summary([0.1, 0.2], [1.0])
    table = markdown_table([{"a": 1, "b": None}], [("a", "A", "d"), ("b", "B", ".2f")])
    assert table.splitlines()[-1] == "| 1 | - |"
