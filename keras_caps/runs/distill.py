"""Distilling a trained CapsNet teacher into a small student: `DistillConfig` and `distill`.

Loss: alpha * T^2 * KL(p_t(T) || p_s(T)) + beta * margin (or cross-entropy), class scores
z = log(capsule length + eps) (keras_caps.training.distillation). The student is a `capsnet`
whose kernel sizes and routing default to the teacher's, so that transfer_init can copy the
teacher's most important channels into it (keras_caps.training.transfer).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import ClassVar

from keras_caps.runs.config import Config, ConfigError, ModelConfig, check_choice
from keras_caps.runs.train import DATA_FIELDS, TrainConfig


@dataclasses.dataclass(frozen=True)
class StudentConfig(Config):
    """The student: student_model "capsnet" (the Sabour-style student of the fields below:
    conv1 filters / kernel, primary capsule types / dim / kernel, class capsule dim, routings,
    decoder "none" / "full" / "reduced", weight sharing; a kernel size or routing count of
    None takes the teacher's) or "mcu_capsnet" (the microcontroller CapsNet of size
    student_mcu_size, keras_caps.models.mcu_capsnet; of the fields below only routings and
    decoder apply). student_init_length (0: off): the data-dependent capsule-length init of
    the fresh student (after transfer_init), as train's --init_length."""

    STUDENT_MODELS: ClassVar[tuple] = ("capsnet", "mcu_capsnet")

    student_model: str = "capsnet"
    student_mcu_size: str = "S"
    student_init_length: float = 0.0
    student_conv_filters: int = 16
    student_conv_kernel: int | None = None
    student_primary_capsules: int = 4
    student_primary_dim: int = 8
    student_primary_kernel: int | None = None
    student_class_dim: int = 8
    student_routings: int | None = None
    student_decoder: str = "none"
    student_weight_sharing: bool = False

    def _check(self):
        check_choice("student_decoder", self.student_decoder, ("none", "full", "reduced"))
        check_choice("student_model", self.student_model, self.STUDENT_MODELS)
        check_choice("student_mcu_size", self.student_mcu_size, ModelConfig.MCU_SIZES)
        if not 0.0 <= (self.student_init_length or 0.0) < 1.0:
            raise ConfigError(f"--student_init_length must lie in [0, 1) (0: off), got "
                              f"{self.student_init_length}.")


@dataclasses.dataclass(frozen=True)
class DistillOptions(Config):
    """The teacher (.keras path) and the distillation loss: temperature T, alpha (weight of
    T^2 * KL), beta (weight of the task loss "margin" or "crossentropy"), capsule_weight (the
    teacher / student class-capsule MSE, 0: off); transfer_init (initialise the student from
    the teacher's most important channels) with transfer_importance (a JSON file {teacher
    layer: [scores]}; None: L1 norms)."""

    teacher: str | None = None
    temperature: float = 3.0
    alpha: float = 1.0
    beta: float = 1.0
    task_loss: str = "margin"
    capsule_weight: float = 0.0
    transfer_init: bool = False
    transfer_importance: str | None = None

    def _check(self):
        check_choice("task_loss", self.task_loss, ("margin", "crossentropy"))


# the student fields a config.json records; the later ones (student_model,
# student_mcu_size, student_init_length) only when not at their defaults, so that runs
# recorded before them still resume
_LATER_STUDENT_FIELDS = ("student_model", "student_mcu_size", "student_init_length")
STUDENT_FIELDS = tuple(f.name for f in dataclasses.fields(StudentConfig)
                       if f.name not in _LATER_STUDENT_FIELDS) + ("transfer_init",)


#: What transfer_init copied from the teacher, in the run folder.
TRANSFER_REPORT = "transfer_report.json"


def student_fields(config):
    """The student fields config.json records for this config (see STUDENT_FIELDS)."""
    later = _LATER_STUDENT_FIELDS
    default = StudentConfig()
    if all(getattr(config, n) == getattr(default, n) for n in later):
        return STUDENT_FIELDS
    return STUDENT_FIELDS + later
DISTILLATION_FIELDS = ("temperature", "alpha", "beta", "task_loss", "capsule_weight",
                       "optimizer", "learning_rate", "lr_policy", "batch_policy", "recon_weight")


