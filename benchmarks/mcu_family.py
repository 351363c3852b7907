r"""Microcontroller CapsNets: params, FLOPs, int8 bytes, TFLite Micro arena and accuracy.

    python -m benchmarks.mcu_family --sizes=S,M,L --epochs=0            # structure only
    python -m benchmarks.mcu_family --sizes=S --epochs=15 --cnn \
        --out=benchmarks/results/mcu_family                           # trained, with CNNs

For each size of `keras_caps.models.mcu_capsnet` (and, with --cnn, the plain CNN with the same
backbone, `keras_caps.models.cnn_like`): parameter count, forward FLOPs, and the int8 export
(`keras_caps.lite.export.convert`, calibrated on 200 training images): flatbuffer bytes,
TFLite Micro arena, float ops left (keras_caps.lite.audit). With --epochs > 0 each model is trained with the one
recipe (Adam, cosine LR --learning_rate -> --lr_min, --augment_shift, --batch_size; CapsNets
with the data-dependent capsule-length init, CNNs with cross-entropy) and evaluated on the
evaluation split (the test split, or the last --validation_examples training images): float
accuracy, and for the CapsNets int8 accuracy on LiteRT and in TFLite Micro over the whole split.
Writes <out>/mcu_family.md and .json, and the trained models under <out>/<name>/ with --keep.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import app, flags

from benchmarks.int8_measure import int8_measurements, tflm_accuracy
from benchmarks.mcu_variants import VARIANTS

flags.DEFINE_list("sizes", ["S", "M", "L"], "mcu_capsnet sizes.")
flags.DEFINE_list("variants", [], "Structure variants of size S to measure and, with --epochs, "
                  "train like the sizes: any of the names in VARIANTS.")
flags.DEFINE_integer("epochs", 0, "Training epochs per model (0: structure only).")
flags.DEFINE_bool("cnn", False, "Also train the plain CNN with each size's (and variant's) "
                  "backbone.")
flags.DEFINE_bool("capsnet", True, "Train / measure the CapsNets (--nocapsnet --cnn: only the "
                  "CNNs, e.g. beside CapsNets trained by train_capsnet).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Peak LR of the cosine schedule.")
flags.DEFINE_float("lr_min", 1e-5, "Final LR of the cosine schedule.")
flags.DEFINE_integer("augment_shift", 2, "Random shift augmentation (pixels).")
flags.DEFINE_float("init_length", 0.5, "CapsNets: data-dependent capsule-length init (0: off).")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset.")
flags.DEFINE_integer("train_examples", None, "First N training images.")
flags.DEFINE_integer("validation_examples", None,
                     "Evaluate on the last N training images instead of the test split.")
flags.DEFINE_integer("tflm_examples", None, "TFLite Micro evaluation images (default: all).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("out", None, "Output folder (default: print only).")
flags.DEFINE_bool("keep", False, "Keep each trained model under <out>/<name>/.")

FLAGS = flags.FLAGS


def _optimizer(num_examples):
    from keras_caps import schedules

    policy = schedules.FixedBatch(FLAGS.batch_size)
    schedule = schedules.schedule_for_run("cosine", num_examples, FLAGS.epochs, policy,
                                          lr=FLAGS.learning_rate, lr_min=FLAGS.lr_min)
    return schedules.make_optimizer("adam", schedule), policy


def train_capsnet(size, train, evaluation, model_dir, overrides=None):
    """Trains mcu_capsnet(size, **overrides) with the one recipe; returns (model, metrics)."""
    from keras_caps.models import mcu_capsnet
    from keras_caps.training import compile_capsnet, fit_capsnet
    from keras_caps.training.length_init import calibrate_capsule_lengths

    def build():
        model = mcu_capsnet(size, input_shape=train[0].shape[1:], **(overrides or {}))
        if FLAGS.init_length:
            calibrate_capsule_lengths(model, train[0], target_length=FLAGS.init_length)
        optimizer, _ = _optimizer(len(train[0]))
        return compile_capsnet(model, optimizer)

    _, policy = _optimizer(len(train[0]))
    metrics = fit_capsnet(build, train, evaluation, model_dir, FLAGS.epochs,
                          batch_policy=policy, augment_shift=FLAGS.augment_shift,
                          seed=FLAGS.seed, verbose=2)
    import keras

    return keras.saving.load_model(metrics["model_path"]), metrics


def train_cnn(size, train, evaluation, overrides=None):
    """Trains cnn_like(size, **overrides) with the one recipe; returns (model, metrics)."""
    from keras_caps import data as data_lib
    from keras_caps.models import cnn_like

    model = cnn_like(size, input_shape=train[0].shape[1:], **(overrides or {}))
    optimizer, _ = _optimizer(len(train[0]))
    model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    train_ds = data_lib.make_dataset(*train, batch_size=FLAGS.batch_size, shuffle=True,
                                     augment_shift=FLAGS.augment_shift, seed=FLAGS.seed,
                                     num_classes=10)
    start = time.perf_counter()
    model.fit(train_ds, epochs=FLAGS.epochs, verbose=2)
    seconds = time.perf_counter() - start
    probs = model.predict(data_lib.normalize(evaluation[0]), batch_size=256, verbose=0)
    return model, {"accuracy": float(np.mean(np.argmax(probs, -1) == evaluation[1])),
                   "train_time_s": seconds, "epochs": FLAGS.epochs}


def main(_):
    import keras

    from keras_caps import data
    from keras_caps.analysis.flops import total_flops
    from keras_caps.io_utils import markdown_table, write_study
    from keras_caps.lite.evaluate import accuracy as litert_accuracy
    from keras_caps.lite.evaluate import keras_accuracy
    from keras_caps.models import cnn_like, mcu_capsnet

    keras.utils.set_random_seed(FLAGS.seed)
    train = data.load_arrays(FLAGS.dataset, "train", max_examples=FLAGS.train_examples)
    if FLAGS.validation_examples:
        cut = len(train[0]) - FLAGS.validation_examples
        train, evaluation = (train[0][:cut], train[1][:cut]), (train[0][cut:], train[1][cut:])
        split = f"validation (last {FLAGS.validation_examples} training images)"
    else:
        evaluation = data.load_arrays(FLAGS.dataset, "test")
        split = "test"
    shape = train[0].shape[1:]
    # (name, kind, size, overrides, folder): the sizes, then the S variants, one path for all.
    kinds = ("capsnet",) * FLAGS.capsnet + ("cnn",) * FLAGS.cnn
    entries = [(f"mcu_capsnet {size}" if kind == "capsnet" else f"CNN, {size} backbone",
                kind, size, {}, f"{kind}_{size}") for size in FLAGS.sizes for kind in kinds]
    for variant in FLAGS.variants:
        if variant not in VARIANTS:
            raise app.UsageError(f"--variants: unknown variant {variant!r}; choose from "
                                 f"{sorted(VARIANTS)}.")
        folder = "".join(c if c.isalnum() else "_" for c in variant)
        for kind in kinds:
            name = f"variant {variant}" if kind == "capsnet" else f"CNN, {variant} backbone"
            entries.append((name, kind, "S", VARIANTS[variant], f"{kind}_{folder}"))
    rows = []
    for name, kind, size, overrides, folder in entries:
        model_dir = os.path.join(FLAGS.out or "/tmp/mcu_family", folder)
        model = (mcu_capsnet(size, input_shape=shape, **overrides) if kind == "capsnet"
                 else cnn_like(size, input_shape=shape, **overrides))
        row = {"name": name, "params": int(model.count_params()),
               "flops": int(total_flops(model))}
        if kind == "capsnet":
            row["grid"] = "x".join(
                str(d) for d in model.get_layer("primary_caps").output[0].shape[1:4])
        if FLAGS.epochs:
            if kind == "capsnet":
                model, metrics = train_capsnet(size, train, evaluation, model_dir, overrides)
                row["float_acc"] = keras_accuracy(model, *evaluation)
            else:
                model, metrics = train_cnn(size, train, evaluation, overrides)
                row["float_acc"] = metrics["accuracy"]
            row["train_time_s"] = metrics["train_time_s"]
            row["epochs"] = metrics["epochs"]
        if kind == "capsnet":
            m = int8_measurements(model, train[0])
            row.update({k: v for k, v in m.items() if k != "flatbuffer"})
            if FLAGS.epochs:
                row["int8_litert_acc"] = litert_accuracy(m["flatbuffer"], *evaluation)
                n = FLAGS.tflm_examples or len(evaluation[0])
                row["int8_tflm_acc"] = tflm_accuracy(
                    m["flatbuffer"], evaluation[0][:n], evaluation[1][:n], m["arena_bytes"])
                row["tflm_examples"] = n
            if FLAGS.out and FLAGS.keep:
                from keras_caps.io_utils import write_bytes

                write_bytes(os.path.join(model_dir, "model_int8.tflite"), m["flatbuffer"])
        print(row, flush=True)
        rows.append(row)
    header = (f"Microcontroller CapsNets on {FLAGS.dataset}: {len(train[0])} training images, "
              f"evaluated on {split}; epochs {FLAGS.epochs}, batch {FLAGS.batch_size}, Adam "
              f"cosine {FLAGS.learning_rate:g} -> {FLAGS.lr_min:g}, shift {FLAGS.augment_shift}, "
              f"init_length {FLAGS.init_length:g} (CapsNets).\n\n")
    table = markdown_table(rows, [
        ("name", "model", "s"), ("grid", "capsule grid H x W x C", "s"),
        ("params", "params", ",d"), ("flops", "FLOPs", ",d"),
        ("bytes", "int8 bytes", ",d"), ("arena_bytes", "TFLM arena", ",d"),
        ("audit_ok", "int8-only", "") , ("float_acc", "float acc", ".4f"),
        ("int8_litert_acc", "int8 LiteRT acc", ".4f"), ("int8_tflm_acc", "int8 TFLM acc", ".4f"),
        ("train_time_s", "train s", ".0f"),
    ])
    summary = {"rows": rows, "split": split, "flags": {k: FLAGS[k].value for k in (
        "sizes", "variants", "epochs", "cnn", "batch_size", "learning_rate", "lr_min", "augment_shift",
        "init_length", "dataset", "train_examples", "validation_examples", "seed")}}
    if FLAGS.out:
        write_study(FLAGS.out, header + table + "\n", summary, stem="mcu_family")
    else:
        print(header + table)


if __name__ == "__main__":
    app.run(main)
