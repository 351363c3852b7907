r"""Distillation / transfer ablation (paper 000): one teacher, one small student trained 4 ways.

    python -m train.kd_study --model_dir=runs/kd_study --preset=quick
    python -m train.kd_study --model_dir=runs/kd_study_full --preset=full
    python -m train.kd_study --model_dir=runs/kd_sweep --preset=quick \
        --batch_sizes=32,64,128 --lr_policies=fixed,one_cycle       # tables 5-14 style sweep

Methods (the same student architecture each time):
    baseline  student trained from scratch with the margin loss;
    tl        student initialised from the teacher (init_student_from_teacher: the teacher's
              most important channels / capsule types by L1 norm), then margin training;
    kd        student from scratch trained with alpha * T^2 * KL + beta * margin;
    kd_tl     both: initialised from the teacher, then distilled.
Per method (and per batch size / LR policy of the sweep): test accuracy, parameters, forward
FLOPs per image of the inference model (keras_caps.analysis.flops.total_flops(classifier)),
training time, inference latency (median ms of `predict_on_batch` of the float Keras
classifier on one --latency_batch batch, over --latency_repeats interleaved rounds after 3
warm-up rounds, all models timed side by side after training), and with --int8_tflite (the
default) each model's int8 TFLite accuracy, size and single-image LiteRT latency (1 thread),
final training loss (for kd / kd_tl the distillation total, not comparable with margin-only
rows), epochs. Writes <model_dir>/study.md and study.json; the teacher is in
<model_dir>/teacher/ (or --teacher), each student run in <model_dir>/<method>_b<B>_<policy>/,
and every run resumes.

The teacher is described by train_capsnet's model flags (--conv_filters, --primary_capsules,
--primary_dim, --class_dim, --decoder, ...) and trained --teacher_epochs; the student by
distill's --student_* flags and trained --epochs. Presets (explicit flags win):
    quick (2 CPU cores, ~10-15 min): Fashion-MNIST, 10,000 training / 5,000 test images;
           teacher conv 64, 8 primary types x 8D, 10 x 16D, no decoder, 2 epochs;
           student conv 16, 4 types x 8D, 10 x 8D, 3 epochs; batch 64, Adam 1e-3, T = 3.
    full:  all 60,000 / 10,000 images; Sabour teacher (conv 256, 32 x 8D, 10 x 16D, full
           decoder) 30 epochs; student conv 64, 8 x 8D, 10 x 16D, 30 epochs; batch 64.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import types

from absl import flags

from train import distill, fastrcaps_study, train_capsnet

FLAGS = flags.FLAGS

METHODS = ("baseline", "tl", "kd", "kd_tl")

PRESETS = {
    "quick": dict(dataset="fashion_mnist", train_examples=10000, test_examples=5000,
                  model="capsnet", conv_filters=64, conv_kernel=9, primary_capsules=8,
                  primary_dim=8, primary_kernel=9, class_dim=16, decoder="none",
                  teacher_epochs=2, student_conv_filters=16, student_primary_capsules=4,
                  student_primary_dim=8, student_class_dim=8, student_decoder="none", epochs=3,
                  batch_size=64, learning_rate=1e-3, temperature=3.0, lr_policy="fixed", augment_shift=0, init_length=0.0),
    "full": dict(dataset="fashion_mnist", train_examples=None, test_examples=None,
                 model="capsnet", conv_filters=256, conv_kernel=9, primary_capsules=32,
                 primary_dim=8, primary_kernel=9, class_dim=16, decoder="full",
                 teacher_epochs=30, student_conv_filters=64, student_primary_capsules=8,
                 student_primary_dim=8, student_class_dim=16, student_decoder="none",
                 epochs=30, batch_size=64, learning_rate=1e-3, temperature=3.0,
                 lr_policy="fixed", augment_shift=0, init_length=0.0),
}


def define_flags():
    """Defines the flags (idempotent): train_capsnet's, distill's, --preset, and the study's."""
    distill.define_flags()
    fastrcaps_study.define_flags()  # owns the shared --preset flag (quick | full)
    if "kd_methods" in FLAGS:
        return
    flags.DEFINE_list("kd_methods", list(METHODS), f"Methods to train, from {list(METHODS)}.")
    flags.DEFINE_integer("teacher_epochs", 2, "Teacher training epochs (ignored with --teacher).")
    flags.DEFINE_list("batch_sizes", [], "Sweep: student batch sizes (default: --batch_size).")
    flags.DEFINE_list("lr_policies", [], "Sweep: student LR policies (default: --lr_policy).")
    flags.DEFINE_integer("latency_batch", 64, "Batch size of the latency measurement.")
    train_capsnet.define_once(flags.DEFINE_integer, "latency_repeats", 20,
                              "Timed calls per latency measurement (median).")
    flags.DEFINE_bool("int8_tflite", True, "Also export every model to int8 TFLite and report "
                      "its LiteRT accuracy and single-image latency (1 thread).")


