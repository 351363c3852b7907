r"""Trains a CapsNet (Sabour) or deep CapsNet (paper 003) on an image dataset.

Example (quick, 2 CPU cores):
    python -m train.train_capsnet --dataset=fashion_mnist --model_dir=runs/small \
        --conv_filters=64 --primary_capsules=8 --epochs=3 --train_examples=10000

Outputs under --model_dir: checkpoints/ (an interrupted run resumes from its last epoch),
logs/ (TensorBoard), history.csv, metrics.json, best.keras and model.keras.
`--flagfile=FILE` reads flags from a file.
"""

from __future__ import annotations

import json
import os

from absl import flags

from keras_caps.schedules import LR_POLICIES

FLAGS = flags.FLAGS


def define_flags():
    """Defines this binary's flags (idempotent, so tests can import it twice)."""
    if "model_dir" in FLAGS:
        return
    # data
    flags.DEFINE_enum("dataset", "fashion_mnist", ["mnist", "fashion_mnist", "cifar10", "svhn_cropped"],
                      "Dataset name.")
    flags.DEFINE_string("data_dir", None, "Folder with IDX .gz files (offline) or the TFDS data dir. "
                        "Default: /usr/share/datasets/<name>, then TFDS.")
    flags.DEFINE_enum("data_source", "auto", ["auto", "idx", "tfds"], "Where to read data from.")
    flags.DEFINE_integer("train_examples", None, "Use only the first N training examples.")
    flags.DEFINE_integer("test_examples", None, "Use only the first N test examples.")
    flags.DEFINE_integer("validation_examples", None,
                         "Hold out the last N training examples and evaluate on them instead of "
                         "the test split (for tuning; the test split is then not read; a "
                         "given --teacher must not have been trained on them).")
    flags.DEFINE_integer("augment_shift", 0, "Random shift augmentation in pixels (Sabour: 2).")
    # model
    flags.DEFINE_enum("model", "capsnet", ["capsnet", "deep_capsnet"], "Model builder.")
    flags.DEFINE_integer("conv_filters", 256, "capsnet: conv1 filters.")
    flags.DEFINE_integer("conv_kernel", 9, "capsnet: conv1 kernel size.")
    flags.DEFINE_integer("primary_capsules", 32, "capsnet: primary capsule types.")
    flags.DEFINE_integer("primary_dim", 8, "capsnet: primary capsule dimension.")
    flags.DEFINE_integer("primary_kernel", 9, "capsnet: primary conv kernel size.")
    flags.DEFINE_integer("num_capsules", 20, "deep_capsnet: C.")
    flags.DEFINE_integer("capsule_dim", 8, "deep_capsnet: D.")
    flags.DEFINE_integer("num_intermediate", 0, "deep_capsnet: I, IntermediateCaps layers.")
    flags.DEFINE_list("backbone_filters", ["64", "128", "128"], "deep_capsnet: backbone widths.")
    flags.DEFINE_integer("class_dim", 16, "Class capsule dimension.")
    flags.DEFINE_integer("routings", 3, "Routing iterations.")
    flags.DEFINE_enum("decoder", "full", ["full", "reduced", "none"], "Reconstruction decoder.")
    flags.DEFINE_float("init_length", 0.0,
                       "Data-dependent init of a fresh model: scale every capsule layer's "
                       "kernel (input to output) so its mean capsule length on 256 training "
                       "images is this, e.g. 0.5 (keras_caps.training.length_init); 0 keeps "
                       "the initializer's scale. The Sabour CapsNet starts with saturated "
                       "class capsules (mean length ~0.96) and trains far faster with 0.5.")
    flags.DEFINE_float("recon_weight", 0.0005, "Weight of the sum-of-squares reconstruction loss.")
    flags.DEFINE_bool("weight_sharing", False, "Share class-capsule transforms over positions.")
    # optimisation
    flags.DEFINE_integer("epochs", 10, "Total epochs (a resumed run trains the rest).")
    flags.DEFINE_integer("batch_size", 64, "Batch size (batch_policy=fixed).")
    flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd", "adagrad", "rmsprop"], "Optimizer.")
    flags.DEFINE_float("learning_rate", 1e-3, "Learning rate (the maximum for cyclic policies).")
    flags.DEFINE_enum("lr_policy", "fixed", list(LR_POLICIES), "Learning-rate policy.")
    flags.DEFINE_float("lr_min", 1e-4, "Minimum LR of one_cycle / warm_restarts / cosine / "
                       "triangular / warmadabatch; final LR of polynomial.")
    flags.DEFINE_float("lr_decay_rate", 0.96, "exponential: decay rate.")
    flags.DEFINE_integer("lr_decay_steps", 2000, "exponential: steps per decay.")
    flags.DEFINE_float("lr_drop", 0.5, "step: factor per drop.")
    flags.DEFINE_float("lr_drop_epochs", 10, "step: epochs between drops.")
    flags.DEFINE_float("lr_power", 1.0, "polynomial: power.")
    flags.DEFINE_float("lr_cycle_epochs", 1.0, "warm_restarts: first cycle; triangular: half "
                       "cycle (epochs).")
    flags.DEFINE_float("lr_cycle_mult", 1.0, "warm_restarts: cycle length multiplier.")
    flags.DEFINE_enum("batch_policy", "fixed", ["fixed", "adabatch", "warmadabatch"],
                      "Batch-size policy (FasTrCaps Alg. 3 / Alg. 5).")
    flags.DEFINE_integer("batch_warmup_size", 1, "adabatch/warmadabatch: warm-up batch size.")
    flags.DEFINE_integer("batch_warmup_epochs", 3, "adabatch/warmadabatch: warm-up epochs.")
    flags.DEFINE_integer("batch_exponent", 4, "adabatch/warmadabatch: P, batch 2^P after warm-up.")
    flags.DEFINE_integer("batch_epochs_per_step", 5, "adabatch: epochs per batch doubling.")
    flags.DEFINE_integer("batch_growth_steps", None, "adabatch/warmadabatch: sizes after the "
                         "warm-up (default 3 for adabatch, 1 for warmadabatch).")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    # run
    flags.DEFINE_string("model_dir", None, "Output folder (required).")
    flags.DEFINE_bool("overwrite", False, "Start over in a --model_dir that holds an earlier "
                      "run: its contents are moved to <model_dir>.previous-<time>/ (nothing is "
                      "deleted). Without it a changed configuration or results without a "
                      "checkpoint are an error.")
    flags.DEFINE_enum("distribution_strategy", "one_device", ["one_device", "mirrored", "multi_worker"],
                      "tf.distribute strategy.")
    flags.DEFINE_integer("verbose", 1, "1: progress bar, 0: silent.")
    flags.DEFINE_string("preset", None, "Preset of the binary being run (e.g. quick, full); "
                        "flags given explicitly win.")


