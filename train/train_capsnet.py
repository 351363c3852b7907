r"""Trains a CapsNet (Sabour), deep CapsNet (paper 003) or microcontroller CapsNet.

Example (quick, 2 CPU cores):
    python -m train.train_capsnet --dataset=fashion_mnist --model_dir=runs/small \
        --conv_filters=64 --primary_capsules=8 --epochs=3 --train_examples=10000
    python -m train.train_capsnet --model_dir=runs/mcu_s --preset=cpu_mcu

The default recipe (chosen by `benchmarks/recipe_ablation.py`, BENCHMARKS.md "Training
recipe"): Adam with a cosine LR from --learning_rate to --lr_min and the data-dependent
capsule-length init of a fresh model (--init_length=0.5; 0 turns it off); random shifts
(--augment_shift) stay off by default: they cost accuracy at 4 and at 15 epochs. The recipe
before 2026-12-03 is `--lr_policy=fixed --lr_min=1e-4 --augment_shift=0
--init_length=0`.

Presets (--preset; explicit flags win):
    quick:    the S microcontroller CapsNet, 3 epochs on 20,000 images (minutes on 2 cores).
    cpu_mcu:  the S microcontroller CapsNet to convergence, 30 epochs on all images with 2-px
              shifts (the shipped reference model, `keras_caps.models.pretrained`).
    cpu:      the M microcontroller CapsNet (a teacher), 15 epochs on all images.
    full:     Sabour's CapsNet with the full decoder, 30 epochs (paper scale, for a GPU).

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

_MCU = dict(model="mcu_capsnet", decoder="none", batch_size=64, learning_rate=2e-3,
            lr_policy="cosine", lr_min=1e-5, augment_shift=0, init_length=0.5)
PRESETS = {
    "quick": dict(_MCU, mcu_size="S", epochs=3, train_examples=20000, test_examples=2000),
    # the shipped reference model: 30 epochs with shifts (not ablated at 30 epochs)
    "cpu_mcu": dict(_MCU, mcu_size="S", epochs=30, augment_shift=2, train_examples=None,
                    test_examples=None),
    # the teacher: M for 32 epochs with shifts (about 97 s an epoch on 2 quiet cores)
    "cpu": dict(_MCU, mcu_size="M", epochs=32, augment_shift=2, train_examples=None,
                test_examples=None),
    "full": dict(model="capsnet", conv_filters=256, primary_capsules=32, primary_dim=8,
                 class_dim=16, decoder="full", epochs=30, batch_size=64, lr_policy="cosine",
                 lr_min=1e-5, augment_shift=2, init_length=0.5),
}


def define_flags():
    """Defines this binary's flags (idempotent, so tests can import it twice)."""
    if "model_dir" in FLAGS:
        return
    # data
    flags.DEFINE_string("dataset", "fashion_mnist",
                        "Dataset: mnist, fashion_mnist, cifar10, svhn_cropped, any other TFDS "
                        "image-classification name (or tfds:NAME), folder:PATH (one subfolder "
                        "of PNG/JPEG/BMP/GIF images per class; PATH/train/ and PATH/test/, or "
                        "--test_fraction held out) or npz:PATH (x_train, y_train, x_test, "
                        "y_test[, class_names]). See keras_caps.data_sources.")
    flags.DEFINE_string("image_size", None, "Resize every image to H or H,W pixels (needed for "
                        "folders of mixed sizes).")
    flags.DEFINE_bool("grayscale", False, "Convert images to 1 channel (same as --channels=1).")
    flags.DEFINE_integer("channels", None, "Convert images to 1 (gray) or 3 (RGB) channels.")
    flags.DEFINE_float("test_fraction", 0.2, "Per-class fraction of the training images held "
                       "out (seeded) as the test split when the dataset has none (a folder "
                       "without test/, a TFDS dataset without 'test').")
    flags.DEFINE_enum("balance", "none", ["none", "oversample", "undersample"],
                      "Class balancing of the training split (keras_caps.data.balance_classes).")
    flags.DEFINE_enum("denoise", "none", ["none", "median", "gaussian"],
                      "Denoise train and test images (keras_caps.data.denoise, 3x3).")
    flags.DEFINE_bool("remove_constant_features", False, "Zero the pixels that are constant over "
                      "the training images, in train and test (keras_caps.data).")
    flags.DEFINE_string("data_dir", None, "Folder with IDX .gz files (offline) or the TFDS data dir. "
                        "Default: /usr/share/datasets/<name>, then TFDS.")
    flags.DEFINE_enum("data_source", "auto", ["auto", "idx", "tfds"], "Where to read data from.")
    flags.DEFINE_integer("train_examples", None, "Use only the first N training examples.")
    flags.DEFINE_integer("test_examples", None, "Use only the first N test examples.")
    flags.DEFINE_integer("validation_examples", None,
                         "Hold out the last N training examples and evaluate on them instead of "
                         "the test split (for tuning; the test split is then not read; a "
                         "given --teacher must not have been trained on them).")
    flags.DEFINE_integer("augment_shift", 0, "Random shift augmentation in pixels (Sabour: 2; "
                         "0: none; the ablation found no gain up to 15 epochs).")
    # model
    flags.DEFINE_enum("model", "capsnet", ["capsnet", "deep_capsnet", "mcu_capsnet"],
                      "Model builder (mcu_capsnet: the microcontroller family, see --mcu_size).")
    flags.DEFINE_enum("mcu_size", "S", ["S", "M", "L"], "mcu_capsnet: size (S fits a 100 KB "
                      "flatbuffer and a 64 KB TFLite Micro arena in int8).")
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
    flags.DEFINE_float("init_length", 0.5,
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
    flags.DEFINE_enum("lr_policy", "cosine", list(LR_POLICIES), "Learning-rate policy.")
    flags.DEFINE_float("lr_min", 1e-5, "Minimum LR of one_cycle / warm_restarts / cosine / "
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
    """one_device (the default strategy) | mirrored | multi_worker -> a tf.distribute strategy."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    # The default strategy places ops on the GPU when there is one. OneDeviceStrategy("/cpu:0")
    # trained the M CapsNet 2.7x slower on 2 CPU cores (309 vs 844 images/s, same model and
    # data pipeline), from its per-step distribution overhead.
    return tf.distribute.get_strategy()


def check_input_size(flags_obj, input_shape):
    """InputSizeError (naming the size and the flags to change) when the --model the flags
    describe cannot take `input_shape` images; before anything is written."""
    from keras_caps.models.compat import check_capsnet_size, check_deep_capsnet_size

    if flags_obj.model == "capsnet":
        check_capsnet_size(input_shape, flags_obj.conv_kernel, flags_obj.primary_kernel)
    elif flags_obj.model == "mcu_capsnet":  # backbone strides (1, 2, 2[, ...]), primary 3x3 / 2
        from keras_caps.models.mcu_capsnet import MCU_SIZES

        strides = MCU_SIZES[getattr(flags_obj, "mcu_size", "S")]["backbone_strides"]
        check_deep_capsnet_size(input_shape, strides)
    else:
        check_deep_capsnet_size(input_shape)


def check_loaded_model(model, path, flag, flags_obj, image_shape, num_classes=None):
    """ModelDataMismatch when the model saved at `path` (given as --`flag`) does not take the
    data's images (or, with `num_classes`, predicts another number of classes)."""
    from keras_caps.models.compat import check_model_data

    check_model_data(model, image_shape, num_classes, model_name=f"--{flag} {path}",
                     dataset=f"--dataset={flags_obj.dataset}")


def image_shape_of(images):
    """(H, W, C) of an image array (N, H, W[, C])."""
    shape = tuple(int(d) for d in images.shape[1:])
    return shape + (1,) if len(shape) == 2 else shape


def build_model_from_flags(flags_obj, input_shape, num_classes):
    """The (uncompiled) model the flags describe."""
    from keras_caps.models import capsnet, deep_capsnet, mcu_capsnet

    decoder = None if flags_obj.decoder == "none" else flags_obj.decoder
    if flags_obj.model == "mcu_capsnet":
        return mcu_capsnet(getattr(flags_obj, "mcu_size", "S"), input_shape=input_shape,
                           num_classes=num_classes, routings=flags_obj.routings,
                           decoder=decoder)
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


def data_options(flags_obj):
    """{"image_size", "channels", "test_fraction"} for data.load_arrays / data.info from the
    flags (absent attributes: no transform, the default fraction)."""
    from keras_caps import data_sources

    channels = data_sources.check_channels(getattr(flags_obj, "channels", None))
    if getattr(flags_obj, "grayscale", False):
        if channels == 3:
            raise ValueError("--grayscale and --channels=3 contradict each other; pass one.")
        channels = 1
    fraction = getattr(flags_obj, "test_fraction", None)
    return {"image_size": data_sources.parse_image_size(getattr(flags_obj, "image_size", None)),
            "channels": channels,
            "test_fraction": None if fraction is None else data_sources.check_test_fraction(
                fraction)}


def dataset_info(flags_obj):
    """data.DatasetInfo of --dataset after the flags' --image_size / --channels (class names,
    num_classes, image_shape)."""
    from keras_caps import data

    options = data_options(flags_obj)
    return data.info(flags_obj.dataset, options["image_size"], options["channels"],
                     data_dir=getattr(flags_obj, "data_dir", None))


def class_names(flags_obj, num_classes=None):
    """The --dataset's class names ("0" .. "K-1" when unknown or when `num_classes` differs)."""
    from keras_caps import data_sources

    info = dataset_info(flags_obj)
    return data_sources.class_names_for(info.class_names, num_classes or info.num_classes)


def preprocess(flags_obj, datasets):
    """The flags' --denoise, --remove_constant_features and --balance (training split only)."""
    from keras_caps import data

    (xtr, ytr), (xte, yte) = datasets
    denoise = getattr(flags_obj, "denoise", "none") or "none"
    if denoise != "none":
        xtr, xte = data.denoise(xtr, denoise), data.denoise(xte, denoise)
    if getattr(flags_obj, "remove_constant_features", False):
        _, xtr, xte = data.remove_constant_features(xtr, xte)
    balance = getattr(flags_obj, "balance", "none") or "none"
    if balance != "none":
        xtr, ytr = data.balance_classes(xtr, ytr, balance, seed=getattr(flags_obj, "seed", 0))
    return (xtr, ytr), (xte, yte)


def load_datasets(flags_obj, datasets_override=None, num_classes=None, hint=""):
    """((train images, labels), (test images, labels)) from the flags (or the override),
    with every label checked to lie in [0, num_classes) (default: the dataset's classes),
    then, for loaded data (not an override), the flags' preprocessing (`preprocess`).

    Any --dataset spelling (keras_caps.data_sources), resized / converted by --image_size,
    --grayscale / --channels. `hint` ends the error message (e.g. "; set --num_classes").
    """
    from keras_caps import data, validation

    options = data_options(flags_obj)

    def split(name, limit):
        return data.load_arrays(flags_obj.dataset, name, data_dir=flags_obj.data_dir,
                                source=flags_obj.data_source, max_examples=limit, **options)

    held_out = getattr(flags_obj, "validation_examples", None)
    datasets = datasets_override or (split("train", flags_obj.train_examples),
                                     None if held_out else split("test", flags_obj.test_examples))
    if held_out:
        datasets = validation_split(datasets[0], held_out)
    num_classes = num_classes or dataset_info(flags_obj).num_classes
    datasets = tuple(  # images uint8 or float in [0, 1], finite; integer labels in range
        validation.check_dataset(images, labels, num_classes, name,
                                 hint=f" for {flags_obj.dataset}{hint}")
        for name, (images, labels) in zip(("training", evaluation_split(flags_obj)), datasets))
    # an override is taken as prepared (the pipeline passes its preprocessed arrays on)
    return datasets if datasets_override else preprocess(flags_obj, datasets)


ARCHITECTURE_FLAGS = ("model", "conv_filters", "conv_kernel", "primary_capsules", "primary_dim",
                      "primary_kernel", "num_capsules", "capsule_dim", "num_intermediate",
                      "backbone_filters", "class_dim", "routings", "decoder", "weight_sharing",
                      "init_length", "mcu_size")
DATA_FLAGS = ("dataset", "train_examples", "test_examples", "validation_examples", "image_size",
              "grayscale", "channels", "test_fraction", "balance", "denoise",
              "remove_constant_features")
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
    if flags_obj.batch_policy == "warmadabatch" and policy in ("fixed", "cosine"):
        # WarmAdaBatch is a joint batch + LR policy (its LR is two cosine cycles): the
        # default cosine policy, or fixed, means "the policy's own LR"
        policy = "warmadabatch"
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
    num_classes = dataset_info(flags_obj).num_classes
    check_input_size(flags_obj, input_shape)

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
    apply_preset(FLAGS, PRESETS)
    metrics = run(FLAGS)
    summary = {k: v for k, v in metrics.items() if k != "history"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    flags.mark_flag_as_required("model_dir")
    run_main(main)
