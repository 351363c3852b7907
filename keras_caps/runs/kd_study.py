"""Distillation / transfer ablation (paper 000): `KdStudyConfig` and `kd_study`.

One teacher, one small student trained four ways (the same student architecture each time):

    baseline  student trained from scratch with the margin loss;
    tl        student initialised from the teacher (init_student_from_teacher), then margin;
    kd        student from scratch trained with alpha * T^2 * KL + beta * margin;
    kd_tl     both: initialised from the teacher, then distilled;

optionally swept over batch sizes and LR policies. Per row: test accuracy, parameters, FLOPs,
training time, float latency, int8 TFLite accuracy / latency / bytes, final loss, epochs
(the table's legend is in `report_text`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import ClassVar

from keras_caps.runs.config import Config, ConfigError, as_tuple, set_field
from keras_caps.runs.distill import DistillConfig, DistillOptions, StudentConfig
from keras_caps.runs.train import TrainConfig

METHODS = ("baseline", "tl", "kd", "kd_tl")

@dataclasses.dataclass(frozen=True)
class KdStudyOptions(Config):
    """kd_methods: the methods to train (of METHODS). teacher_epochs: the teacher's training
    (ignored with a given teacher). batch_sizes / lr_policies: the sweep (empty: batch_size /
    lr_policy). latency_batch, latency_repeats: the float latency measurement (median).
    int8_tflite: also export every model to int8 TFLite and measure it."""

    kd_methods: tuple = METHODS
    teacher_epochs: int = 2
    batch_sizes: tuple = ()
    lr_policies: tuple = ()
    latency_batch: int = 64
    latency_repeats: int = 20
    int8_tflite: bool = True

    def _check(self):
        from keras_caps.schedules import LR_POLICIES

        set_field(self, "kd_methods", as_tuple("kd_methods", self.kd_methods, str))
        set_field(self, "batch_sizes", as_tuple("batch_sizes", self.batch_sizes, int))
        set_field(self, "lr_policies", as_tuple("lr_policies", self.lr_policies, str))
        unknown = [m for m in self.kd_methods if m not in METHODS]
        if unknown or not self.kd_methods:
            raise ConfigError(f"--kd_methods must name some of {list(METHODS)}, got "
                              f"{list(self.kd_methods)}.")
        bad = [p for p in self.lr_policies if p not in LR_POLICIES]
        if bad:
            raise ConfigError(f"--lr_policies {bad} unknown; choose from {list(LR_POLICIES)}.")


@dataclasses.dataclass(frozen=True)
class KdStudyConfig(KdStudyOptions, DistillOptions, StudentConfig, TrainConfig):
    """The study's config: the teacher is described by TrainConfig's model fields and trained
    teacher_epochs (or given as `teacher`), the student by StudentConfig's and trained
    `epochs`.

    Presets (explicit flags win; "quick" is the default):
        quick (2 CPU cores, ~10-15 min): Fashion-MNIST, 10,000 training / 5,000 test images;
               teacher conv 64, 8 primary types x 8D, 10 x 16D, no decoder, 2 epochs;
               student conv 16, 4 types x 8D, 10 x 8D, 3 epochs; batch 64, Adam 1e-3, T = 3.
        full:  all 60,000 / 10,000 images; Sabour teacher (conv 256, 32 x 8D, 10 x 16D, full
               decoder) 30 epochs; student conv 64, 8 x 8D, 10 x 16D, 30 epochs; batch 64.

    Example:
        >>> config = KdStudyConfig.from_preset("quick", model_dir="runs/kd_study")
        >>> summary = kd_study(config)  # doctest: +SKIP
    """

    MODEL_DIR_HELP: ClassVar[str] = "the study folder."
    DEFAULT_PRESET: ClassVar[str] = "quick"
    PRESETS: ClassVar[dict] = {
        "quick": dict(dataset="fashion_mnist", train_examples=10000, test_examples=5000,
                      model="capsnet", conv_filters=64, conv_kernel=9, primary_capsules=8,
                      primary_dim=8, primary_kernel=9, class_dim=16, decoder="none",
                      teacher_epochs=2, student_conv_filters=16, student_primary_capsules=4,
                      student_primary_dim=8, student_class_dim=8, student_decoder="none",
                      epochs=3, batch_size=64, learning_rate=1e-3, temperature=3.0,
                      lr_policy="fixed", augment_shift=0, init_length=0.0),
        "full": dict(dataset="fashion_mnist", train_examples=None, test_examples=None,
                     model="capsnet", conv_filters=256, conv_kernel=9, primary_capsules=32,
                     primary_dim=8, primary_kernel=9, class_dim=16, decoder="full",
                     teacher_epochs=30, student_conv_filters=64, student_primary_capsules=8,
                     student_primary_dim=8, student_class_dim=16, student_decoder="none",
                     epochs=30, batch_size=64, learning_rate=1e-3, temperature=3.0,
                     lr_policy="fixed", augment_shift=0, init_length=0.0),
    }


# ----------------------------------------------------------------------------- one row


def train_plain(config, teacher_path, init, datasets):
    """baseline / tl: the student trained with the margin loss (fit_capsnet), tl initialised
    from the teacher first; both with the distilled arms' student_init_length
    (`initial_student`). `config`: a DistillConfig (student, training, model_dir);
    `datasets`: arrays or `StreamedSplit`s."""
    import keras

    from keras_caps.runs import optimization
    from keras_caps.runs.datasets import dataset_info
    from keras_caps.runs.distill import initial_student
    from keras_caps.training import compile_capsnet, fit_capsnet
    from keras_caps.training.loop import num_examples

    keras.utils.set_random_seed(config.seed)
    train_data, test_data = datasets
    num_classes = dataset_info(config).num_classes
    batch_policy = optimization.batch_policy(config)

    def build():
        teacher = keras.saving.load_model(teacher_path, compile=False)
        student = initial_student(config, teacher, num_classes, train_data, init)
        optimizer = optimization.make_optimizer(config, num_examples(train_data), batch_policy)
        return compile_capsnet(student, optimizer, recon_weight=config.recon_weight)

    return fit_capsnet(build, train_data, test_data, config.model_dir,
                       epochs=config.epochs, batch_policy=batch_policy,
                       augment_shift=config.augment_shift, seed=config.seed,
                       verbose=config.verbose)


def given_teacher_row(teacher_path, test_data):
    """The row of a given teacher model: its accuracy on the study's test split, sizes; no
    training columns (it was trained elsewhere)."""
    import keras

    from keras_caps.models import classifier
    from keras_caps.quantization.simulate import accuracy
    from keras_caps.runs.measure import float_batch, measure

    images, labels = test_data
    clf = classifier(keras.saving.load_model(teacher_path, compile=False))
    row = {"method": "teacher (given)", "test_accuracy": accuracy(
        clf, float_batch(images, len(images)), labels)}
    row.update(measure(teacher_path))
    return row


def _row(method, metrics, measured, batch_size, lr_policy):
    history = metrics.get("history") or [{}]
    row = {"method": method, "batch_size": batch_size, "lr_policy": lr_policy,
           "test_accuracy": metrics["test_accuracy"], "train_time_s": metrics["train_time_s"],
           "final_loss": history[-1].get("loss"), "epochs": metrics["epochs"]}
    row.update(measured)
    return row


# ----------------------------------------------------------------------------- report


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


COLUMNS = [("method", "method", "s"), ("batch_size", "batch", "d"),
           ("lr_policy", "LR policy", "s"), ("test_accuracy", "test acc", ".4f"),
           ("params", "params", ",d"), ("flops", "FLOPs / image", ",d"),
           ("train_time_s", "train time (s)", ".1f"),
           ("latency_ms", "latency (ms / batch)", ".2f"),
           ("int8_accuracy", "int8 acc", ".4f"),
           ("int8_latency_ms", "int8 ms / image (1 thread)", ".3f"),
           ("int8_bytes", "int8 bytes", ",d"), ("final_loss", "final loss", ".4f"),
           ("epochs", "epochs", "d")]


def report_text(config, rows, checks, num_train, num_test, wall):
    """study.md: the header (data, student, loss, how latency is measured), the table, the
    target check and the wall time."""
    from keras_caps.io_utils import markdown_table
    from keras_caps.runs.datasets import evaluation_split

    table = markdown_table(rows, COLUMNS)
    if checks:
        table += "\n\nTarget (KD+TL student <= 10% of the teacher's parameters and FLOPs, within " \
                 "1.0 point of the teacher, better than the baseline):\n\n" + markdown_table(
                     checks, [("batch_size", "batch", "d"), ("lr_policy", "LR policy", "s"),
                              ("params_ratio", "params / teacher", ".3f"),
                              ("flops_ratio", "FLOPs / teacher", ".3f"),
                              ("gap", "teacher - KD+TL", "+.4f"),
                              ("over_baseline", "KD+TL - baseline", "+.4f"), ("met", "met", "")])
    header = (f"KD / TL study, preset {config.preset}: {config.dataset}, "
              f"{num_train} training / {num_test} "
              f"{evaluation_split(config)} examples; student "
              f"conv {config.student_conv_filters}, {config.student_primary_capsules} x "
              f"{config.student_primary_dim}D primary, {config.student_class_dim}D class "
              f"capsules, {config.epochs} epochs; T = {config.temperature}, alpha = "
              f"{config.alpha}, beta = {config.beta}. Latency: median predict_on_batch of "
              f"the float Keras classifier, batch {config.latency_batch}; int8: LiteRT, one "
              "image, 1 thread (tflite.export int8, calibrated on 500 training images). Final "
              "loss of kd / "
              "kd_tl is the distillation total (not comparable with margin-only rows).\n\n")
    return header + table + f"\n\nWall time {wall:.0f} s.\n"


# ----------------------------------------------------------------------------- the study


def kd_study(config, datasets_override=None):
    """Trains the teacher (unless config.teacher) and every method and sweep point; writes
    <model_dir>/study.md and study.json.

    Args:
        config: a KdStudyConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays (or two
            `StreamedSplit`s) instead of loading. With --stream the teacher and every arm
            train from disk; the int8 calibration's 500 training images and the test split
            (bound it with --test_examples) are decoded into memory for the measurements.
    Returns:
        {"rows": [...], "preset", "dataset", "train_examples", "test_examples", "teacher",
         "target": target_check(rows), "wall_time_s"}.
    """
    from keras_caps.io_utils import write_study
    from keras_caps.runs.datasets import in_memory, load_datasets
    from keras_caps.runs.distill import distill
    from keras_caps.runs.measure import int8_measurements, latencies, measure
    from keras_caps.runs.models import model_file
    from keras_caps.runs.train import train
    from keras_caps.training.loop import num_examples

    batch_sizes = list(config.batch_sizes) or [int(config.batch_size)]
    lr_policies = list(config.lr_policies) or [config.lr_policy]
    start = time.perf_counter()
    datasets = load_datasets(config, datasets_override, seed=config.seed, stream_ok=True)
    arrays = in_memory(datasets, 500)  # what the measurements read; `datasets` trains
    num_train = num_examples(datasets[0])
    out = config.model_dir
    test_images = arrays[1][0]
    rows, paths = [], []
    teacher_path = config.teacher and model_file(config.teacher, "teacher")
    if not teacher_path:
        print("== teacher ==", flush=True)
        teacher_config = TrainConfig.from_config(config, epochs=config.teacher_epochs,
                                                 model_dir=os.path.join(out, "teacher"))
        teacher_metrics = train(teacher_config, datasets_override=datasets)
        teacher_path = teacher_metrics["model_path"]
        rows.append(_row("teacher", teacher_metrics, measure(teacher_path),
                         config.batch_size, config.lr_policy))
        paths.append(teacher_path)
    else:
        rows.append(given_teacher_row(teacher_path, arrays[1]))
        paths.append(teacher_path)
    for lr_policy in lr_policies:
        for batch_size in batch_sizes:
            for method in config.kd_methods:
                run_config = DistillConfig.from_config(
                    config, model_dir=os.path.join(out, f"{method}_b{batch_size}_{lr_policy}"),
                    batch_size=batch_size, lr_policy=lr_policy, teacher=teacher_path,
                    transfer_init=method == "kd_tl")
                print(f"== {method}, batch {batch_size}, lr {lr_policy} ==", flush=True)
                if method in ("kd", "kd_tl"):
                    metrics = distill(run_config, datasets_override=datasets)
                else:
                    metrics = train_plain(run_config, teacher_path, method == "tl", datasets)
                rows.append(_row(method, metrics, measure(metrics["model_path"]), batch_size,
                                 lr_policy))
                paths.append(metrics["model_path"])
    timed = latencies(dict(enumerate(paths)), test_images, config.latency_batch,
                      config.latency_repeats)
    for i, row in enumerate(rows):
        row.update(latency_ms=timed[i], latency_batch=min(config.latency_batch,
                                                          len(test_images)))
    if config.int8_tflite:
        int8 = int8_measurements(dict(enumerate(paths)), arrays[0][0][:500], test_images,
                                 arrays[1][1], config.latency_repeats)
        for i, row in enumerate(rows):
            row.update(int8[i])
    checks = target_check(rows)
    wall = time.perf_counter() - start
    summary = {"rows": rows, "preset": config.preset, "dataset": config.dataset,
               "train_examples": num_train, "test_examples": len(test_images),
               "teacher": teacher_path, "target": checks, "wall_time_s": wall}
    text = report_text(config, rows, checks, num_train, len(test_images), wall)
    config.write(out)
    return write_study(out, text, summary)

__all__ = ["METHODS", "KdStudyConfig", "KdStudyOptions", "given_teacher_row", "kd_study",
           "report_text", "target_check", "train_plain"]
