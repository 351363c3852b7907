"""The absl flags of every binary, and flags -> config, in one place.

    define_train_flags()           # train.train_capsnet / train.demo
    config = train_config()        # after absl parsed the command line

A binary's flags are the fields of its config (same names); their defaults are read from the
config classes, so a flag and its field cannot disagree. Flags are defined in groups
(`define_*_group`), each once per process, and each binary defines the groups it accepts
(`define_<binary>_flags`: the same flags as always; a flag of a group a binary does not read
is accepted and ignored, e.g. the model flags of train.quantize). `config_from_flags` turns
the parsed flags into a config: the flag values, then the binary's defaults and its --preset
for the flags not given on the command line (explicit flags win), then validation (the
config's `__post_init__`: a bad value is a one-line error).

Example:
    >>> from absl import flags
    >>> define_train_flags()
    >>> flags.FLAGS(["prog", "--model_dir=runs/x", "--preset=quick", "--epochs=1"])
    >>> train_config().epochs, train_config().model
    (1, 'mcu_capsnet')
"""

from __future__ import annotations

import dataclasses

from absl import flags

from keras_caps.runs.config import (
    CommonConfig,
    DataConfig,
    ModelConfig,
    OptimizationConfig,
    RunDirConfig,
)
from keras_caps.runs.distill import DistillConfig, DistillOptions, StudentConfig
from keras_caps.runs.fastrcaps_study import POLICIES, FastrcapsStudyConfig
from keras_caps.runs.finetune import FinetuneConfig
from keras_caps.runs.kd_study import METHODS, KdStudyConfig, KdStudyOptions
from keras_caps.runs.pipeline import STAGES, PipelineConfig, PipelineOptions
from keras_caps.runs.prune import PruneConfig, PruneOptions
from keras_caps.runs.quantize import QuantizeConfig, QuantizeOptions
from keras_caps.runs.train import TrainConfig
from keras_caps.runs.vanishing_study import VanishingConfig, VanishingOptions

FLAGS = flags.FLAGS

_DEFINED = set()  # the groups defined in this process


def _default(cls, name):
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = field.default
    return [str(v) for v in value] if isinstance(value, tuple) else value


def _string(cls, name, help_text):
    flags.DEFINE_string(name, _default(cls, name), help_text)


def _integer(cls, name, help_text):
    flags.DEFINE_integer(name, _default(cls, name), help_text)


def _float(cls, name, help_text):
    flags.DEFINE_float(name, _default(cls, name), help_text)


def _bool(cls, name, help_text):
    flags.DEFINE_bool(name, _default(cls, name), help_text)


def _enum(cls, name, values, help_text):
    flags.DEFINE_enum(name, _default(cls, name), list(values), help_text)


def _list(cls, name, help_text):
    flags.DEFINE_list(name, _default(cls, name), help_text)


def _group(define):
    """Makes a group definition idempotent: a process defines each group once."""

    def once():
        if define.__name__ not in _DEFINED:
            _DEFINED.add(define.__name__)
            define()

    once.__name__ = define.__name__
    once.__doc__ = define.__doc__
    return once


# ----------------------------------------------------------------------------- groups


