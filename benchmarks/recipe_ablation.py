r"""Training-recipe ablation: which defaults train_capsnet should have, measured.

    python -m benchmarks.recipe_ablation --out=benchmarks/results/recipe_ablation \
        --epochs=4 --validation_examples=10000 -- --model=mcu_capsnet --mcu_size=S

Runs `python -m train.train_capsnet` once per recipe step, each step adding one change to the
previous one (the old defaults first), with the model flags given after `--`, on the training
split minus the last --validation_examples images, evaluated on those (choices are made on a
validation split; the test split is not read). Every run has the same epochs and seed. Writes
<out>/recipe_ablation.md and .json (best and last-epoch validation accuracy and wall time of each
step) and keeps each run's folder under <out>/runs/ only with --keep.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app, flags


def define_flags():
    """The binary's flags (defined when it runs, so tests can import STEPS)."""
    flags.DEFINE_string("out", None, "Output folder.")
    flags.DEFINE_integer("epochs", 4, "Epochs of every run.")
    flags.DEFINE_integer("validation_examples", 10000, "Held-out training images to evaluate on.")
    flags.DEFINE_integer("train_examples", None, "First N training images (before the hold-out).")
    flags.DEFINE_list("steps", None, "Subset of the recipe steps to run (default: all).")
    flags.DEFINE_bool("keep", False, "Keep the run folders.")
    flags.mark_flag_as_required("out")


FLAGS = flags.FLAGS

#: (name, flags): each step is the previous one plus the flags shown.
STEPS = (
    ("old defaults: fixed LR 1e-3, no augmentation, no length init",
     ["--lr_policy=fixed", "--learning_rate=1e-3", "--augment_shift=0", "--init_length=0"]),
    ("+ capsule-length init 0.5", ["--init_length=0.5"]),
    ("+ random shift 2 px", ["--augment_shift=2"]),
    ("+ cosine LR 1e-3 -> 1e-5", ["--lr_policy=cosine", "--lr_min=1e-5"]),
    ("+ peak LR 2e-3", ["--learning_rate=2e-3"]),
    ("+ batch 128", ["--batch_size=128"]),
)


def step_flags(index):
    """The full flag list of step `index` (all steps up to it, later flags winning)."""
    merged = {}
    for _, extra in STEPS[: index + 1]:
        for flag in extra:
            key = flag.split("=", 1)[0]
            merged[key] = flag
    return list(merged.values())


def main(argv):
    from keras_caps.io_utils import markdown_table, write_study

    model_flags = list(argv[1:])
    chosen = range(len(STEPS)) if not FLAGS.steps else [int(s) for s in FLAGS.steps]
    rows = []
    for index in chosen:
        name, _ = STEPS[index]
        run_dir = os.path.join(FLAGS.out, "runs", f"step{index}")
        command = [sys.executable, "-m", "train.train_capsnet", f"--model_dir={run_dir}",
                   f"--epochs={FLAGS.epochs}", f"--validation_examples={FLAGS.validation_examples}",
                   "--verbose=2", *model_flags, *step_flags(index)]
        if FLAGS.train_examples:
            command.append(f"--train_examples={FLAGS.train_examples}")
        print(" ".join(command[1:]), flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True)
        with open(os.path.join(run_dir, "metrics.json")) as f:
            metrics = json.load(f)
        rows.append({"step": index, "name": name, "val_acc": metrics["test_accuracy"],
                     "best_val_acc": metrics["best_test_accuracy"],
                     "train_time_s": metrics["train_time_s"],
                     "wall_s": time.perf_counter() - start,
                     "flags": " ".join(step_flags(index))})
        if not FLAGS.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    header = (f"Recipe ablation: `train.train_capsnet {' '.join(model_flags)}`, {FLAGS.epochs} "
              f"epochs per run, evaluated on the last {FLAGS.validation_examples} training "
              "images (validation split).\n\n")
    table = markdown_table(rows, [
        ("step", "step", "d"), ("name", "recipe", "s"), ("val_acc", "val acc (last)", ".4f"),
        ("best_val_acc", "val acc (best epoch)", ".4f"), ("train_time_s", "train s", ".0f"),
    ])
    write_study(FLAGS.out, header + table + "\n",
                {"rows": rows, "model_flags": model_flags, "epochs": FLAGS.epochs},
                stem="recipe_ablation")


if __name__ == "__main__":
    define_flags()
    app.run(main)
