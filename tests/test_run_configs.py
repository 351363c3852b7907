"""Typed run configs and flags -> config: defaults, presets, validation, derived configs, the
one-line errors of the binaries, and binaries that import only the library."""

import ast
import dataclasses
import glob
import json
import os
import subprocess
import sys

import pytest

from keras_caps.runs import (
    ConfigError,
    DistillConfig,
    FastrcapsStudyConfig,
    FinetuneConfig,
    KdStudyConfig,
    PipelineConfig,
    PruneConfig,
    QuantizeConfig,
    TrainConfig,
    VanishingConfig,
)
from keras_caps.runs import flags as run_flags
from keras_caps.runs.cli import DEMO_DEFAULTS
from tests.flag_utils import parsed_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# binary: (flag definitions, config class, the required flags)
BINARIES = {
    "train_capsnet": (run_flags.define_train_flags, TrainConfig, {"model_dir": "r"}),
    "distill": (run_flags.define_distill_flags, DistillConfig,
                {"model_dir": "r", "teacher": "t.keras"}),
    "finetune": (run_flags.define_finetune_flags, FinetuneConfig,
                 {"model_dir": "r", "pretrained": "p.keras"}),
    "prune": (run_flags.define_prune_flags, PruneConfig, {"model_dir": "r"}),
    "quantize": (run_flags.define_quantize_flags, QuantizeConfig, {}),
    "pipeline": (run_flags.define_pipeline_flags, PipelineConfig, {"model_dir": "r"}),
    "kd_study": (run_flags.define_kd_study_flags, KdStudyConfig, {"model_dir": "r"}),
    "fastrcaps_study": (run_flags.define_fastrcaps_study_flags, FastrcapsStudyConfig,
                        {"model_dir": "r"}),
    "vanishing_study": (run_flags.define_vanishing_study_flags, VanishingConfig,
                        {"model_dir": "r", "model": "deep_capsnet"}),
}


def _argv(values):
    return [f"--{k}={v}" for k, v in values.items()]


@pytest.mark.parametrize("binary", BINARIES)
def test_flag_defaults_are_the_config_defaults(binary):
    define, cls, required = BINARIES[binary]
    with parsed_flags(define, _argv(required)) as fv:
        from_flags = run_flags.config_from_flags(cls, presets=False)
        assert set(cls.field_names()) <= set(fv)  # every field is a flag of the binary
    assert from_flags == cls(**required)


def test_presets_fill_the_flags_not_given():
    with parsed_flags(run_flags.define_train_flags,
                      ["--model_dir=r", "--preset=quick", "--epochs=1"]):
        config = run_flags.train_config()
    assert (config.model, config.mcu_size, config.train_examples) == ("mcu_capsnet", "S", 20000)
    assert config.epochs == 1 and config.preset == "quick"  # the explicit flag wins
    with parsed_flags(run_flags.define_train_flags, ["--model_dir=r"]):
        assert run_flags.train_config() == TrainConfig(model_dir="r", preset="none")
    with parsed_flags(run_flags.define_train_flags, ["--model_dir=r", "--preset=fast"]):
        with pytest.raises(ConfigError, match=r"unknown --preset 'fast'; choose one of \['none', "
                                              r"'quick', 'cpu_mcu', 'cpu', 'full'\]"):
            run_flags.train_config()


def test_default_presets_and_latency_repeats_per_binary():
    with parsed_flags(run_flags.define_pipeline_flags, ["--model_dir=r"]):
        config = run_flags.pipeline_config()
    assert config.preset == "quick" and config.latency_repeats == 20  # the quick preset's
    assert config == PipelineConfig.from_preset("quick", model_dir="r")
    with parsed_flags(run_flags.define_pipeline_flags, ["--model_dir=r", "--preset=none"]):
        assert run_flags.pipeline_config().latency_repeats == 50
    with parsed_flags(run_flags.define_pipeline_flags,
                      ["--model_dir=r", "--latency_repeats=3", "--stages=export,report"]):
        config = run_flags.pipeline_config()
    assert config.latency_repeats == 3 and config.stages == ("export", "report")
    with parsed_flags(run_flags.define_kd_study_flags, ["--model_dir=r", "--preset=none"]):
        assert run_flags.kd_study_config().latency_repeats == 20
    with parsed_flags(run_flags.define_quantize_flags, ["--preset=quick"]):
        assert run_flags.quantize_config().search_split == "test[:2000]"