@_group
def define_data_group():
    """DataConfig's flags."""
    c = DataConfig
    _string(c, "dataset", "Dataset: mnist, fashion_mnist, cifar10, svhn_cropped, any other TFDS "
            "image-classification name (or tfds:NAME), folder:PATH (one subfolder "
            "of PNG/JPEG/BMP/GIF images per class; PATH/train/ and PATH/test/, or "
            "--test_fraction held out) or npz:PATH (x_train, y_train, x_test, "
            "y_test[, class_names]). See keras_caps.data_sources.")
    _string(c, "image_size", "Resize every image to H or H,W pixels (needed for "
            "folders of mixed sizes).")
    _bool(c, "grayscale", "Convert images to 1 channel (same as --channels=1).")
    _integer(c, "channels", "Convert images to 1 (gray) or 3 (RGB) channels.")
    _float(c, "test_fraction", "Per-class fraction of the training images held "
           "out (seeded) as the test split when the dataset has none (a folder "
           "without test/, a TFDS dataset without 'test').")
    _enum(c, "balance", c.BALANCE,
          "Class balancing of the training split (keras_caps.data.balance_classes).")
    _enum(c, "denoise", c.DENOISE, "Denoise train and test images (keras_caps.data.denoise, 3x3).")
    _bool(c, "remove_constant_features", "Zero the pixels that are constant over "
          "the training images, in train and test (keras_caps.data).")
    _string(c, "data_dir", "Folder with IDX .gz files (offline) or the TFDS data dir. "
            "Default: /usr/share/datasets/<name>, then TFDS.")
    _enum(c, "data_source", c.DATA_SOURCES, "Where to read data from.")
    _integer(c, "train_examples", "Use only the first N training examples.")
    _integer(c, "test_examples", "Use only the first N test examples.")
    _integer(c, "validation_examples",
             "Hold out the last N training examples and evaluate on them instead of "
             "the test split (for tuning; the test split is then not read; a "
             "given --teacher must not have been trained on them).")
    _bool(c, "stream", "Read a folder:PATH dataset from disk batch by batch (tf.data) "
          "instead of into memory, for folders larger than memory; every train/ binary "
          "and the pipeline (quantize reads only the slices it uses; the studies and the "
          "pipeline decode the test split for their measurements).")


@_group
def define_model_group():
    """ModelConfig's flags."""
    c = ModelConfig
    _enum(c, "model", c.MODELS,
          "Model builder (mcu_capsnet: the microcontroller family, see --mcu_size).")
    _enum(c, "mcu_size", c.MCU_SIZES, "mcu_capsnet: size (S fits a 100 KB "
          "flatbuffer and a 64 KB TFLite Micro arena in int8).")
    _integer(c, "conv_filters", "capsnet: conv1 filters.")
    _integer(c, "conv_kernel", "capsnet: conv1 kernel size.")
    _integer(c, "primary_capsules", "capsnet: primary capsule types.")
    _integer(c, "primary_dim", "capsnet: primary capsule dimension.")
    _integer(c, "primary_kernel", "capsnet: primary conv kernel size.")
    _integer(c, "num_capsules", "deep_capsnet: C.")
    _integer(c, "capsule_dim", "deep_capsnet: D.")
    _integer(c, "num_intermediate", "deep_capsnet: I, IntermediateCaps layers.")
    _list(c, "backbone_filters", "deep_capsnet: backbone widths.")
    _list(c, "backbone_strides", "deep_capsnet: backbone strides, one per width.")
    _integer(c, "class_dim", "Class capsule dimension.")
    _integer(c, "routings", "Routing iterations.")
    _enum(c, "decoder", c.DECODERS, "Reconstruction decoder.")
    _float(c, "init_length",
           "Data-dependent init of a fresh model: scale every capsule layer's "
           "kernel (input to output) so its mean capsule length on 256 training "
           "images is this, e.g. 0.5 (keras_caps.training.length_init); 0 keeps "
           "the initializer's scale. The Sabour CapsNet starts with saturated "
           "class capsules (mean length ~0.96) and trains far faster with 0.5.")
    _float(c, "recon_weight", "Weight of the sum-of-squares reconstruction loss.")
    _bool(c, "weight_sharing", "Share class-capsule transforms over positions (capsnet, deep_capsnet).")


@_group
def define_optimization_group():
    """OptimizationConfig's flags."""
    from keras_caps.schedules import LR_POLICIES

    c = OptimizationConfig
    _integer(c, "epochs", "Total epochs (a resumed run trains the rest).")
    _integer(c, "batch_size", "Batch size (batch_policy=fixed).")
    _enum(c, "optimizer", c.OPTIMIZERS, "Optimizer.")
    _float(c, "learning_rate", "Learning rate (the maximum for cyclic policies).")
    _enum(c, "lr_policy", LR_POLICIES, "Learning-rate policy.")
    _float(c, "lr_min", "Minimum LR of one_cycle / warm_restarts / cosine / "
           "triangular / warmadabatch; final LR of polynomial.")
    _float(c, "lr_decay_rate", "exponential: decay rate.")
    _integer(c, "lr_decay_steps", "exponential: steps per decay.")
    _float(c, "lr_drop", "step: factor per drop.")
    _float(c, "lr_drop_epochs", "step: epochs between drops.")
    _float(c, "lr_power", "polynomial: power.")
    _float(c, "lr_cycle_epochs", "warm_restarts: first cycle; triangular: half "
           "cycle (epochs).")
    _float(c, "lr_cycle_mult", "warm_restarts: cycle length multiplier.")
    _enum(c, "batch_policy", c.BATCH_POLICIES, "Batch-size policy (FasTrCaps Alg. 3 / Alg. 5).")
    _integer(c, "batch_warmup_size", "adabatch/warmadabatch: warm-up batch size.")
    _integer(c, "batch_warmup_epochs", "adabatch/warmadabatch: warm-up epochs.")
    _integer(c, "batch_exponent", "adabatch/warmadabatch: P, batch 2^P after warm-up.")
    _integer(c, "batch_epochs_per_step", "adabatch: epochs per batch doubling.")
    _integer(c, "batch_growth_steps", "adabatch/warmadabatch: sizes after the "
             "warm-up (default 3 for adabatch, 1 for warmadabatch).")
    _integer(c, "augment_shift", "Random shift augmentation in pixels (Sabour: 2; "
             "0: none; the ablation found no gain up to 15 epochs).")
    _integer(c, "seed", "Random seed.")


