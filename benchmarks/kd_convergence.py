r"""Does distillation help a microcontroller CapsNet that trains to convergence?

    python -m benchmarks.kd_convergence --teacher=runs/cpu_m/model.keras \
        --arms=kd --epochs=30 --out=benchmarks/results/kd_convergence

Trains `keras_caps.models.mcu_capsnet(--student_size)` with the recipe of the shipped reference
model (`train_capsnet --preset=cpu_mcu`: Adam, cosine LR 2e-3 -> 1e-5 over the run, batch 64,
random shifts of 2 px, data-dependent capsule-length init 0.5, all 60,000 training images) in
one or more arms:

- scratch: the margin loss alone (the same as `train_capsnet --preset=cpu_mcu`);
- kd: `keras_caps.training.Distiller` with the trained --teacher (T = --temperature, alpha =
  --alpha, default 1, beta 1, margin task loss). Teacher and student see the same shifted image in every step (the
  teacher runs inside the Distiller's train step on the batch the student gets), i.e. the
  consistent-augmentation, long-schedule form of KD (Beyer et al., "Knowledge distillation: A
  good teacher is patient and consistent", 2022);
- kd_tl / tl: the same, the student first initialised from the teacher's most important
  channels (`keras_caps.training.transfer.init_student_from_teacher`).

No choice is made on the test split: the recipe is fixed, and the accuracy reported is the one
after the last epoch (not the best epoch). To choose T / alpha, pass --validation_examples=N:
the arms then train on the other training images and report on the N held out. Writes <out>/<arm>/metrics.json and
<out>/kd_convergence.md.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

FLAGS = flags.FLAGS
ARMS = ("scratch", "kd", "kd_tl", "tl")


def define_flags():
    flags.DEFINE_string("teacher", None, "Trained teacher (.keras), e.g. runs/cpu_m/model.keras.")
    flags.DEFINE_list("arms", ["kd"], f"Arms to train, any of {ARMS}.")
    flags.DEFINE_string("student_size", "S", "mcu_capsnet size of the student.")
    flags.DEFINE_string("student_variant", None, "A structure of benchmarks.mcu_variants.VARIANTS "
                        "applied to --student_size, e.g. '8-16-32 C=6 D=6 grid3' (the 10 % "
                        "student); default: the size as it is.")
    flags.DEFINE_integer("epochs", 30, "Epochs per arm.")
    flags.DEFINE_float("temperature", 3.0, "Distillation temperature.")
    flags.DEFINE_float("alpha", 1.0, "Weight of T^2 * KL in the kd / kd_tl arms (beta 1).")
    flags.DEFINE_integer("validation_examples", 0, "Hold out the last N training images and "
                         "report on them instead of the test split (for choosing T / alpha).")
    flags.DEFINE_integer("train_examples", None, "First N training images (default: all).")
    flags.DEFINE_integer("test_examples", None, "First N test images (default: all).")
    flags.DEFINE_integer("seed", 0, "Seed.")
    flags.DEFINE_string("out", "benchmarks/results/kd_convergence", "Output folder.")


def _optimizer(num_examples, epochs, batch_size=64):
    from keras_caps import schedules

    policy = schedules.make_batch_policy("fixed", batch_size=batch_size)
    schedule = schedules.schedule_for_run("cosine", num_examples, epochs, policy, lr=2e-3,
                                          lr_min=1e-5)
    return schedules.make_optimizer("adam", schedule), policy


def run_arm(arm, teacher_path, train_data, test_data, out_dir, epochs, size="S",
            temperature=3.0, seed=0, alpha=1.0, variant=None):
    """Trains one arm; returns its metrics dict (also in out_dir/metrics.json).

    `variant` is a key of `benchmarks.mcu_variants.VARIANTS` (mcu_capsnet overrides), or None.
    """
    import keras

    from benchmarks.mcu_variants import VARIANTS
    from keras_caps import validation
    from keras_caps.models import mcu_capsnet
    from keras_caps.training import compile_capsnet, fit_capsnet
    from keras_caps.training.distillation import Distiller, fit_distiller
    from keras_caps.training.length_init import calibrate_capsule_lengths
    from keras_caps.training.transfer import init_student_from_teacher

    overrides = VARIANTS[variant] if variant is not None else {}
    keras.utils.set_random_seed(seed)
    num_classes = int(train_data[1].max()) + 1
    input_shape = tuple(train_data[0].shape[1:])

    def student():
        model = mcu_capsnet(size, input_shape=input_shape, num_classes=num_classes, **overrides)
        calibrate_capsule_lengths(model, train_data[0], target_length=0.5)
        return model

    common = dict(epochs=epochs, augment_shift=2, seed=seed, verbose=0,
                  run_config={"arm": arm, "size": size, "temperature": temperature,
                              **({"variant": variant} if variant else {}),
                              **({"alpha": alpha} if alpha != 1.0 else {})})
    if arm == "scratch":
        def build():
            optimizer, _ = _optimizer(len(train_data[0]), epochs)
            return compile_capsnet(student(), optimizer)

        _, policy = _optimizer(len(train_data[0]), epochs)
        return fit_capsnet(build, train_data, test_data, out_dir, batch_policy=policy, **common)

    def build_distiller():
        teacher = validation.load_keras_model(teacher_path, "--teacher", compile=False)
        model = student()
        if arm in ("kd_tl", "tl"):
            init_student_from_teacher(teacher, model)
        distiller = Distiller(teacher, model, temperature=temperature,
                              alpha=0.0 if arm == "tl" else alpha, beta=1.0)
        optimizer, _ = _optimizer(len(train_data[0]), epochs)
        distiller.compile(optimizer)
        return distiller

    _, policy = _optimizer(len(train_data[0]), epochs)
    return fit_distiller(build_distiller, train_data, test_data, out_dir, batch_policy=policy,
                         **common)


def main(_):
    from benchmarks.mcu_variants import VARIANTS
    from keras_caps import data as data_lib
    from keras_caps.io_utils import markdown_table

    unknown = sorted(set(FLAGS.arms) - set(ARMS))
    if unknown:
        raise app.UsageError(f"unknown --arms {unknown}; choose from {ARMS}.")
    if any(a != "scratch" for a in FLAGS.arms) and not FLAGS.teacher:
        raise app.UsageError("--teacher is required for the kd / tl arms.")
    if FLAGS.student_variant is not None and FLAGS.student_variant not in VARIANTS:
        raise app.UsageError(f"unknown --student_variant {FLAGS.student_variant!r}; choose "
                             f"from {sorted(VARIANTS)}.")
    train = data_lib.load_arrays("fashion_mnist", "train", max_examples=FLAGS.train_examples)
    test = data_lib.load_arrays("fashion_mnist", "test", max_examples=FLAGS.test_examples)
    split = "test"
    if FLAGS.validation_examples:
        n = FLAGS.validation_examples
        train, test = (train[0][:-n], train[1][:-n]), (train[0][-n:], train[1][-n:])
        split = f"validation ({n} held-out training images)"
    rows = []
    for arm in FLAGS.arms:
        out_dir = os.path.join(FLAGS.out, arm)
        m = run_arm(arm, FLAGS.teacher, train, test, out_dir, FLAGS.epochs,
                    FLAGS.student_size, FLAGS.temperature, FLAGS.seed, FLAGS.alpha,
                    FLAGS.student_variant)
        last = m["history"][-1]
        rows.append(dict(arm=arm, t=FLAGS.temperature, alpha=FLAGS.alpha if "kd" in arm else 0.0,
                         params=m["params"], epochs=len(m["history"]),
                         accuracy=last["val_accuracy"], minutes=m["train_time_s"] / 60))
        print(json.dumps({k: v for k, v in m.items() if k != "history"}, indent=2))
    table = markdown_table(rows, [("arm", "arm", ""), ("t", "T", ".1f"), ("alpha", "alpha", ".2f"),
                                  ("params", "student params", ","), ("epochs", "epochs", ""),
                                  ("accuracy", f"{split} accuracy (last epoch)", ".4f"),
                                  ("minutes", "train min", ".1f")])
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "kd_convergence.md"), "a") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    define_flags()
    app.run(main)
