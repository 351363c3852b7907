"""keras_caps.runs: what the binaries run, as typed configs and plain functions.

    from keras_caps.runs import TrainConfig
    from keras_caps.runs.train import train

    config = TrainConfig.from_preset("quick", model_dir="runs/quick")   # validated here
    metrics = train(config)                                               # writes model_dir

One config class and one run function per binary, the function in the module of its name:

    TrainConfig           train.train                         train.train_capsnet, train.demo
    DistillConfig         distill.distill                     train.distill
    FinetuneConfig        finetune.finetune                   train.finetune
    PruneConfig           prune.prune                         train.prune
    QuantizeConfig        quantize.quantize                   train.quantize
    PipelineConfig        pipeline.pipeline                   train.pipeline
    KdStudyConfig         kd_study.kd_study                   train.kd_study
    FastrcapsStudyConfig  fastrcaps_study.fastrcaps_study     train.fastrcaps_study
    VanishingConfig       vanishing_study.vanishing_study     train.vanishing_study

(The package exports the configs; the run functions are not re-exported here, so that
`keras_caps.runs.prune` stays the module.)

The option groups every config is made of (DataConfig, ModelConfig, OptimizationConfig,
RunDirConfig, CommonConfig) are exported too. Modules: config (the groups and the config
machinery), flags (every absl flag and flags -> config), cli (the binaries' entry
functions), datasets, models, optimization and measure (what the runs share: the data, the
model of a config, optimizers, measurements), one module per run, and the report writers
pipeline_report and vanishing_report.

Every run takes a config and `datasets_override=((x_train, y_train), (x_test, y_test))`
arrays (tests, notebooks) instead of loading `config.dataset`, returns its results as a dict
and writes them under its folder with the config (config.json).

Example:
    >>> from keras_caps.runs import PruneConfig
    >>> from keras_caps.runs.prune import prune
    >>> config = PruneConfig.from_preset("quick", model_dir="runs/prune", pruning_ratio=0.5)
    >>> metrics = prune(config)  # doctest: +SKIP
    >>> metrics["params_reduction"]  # doctest: +SKIP
"""

from keras_caps.runs.config import (
    CommonConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimizationConfig,
    RunDirConfig,
)
from keras_caps.runs.distill import DistillConfig
from keras_caps.runs.fastrcaps_study import FastrcapsStudyConfig
from keras_caps.runs.finetune import FinetuneConfig
from keras_caps.runs.kd_study import KdStudyConfig
from keras_caps.runs.pipeline import PipelineConfig
from keras_caps.runs.prune import PruneConfig
from keras_caps.runs.quantize import QuantizeConfig
from keras_caps.runs.train import TrainConfig
from keras_caps.runs.vanishing_study import VanishingConfig

__all__ = ["CommonConfig", "ConfigError", "DataConfig", "DistillConfig", "FastrcapsStudyConfig", "FinetuneConfig",
           "KdStudyConfig", "ModelConfig", "OptimizationConfig", "PipelineConfig", "PruneConfig",
           "QuantizeConfig", "RunDirConfig", "TrainConfig", "VanishingConfig"]