def define_once(define, name, default, help_text):
    """`define(name, default, help_text)` (e.g. flags.DEFINE_integer) unless another binary
    imported in this process (the pipeline imports several) already defined `name`."""
    if name not in FLAGS:
        define(name, default, help_text)


def apply_preset(flags_obj, presets, default=None):
    """Sets the chosen preset's values on flags not given on the command line.

    One --preset flag serves every binary (they share absl's flag namespace); each binary
    passes its own `presets` dict. "none" (or no preset and no default) changes nothing.
    """
    name = flags_obj.preset or default or "none"
    if name != "none" and name not in presets:
        raise ValueError(f"unknown --preset {name!r}; choose one of {['none', *presets]}.")
    flags_obj.preset = name
    for key, value in presets.get(name, {}).items():
        if not FLAGS[key].present:
            setattr(flags_obj, key, value)


def quiet_retracing_warnings():
    """Hides TensorFlow's "triggered tf.function retracing" warnings: binaries that score many
    models (quantization searches, the pipeline) build a new predict function per model."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def make_strategy(name):
    """one_device | mirrored | multi_worker -> a tf.distribute strategy."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def build_model_from_flags(flags_obj, input_shape, num_classes):
    """The (uncompiled) model the flags describe."""
    from keras_caps.models import capsnet, deep_capsnet

    decoder = None if flags_obj.decoder == "none" else flags_obj.decoder
    if flags_obj.model == "capsnet":
        return capsnet(
            input_shape=input_shape, num_classes=num_classes,
            conv_filters=flags_obj.conv_filters, conv_kernel=flags_obj.conv_kernel,
            primary_capsules=flags_obj.primary_capsules, primary_dim=flags_obj.primary_dim,
            primary_kernel=flags_obj.primary_kernel, class_dim=flags_obj.class_dim,
            routings=flags_obj.routings, weight_sharing=flags_obj.weight_sharing,
            decoder=decoder,
        )
    return deep_capsnet(
        flags_obj.num_capsules, flags_obj.capsule_dim, flags_obj.num_intermediate,
        input_shape=input_shape, num_classes=num_classes,
        backbone_filters=tuple(int(f) for f in flags_obj.backbone_filters),
        class_dim=flags_obj.class_dim, routings=flags_obj.routings, decoder=decoder,
    )