@_group
def define_run_group():
    """RunDirConfig's and CommonConfig's flags."""
    _string(RunDirConfig, "model_dir", "Output folder (required).")
    _bool(RunDirConfig, "overwrite", "Start over in a --model_dir that holds an earlier "
          "run: its contents are moved to <model_dir>.previous-<time>/ (nothing is "
          "deleted). Without it a changed configuration or results without a "
          "checkpoint are an error.")
    _enum(RunDirConfig, "distribution_strategy", RunDirConfig.STRATEGIES,
          "tf.distribute strategy.")
    _integer(CommonConfig, "verbose", "0: silent, 1: progress bars, 2: also each stage's own "
             "report (the pipeline).")
    _string(CommonConfig, "preset", "Preset of the binary being run (e.g. quick, full); "
            "flags given explicitly win.")


@_group
def define_student_group():
    """StudentConfig's and DistillOptions' flags (the distillation binary's own)."""
    c = StudentConfig
    _string(DistillOptions, "teacher", "Trained teacher model (.keras, e.g. from "
            "train_capsnet, or pretrained:NAME for a shipped reference model); required by "
            "distill, while the pipeline and the KD study train one without it.")
    _enum(c, "student_model", c.STUDENT_MODELS, "Student builder: capsnet (the --student_* fields "
          "below) or mcu_capsnet (the microcontroller CapsNet of --student_mcu_size).")
    _enum(c, "student_mcu_size", ModelConfig.MCU_SIZES, "--student_model=mcu_capsnet: its size.")
    _float(c, "student_init_length", "Data-dependent capsule-length init of the fresh "
           "student (0: off), as --init_length.")
    _integer(c, "student_conv_filters", "Student conv1 filters.")
    _integer(c, "student_conv_kernel", "Student conv1 kernel (default: the teacher's).")
    _integer(c, "student_primary_capsules", "Student primary capsule types.")
    _integer(c, "student_primary_dim", "Student primary capsule dimension.")
    _integer(c, "student_primary_kernel", "Student primary kernel (default: the teacher's).")
    _integer(c, "student_class_dim", "Student class capsule dimension.")
    _integer(c, "student_routings", "Student routing iterations (default: the teacher's).")
    _enum(c, "student_decoder", ("none", "full", "reduced"), "Student reconstruction decoder.")
    _bool(c, "student_weight_sharing", "Student class capsules share transforms "
          "over positions.")
    d = DistillOptions
    _float(d, "temperature", "Distillation temperature T (paper: 3).")
    _float(d, "alpha", "Weight of T^2 * KL(teacher || student).")
    _float(d, "beta", "Weight of the task loss.")
    _enum(d, "task_loss", ("margin", "crossentropy"), "Student task loss.")
    _float(d, "capsule_weight", "Weight of the teacher/student class-capsule MSE (0: off).")
    _bool(d, "transfer_init", "Initialise the student from the teacher's most "
          "important channels / capsule types before distilling.")
    _string(d, "transfer_importance", "JSON file {teacher layer: [scores]} "
            "(e.g. CHIP scores) for --transfer_init; default: L1 norms.")