def test_demo_defaults_leave_explicit_flags_and_the_preset_alone():
    with parsed_flags(run_flags.define_train_flags, ["--conv_filters=8"]):
        config = run_flags.config_from_flags(TrainConfig, defaults=DEMO_DEFAULTS, presets=False)
    assert config.conv_filters == 8 and config.decoder == "reduced"
    assert config.model_dir == "runs/demo" and config.preset is None


def test_list_flags_become_typed_tuples():
    with parsed_flags(run_flags.define_vanishing_study_flags,
                      ["--model_dir=r", "--model=deep_capsnet", "--backbone_filters=4,8,8",
                       "--pruning_ratios=0,0.25", "--collapse_widths=3"]):
        config = run_flags.vanishing_study_config()
    assert config.backbone_filters == (4, 8, 8) and config.pruning_ratios == (0.0, 0.25)
    assert config.collapse_widths == (3,)
    # config.json keeps the list flag's spelling, so runs recorded before still resume
    assert TrainConfig(model_dir="r", backbone_filters=(4, 8, 8)).run_config()[
        "architecture"]["backbone_filters"] == ["4", "8", "8"]
    with pytest.raises(ConfigError, match="--batch_sizes must be a comma-separated list of int"):
        KdStudyConfig(model_dir="r", batch_sizes=["8", "big"])


def test_deep_capsnet_strides_and_weight_sharing_reach_the_model_and_config_json():
    from keras_caps.runs.models import build_model

    config = TrainConfig(model_dir="r", model="deep_capsnet", num_capsules=2, capsule_dim=4,
                         backbone_filters="4,8,8,8", backbone_strides="1,2,1,2", class_dim=4,
                         weight_sharing=True, decoder="none")
    model = build_model(config, (28, 28, 1), 10)
    # 28 -> 28 -> 14 -> 14 -> 7, then 3x3 / 2 primary capsules: a 3 x 3 grid of 2 types
    assert model.get_layer("primary_caps").output[0].shape[1:] == (3, 3, 2, 4)
    # weight sharing: one (J, D, class_dim) transform per capsule type, not per position
    assert model.get_layer("class_caps").count_params() == 2 * 10 * 4 * 4
    assert config.run_config()["architecture"]["backbone_strides"] == [1, 2, 1, 2]
    # at the default strides config.json is what it was, so runs recorded before resume
    assert "backbone_strides" not in TrainConfig(model_dir="r").run_config()["architecture"]