def load_datasets(flags_obj, datasets_override=None, num_classes=None, hint=""):
    """((train images, labels), (test images, labels)) from the flags (or the override),
    with every label checked to lie in [0, num_classes) (default: the dataset's classes).

    `hint` ends the error message (e.g. "; set --num_classes").
    """
    from keras_caps import data, validation

    def split(name, limit):
        return data.load_arrays(flags_obj.dataset, name, data_dir=flags_obj.data_dir,
                                source=flags_obj.data_source, max_examples=limit)

    held_out = getattr(flags_obj, "validation_examples", None)
    datasets = datasets_override or (split("train", flags_obj.train_examples),
                                     None if held_out else split("test", flags_obj.test_examples))
    if held_out:
        datasets = validation_split(datasets[0], held_out)
    num_classes = num_classes or data.info(flags_obj.dataset).num_classes
    return tuple(  # images uint8 or float in [0, 1], finite; integer labels in range
        validation.check_dataset(images, labels, num_classes, name,
                                 hint=f" for {flags_obj.dataset}{hint}")
        for name, (images, labels) in zip(("training", evaluation_split(flags_obj)), datasets))


ARCHITECTURE_FLAGS = ("model", "conv_filters", "conv_kernel", "primary_capsules", "primary_dim",
                      "primary_kernel", "num_capsules", "capsule_dim", "num_intermediate",
                      "backbone_filters", "class_dim", "routings", "decoder", "weight_sharing",
                      "init_length")
DATA_FLAGS = ("dataset", "train_examples", "test_examples", "validation_examples")
# fixed by the checkpoint (its compiled loss and optimizer): a resume would ignore new values
TRAINING_FLAGS = ("optimizer", "learning_rate", "lr_policy", "batch_policy", "recon_weight")


def run_config(flags_obj, architecture=ARCHITECTURE_FLAGS, data=DATA_FLAGS,
               training=TRAINING_FLAGS, **extra):
    """The run's config.json sections from the flags: {"architecture", "data", "training",
    **extra}; a resume with any of them changed is an error (keras_caps.training.run_dir)."""
    def section(names):
        return {n: getattr(flags_obj, n, None) for n in names}

    return {"architecture": section(architecture), "data": section(data),
            "training": section(training), **extra}


def validation_split(train, num_examples):
    """(train minus its last `num_examples`, those last examples): a held-out tuning split."""
    images, labels = train
    if not 0 < int(num_examples) < len(images):
        raise ValueError(
            f"--validation_examples={num_examples} must lie in (0, {len(images)}): the number of "
            "training examples held out for evaluation (see --train_examples)."
        )
    cut = len(images) - int(num_examples)
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def evaluation_split(flags_obj):
    """What a binary evaluates on: "test", or "validation" (--validation_examples)."""
    return "validation" if getattr(flags_obj, "validation_examples", None) else "test"


