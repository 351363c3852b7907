r"""Fine-tunes a trained CapsNet layer by layer, optionally on a new task (paper 000, 3.5.1).

Example (a distilled student, fine-tuned on MNIST with a fresh 10-class head, last layers
first, then earlier layers one stage per epoch with the LR halved per stage):
    python -m train.finetune --pretrained=runs/kd/model.keras --dataset=mnist \
        --model_dir=runs/ft --num_classes=10 --unfreeze_schedule=auto --epochs=3 \
        --learning_rate=5e-4 --l2=1e-4

--pretrained names the model file (train_capsnet already owns --model, the architecture
choice, and binaries share one flag namespace). --num_classes different from the model's
replaces its class-capsule head (keras_caps.training.transfer.replace_head; every other
weight is kept). --unfreeze_schedule: "auto" (class capsules + decoder, then each earlier
layer, --unfreeze_epochs_per_stage epochs per stage), "none" (train everything), or explicit
"EPOCH:LAYER,LAYER;EPOCH:LAYER..." such as "0:class_caps;2:primary_caps;4:conv1" (0-based
epochs; layers listed nowhere stay frozen). The learning rate is multiplied by
--unfreeze_lr_factor at each stage (a fixed LR: with the default --lr_policy=cosine the
staged fixed LR is used instead, and other policies need --unfreeze_lr_factor=1). --l2 adds lambda * sum(w^2)
over the kernels (eq. 16).

Dataset, optimisation and run flags are train_capsnet's. Outputs under --model_dir as for
train_capsnet: checkpoints/ (resumable), logs/, history.csv, best.keras, model.keras,
metrics.json.
"""

from __future__ import annotations

import json
import os

from absl import flags

from train import train_capsnet

FLAGS = flags.FLAGS


def define_flags():
    """Defines this binary's flags (idempotent): train_capsnet's plus the fine-tuning ones."""
    train_capsnet.define_flags()
    if "pretrained" in FLAGS:
        return
    flags.DEFINE_string("pretrained", None, "Model to fine-tune (.keras), e.g. a distilled "
                        "student (required).")
    flags.DEFINE_integer("num_classes", None, "Classes of the new task (default: the dataset's); "
                         "a different count than the model's replaces its head.")
    flags.DEFINE_integer("head_class_dim", None, "Class capsule dim of a replaced head (default: "
                         "the old one).")
    flags.DEFINE_enum("head_decoder", "same", ["same", "none", "full", "reduced"],
                      "Decoder of a replaced head (fresh weights).")
    flags.DEFINE_string("unfreeze_schedule", "auto", "'auto', 'none', or "
                        "'EPOCH:LAYER,LAYER;EPOCH:LAYER' (0-based epochs).")
    flags.DEFINE_integer("unfreeze_epochs_per_stage", 1, "Epochs per stage for 'auto'.")
    flags.DEFINE_float("unfreeze_lr_factor", 0.5, "LR factor per unfreezing stage.")
    flags.DEFINE_float("l2", 0.0, "L2 strength lambda on the kernels (eq. 16; 0: off).")
    flags.DEFINE_enum("finetune_loss", "margin", ["margin", "crossentropy"],
                      "Task loss: margin, or cross-entropy of the normalised capsule lengths "
                      "(eq. 14).")


# what the checkpoint fixes (--unfreeze_schedule is applied anew by a callback on resume)
FINETUNE_FLAGS = ("num_classes", "head_class_dim", "head_decoder", "l2", "finetune_loss")


def parse_schedule(text):
    """'auto' | 'none' | 'E:L1,L2;E:L3' -> 'auto', None or {epoch: [layer names]}."""
    text = (text or "none").strip()
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    schedule = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        epoch, sep, names = part.partition(":")
        layers = [n.strip() for n in names.split(",") if n.strip()]
        if not sep or not epoch.strip().isdigit() or not layers:
            raise ValueError(
                f"--unfreeze_schedule part {part!r} is not EPOCH:LAYER[,LAYER...]; write e.g. "
                "'0:class_caps;2:primary_caps;4:conv1', 'auto' or 'none'."
            )
        schedule.setdefault(int(epoch), []).extend(layers)
    return schedule


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