@pytest.mark.parametrize("cls, values, message", [
    (TrainConfig, {}, "--model_dir is required: the folder for checkpoints and results."),
    (PruneConfig, {}, "--model_dir is required: the folder for every stage and the report."),
    (KdStudyConfig, {}, "--model_dir is required: the study folder."),
    (TrainConfig, {"lr_policy": "sgdr"}, "--lr_policy 'sgdr' is not one of"),
    (TrainConfig, {"init_length": 1.0}, r"--init_length must lie in \[0, 1\)"),
    (TrainConfig, {"grayscale": True, "channels": 3}, "--grayscale and --channels=3"),
    (TrainConfig, {"channels": 2}, "channels must be 1 .* or 3"),
    (TrainConfig, {"image_size": "0"}, "image size must be H or H,W"),
    (DistillConfig, {}, "--teacher is required"),
    (FinetuneConfig, {}, "--pretrained must name an existing .keras model"),
    (FinetuneConfig, {"pretrained": "p", "unfreeze_schedule": "conv1"}, "is not EPOCH:LAYER"),
    (FinetuneConfig, {"pretrained": "p", "lr_policy": "one_cycle"},
     "--unfreeze_lr_factor=0.5 lowers a fixed learning rate"),
    (PruneConfig, {"pruning_ratio": 1.0}, r"--pruning_ratio must lie in \[0, 1\)"),
    (PruneConfig, {"retrain_epochs": 0}, "--retrain_epochs >= 1"),
    (QuantizeConfig, {"tolerance": -1}, "--tolerance must be >= 0"),
    (QuantizeConfig, {"min_bits": 8, "max_bits": 4}, "min_bits"),
    (PipelineConfig, {"stages": ["train"]}, r"unknown --stages \['train'\]"),
    (KdStudyConfig, {"kd_methods": []}, "--kd_methods must name some of"),
    (FastrcapsStudyConfig, {"policies": ["one_cycle"]}, "needs the 'fixed' baseline"),
    (VanishingConfig, {}, "needs --model=deep_capsnet"),
    (TrainConfig, {"model": "deep_capsnet", "backbone_strides": "1,2"},
     r"one stride per --backbone_filters width: got 2 strides \[1, 2\] for 3 widths"),
    (VanishingConfig, {"model": "deep_capsnet", "init_std": 0.5, "init_gain": 2.0},
     "at most one of --init_std and --init_gain"),
])
def test_bad_values_are_config_errors_naming_the_flag(cls, values, message):
    if cls is not QuantizeConfig and "model_dir" not in values and "is required: the" not in message:
        values = {"model_dir": "r", **values}
    with pytest.raises(ValueError, match=message):
        cls(**values)


def test_derived_configs_take_the_fields_of_their_class():
    pipeline = PipelineConfig.from_preset("quick", model_dir="p", seed=3)
    prune = PruneConfig.from_config(pipeline, model_dir="p/prune", base_model="s.keras")
    assert type(prune) is PruneConfig and prune.seed == 3 and prune.ccm_epochs == 1
    assert prune.model_dir == "p/prune" and prune.base_model == "s.keras"
    quantize = QuantizeConfig.from_config(pipeline, model_path="m.keras", preset="none")
    assert quantize.approach == "C" and quantize.tolerance == 0.5
    with pytest.raises(TypeError, match="lacks the fields"):
        PipelineConfig.from_config(TrainConfig(model_dir="r"))
    shorter = dataclasses.replace(prune, epochs=1)
    assert shorter.epochs == 1 and prune.epochs == 2  # configs are frozen values
    with pytest.raises(dataclasses.FrozenInstanceError):
        prune.epochs = 5


def test_config_write_records_the_run(tmp_path):
    path = KdStudyConfig.from_preset("quick", model_dir=str(tmp_path)).write(str(tmp_path))
    saved = json.loads(open(path).read())
    assert saved["config"] == "KdStudyConfig" and saved["kd_methods"] == [
        "baseline", "tl", "kd", "kd_tl"]
    assert saved["preset"] == "quick" and saved["epochs"] == 3


def test_a_bad_flag_is_one_line_and_exit_status_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-m", "train.pipeline",
                          f"--model_dir={tmp_path / 'p'}", "--stages=teacher,train"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert lines == ["error: unknown --stages ['train']; choose from ['teacher', 'student', "
                     "'prune', 'quantize', 'export', 'evaluate', 'report']."], out.stderr[-2000:]
    assert not (tmp_path / "p").exists()  # nothing written


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


@pytest.mark.parametrize("folder", ["train", "tflite"])
def test_binaries_are_thin_and_import_only_the_library(folder):
    for path in glob.glob(os.path.join(ROOT, folder, "*.py")):
        imports = set(_imports(path))
        assert all(name.startswith("keras_caps.") for name in imports), (path, imports)
        assert len(open(path).read().split('"""', 2)[2].strip().splitlines()) <= 6, path


def test_benchmarks_and_the_library_import_no_binary():
    binaries = ("train", "tflite")
    for folder in ("benchmarks", "keras_caps"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
            bad = [n for n in _imports(path) if n.split(".")[0] in binaries
                   or (folder == "keras_caps" and n.split(".")[0] == "benchmarks")]
            assert not bad, (path, bad)