@_group
def define_finetune_group():
    """FinetuneConfig's own flags."""
    c = FinetuneConfig
    _string(c, "pretrained", "Model to fine-tune (.keras), e.g. a distilled student (required).")
    _integer(c, "num_classes", "Classes of the new task (default: the dataset's); "
             "a different count than the model's replaces its head.")
    _integer(c, "head_class_dim", "Class capsule dim of a replaced head (default: the old one).")
    _enum(c, "head_decoder", ("same", "none", "full", "reduced"),
          "Decoder of a replaced head (fresh weights).")
    _string(c, "unfreeze_schedule", "'auto', 'none', or "
            "'EPOCH:LAYER,LAYER;EPOCH:LAYER' (0-based epochs).")
    _integer(c, "unfreeze_epochs_per_stage", "Epochs per stage for 'auto'.")
    _float(c, "unfreeze_lr_factor", "LR factor per unfreezing stage.")
    _float(c, "l2", "L2 strength lambda on the kernels (eq. 16; 0: off).")
    _enum(c, "finetune_loss", ("margin", "crossentropy"),
          "Task loss: margin, or cross-entropy of the normalised capsule lengths (eq. 14).")


@_group
def define_prune_group():
    """PruneOptions' flags."""
    c = PruneOptions
    _string(c, "base_model", "A trained .keras model to prune (skips stage 1).")
    _float(c, "pruning_ratio", "PR in [0, 1): fraction of channels to prune.")
    _float(c, "ccm_alpha", "Weight alpha of the CCM term (eq. 5).")
    _enum(c, "ccm_reduction", ("sample", "batch"),
          "CCM correlations per sample over H*W, or pooled over B*H*W.")
    _integer(c, "ccm_epochs", "Epochs of CCM retraining (0: skip).")
    _integer(c, "retrain_epochs", "Epochs of retraining the pruned model.")
    _integer(c, "ci_batches", "Training batches to average CI scores over (0: all).")
    _integer(c, "ci_batch_size", "Batch size for the CI scores.")
    _enum(c, "class_caps", ("fresh", "transfer"),
          "Pruned ClassCaps: new (paper) or the kept rows of the old kernel.")
    _bool(c, "run_eagerly", "Run the CCM / pruned / deep models' steps eagerly "
          "(debugging; faster than tracing only for tiny models).")
    _bool(c, "control", "Also retrain the unpruned (CCM) parent exactly as the "
          "pruned model is retrained (PR 0, same class_caps, epochs and seed): the "
          "equal-training control the pruned accuracy is compared with.")
    _enum(c, "intermediate_caps", ("prune", "keep", "fresh"),
          "IntermediateCaps of a deep model: kept types in and out (paper: same C "
          "as PrimaryCaps), all output types kept, or rebuilt fresh.")


@_group
def define_quantize_group():
    """QuantizeOptions' flags."""
    c = QuantizeOptions
    _string(c, "model_path", "Trained .keras model to quantize (required). (--model "
            "is the model builder of train.train_capsnet: binaries share absl flags.)")
    _enum(c, "approach", ("A", "B", "C", "all"), "Bit-width search approach.")
    _float(c, "tolerance", "Allowed accuracy loss in points (0.1 = 0.1 %).")
    _float(c, "weight_reduction", "B: weight memory budget, float32 / this.")
    _integer(c, "min_bits", "Fewest bits any tensor may get.")
    _integer(c, "max_bits", "A: the widest uniform bit-width tried.")
    _enum(c, "rounding", ("nearest", "truncate", "stochastic"),
          "Rounding mode (stochastic applies to weights; activations round to nearest).")
    _enum(c, "clipping", ("maxabs", "percentile", "mse"),
          "How exponents are chosen from the data.")
    _float(c, "percentile", "clipping=percentile: the percentile of |x|.")
    _enum(c, "granularity", ("tensor", "channel", "block"), "Weight exponent granularity.")
    _integer(c, "block_size", "granularity=block: channels per block.")
    _integer(c, "calibration_batches", "Training batches used for calibration.")
    _integer(c, "calibration_batch_size", "Calibration batch size.")
    _string(c, "search_split", "Held-out split the searches evaluate.")
    _string(c, "test_split", "Disjoint split the results report.")
    _string(c, "output_dir", "Output folder (default <model dir>/quantization).")
    _integer(c, "qat_epochs", "Quantization-aware fine-tuning epochs for every "
             "found spec (0: post-training quantization only).")
    _integer(c, "qat_examples", "Training images for QAT (and its float control).")
    _float(c, "qat_learning_rate", "QAT learning rate (Adam).")


