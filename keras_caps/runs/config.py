"""Typed run configs: the parts every binary shares, and the machinery of all configs.

A run config is a frozen dataclass made of option groups. Each binary's config
(`keras_caps.runs.TrainConfig`, `DistillConfig`, ...) inherits the groups it reads:

    DataConfig          --dataset and how it is read, resized, split and preprocessed
    ModelConfig         the architecture (--model and its sizes, decoder, init, recon weight)
    OptimizationConfig  epochs, batch / LR policies, optimizer, augmentation, seed
    RunDirConfig        --model_dir, --overwrite, --distribution_strategy
    CommonConfig        --verbose, --preset

Field names are the flag names, so `--epochs=3` is `epochs=3`. A config checks its values
once, when it is made (`__post_init__` runs the `_check` of every class it inherits), and a
bad value is a `ConfigError` naming the flag: the binaries print it as one line. Derived
configs come from `dataclasses.replace(config, epochs=3)` (same class) or
`TrainConfig.from_config(pipeline_config, model_dir=...)` (the fields of another class).

Example:
    >>> from keras_caps.runs import TrainConfig
    >>> config = TrainConfig.from_preset("quick", model_dir="runs/quick", epochs=1)
    >>> config.model, config.mcu_size, config.epochs
    ('mcu_capsnet', 'S', 1)
    >>> TrainConfig(model_dir="runs/x", lr_policy="sgdr")
    Traceback (most recent call last):
    ...
    keras_caps.runs.config.ConfigError: --lr_policy 'sgdr' is not one of [...]
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from keras_caps.errors import UserError
from keras_caps.schedules.batch import BATCH_POLICIES as _BATCH_POLICIES


class ConfigError(UserError):
    """A run config (a flag value) that is invalid; the message names the flag."""


# ----------------------------------------------------------------------------- checks


def check_choice(name, value, choices):
    """ConfigError unless `value` is one of `choices`."""
    if value not in choices:
        raise ConfigError(f"--{name} {value!r} is not one of {list(choices)}.")


def as_tuple(name, values, kind):
    """A list flag's values (strings or already typed) as a tuple of `kind`."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    try:
        return tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} must be a comma-separated list of {kind.__name__} values, "
                          f"got {values!r}.") from None


def set_field(config, name, value):
    """Sets a field of a frozen config: for `_check` methods that normalise a value (e.g. a
    list flag's strings to a tuple of ints)."""
    object.__setattr__(config, name, value)