@dataclasses.dataclass(frozen=True)
class DistillConfig(DistillOptions, StudentConfig, TrainConfig):
    """`distill`'s config: the teacher, the student, the loss, and TrainConfig's data,
    optimisation and run fields (its model fields are the fallbacks of the student's kernel
    sizes for a teacher without conv1 / primary_caps).

    Example:
        >>> config = DistillConfig(teacher="runs/small/model.keras", model_dir="runs/kd",
        ...                        student_conv_filters=16, transfer_init=True, epochs=3)
        >>> metrics = distill(config)  # doctest: +SKIP
    """

    PRESETS: ClassVar[dict] = {}

    def _check(self):
        if not self.teacher:
            raise ConfigError("--teacher is required: the trained teacher model (.keras).")


def _teacher_layer(teacher, name):
    try:
        return teacher.get_layer(name)
    except ValueError:
        return None


def initial_student(config, teacher, num_classes, train_data, transfer, importance="l1"):
    """The student before training: `build_student`, then with `transfer` its layers
    initialised from `teacher` (`init_student_from_teacher`; report in
    <model_dir>/transfer_report.json), then with config.student_init_length its fresh capsule
    layers calibrated on the first 256 training images (<model_dir>/init_lengths.json). One
    recipe for every student, distilled (`distill`) or not (the kd_study's baseline and tl).

    Args:
        config: a DistillConfig (student fields, student_init_length, model_dir, verbose).
        teacher: the teacher model.
        num_classes: J.
        train_data: the training split, arrays or a `StreamedSplit`.
        transfer: initialise from the teacher.
        importance: channel importance for the transfer's slicing ("l1": L1 norms, or
            {layer name: scores}).
    Returns:
        The uncompiled student.
    """
    from keras_caps.io_utils import write_json
    from keras_caps.runs.datasets import head_images
    from keras_caps.training.length_init import calibrate_capsule_lengths
    from keras_caps.training.transfer import init_student_from_teacher

    student = build_student(config, teacher, num_classes)
    if transfer:
        report = init_student_from_teacher(teacher, student, importance=importance)
        write_json(os.path.join(config.model_dir, TRANSFER_REPORT), report)
        if config.verbose:
            print(f"transfer_init: sliced {report['sliced']}, copied {report['copied']}, "
                  f"skipped {report['skipped']}")
    if config.student_init_length:
        write_json(os.path.join(config.model_dir, "init_lengths.json"),
                   calibrate_capsule_lengths(student, head_images(train_data),
                                             target_length=config.student_init_length))
    return student


def build_student(config, teacher, num_classes):
    """The student of a StudentConfig: a capsnet with unset kernel sizes and routings taken
    from `teacher` (or, without those layers, from the config's model fields), or an
    mcu_capsnet of config.student_mcu_size.

    Args:
        config: a DistillConfig (or any config with the student and model fields).
        teacher: the teacher model; the student takes its input shape.
        num_classes: J.
    Returns:
        An uncompiled capsnet (or mcu_capsnet) named "student".
    """
    from keras_caps.models import capsnet, image_input, mcu_capsnet

    conv1 = _teacher_layer(teacher, "conv1")
    primary = _teacher_layer(teacher, "primary_caps")
    class_caps = _teacher_layer(teacher, "class_caps")
    decoder = None if config.student_decoder == "none" else config.student_decoder
    if config.student_model == "mcu_capsnet":
        return mcu_capsnet(config.student_mcu_size, input_shape=tuple(image_input(teacher).shape[1:]),
                           num_classes=num_classes, routings=config.student_routings or 3,
                           decoder=decoder, name="student")
    conv_kernel = config.student_conv_kernel or (
        conv1.kernel_size[0] if conv1 is not None else config.conv_kernel)
    primary_kernel = config.student_primary_kernel or (
        primary.conv.kernel_size[0] if primary is not None else config.primary_kernel)
    routings = config.student_routings or (
        class_caps.routings if class_caps is not None else config.routings)
    return capsnet(
        input_shape=tuple(image_input(teacher).shape[1:]), num_classes=num_classes,
        conv_filters=config.student_conv_filters, conv_kernel=conv_kernel,
        primary_capsules=config.student_primary_capsules,
        primary_dim=config.student_primary_dim, primary_kernel=primary_kernel,
        class_dim=config.student_class_dim, routings=routings,
        weight_sharing=config.student_weight_sharing, decoder=decoder, name="student",
    )