def _flags_with(flags_obj, **overrides):
    values = {k: getattr(flags_obj, k) for k in dir(flags_obj) if not k.startswith("_")}
    values.update(overrides)
    return types.SimpleNamespace(**values)


def _batch_of(images, batch):
    import numpy as np

    x = np.asarray(images[:batch])
    if x.ndim == 3:
        x = x[..., None]
    return x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32")


def measure(model_path):
    """Parameters and forward FLOPs per image of a saved model's classifier view."""
    import keras

    from keras_caps.analysis.flops import total_flops
    from keras_caps.models import classifier

    model = keras.saving.load_model(model_path, compile=False)
    clf = classifier(model)
    return {"params": int(model.count_params()), "inference_params": int(clf.count_params()),
            "flops": int(total_flops(clf))}


def latencies(model_paths, images, batch, repeats):
    """Median ms of `predict_on_batch` of each saved model's float classifier on one batch.

    The models are timed in interleaved rounds (each round calls every model once, after 3
    warm-up rounds), so load changes on a shared machine hit all of them alike.
    """
    import keras

    from keras_caps.models import classifier

    x = _batch_of(images, batch)
    models = {key: classifier(keras.saving.load_model(path, compile=False))
              for key, path in model_paths.items()}
    times = {key: [] for key in models}
    for round_ in range(3 + int(repeats)):
        for key, clf in models.items():
            start = time.perf_counter()
            clf.predict_on_batch(x)
            if round_ >= 3:
                times[key].append(time.perf_counter() - start)
    return {key: 1000 * statistics.median(t) for key, t in times.items()}


def int8_measurements(model_paths, train_images, test_images, test_labels, repeats):
    """{key: {"int8_accuracy", "int8_latency_ms", "int8_bytes"}}: each saved model exported
    to int8 TFLite (calibrated on training images) and run with LiteRT, one image, 1 thread."""
    import keras

    from tflite import evaluate, export

    out = {}
    for key, path in model_paths.items():
        flatbuffer = export.convert(keras.saving.load_model(path, compile=False), "int8",
                                    train_images)
        median, _ = evaluate.latency_ms(flatbuffer, test_images[0], 1, repeats)
        out[key] = {"int8_accuracy": evaluate.accuracy(flatbuffer, test_images, test_labels),
                    "int8_latency_ms": median, "int8_bytes": len(flatbuffer)}
    return out


def _train_plain(flags_obj, teacher_path, init, datasets):
    """baseline / tl: the student trained with the margin loss (fit_capsnet), tl initialised
    from the teacher first."""
    import keras

    from keras_caps.io_utils import write_json
    from keras_caps.training import compile_capsnet, fit_capsnet
    from keras_caps.training.transfer import init_student_from_teacher

    keras.utils.set_random_seed(flags_obj.seed)
    train_data, test_data = datasets
    num_classes = train_capsnet.dataset_info(flags_obj).num_classes
    batch_policy = train_capsnet.batch_policy_from_flags(flags_obj)

    def build():
        teacher = keras.saving.load_model(teacher_path, compile=False)
        student = distill.build_student(flags_obj, teacher, num_classes)
        if init:
            report = init_student_from_teacher(teacher, student)
            write_json(os.path.join(flags_obj.model_dir, "transfer_report.json"), report)
        optimizer = train_capsnet.optimizer_from_flags(flags_obj, len(train_data[0]),
                                                       batch_policy)
        return compile_capsnet(student, optimizer, recon_weight=flags_obj.recon_weight)

    return fit_capsnet(build, train_data, test_data, flags_obj.model_dir,
                       epochs=flags_obj.epochs, batch_policy=batch_policy,
                       augment_shift=flags_obj.augment_shift, seed=flags_obj.seed,
                       verbose=flags_obj.verbose)


