"""Training a CapsNet from scratch: `TrainConfig` and `train` (the `train.train_capsnet` binary).

The default recipe (chosen by `benchmarks/recipe_ablation.py`, BENCHMARKS.md "Training
recipe"): Adam with a cosine LR from learning_rate to lr_min and the data-dependent
capsule-length init of a fresh model (init_length=0.5; 0 turns it off); random shifts
(augment_shift) stay off. The presets are `TrainConfig.PRESETS` (see train/train_capsnet.py).
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

from keras_caps.runs.config import (
    CommonConfig,
    DataConfig,
    ModelConfig,
    OptimizationConfig,
    RunDirConfig,
)

_MCU = dict(model="mcu_capsnet", decoder="none", batch_size=64, learning_rate=2e-3,
            lr_policy="cosine", lr_min=1e-5, augment_shift=0, init_length=0.5)

# the config.json sections of a training run (keras_caps.training.run_dir): what fixes the
# architecture, the data, and the training state the checkpoint holds (its compiled loss and
# optimizer, which a resume would otherwise silently keep)
ARCHITECTURE_FIELDS = ("model", "conv_filters", "conv_kernel", "primary_capsules", "primary_dim",
                       "primary_kernel", "num_capsules", "capsule_dim", "num_intermediate",
                       "backbone_filters", "class_dim", "routings", "decoder", "weight_sharing",
                       "init_length", "mcu_size")
DATA_FIELDS = ("dataset", "train_examples", "test_examples", "validation_examples", "image_size",
               "grayscale", "channels", "test_fraction", "balance", "denoise",
               "remove_constant_features")
# recorded only when not at their defaults, so that runs recorded before them still resume
LATER_ARCHITECTURE_FIELDS = ("backbone_strides",)
TRAINING_FIELDS = ("optimizer", "learning_rate", "lr_policy", "batch_policy", "recon_weight")


def _recorded(name, value):
    # backbone_filters as the list flag spells it (strings), so config.json stays what it
    # was and runs recorded before typed configs resume
    if name == "backbone_filters" and value is not None:
        return [str(v) for v in value]
    return list(value) if isinstance(value, tuple) else value


@dataclasses.dataclass(frozen=True)
class TrainConfig(RunDirConfig, OptimizationConfig, ModelConfig, DataConfig, CommonConfig):
    """Everything `train` needs: data, model, optimisation and run directory.

    See the option groups in keras_caps.runs.config for each field; field names are the
    flags of `python -m train.train_capsnet`.

    Example:
        >>> config = TrainConfig(model_dir="runs/small", conv_filters=64, primary_capsules=8,
        ...                      epochs=3, train_examples=10000)
        >>> metrics = train(config)  # doctest: +SKIP
    """

    PRESETS: ClassVar[dict] = {
        "quick": dict(_MCU, mcu_size="S", epochs=3, train_examples=20000, test_examples=2000),
        # the shipped reference model: 30 epochs with shifts (not ablated at 30 epochs)
        "cpu_mcu": dict(_MCU, mcu_size="S", epochs=30, augment_shift=2, train_examples=None,
                        test_examples=None),
        # the teacher: M for 32 epochs with shifts (about 97 s an epoch on 2 quiet cores)
        "cpu": dict(_MCU, mcu_size="M", epochs=32, augment_shift=2, train_examples=None,
                    test_examples=None),
        "full": dict(model="capsnet", conv_filters=256, primary_capsules=32, primary_dim=8,
                     class_dim=16, decoder="full", epochs=30, batch_size=64,
                     lr_policy="cosine", lr_min=1e-5, augment_shift=2, init_length=0.5),
    }

    def run_config(self, architecture=None, data=DATA_FIELDS,
                   training=TRAINING_FIELDS, **extra):
        """The run's config.json sections {"architecture", "data", "training", **extra}
        (keras_caps.training.run_dir writes them; a resume with any of them changed is an
        error). architecture: the field names to record; None (train's own) records
        ARCHITECTURE_FIELDS and those of LATER_ARCHITECTURE_FIELDS not at their defaults."""
        def section(names):
            return {n: _recorded(n, getattr(self, n)) for n in names}

        if architecture is None:  # train's own: the later fields only where they were set
            default = ModelConfig()
            architecture = ARCHITECTURE_FIELDS + tuple(
                n for n in LATER_ARCHITECTURE_FIELDS if getattr(self, n) != getattr(default, n))

        return {"architecture": section(architecture), "data": section(data),
                "training": section(training), **extra}


def train(config, datasets_override=None):
    """Trains the model `config` describes; returns the metrics dict (also metrics.json).

    Under config.model_dir: checkpoints/ (a rerun resumes from the last epoch), logs/
    (TensorBoard), history.csv, metrics.json, best.keras, model.keras, config.json,
    model_card.json / .md (keras_caps.runs.model_card) and, with init_length,
    init_lengths.json.

    Args:
        config: a TrainConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading
            config.dataset: images (N, H, W[, C]) uint8 or float in [0, 1], labels (N,) int.
    Returns:
        {"test_accuracy", "best_test_accuracy", "test_loss", "epochs", "train_time_s",
         "params", "model_path", "history", ...} (keras_caps.training.fit_capsnet).

    Example:
        >>> metrics = train(TrainConfig.from_preset("quick", model_dir="runs/quick"))  # doctest: +SKIP
        >>> metrics["test_accuracy"]  # doctest: +SKIP
        0.86
    """
    import keras

    from keras_caps.io_utils import write_json
    from keras_caps.runs import datasets, models, optimization
    from keras_caps.training import compile_capsnet, fit_capsnet

    keras.utils.set_random_seed(config.seed)
    from keras_caps.training.loop import num_examples

    train_data, test_data = datasets.load_datasets(config, datasets_override, seed=config.seed,
                                                   stream_ok=True)
    input_shape = datasets.split_shape(train_data)
    num_classes = datasets.dataset_info(config).num_classes
    models.check_input_size(config, input_shape)

    batch_policy = optimization.batch_policy(config)

    def build():  # only for a fresh run: a resumed one loads its checkpoint instead
        model = models.build_model(config, input_shape, num_classes)
        if config.init_length:
            from keras_caps.training.length_init import calibrate_capsule_lengths

            report = calibrate_capsule_lengths(model, datasets.head_images(train_data),
                                               target_length=config.init_length)
            os.makedirs(config.model_dir, exist_ok=True)
            write_json(os.path.join(config.model_dir, "init_lengths.json"), report)
        optimizer = optimization.make_optimizer(config, num_examples(train_data), batch_policy)
        return compile_capsnet(model, optimizer, recon_weight=config.recon_weight)

    metrics = fit_capsnet(
        build, train_data, test_data, config.model_dir, epochs=config.epochs,
        batch_policy=batch_policy, strategy=optimization.make_strategy(
            config.distribution_strategy),
        augment_shift=config.augment_shift, seed=config.seed, verbose=config.verbose,
        run_config=config.run_config(), overwrite=config.overwrite,
    )
    write_train_card(config, metrics, input_shape, num_classes, num_examples(train_data),
                     num_examples(test_data))
    return metrics


def recipe_text(config, epochs=None):
    """How a TrainConfig trains, in words (for model cards and reports)."""
    return (f"{config.epochs if epochs is None else epochs} epochs, batch {config.batch_size} "
            f"({config.batch_policy}), {config.optimizer} with LR {config.learning_rate:g} "
            f"({config.lr_policy}"
            + (f" -> {config.lr_min:g}" if config.lr_policy == "cosine" else "") + "), "
            f"random shifts {config.augment_shift} px, capsule-length init "
            f"{config.init_length or 0:g}")


def write_train_card(config, metrics, input_shape, num_classes, train_count, eval_count):
    """model_card.json / .md of a `train` run's model.keras (keras_caps.runs.model_card);
    returns their paths, or None on a non-chief worker (no model.keras of its own)."""
    from keras_caps.runs import datasets
    from keras_caps.runs.measure import classifier_stats
    from keras_caps.runs.model_card import model_card, write_model_card

    if not os.path.exists(metrics["model_path"]):
        return None  # a non-chief multi-worker replica: only the chief keeps the model
    stats = classifier_stats(metrics["model_path"])
    card = model_card(
        os.path.basename(os.path.normpath(config.model_dir)),
        model=config.model if config.model != "mcu_capsnet" else f"mcu_capsnet_{config.mcu_size}",
        dataset=config.dataset, class_names=datasets.class_names(config, num_classes),
        input_shape=input_shape, training_data=f"{train_count:,} training images",
        evaluation=f"{datasets.evaluation_split(config)} split, {eval_count:,} images; the "
                   "last epoch's model (model.keras)",
        recipe=recipe_text(config, metrics.get("epochs")),
        accuracy={"float": metrics["test_accuracy"]}, params=stats["params"],
        flops=stats["flops"], files={"model": metrics["model_path"]},
        config=os.path.join(config.model_dir, "config.json"))
    return write_model_card(config.model_dir, card)


__all__ = ["ARCHITECTURE_FIELDS", "DATA_FIELDS", "TRAINING_FIELDS", "TrainConfig", "recipe_text",
           "train", "write_train_card"]