@_group
def define_latency_group():
    """--latency_repeats: shared by the pipeline and the KD study, whose defaults differ."""
    flags.DEFINE_integer("latency_repeats", None, "Latency measurements per model (median); "
                         f"default {PipelineOptions.latency_repeats} for the pipeline, "
                         f"{KdStudyOptions.latency_repeats} for the KD study.")


@_group
def define_pipeline_group():
    """PipelineOptions' flags (but --latency_repeats)."""
    c = PipelineOptions
    _list(c, "stages", f"Stages to run, a subset of {list(STAGES)}.")
    _integer(c, "student_epochs", "Distillation epochs (default --epochs).")
    _integer(c, "search_examples", "Test images the quantization search uses; "
             "the rest of the test split reports.")
    _integer(c, "tflite_examples", "Test images for the TFLite evaluation (default all).")


@_group
def define_kd_study_group():
    """KdStudyOptions' flags (but --latency_repeats)."""
    c = KdStudyOptions
    _list(c, "kd_methods", f"Methods to train, from {list(METHODS)}.")
    _integer(c, "teacher_epochs", "Teacher training epochs (ignored with --teacher).")
    _list(c, "batch_sizes", "Sweep: student batch sizes (default: --batch_size).")
    _list(c, "lr_policies", "Sweep: student LR policies (default: --lr_policy).")
    _integer(c, "latency_batch", "Batch size of the latency measurement.")
    _bool(c, "int8_tflite", "Also export every model to int8 TFLite and report "
          "its LiteRT accuracy and single-image latency (1 thread).")


@_group
def define_fastrcaps_group():
    """FastrcapsStudyConfig's own flag (--policies)."""
    _list(FastrcapsStudyConfig, "policies", f"Policies to train, from {list(POLICIES)}.")


@_group
def define_vanishing_group():
    """VanishingOptions' flags."""
    c = VanishingOptions
    _list(c, "pruning_ratios", "(a) pruning ratios (0 = the unpruned base).")
    _integer(c, "max_intermediate", "(b) deepest I to try.")
    _integer(c, "deep_epochs", "(b) epochs per deep model (default --epochs).")
    _float(c, "collapse_accuracy", "(b) best test accuracy <= this = collapsed.")
    _list(c, "recovery_ratios", "(b) pruning ratios tried at the collapse depth; 0 grafts the "
          "unpruned (CCM-retrained) base: the control for the effect of grafting itself.")
    _float(c, "init_gain", "IntermediateCaps init: 'capsule' form with this gain.")
    _float(c, "init_std", "IntermediateCaps init: truncated normal, fixed std.")
    _integer(c, "dead_batches", "Test batches (of --ci_batch_size) for dead capsules.")
    _integer(c, "collapse_seeds", "(c) train the model at the recovery depth from "
             "scratch with this many seeds per width to measure how often it "
             "collapses (0: skip (c)).")
    _list(c, "collapse_widths", "(c) capsule types C to compare (default: "
          "--num_capsules and the pruned C of each --recovery_ratios > 0).")
    _float(c, "graft_length", "(b) grafts: scale each fresh IntermediateCaps / "
           "ClassCaps kernel so its mean capsule length on 256 training images is "
           "this (keras_caps.training.length_init); 0 keeps the plain "
           "initialisation, under which grafts on a trained backbone start dead.")


# ----------------------------------------------------------------------------- binaries


def define_train_flags():
    """train.train_capsnet (and train.demo): data, model, optimisation, run."""
    define_data_group()
    define_model_group()
    define_optimization_group()
    define_run_group()


def define_distill_flags():
    """train.distill: train_capsnet's flags and the student / distillation ones."""
    define_train_flags()
    define_student_group()


def define_finetune_flags():
    """train.finetune: train_capsnet's flags and the fine-tuning ones."""
    define_train_flags()
    define_finetune_group()


def define_prune_flags():
    """train.prune: train_capsnet's flags and the pruning ones."""
    define_train_flags()
    define_prune_group()