def given_teacher_row(teacher_path, test_data):
    """The row of a --teacher model: its accuracy on the study's test split, sizes; no
    training columns (it was trained elsewhere)."""
    import keras

    from keras_caps.models import classifier
    from keras_caps.quantization.simulate import accuracy

    images, labels = test_data
    clf = classifier(keras.saving.load_model(teacher_path, compile=False))
    row = {"method": "teacher (given)", "test_accuracy": accuracy(
        clf, _batch_of(images, len(images)), labels)}
    row.update(measure(teacher_path))
    return row


def target_check(rows, max_size=0.10, max_gap=0.01):
    """Issue 4's target per distilled (kd_tl) row: size <= 10% of the teacher's parameters and
    FLOPs, accuracy within 1 point of the teacher, better than the same-setting baseline.

    Returns a list of {"batch_size", "lr_policy", "params_ratio", "flops_ratio", "gap",
    "over_baseline", "met"} (empty without a teacher or kd_tl row).
    """
    teacher = next((r for r in rows if r["method"].startswith("teacher")), None)
    checks = []
    for row in rows:
        if teacher is None or row["method"] != "kd_tl":
            continue
        base = next((r for r in rows if r["method"] == "baseline"
                     and r.get("batch_size") == row.get("batch_size")
                     and r.get("lr_policy") == row.get("lr_policy")), None)
        check = {"batch_size": row.get("batch_size"), "lr_policy": row.get("lr_policy"),
                 "params_ratio": row["params"] / teacher["params"],
                 "flops_ratio": row["flops"] / teacher["flops"],
                 "gap": teacher["test_accuracy"] - row["test_accuracy"],
                 "over_baseline": (None if base is None
                                   else row["test_accuracy"] - base["test_accuracy"])}
        check["met"] = bool(check["params_ratio"] <= max_size and check["flops_ratio"] <= max_size
                            and check["gap"] <= max_gap and (check["over_baseline"] or 0) > 0)
        checks.append(check)
    return checks


def _row(method, metrics, measured, batch_size, lr_policy):
    history = metrics.get("history") or [{}]
    row = {"method": method, "batch_size": batch_size, "lr_policy": lr_policy,
           "test_accuracy": metrics["test_accuracy"], "train_time_s": metrics["train_time_s"],
           "final_loss": history[-1].get("loss"), "epochs": metrics["epochs"]}
    row.update(measured)
    return row


