r"""Distils a trained CapsNet teacher into a small CapsNet student (paper 000, Sec. 3.3-3.4).

Example (quick, 2 CPU cores; the teacher from train_capsnet):
    python -m train.distill --teacher=runs/small/model.keras --model_dir=runs/kd \
        --student_conv_filters=16 --student_primary_capsules=4 --student_primary_dim=8 \
        --student_class_dim=8 --temperature=3 --alpha=1 --beta=1 --transfer_init=true \
        --dataset=fashion_mnist --train_examples=10000 --epochs=3

Loss: alpha * T^2 * KL(p_t(T) || p_s(T)) + beta * margin (or cross-entropy), class scores
z = log(capsule length + eps) (see keras_caps.training.distillation). The student is a
`capsnet`; its kernel sizes and routing default to the teacher's so that --transfer_init can
copy the teacher's most important channels into it (keras_caps.training.transfer).

Dataset, optimisation and run flags are those of train_capsnet (--dataset, --data_dir,
--train_examples, --epochs, --batch_size, --optimizer, --learning_rate, --lr_policy, ...);
its model flags (--conv_filters, ...) are not used here.

Outputs under --model_dir: checkpoints/ (the whole distiller; an interrupted run resumes),
logs/ (TensorBoard), history.csv, best.keras (best student), model.keras (the student alone),
transfer_report.json (with --transfer_init) and metrics.json.
"""

from __future__ import annotations

import json
import os

from absl import flags

from train import train_capsnet

FLAGS = flags.FLAGS


def define_flags():
    """Defines this binary's flags (idempotent): train_capsnet's plus the distillation ones."""
    train_capsnet.define_flags()
    if "teacher" in FLAGS:
        return
    flags.DEFINE_string("teacher", None, "Trained teacher model (.keras), e.g. from "
                        "train_capsnet (required).")
    flags.DEFINE_integer("student_conv_filters", 16, "Student conv1 filters.")
    flags.DEFINE_integer("student_conv_kernel", None, "Student conv1 kernel (default: the "
                         "teacher's).")
    flags.DEFINE_integer("student_primary_capsules", 4, "Student primary capsule types.")
    flags.DEFINE_integer("student_primary_dim", 8, "Student primary capsule dimension.")
    flags.DEFINE_integer("student_primary_kernel", None, "Student primary kernel (default: the "
                         "teacher's).")
    flags.DEFINE_integer("student_class_dim", 8, "Student class capsule dimension.")
    flags.DEFINE_integer("student_routings", None, "Student routing iterations (default: the "
                         "teacher's).")
    flags.DEFINE_enum("student_decoder", "none", ["none", "full", "reduced"],
                      "Student reconstruction decoder.")
    flags.DEFINE_bool("student_weight_sharing", False, "Student class capsules share transforms "
                      "over positions.")
    train_capsnet.define_once(flags.DEFINE_float, "temperature", 3.0, "Distillation temperature T (paper: 3).")
    train_capsnet.define_once(flags.DEFINE_float, "alpha", 1.0, "Weight of T^2 * KL(teacher || student).")
    train_capsnet.define_once(flags.DEFINE_float, "beta", 1.0, "Weight of the task loss.")
    flags.DEFINE_enum("task_loss", "margin", ["margin", "crossentropy"], "Student task loss.")
    flags.DEFINE_float("capsule_weight", 0.0, "Weight of the teacher/student class-capsule MSE "
                       "(0: off).")
    flags.DEFINE_bool("transfer_init", False, "Initialise the student from the teacher's most "
                      "important channels / capsule types before distilling.")
    flags.DEFINE_string("transfer_importance", None, "JSON file {teacher layer: [scores]} "
                        "(e.g. CHIP scores) for --transfer_init; default: L1 norms.")


STUDENT_FLAGS = ("student_conv_filters", "student_conv_kernel", "student_primary_capsules",
                 "student_primary_dim", "student_primary_kernel", "student_class_dim",
                 "student_routings", "student_decoder", "student_weight_sharing", "transfer_init")
DISTILLATION_FLAGS = ("temperature", "alpha", "beta", "task_loss", "capsule_weight",
                      "optimizer", "learning_rate", "lr_policy", "batch_policy", "recon_weight")


def _teacher_layer(teacher, name):
    try:
        return teacher.get_layer(name)
    except ValueError:
        return None


def build_student(flags_obj, teacher, num_classes):
    """The student capsnet the flags describe, with unset sizes taken from the teacher."""
    from keras_caps.models import capsnet, image_input

    conv1 = _teacher_layer(teacher, "conv1")
    primary = _teacher_layer(teacher, "primary_caps")
    class_caps = _teacher_layer(teacher, "class_caps")
    conv_kernel = flags_obj.student_conv_kernel or (
        conv1.kernel_size[0] if conv1 is not None else flags_obj.conv_kernel)
    primary_kernel = flags_obj.student_primary_kernel or (
        primary.conv.kernel_size[0] if primary is not None else flags_obj.primary_kernel)
    routings = flags_obj.student_routings or (
        class_caps.routings if class_caps is not None else flags_obj.routings)
    decoder = None if flags_obj.student_decoder == "none" else flags_obj.student_decoder
    return capsnet(
        input_shape=tuple(image_input(teacher).shape[1:]), num_classes=num_classes,
        conv_filters=flags_obj.student_conv_filters, conv_kernel=conv_kernel,
        primary_capsules=flags_obj.student_primary_capsules,
        primary_dim=flags_obj.student_primary_dim, primary_kernel=primary_kernel,
        class_dim=flags_obj.student_class_dim, routings=routings,
        weight_sharing=flags_obj.student_weight_sharing, decoder=decoder, name="student",
    )