# ----------------------------------------------------------------------------- base


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of the run configs: validation on construction, presets, derived configs."""

    #: {preset name: {field: value}}; --preset=NAME sets these (explicit flags win).
    PRESETS: ClassVar[dict] = {}
    #: The preset of a run without --preset (None: no preset).
    DEFAULT_PRESET: ClassVar[str | None] = None

    def __post_init__(self):
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("_check")
            if check is not None:
                check(self)

    @classmethod
    def field_names(cls):
        """The names of the config's fields (= its flag names)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_config(cls, other, **changes):
        """This class's config with the values of `other` (any config that has all of this
        class's fields, e.g. a pipeline config) and `changes` on top."""
        names = cls.field_names()
        missing = [n for n in names if n not in changes and not hasattr(other, n)]
        if missing:
            raise TypeError(f"{type(other).__name__} lacks the fields {missing} of "
                            f"{cls.__name__}.")
        values = {n: getattr(other, n) for n in names if n not in changes}
        return cls(**values, **changes)

    @classmethod
    def preset_values(cls, name):
        """The values preset `name` sets ("none" or None: nothing); ConfigError if unknown."""
        name = name or "none"
        if name != "none" and name not in cls.PRESETS:
            raise ConfigError(f"unknown --preset {name!r}; choose one of "
                              f"{['none', *cls.PRESETS]}.")
        return dict(cls.PRESETS.get(name, {}))

    @classmethod
    def from_preset(cls, name=None, **values):
        """The config of preset `name` (default: DEFAULT_PRESET) with `values` on top (they
        win, as explicit flags do)."""
        name = name or cls.DEFAULT_PRESET or "none"
        return cls(**{**cls.preset_values(name), **values, "preset": name})

    def to_dict(self):
        """The config as a JSON-ready dict {field: value}."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def write(self, folder):
        """Writes <folder>/config.json: {"config": class name, **fields}; returns its path.

        For runs made of other runs (prune, quantize, the pipeline, the studies): each
        training run inside writes its own config.json, the one keras_caps.training.run_dir
        compares on resume; this one records the settings of the run that wrote the folder's
        results.
        """
        import os

        from keras_caps.io_utils import write_json

        path = os.path.join(folder, "config.json")
        write_json(path, {"config": type(self).__name__, **self.to_dict()})
        return path


# ----------------------------------------------------------------------------- groups


@dataclasses.dataclass(frozen=True)
class CommonConfig(Config):
    """What every binary has: verbosity and the preset it ran with."""

    verbose: int = 1
    preset: str | None = None


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """--dataset (any spelling of keras_caps.data_sources) and how its arrays are prepared.

    Fields: dataset; image_size ("H" or "H,W"); grayscale / channels (1 or 3); test_fraction
    (held out per class when the source has no test split); balance ("none", "oversample",
    "undersample"; training split only); denoise ("none", "median", "gaussian");
    remove_constant_features; data_dir; data_source ("auto", "idx", "tfds");
    train_examples / test_examples (the first N); validation_examples (the last N training
    examples held out and evaluated instead of the test split); stream (a folder: dataset read
    from disk per batch instead of into memory; every train/ binary and the pipeline;
    quantize reads only the slices it uses, the studies and the pipeline decode the test
    split for what they measure).
    """

    dataset: str = "fashion_mnist"
    image_size: str | None = None
    grayscale: bool = False
    channels: int | None = None
    test_fraction: float = 0.2
    balance: str = "none"
    denoise: str = "none"
    remove_constant_features: bool = False
    data_dir: str | None = None
    data_source: str = "auto"
    train_examples: int | None = None
    test_examples: int | None = None
    validation_examples: int | None = None
    stream: bool = False

    BALANCE: ClassVar[tuple] = ("none", "oversample", "undersample")
    DENOISE: ClassVar[tuple] = ("none", "median", "gaussian")
    DATA_SOURCES: ClassVar[tuple] = ("auto", "idx", "tfds")

    def _check(self):
        from keras_caps import data_sources

        if not self.dataset:
            raise ConfigError("--dataset is required (e.g. fashion_mnist, folder:PATH, npz:PATH).")
        check_choice("balance", self.balance or "none", self.BALANCE)
        check_choice("denoise", self.denoise or "none", self.DENOISE)
        check_choice("data_source", self.data_source, self.DATA_SOURCES)
        data_sources.parse_image_size(self.image_size)
        data_sources.check_channels(self.channels)
        if self.grayscale and self.channels == 3:
            raise ConfigError("--grayscale and --channels=3 contradict each other; pass one.")
        if self.test_fraction is not None:
            set_field(self, "test_fraction", data_sources.check_test_fraction(self.test_fraction))
        if self.stream:
            if data_sources.parse(self.dataset).kind != "folder":
                raise ConfigError(
                    f"--stream reads folder:PATH datasets from disk; {self.dataset!r} is loaded "
                    "into memory (drop --stream, or export the images to a folder).")
            used = [f"--{name}" for name, off in (("balance", "none"), ("denoise", "none"))
                    if (getattr(self, name) or "none") != off]
            used += ["--remove_constant_features"] if self.remove_constant_features else []
            if used:
                raise ConfigError(
                    f"{', '.join(used)} need the whole training split in memory and cannot be "
                    "combined with --stream; drop them or --stream.")

    def data_options(self):
        """{"image_size", "channels", "test_fraction"} for keras_caps.data.load_arrays / info."""
        from keras_caps import data_sources

        return {"image_size": data_sources.parse_image_size(self.image_size),
                "channels": 1 if self.grayscale else self.channels,
                "test_fraction": self.test_fraction}


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """The architecture of a model trained from scratch (keras_caps.models builders).

    model: "capsnet" (Sabour; conv_filters, conv_kernel, primary_capsules, primary_dim,
    primary_kernel, weight_sharing), "deep_capsnet" (paper 003; num_capsules C, capsule_dim D,
    num_intermediate I, backbone_filters, backbone_strides, weight_sharing) or "mcu_capsnet" (mcu_size S / M / L); class_dim,
    routings and decoder ("full", "reduced", "none") for all. init_length: the data-dependent
    capsule-length init of a fresh model (0: off). recon_weight: weight of the reconstruction
    loss.
    """

    model: str = "capsnet"
    mcu_size: str = "S"
    conv_filters: int = 256
    conv_kernel: int = 9
    primary_capsules: int = 32
    primary_dim: int = 8
    primary_kernel: int = 9
    num_capsules: int = 20
    capsule_dim: int = 8
    num_intermediate: int = 0
    backbone_filters: tuple = (64, 128, 128)
    backbone_strides: tuple = (1, 2, 1)
    class_dim: int = 16
    routings: int = 3
    decoder: str = "full"
    init_length: float = 0.5
    recon_weight: float = 0.0005
    weight_sharing: bool = False

    MODELS: ClassVar[tuple] = ("capsnet", "deep_capsnet", "mcu_capsnet")
    MCU_SIZES: ClassVar[tuple] = ("S", "M", "L")
    DECODERS: ClassVar[tuple] = ("full", "reduced", "none")

    def _check(self):
        check_choice("model", self.model, self.MODELS)
        check_choice("mcu_size", self.mcu_size, self.MCU_SIZES)
        check_choice("decoder", self.decoder, self.DECODERS)
        set_field(self, "backbone_filters", as_tuple("backbone_filters", self.backbone_filters, int))
        set_field(self, "backbone_strides", as_tuple("backbone_strides", self.backbone_strides, int))
        if (self.model == "deep_capsnet"
                and len(self.backbone_strides) != len(self.backbone_filters)):
            raise ConfigError(
                f"--backbone_strides needs one stride per --backbone_filters width: got "
                f"{len(self.backbone_strides)} strides {list(self.backbone_strides)} for "
                f"{len(self.backbone_filters)} widths {list(self.backbone_filters)}.")
        if not 0.0 <= (self.init_length or 0.0) < 1.0:
            raise ConfigError(f"--init_length must lie in [0, 1) (0: off; capsule lengths are "
                              f"below 1), got {self.init_length}.")


@dataclasses.dataclass(frozen=True)
class OptimizationConfig(Config):
    """Epochs, the optimizer, the LR and batch-size policies, augmentation and the seed.

    lr_policy: one of keras_caps.schedules.LR_POLICIES, with learning_rate (the maximum of
    cyclic policies), lr_min and the policy's constants (lr_decay_rate / lr_decay_steps for
    exponential, lr_drop / lr_drop_epochs for step, lr_power for polynomial, lr_cycle_epochs /
    lr_cycle_mult for warm_restarts and triangular). batch_policy: "fixed" (batch_size),
    "adabatch" or "warmadabatch" (FasTrCaps; batch_warmup_size, batch_warmup_epochs,
    batch_exponent P, batch_epochs_per_step, batch_growth_steps). augment_shift: random
    shifts in pixels.
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_policy: str = "cosine"
    lr_min: float = 1e-5
    lr_decay_rate: float = 0.96
    lr_decay_steps: int | None = 2000
    lr_drop: float = 0.5
    lr_drop_epochs: float = 10.0
    lr_power: float = 1.0
    lr_cycle_epochs: float = 1.0
    lr_cycle_mult: float = 1.0
    batch_policy: str = "fixed"
    batch_warmup_size: int = 1
    batch_warmup_epochs: int = 3
    batch_exponent: int = 4
    batch_epochs_per_step: int = 5
    batch_growth_steps: int | None = None
    augment_shift: int = 0
    seed: int = 0

    OPTIMIZERS: ClassVar[tuple] = ("adam", "sgd", "adagrad", "rmsprop")
    BATCH_POLICIES: ClassVar[tuple] = _BATCH_POLICIES  # keras_caps.schedules' one table

    def _check(self):
        from keras_caps.schedules import LR_POLICIES

        check_choice("optimizer", self.optimizer, self.OPTIMIZERS)
        check_choice("lr_policy", self.lr_policy, LR_POLICIES)
        check_choice("batch_policy", self.batch_policy, self.BATCH_POLICIES)


@dataclasses.dataclass(frozen=True)
class RunDirConfig(Config):
    """Where a training run writes (--model_dir, required) and how it runs.

    overwrite: move an earlier run in model_dir aside (to <model_dir>.previous-<time>/) and
    start over. distribution_strategy: "one_device", "mirrored" or "multi_worker".
    """

    model_dir: str | None = None
    overwrite: bool = False
    distribution_strategy: str = "one_device"

    #: What --model_dir holds, for the "is required" message.
    MODEL_DIR_HELP: ClassVar[str] = "the folder for checkpoints and results."
    STRATEGIES: ClassVar[tuple] = ("one_device", "mirrored", "multi_worker")

    def _check(self):
        if not self.model_dir:
            raise ConfigError(f"--model_dir is required: {self.MODEL_DIR_HELP}")
        check_choice("distribution_strategy", self.distribution_strategy, self.STRATEGIES)


__all__ = ["CommonConfig", "Config", "ConfigError", "DataConfig", "ModelConfig",
           "OptimizationConfig", "RunDirConfig", "as_tuple", "check_choice", "set_field"]
