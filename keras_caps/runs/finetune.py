"""Fine-tuning a trained CapsNet layer by layer (paper 000, 3.5.1): `FinetuneConfig`, `finetune`.

num_classes different from the model's replaces its class-capsule head
(keras_caps.training.transfer.replace_head; every other weight is kept). unfreeze_schedule:
"auto" (class capsules + decoder, then each earlier layer, unfreeze_epochs_per_stage epochs
per stage), "none" (train everything), or "EPOCH:LAYER,LAYER;EPOCH:LAYER..." such as
"0:class_caps;2:primary_caps;4:conv1" (0-based epochs; layers listed nowhere stay frozen).
The learning rate is multiplied by unfreeze_lr_factor at each stage (a fixed LR: with the
default lr_policy="cosine" the staged fixed LR is used instead, and other policies need
unfreeze_lr_factor=1). l2 adds lambda * sum(w^2) over the kernels (eq. 16).
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

from keras_caps.runs.config import ConfigError, check_choice
from keras_caps.runs.train import TrainConfig

# what the checkpoint fixes (unfreeze_schedule is applied anew by a callback on resume)
FINETUNE_FIELDS = ("num_classes", "head_class_dim", "head_decoder", "l2", "finetune_loss")


def parse_schedule(text):
    """'auto' | 'none' | 'E:L1,L2;E:L3' -> 'auto', None or {epoch: [layer names]}.

    Example:
        >>> parse_schedule("0:class_caps,length;2:conv1")
        {0: ['class_caps', 'length'], 2: ['conv1']}
    """
    text = (text or "none").strip()
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    schedule = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        epoch, sep, names = part.partition(":")
        layers = [n.strip() for n in names.split(",") if n.strip()]
        if not sep or not epoch.strip().isdigit() or not layers:
            raise ConfigError(
                f"--unfreeze_schedule part {part!r} is not EPOCH:LAYER[,LAYER...]; write e.g. "
                "'0:class_caps;2:primary_caps;4:conv1', 'auto' or 'none'."
            )
        schedule.setdefault(int(epoch), []).extend(layers)
    return schedule


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """`finetune`'s config: TrainConfig's data, optimisation and run fields, and

    pretrained: the .keras model to fine-tune (required); num_classes (None: the dataset's;
    another count than the model's replaces the head, with head_class_dim (None: the old
    one) and head_decoder ("same", "none", "full", "reduced"; fresh weights));
    unfreeze_schedule, unfreeze_epochs_per_stage, unfreeze_lr_factor (module docstring);
    l2 (lambda on the kernels, 0: off); finetune_loss ("margin" or "crossentropy" of the
    normalised capsule lengths, eq. 14).

    Example:
        >>> config = FinetuneConfig(pretrained="runs/kd/model.keras", dataset="mnist",
        ...                         model_dir="runs/ft", num_classes=10, epochs=3, l2=1e-4)
        >>> metrics = finetune(config)  # doctest: +SKIP
    """

    pretrained: str | None = None
    num_classes: int | None = None
    head_class_dim: int | None = None
    head_decoder: str = "same"
    unfreeze_schedule: str = "auto"
    unfreeze_epochs_per_stage: int = 1
    unfreeze_lr_factor: float = 0.5
    l2: float = 0.0
    finetune_loss: str = "margin"

    PRESETS: ClassVar[dict] = {}

    def _check(self):
        if not self.pretrained:
            raise ConfigError(f"--pretrained must name an existing .keras model, got "
                              f"{self.pretrained!r}.")
        check_choice("head_decoder", self.head_decoder, ("same", "none", "full", "reduced"))
        check_choice("finetune_loss", self.finetune_loss, ("margin", "crossentropy"))
        schedule = parse_schedule(self.unfreeze_schedule)
        if (schedule is not None and self.unfreeze_lr_factor != 1
                and self.lr_policy not in ("fixed", "cosine")):
            raise ConfigError(f"--unfreeze_lr_factor={self.unfreeze_lr_factor} lowers a fixed "
                              f"learning rate per stage; with --lr_policy={self.lr_policy} set "
                              "--unfreeze_lr_factor=1.")


def compile_for_finetune(model, optimizer, loss="margin", recon_weight=0.0005):
    """Compiles with the margin loss (compile_capsnet) or the length cross-entropy."""
    import keras

    from keras_caps.losses import ReconstructionLoss
    from keras_caps.models import has_decoder
    from keras_caps.training import compile_capsnet
    from keras_caps.training.distillation import LengthCrossentropy

    if loss == "margin":
        return compile_capsnet(model, optimizer, recon_weight=recon_weight)
    losses = {"lengths": LengthCrossentropy()}
    if has_decoder(model):
        losses["reconstruction"] = ReconstructionLoss(recon_weight)
    model.compile(optimizer=optimizer, loss=losses,
                  metrics={"lengths": [keras.metrics.CategoricalAccuracy(name="accuracy")]})
    return model


def finetune(config, datasets_override=None):
    """Fine-tunes config.pretrained; returns the metrics dict (also metrics.json).

    Under config.model_dir, as for `train`: checkpoints/ (resumable), logs/, history.csv,
    best.keras, model.keras, config.json, metrics.json.

    Args:
        config: a FinetuneConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading.
    Returns:
        fit_capsnet's metrics plus pretrained, num_classes, l2, unfreeze_schedule,
        pretrained_classes, head_replaced and (with a schedule) "unfreezing": the stages.
    """
    import keras

    from keras_caps import schedules, validation
    from keras_caps.io_utils import write_json
    from keras_caps.runs import datasets, models, optimization
    from keras_caps.training import fit_capsnet
    from keras_caps.training.loop import num_examples
    from keras_caps.training.transfer import (
        GradualUnfreezing,
        replace_head,
        with_l2_regularization,
    )

    if not os.path.exists(config.pretrained):
        raise ValueError(f"--pretrained must name an existing .keras model, got "
                         f"{config.pretrained!r}.")
    schedule = parse_schedule(config.unfreeze_schedule)
    lr_factor = config.unfreeze_lr_factor
    staged_fixed_lr = schedule is not None and lr_factor != 1
    if staged_fixed_lr and config.lr_policy == "cosine" and config.verbose:
        # cosine is train's default LR policy; gradual unfreezing owns the LR instead
        print(f"Gradual unfreezing: a fixed LR {config.learning_rate:g} lowered x{lr_factor:g} "
              "per stage (--lr_policy=cosine is not used; --unfreeze_lr_factor=1 keeps it).")
    keras.utils.set_random_seed(config.seed)
    num_classes = config.num_classes or datasets.dataset_info(config).num_classes
    train_data, test_data = datasets.load_datasets(config, datasets_override, num_classes,
                                                   "; set --num_classes", seed=config.seed,
                                                   stream_ok=True)
    batch_policy = optimization.batch_policy(config)
    pretrained = validation.load_keras_model(config.pretrained, "--pretrained", compile=False)
    try:
        old_classes = int(pretrained.get_layer("length").output.shape[-1])
    except ValueError as err:
        raise ValueError(f"--pretrained {config.pretrained!r} is not a keras_caps CapsNet "
                         "(no 'length' layer).") from err
    models.check_loaded_model(pretrained, config.pretrained, "pretrained", config.dataset,
                              datasets.split_shape(train_data))
    del pretrained
    new_head = old_classes != num_classes or bool(config.head_class_dim)

    def build():
        model = keras.saving.load_model(config.pretrained, compile=False)
        if new_head:
            decoder = config.head_decoder
            model = replace_head(model, num_classes, class_dim=config.head_class_dim,
                                 decoder=None if decoder == "none" else decoder)
        model = with_l2_regularization(model, config.l2)
        if schedule is not None and (config.lr_policy == "fixed" or staged_fixed_lr):
            optimizer = schedules.make_optimizer(config.optimizer, config.learning_rate)
        else:
            optimizer = optimization.make_optimizer(config, num_examples(train_data),
                                                    batch_policy)
        return compile_for_finetune(model, optimizer, config.finetune_loss, config.recon_weight)

    callbacks = []
    if schedule is not None:
        callbacks.append(GradualUnfreezing(
            schedule, epochs_per_stage=config.unfreeze_epochs_per_stage, lr_factor=lr_factor,
            base_learning_rate=config.learning_rate, verbose=config.verbose))
    metrics = fit_capsnet(
        build, train_data, test_data, config.model_dir, epochs=config.epochs,
        batch_policy=batch_policy, strategy=optimization.make_strategy(
            config.distribution_strategy),
        augment_shift=config.augment_shift, seed=config.seed, verbose=config.verbose,
        callbacks=callbacks,
        run_config=config.run_config(architecture=FINETUNE_FIELDS,
                                     pretrained=os.path.abspath(config.pretrained)),
        overwrite=config.overwrite,
    )
    metrics.update(pretrained=config.pretrained, num_classes=num_classes, l2=config.l2,
                   unfreeze_schedule=config.unfreeze_schedule,
                   pretrained_classes=old_classes, head_replaced=new_head)
    if callbacks:
        metrics["unfreezing"] = callbacks[0].log
    write_json(os.path.join(config.model_dir, "metrics.json"), metrics)
    return metrics


__all__ = ["FINETUNE_FIELDS", "FinetuneConfig", "compile_for_finetune", "finetune",
           "parse_schedule"]