def _importance(flags_obj):
    if not flags_obj.transfer_importance:
        return "l1"
    try:
        with open(flags_obj.transfer_importance) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--transfer_importance {flags_obj.transfer_importance!r} is not a "
                         f"readable JSON file {{layer: [scores]}}: {err}") from err


def run(flags_obj, datasets_override=None):
    """Distils as the flags say; returns the metrics dict (also written to metrics.json).

    Args:
        flags_obj: parsed flags (absl FLAGS or any object with the same attributes).
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading.
    """
    import keras

    from keras_caps import validation
    from keras_caps.io_utils import write_json
    from keras_caps.training.distillation import Distiller, fit_distiller
    from keras_caps.training.transfer import init_student_from_teacher

    if not flags_obj.model_dir:
        raise ValueError("--model_dir is required: the folder for checkpoints and results.")
    if not flags_obj.teacher:
        raise ValueError("--teacher is required: the trained teacher model (.keras).")
    if not os.path.exists(flags_obj.teacher):
        raise ValueError(f"--teacher {flags_obj.teacher!r} does not exist; train one with "
                         "`python -m train.train_capsnet` and pass its model.keras.")
    validation.check_keras_file(flags_obj.teacher, "--teacher")
    keras.utils.set_random_seed(flags_obj.seed)
    train_data, test_data = train_capsnet.load_datasets(flags_obj, datasets_override)
    num_classes = train_capsnet.dataset_info(flags_obj).num_classes
    teacher = keras.saving.load_model(flags_obj.teacher, compile=False)
    train_capsnet.check_loaded_model(teacher, flags_obj.teacher, "teacher", flags_obj,
                                     train_capsnet.image_shape_of(train_data[0]), num_classes)
    build_student(flags_obj, teacher, num_classes)  # a student too small for the images fails here
    del teacher
    importance = _importance(flags_obj)
    batch_policy = train_capsnet.batch_policy_from_flags(flags_obj)
    report_path = os.path.join(flags_obj.model_dir, "transfer_report.json")

    def build():
        teacher = validation.check_capsnet(
            validation.load_keras_model(flags_obj.teacher, "--teacher", compile=False),
            f"--teacher {flags_obj.teacher!r}")
        student = build_student(flags_obj, teacher, num_classes)
        if flags_obj.transfer_init:
            report = init_student_from_teacher(teacher, student, importance=importance)
            write_json(report_path, report)
            if flags_obj.verbose:
                print(f"transfer_init: sliced {report['sliced']}, copied {report['copied']}, "
                      f"skipped {report['skipped']}")
        distiller = Distiller(
            teacher, student, temperature=flags_obj.temperature, alpha=flags_obj.alpha,
            beta=flags_obj.beta, task_loss=flags_obj.task_loss,
            capsule_weight=flags_obj.capsule_weight, recon_weight=flags_obj.recon_weight,
        )
        distiller.compile(train_capsnet.optimizer_from_flags(flags_obj, len(train_data[0]),
                                                             batch_policy))
        return distiller

    metrics = fit_distiller(
        build, train_data, test_data, flags_obj.model_dir, epochs=flags_obj.epochs,
        batch_policy=batch_policy,
        strategy=train_capsnet.make_strategy(flags_obj.distribution_strategy),
        augment_shift=flags_obj.augment_shift, seed=flags_obj.seed, verbose=flags_obj.verbose,
        run_config=train_capsnet.run_config(
            flags_obj, architecture=STUDENT_FLAGS, training=DISTILLATION_FLAGS,
            teacher=os.path.abspath(flags_obj.teacher)),
        overwrite=getattr(flags_obj, "overwrite", False),
    )
    metrics.update(teacher=flags_obj.teacher, temperature=flags_obj.temperature,
                   alpha=flags_obj.alpha, beta=flags_obj.beta, task_loss=flags_obj.task_loss,
                   transfer_init=bool(flags_obj.transfer_init))
    if flags_obj.transfer_init and os.path.exists(report_path):
        with open(report_path) as f:
            report = json.load(f)
        metrics["transfer"] = {k: report[k] for k in ("copied", "sliced", "skipped",
                                                      "params_transferred")}
    write_json(os.path.join(flags_obj.model_dir, "metrics.json"), metrics)
    return metrics


def main(_):
    metrics = run(FLAGS)
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    flags.mark_flag_as_required("model_dir")
    flags.mark_flag_as_required("teacher")
    run_main(main)