def run(flags_obj, datasets_override=None):
    """Trains the teacher (unless --teacher) and every method; returns {"rows": [...], ...}."""
    from keras_caps.io_utils import markdown_table, write_study
    from keras_caps.schedules import LR_POLICIES

    unknown = [m for m in flags_obj.kd_methods if m not in METHODS]
    if unknown or not flags_obj.kd_methods:
        raise ValueError(f"--kd_methods must name some of {list(METHODS)}, got "
                         f"{flags_obj.kd_methods}.")
    if not flags_obj.model_dir:
        raise ValueError("--model_dir is required: the study folder.")
    batch_sizes = [int(b) for b in flags_obj.batch_sizes] or [int(flags_obj.batch_size)]
    lr_policies = list(flags_obj.lr_policies) or [flags_obj.lr_policy]
    bad = [p for p in lr_policies if p not in LR_POLICIES]
    if bad:
        raise ValueError(f"--lr_policies {bad} unknown; choose from {list(LR_POLICIES)}.")
    start = time.perf_counter()
    datasets = train_capsnet.load_datasets(flags_obj, datasets_override)
    out = flags_obj.model_dir
    test_images = datasets[1][0]
    rows, paths = [], []
    teacher_path = flags_obj.teacher
    if not teacher_path:
        print("== teacher ==", flush=True)
        teacher_flags = _flags_with(flags_obj, epochs=flags_obj.teacher_epochs,
                                    model_dir=os.path.join(out, "teacher"))
        teacher_metrics = train_capsnet.run(teacher_flags, datasets_override=datasets)
        teacher_path = teacher_metrics["model_path"]
        rows.append(_row("teacher", teacher_metrics, measure(teacher_path),
                         flags_obj.batch_size, flags_obj.lr_policy))
        paths.append(teacher_path)
    else:
        rows.append(given_teacher_row(teacher_path, datasets[1]))
        paths.append(teacher_path)
    for lr_policy in lr_policies:
        for batch_size in batch_sizes:
            for method in flags_obj.kd_methods:
                run_dir = os.path.join(out, f"{method}_b{batch_size}_{lr_policy}")
                run_flags = _flags_with(flags_obj, model_dir=run_dir, batch_size=batch_size,
                                        lr_policy=lr_policy, teacher=teacher_path,
                                        transfer_init=method == "kd_tl")
                print(f"== {method}, batch {batch_size}, lr {lr_policy} ==", flush=True)
                if method in ("kd", "kd_tl"):
                    metrics = distill.run(run_flags, datasets_override=datasets)
                else:
                    metrics = _train_plain(run_flags, teacher_path, method == "tl", datasets)
                rows.append(_row(method, metrics, measure(metrics["model_path"]), batch_size,
                                 lr_policy))
                paths.append(metrics["model_path"])
    timed = latencies(dict(enumerate(paths)), test_images, flags_obj.latency_batch,
                      flags_obj.latency_repeats)
    for i, row in enumerate(rows):
        row.update(latency_ms=timed[i], latency_batch=min(flags_obj.latency_batch,
                                                          len(test_images)))
    if flags_obj.int8_tflite:
        int8 = int8_measurements(dict(enumerate(paths)), datasets[0][0][:500], test_images,
                                 datasets[1][1], flags_obj.latency_repeats)
        for i, row in enumerate(rows):
            row.update(int8[i])
    columns = [("method", "method", "s"), ("batch_size", "batch", "d"),
               ("lr_policy", "LR policy", "s"), ("test_accuracy", "test acc", ".4f"),
               ("params", "params", ",d"), ("flops", "FLOPs / image", ",d"),
               ("train_time_s", "train time (s)", ".1f"),
               ("latency_ms", "latency (ms / batch)", ".2f"),
               ("int8_accuracy", "int8 acc", ".4f"),
               ("int8_latency_ms", "int8 ms / image (1 thread)", ".3f"),
               ("int8_bytes", "int8 bytes", ",d"), ("final_loss", "final loss", ".4f"),
               ("epochs", "epochs", "d")]
    table = markdown_table(rows, columns)
    checks = target_check(rows)
    if checks:
        table += "\n\nTarget (KD+TL student <= 10% of the teacher's parameters and FLOPs, within " \
                 "1.0 point of the teacher, better than the baseline):\n\n" + markdown_table(
                     checks, [("batch_size", "batch", "d"), ("lr_policy", "LR policy", "s"),
                              ("params_ratio", "params / teacher", ".3f"),
                              ("flops_ratio", "FLOPs / teacher", ".3f"),
                              ("gap", "teacher - KD+TL", "+.4f"),
                              ("over_baseline", "KD+TL - baseline", "+.4f"), ("met", "met", "")])
    header = (f"KD / TL study, preset {flags_obj.preset}: {flags_obj.dataset}, "
              f"{len(datasets[0][0])} training / {len(test_images)} "
              f"{train_capsnet.evaluation_split(flags_obj)} examples; student "
              f"conv {flags_obj.student_conv_filters}, {flags_obj.student_primary_capsules} x "
              f"{flags_obj.student_primary_dim}D primary, {flags_obj.student_class_dim}D class "
              f"capsules, {flags_obj.epochs} epochs; T = {flags_obj.temperature}, alpha = "
              f"{flags_obj.alpha}, beta = {flags_obj.beta}. Latency: median predict_on_batch of "
              f"the float Keras classifier, batch {flags_obj.latency_batch}; int8: LiteRT, one "
              "image, 1 thread (tflite.export int8, calibrated on 500 training images). Final "
              "loss of kd / "
              "kd_tl is the distillation total (not comparable with margin-only rows).\n\n")
    wall = time.perf_counter() - start
    summary = {"rows": rows, "preset": flags_obj.preset, "dataset": flags_obj.dataset,
               "train_examples": len(datasets[0][0]), "test_examples": len(test_images),
               "teacher": teacher_path, "target": checks, "wall_time_s": wall}
    return write_study(out, header + table + f"\n\nWall time {wall:.0f} s.\n", summary)


def main(_):
    train_capsnet.apply_preset(FLAGS, PRESETS, default="quick")
    summary = run(FLAGS)
    print(json.dumps({"wall_time_s": summary["wall_time_s"]}))


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    run_main(main)