def _importance(config):
    if not config.transfer_importance:
        return "l1"
    try:
        with open(config.transfer_importance) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--transfer_importance {config.transfer_importance!r} is not a "
                         f"readable JSON file {{layer: [scores]}}: {err}") from err


def distill(config, datasets_override=None):
    """Distils config.teacher into the student; returns the metrics dict (also metrics.json).

    Under config.model_dir: checkpoints/ (the whole distiller; a rerun resumes), logs/,
    history.csv, best.keras (best student), model.keras (the student alone),
    transfer_report.json (with transfer_init), init_lengths.json (with student_init_length),
    config.json and metrics.json.

    Args:
        config: a DistillConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading.
    Returns:
        fit_distiller's metrics plus teacher, temperature, alpha, beta, task_loss,
        transfer_init and (with transfer_init) "transfer": what was copied / sliced.
    """
    import keras

    from keras_caps import validation
    from keras_caps.io_utils import write_json
    from keras_caps.runs import datasets, models, optimization
    from keras_caps.training.distillation import Distiller, fit_distiller

    if config.teacher.startswith(models.PRETRAINED_PREFIX):  # a shipped reference model
        config = dataclasses.replace(config, teacher=models.model_file(config.teacher, "teacher"))
    if not os.path.exists(config.teacher):
        raise ValueError(f"--teacher {config.teacher!r} does not exist; train one with "
                         "`python -m train.train_capsnet` and pass its model.keras.")
    validation.check_keras_file(config.teacher, "--teacher")
    keras.utils.set_random_seed(config.seed)
    from keras_caps.training.loop import num_examples

    train_data, test_data = datasets.load_datasets(config, datasets_override, seed=config.seed,
                                                   stream_ok=True)
    num_classes = datasets.dataset_info(config).num_classes
    teacher = keras.saving.load_model(config.teacher, compile=False)
    models.check_loaded_model(teacher, config.teacher, "teacher", config.dataset,
                              datasets.split_shape(train_data), num_classes)
    build_student(config, teacher, num_classes)  # a student too small for the images fails here
    del teacher
    importance = _importance(config)
    batch_policy = optimization.batch_policy(config)
    report_path = os.path.join(config.model_dir, TRANSFER_REPORT)

    def build():
        teacher = validation.check_capsnet(
            validation.load_keras_model(config.teacher, "--teacher", compile=False),
            f"--teacher {config.teacher!r}")
        student = initial_student(config, teacher, num_classes, train_data,
                                  config.transfer_init, importance)
        distiller = Distiller(
            teacher, student, temperature=config.temperature, alpha=config.alpha,
            beta=config.beta, task_loss=config.task_loss,
            capsule_weight=config.capsule_weight, recon_weight=config.recon_weight,
        )
        distiller.compile(optimization.make_optimizer(config, num_examples(train_data),
                                                      batch_policy))
        return distiller

    metrics = fit_distiller(
        build, train_data, test_data, config.model_dir, epochs=config.epochs,
        batch_policy=batch_policy, strategy=optimization.make_strategy(
            config.distribution_strategy),
        augment_shift=config.augment_shift, seed=config.seed, verbose=config.verbose,
        run_config=config.run_config(architecture=student_fields(config), data=DATA_FIELDS,
                                     training=DISTILLATION_FIELDS,
                                     teacher=os.path.abspath(config.teacher)),
        overwrite=config.overwrite,
    )
    metrics.update(teacher=config.teacher, temperature=config.temperature,
                   alpha=config.alpha, beta=config.beta, task_loss=config.task_loss,
                   transfer_init=bool(config.transfer_init))
    if config.transfer_init and os.path.exists(report_path):
        with open(report_path) as f:
            report = json.load(f)
        metrics["transfer"] = {k: report[k] for k in ("copied", "sliced", "skipped",
                                                      "params_transferred")}
    write_json(os.path.join(config.model_dir, "metrics.json"), metrics)
    return metrics


__all__ = ["DISTILLATION_FIELDS", "STUDENT_FIELDS", "DistillConfig", "DistillOptions",
           "StudentConfig", "build_student", "distill", "initial_student", "student_fields"]
