"""The measured default recipe and presets of train_capsnet, and the ablation's steps."""

import pytest

from benchmarks import recipe_ablation
from keras_caps.runs import KdStudyConfig, PruneConfig, TrainConfig, VanishingConfig


def test_defaults_are_the_measured_recipe():
    values = TrainConfig(model_dir="unused")
    assert values.init_length == 0.5
    assert values.lr_policy == "cosine" and values.lr_min == 1e-5
    assert values.augment_shift == 0 and values.batch_size == 64


def test_presets_build_their_models():
    for name in ("quick", "cpu_mcu", "cpu"):
        preset = TrainConfig.PRESETS[name]
        assert preset["model"] == "mcu_capsnet" and preset["init_length"] == 0.5
    assert TrainConfig.PRESETS["cpu_mcu"]["epochs"] == 30  # the shipped reference model
    assert TrainConfig.PRESETS["full"]["model"] == "capsnet"


def test_ablation_steps_accumulate_and_later_flags_win():
    first = recipe_ablation.step_flags(0)
    assert "--init_length=0" in first and "--augment_shift=0" in first
    last = recipe_ablation.step_flags(len(recipe_ablation.STEPS) - 1)
    assert "--init_length=0.5" in last and "--init_length=0" not in last
    assert "--learning_rate=2e-3" in last and "--learning_rate=1e-3" not in last
    assert "--batch_size=128" in last and "--lr_policy=cosine" in last
    keys = [flag.split("=")[0] for flag in last]
    assert len(keys) == len(set(keys))  # one value per flag


@pytest.mark.parametrize("study", [KdStudyConfig, PruneConfig, VanishingConfig],
                         ids=["kd_study", "prune", "vanishing_study"])
def test_studies_pin_the_recipe_of_their_recorded_results(study):
    presets = study.PRESETS
    for preset in presets.values():
        assert preset["lr_policy"] == "fixed" and preset["augment_shift"] == 0
        assert preset["init_length"] == 0.0