def batch_policy_from_flags(flags_obj):
    """The BatchSizePolicy the flags describe."""
    from keras_caps import schedules

    if flags_obj.batch_policy == "fixed":
        return schedules.FixedBatch(flags_obj.batch_size)
    params = dict(exponent=flags_obj.batch_exponent, warmup_epochs=flags_obj.batch_warmup_epochs,
                  epochs_per_step=flags_obj.batch_epochs_per_step,
                  warmup_batch_size=flags_obj.batch_warmup_size)
    if flags_obj.batch_growth_steps is not None:
        params["growth_steps"] = flags_obj.batch_growth_steps
    return schedules.make_batch_policy(flags_obj.batch_policy, **params)


def lr_schedule_from_flags(flags_obj, num_examples, batch_policy):
    """The LR schedule the flags describe (step counts from the batch policy)."""
    from keras_caps import schedules

    policy = flags_obj.lr_policy
    if flags_obj.batch_policy == "warmadabatch" and policy == "fixed":
        policy = "warmadabatch"  # WarmAdaBatch is a joint batch + LR policy
    return schedules.schedule_for_run(
        policy, num_examples, flags_obj.epochs, batch_policy, lr=flags_obj.learning_rate,
        lr_min=flags_obj.lr_min, decay_rate=flags_obj.lr_decay_rate,
        decay_steps=flags_obj.lr_decay_steps, drop=flags_obj.lr_drop,
        drop_epochs=flags_obj.lr_drop_epochs, power=flags_obj.lr_power,
        cycle_epochs=flags_obj.lr_cycle_epochs, cycle_mult=flags_obj.lr_cycle_mult,
    )


def optimizer_from_flags(flags_obj, num_examples, batch_policy):
    """The optimizer with the flags' LR schedule."""
    from keras_caps import schedules

    schedule = lr_schedule_from_flags(flags_obj, num_examples, batch_policy)
    return schedules.make_optimizer(flags_obj.optimizer, schedule)


def run(flags_obj, datasets_override=None):
    """Trains as the flags say; returns the metrics dict (also written to metrics.json).

    Args:
        flags_obj: parsed flags (absl FLAGS or any object with the same attributes).
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading.
    """
    import keras

    from keras_caps import data
    from keras_caps.io_utils import write_json
    from keras_caps.training import compile_capsnet, fit_capsnet

    if not flags_obj.model_dir:
        raise ValueError("--model_dir is required: the folder for checkpoints and results.")
    if not 0.0 <= getattr(flags_obj, "init_length", 0.0) < 1.0:
        raise ValueError(f"--init_length must lie in [0, 1) (0: off; capsule lengths are below "
                         f"1), got {flags_obj.init_length}.")
    keras.utils.set_random_seed(flags_obj.seed)
    train_data, test_data = load_datasets(flags_obj, datasets_override)
    input_shape = tuple(train_data[0].shape[1:])
    if len(input_shape) == 2:
        input_shape += (1,)
    num_classes = data.info(flags_obj.dataset).num_classes

    batch_policy = batch_policy_from_flags(flags_obj)

    def build():  # only for a fresh run: a resumed one loads its checkpoint instead
        model = build_model_from_flags(flags_obj, input_shape, num_classes)
        if getattr(flags_obj, "init_length", 0.0):
            from keras_caps.training.length_init import calibrate_capsule_lengths

            report = calibrate_capsule_lengths(model, train_data[0],
                                               target_length=flags_obj.init_length)
            os.makedirs(flags_obj.model_dir, exist_ok=True)
            write_json(os.path.join(flags_obj.model_dir, "init_lengths.json"), report)
        optimizer = optimizer_from_flags(flags_obj, len(train_data[0]), batch_policy)
        return compile_capsnet(model, optimizer, recon_weight=flags_obj.recon_weight)

    metrics = fit_capsnet(
        build, train_data, test_data, flags_obj.model_dir, epochs=flags_obj.epochs,
        batch_policy=batch_policy, strategy=make_strategy(flags_obj.distribution_strategy),
        augment_shift=flags_obj.augment_shift, seed=flags_obj.seed, verbose=flags_obj.verbose,
        run_config=run_config(flags_obj), overwrite=getattr(flags_obj, "overwrite", False),
    )
    return metrics


def main(_):
    metrics = run(FLAGS)
    summary = {k: v for k, v in metrics.items() if k != "history"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    flags.mark_flag_as_required("model_dir")
    run_main(main)