def run(flags_obj, datasets_override=None):
    """Fine-tunes as the flags say; returns the metrics dict (also written to metrics.json).

    Args:
        flags_obj: parsed flags (absl FLAGS or any object with the same attributes).
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading.
    """
    import keras

    from keras_caps import schedules, validation
    from keras_caps.io_utils import write_json
    from keras_caps.training import fit_capsnet
    from keras_caps.training.transfer import (
        GradualUnfreezing,
        replace_head,
        with_l2_regularization,
    )

    if not flags_obj.model_dir:
        raise ValueError("--model_dir is required: the folder for checkpoints and results.")
    if not flags_obj.pretrained or not os.path.exists(flags_obj.pretrained):
        raise ValueError(f"--pretrained must name an existing .keras model, got "
                         f"{flags_obj.pretrained!r}.")
    schedule = parse_schedule(flags_obj.unfreeze_schedule)
    lr_factor = flags_obj.unfreeze_lr_factor
    staged_fixed_lr = schedule is not None and lr_factor != 1
    if staged_fixed_lr and flags_obj.lr_policy not in ("fixed", "cosine"):
        raise ValueError(f"--unfreeze_lr_factor={lr_factor} lowers a fixed learning rate per "
                         f"stage; with --lr_policy={flags_obj.lr_policy} set "
                         "--unfreeze_lr_factor=1.")
    if staged_fixed_lr and flags_obj.lr_policy == "cosine" and flags_obj.verbose:
        # cosine is train_capsnet's default LR policy; gradual unfreezing owns the LR instead
        print(f"Gradual unfreezing: a fixed LR {flags_obj.learning_rate:g} lowered x{lr_factor:g} "
              "per stage (--lr_policy=cosine is not used; --unfreeze_lr_factor=1 keeps it).")
    keras.utils.set_random_seed(flags_obj.seed)
    num_classes = flags_obj.num_classes or train_capsnet.dataset_info(flags_obj).num_classes
    train_data, test_data = train_capsnet.load_datasets(flags_obj, datasets_override,
                                                        num_classes, "; set --num_classes")
    batch_policy = train_capsnet.batch_policy_from_flags(flags_obj)
    pretrained = validation.load_keras_model(flags_obj.pretrained, "--pretrained",
                                             compile=False)
    try:
        old_classes = int(pretrained.get_layer("length").output.shape[-1])
    except ValueError as err:
        raise ValueError(f"--pretrained {flags_obj.pretrained!r} is not a keras_caps CapsNet "
                         "(no 'length' layer).") from err
    train_capsnet.check_loaded_model(pretrained, flags_obj.pretrained, "pretrained", flags_obj,
                                     train_capsnet.image_shape_of(train_data[0]))
    del pretrained
    new_head = old_classes != num_classes or bool(flags_obj.head_class_dim)

    def build():
        model = keras.saving.load_model(flags_obj.pretrained, compile=False)
        if new_head:
            decoder = flags_obj.head_decoder
            model = replace_head(model, num_classes, class_dim=flags_obj.head_class_dim,
                                 decoder=None if decoder == "none" else decoder)
        model = with_l2_regularization(model, flags_obj.l2)
        if schedule is not None and (flags_obj.lr_policy == "fixed" or staged_fixed_lr):
            optimizer = schedules.make_optimizer(flags_obj.optimizer, flags_obj.learning_rate)
        else:
            optimizer = train_capsnet.optimizer_from_flags(flags_obj, len(train_data[0]),
                                                           batch_policy)
        return compile_for_finetune(model, optimizer, flags_obj.finetune_loss,
                                    flags_obj.recon_weight)

    callbacks = []
    if schedule is not None:
        callbacks.append(GradualUnfreezing(
            schedule, epochs_per_stage=flags_obj.unfreeze_epochs_per_stage, lr_factor=lr_factor,
            base_learning_rate=flags_obj.learning_rate, verbose=flags_obj.verbose))
    metrics = fit_capsnet(
        build, train_data, test_data, flags_obj.model_dir, epochs=flags_obj.epochs,
        batch_policy=batch_policy,
        strategy=train_capsnet.make_strategy(flags_obj.distribution_strategy),
        augment_shift=flags_obj.augment_shift, seed=flags_obj.seed, verbose=flags_obj.verbose,
        callbacks=callbacks,
        run_config=train_capsnet.run_config(
            flags_obj, architecture=FINETUNE_FLAGS, pretrained=os.path.abspath(flags_obj.pretrained)),
        overwrite=getattr(flags_obj, "overwrite", False),
    )
    metrics.update(pretrained=flags_obj.pretrained, num_classes=num_classes, l2=flags_obj.l2,
                   unfreeze_schedule=flags_obj.unfreeze_schedule,
                   pretrained_classes=old_classes, head_replaced=new_head)
    if callbacks:
        metrics["unfreezing"] = callbacks[0].log
    write_json(os.path.join(flags_obj.model_dir, "metrics.json"), metrics)
    return metrics


def main(_):
    metrics = run(FLAGS)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("history", "unfreezing")},
                     indent=2))


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    flags.mark_flag_as_required("model_dir")
    flags.mark_flag_as_required("pretrained")
    run_main(main)