def define_quantize_flags():
    """train.quantize: train_capsnet's flags (it reads the data ones, seed, verbose, preset)
    and the quantization ones."""
    define_train_flags()
    define_quantize_group()


def define_pipeline_flags():
    """train.pipeline: every flag of train_capsnet, distill, prune and quantize, and its own."""
    define_distill_flags()
    define_prune_flags()
    define_quantize_flags()
    define_pipeline_group()
    define_latency_group()


def define_kd_study_flags():
    """train.kd_study: distill's flags, --policies (accepted, unused) and the study's."""
    define_distill_flags()
    define_fastrcaps_group()
    define_kd_study_group()
    define_latency_group()


def define_fastrcaps_study_flags():
    """train.fastrcaps_study: train_capsnet's flags and --policies."""
    define_train_flags()
    define_fastrcaps_group()


def define_vanishing_study_flags():
    """train.vanishing_study: prune's flags and the study's."""
    define_prune_flags()
    define_vanishing_group()


# ----------------------------------------------------------------------------- flags -> config


def config_from_flags(cls, flag_values=None, defaults=None, presets=True):
    """The `cls` config of the parsed flags.

    Args:
        cls: a config class (TrainConfig, PipelineConfig, ...).
        flag_values: parsed absl FlagValues (default: absl.flags.FLAGS).
        defaults: {flag: value} this binary sets for flags not given on the command line
            (train.demo's quick settings).
        presets: apply `cls.PRESETS[--preset]` (default `cls.DEFAULT_PRESET`) to the flags not
            given on the command line; False leaves --preset as it is.
    Returns:
        A validated `cls` instance (ConfigError for a bad value or an unknown preset).
    """
    fv = flag_values or FLAGS
    names = cls.field_names()
    # a flag without a value (None) leaves the field's default: --latency_repeats has none
    # of its own (its default depends on the binary); every other flag's default is its field's
    values = {n: fv[n].value for n in names if n in fv and fv[n].value is not None}

    def given(name):
        return name in fv and fv[name].present

    for name, value in (defaults or {}).items():
        if not given(name):
            values[name] = value
    if presets:
        preset = values.get("preset") or cls.DEFAULT_PRESET or "none"
        chosen = cls.preset_values(preset)
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise TypeError(f"preset {preset!r} of {cls.__name__} sets unknown fields {unknown}")
        values["preset"] = preset
        values.update({k: v for k, v in chosen.items() if not given(k)})
    return cls(**values)


def train_config():
    """TrainConfig of train.train_capsnet's parsed flags (and --preset)."""
    return config_from_flags(TrainConfig)


def distill_config():
    """DistillConfig of train.distill's parsed flags."""
    return config_from_flags(DistillConfig)


def finetune_config():
    """FinetuneConfig of train.finetune's parsed flags."""
    return config_from_flags(FinetuneConfig)


def prune_config():
    """PruneConfig of train.prune's parsed flags (and --preset)."""
    return config_from_flags(PruneConfig)


def quantize_config():
    """QuantizeConfig of train.quantize's parsed flags (and --preset)."""
    return config_from_flags(QuantizeConfig)


def pipeline_config():
    """PipelineConfig of train.pipeline's parsed flags (and --preset, default quick)."""
    return config_from_flags(PipelineConfig)


def kd_study_config():
    """KdStudyConfig of train.kd_study's parsed flags (and --preset, default quick)."""
    return config_from_flags(KdStudyConfig)


def fastrcaps_study_config():
    """FastrcapsStudyConfig of train.fastrcaps_study's parsed flags (and --preset, default
    quick)."""
    return config_from_flags(FastrcapsStudyConfig)


def vanishing_study_config():
    """VanishingConfig of train.vanishing_study's parsed flags (and --preset)."""
    return config_from_flags(VanishingConfig)


__all__ = ["config_from_flags", "define_distill_flags", "define_fastrcaps_study_flags",
           "define_finetune_flags", "define_kd_study_flags", "define_pipeline_flags",
           "define_prune_flags", "define_quantize_flags", "define_train_flags",
           "define_vanishing_study_flags", "distill_config", "fastrcaps_study_config",
           "finetune_config", "kd_study_config", "pipeline_config", "prune_config",
           "quantize_config", "train_config", "vanishing_study_config"]
