"""FasTrCaps study (paper 002): the same CapsNet trained under each LR / batch-size policy.

Per policy: max test accuracy, the epoch reaching it, epochs and wall time to reach the
fixed-LR baseline's max accuracy, parameters. Writes <model_dir>/study.md, study.json,
accuracy.png, lr.png, batch.png; each policy's run is in <model_dir>/<policy>/ and resumes.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import ClassVar

from keras_caps.runs.config import ConfigError, as_tuple, set_field
from keras_caps.runs.train import TrainConfig

#: Each policy as the TrainConfig fields it sets.
POLICIES = {
    "fixed": dict(lr_policy="fixed", batch_policy="fixed"),
    "exponential": dict(lr_policy="exponential", batch_policy="fixed"),
    "one_cycle": dict(lr_policy="one_cycle", batch_policy="fixed"),
    "warm_restarts": dict(lr_policy="warm_restarts", batch_policy="fixed", lr_cycle_epochs=1.0),
    "adabatch": dict(lr_policy="fixed", batch_policy="adabatch", batch_growth_steps=1),
    "warmadabatch": dict(lr_policy="warmadabatch", batch_policy="warmadabatch"),
}


@dataclasses.dataclass(frozen=True)
class FastrcapsStudyConfig(TrainConfig):
    """TrainConfig's fields (the CapsNet and the baseline recipe) and `policies`: those to
    train (of POLICIES; "fixed", the baseline, is required).

    Presets (paper 002, Sec. III-IV: Adam, lr 1e-3 fixed baseline; exponential 0.96 / 2,000
    steps; one-cycle 1e-4 -> 1e-3 annealed to 1e-5; warm restarts 1e-4..1e-3 with 1-epoch
    cycles; AdaBatch / WarmAdaBatch batch 1 for 3 epochs then 16; baseline batch 16; 30
    epochs; "quick" is the default):
        full:  Sabour CapsNet with the full decoder, the paper's settings, all 60k/10k examples.
        quick: for 2 CPU cores: a small CapsNet (conv 32, 8 x 8D primary, 10 x 16D, no
               decoder), 10,000 training / 5,000 test examples, 5 epochs, batch sizes scaled
               x8 (16 -> 128, 1 -> 8), warm-up 1 epoch (10% of the run, as 3 of 30 in the
               paper), exponential decay steps scaled so the decay per epoch matches the
               paper's (lr_decay_steps=None).

    Example:
        >>> config = FastrcapsStudyConfig.from_preset("quick", model_dir="runs/fastrcaps")
        >>> summary = fastrcaps_study(config)  # doctest: +SKIP
    """

    policies: tuple = tuple(POLICIES)

    MODEL_DIR_HELP: ClassVar[str] = "the study folder."
    DEFAULT_PRESET: ClassVar[str] = "quick"
    PRESETS: ClassVar[dict] = {
        "full": dict(model="capsnet", conv_filters=256, primary_capsules=32, primary_dim=8,
                     class_dim=16, decoder="full", epochs=30, batch_size=16, batch_warmup_size=1,
                     batch_warmup_epochs=3, batch_exponent=4, train_examples=None,
                     test_examples=None, learning_rate=1e-3, lr_min=1e-4, lr_decay_steps=2000,
                     augment_shift=0, init_length=0.0),
        "quick": dict(model="capsnet", conv_filters=32, primary_capsules=8, primary_dim=8,
                      class_dim=16, decoder="none", epochs=5, batch_size=128,
                      batch_warmup_size=8, batch_warmup_epochs=1, batch_exponent=7,
                      train_examples=10000, test_examples=5000, learning_rate=1e-3,
                      lr_min=1e-4, lr_decay_steps=None, augment_shift=0, init_length=0.0),
    }

    def _check(self):
        set_field(self, "policies", as_tuple("policies", self.policies, str))
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown:
            raise ConfigError(f"unknown policies {unknown}; choose from {list(POLICIES)}.")
        if "fixed" not in self.policies:
            raise ConfigError("the study needs the 'fixed' baseline policy in --policies.")


def paper_decay_steps(num_examples, batch_size):
    """Decay steps giving the paper's decay per epoch (2,000 steps at 3,750 steps/epoch)."""
    steps_per_epoch = math.ceil(num_examples / batch_size)
    return max(1, round(2000 * steps_per_epoch / 3750))


COLUMNS = [("policy", "policy", "s"), ("max_accuracy", "max test acc", ".4f"),
           ("max_epoch", "epoch of max", "d"),
           ("epochs_to_target", "epochs to baseline max", "d"),
           ("time_to_target_s", "time to baseline max (s)", ".0f"),
           ("final_accuracy", "final acc", ".4f"), ("total_time_s", "train time (s)", ".0f"),
           ("params", "params", ",d")]


def fastrcaps_study(config, datasets_override=None):
    """Trains every policy (the fixed baseline first); writes the study files.

    Args:
        config: a FastrcapsStudyConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays (or two
            `StreamedSplit`s) instead of loading. With --stream every policy trains from
            disk (nothing is held in memory).
    Returns:
        {"rows": [...], "baseline_max_accuracy", "curves": {policy: accuracies},
         "preset", "dataset", "train_examples", "epochs"}.
    """
    from keras_caps import plots, schedules
    from keras_caps.analysis.convergence import convergence_summary
    from keras_caps.io_utils import markdown_table, write_study
    from keras_caps.runs import optimization
    from keras_caps.runs.datasets import evaluation_split, load_datasets
    from keras_caps.runs.train import train
    from keras_caps.training.loop import num_examples as count

    datasets = load_datasets(config, datasets_override, seed=config.seed, stream_ok=True)
    num_examples = count(datasets[0])
    decay_steps = config.lr_decay_steps or paper_decay_steps(num_examples, config.batch_size)
    results, lr_curves, batch_policies = {}, {}, {}
    order = ["fixed"] + [p for p in config.policies if p != "fixed"]
    for policy in order:
        run_config = TrainConfig.from_config(
            config, **{**POLICIES[policy], "lr_decay_steps": decay_steps,
                       "model_dir": os.path.join(config.model_dir, policy)})
        print(f"== {policy} ==", flush=True)
        results[policy] = train(run_config, datasets_override=datasets)
        batch_policy = optimization.batch_policy(run_config)
        batch_policies[policy] = batch_policy
        lr_curves[policy] = optimization.lr_schedule(run_config, num_examples, batch_policy)
    monitor = "val_accuracy" if config.decoder == "none" else "val_lengths_accuracy"
    curves = {p: [row[monitor] for row in r["history"]] for p, r in results.items()}
    times = {p: [row.get("time_s", 0.0) for row in r["history"]] for p, r in results.items()}
    baseline = max(curves["fixed"])
    rows = []
    for policy in order:
        row = {"policy": policy, "params": results[policy]["params"]}
        row.update(convergence_summary(curves[policy], times[policy], target=baseline))
        rows.append(row)
    table = markdown_table(rows, COLUMNS)
    out = config.model_dir
    total_steps = max(sum(schedules.steps_for_epochs(b, num_examples, config.epochs))
                      for b in batch_policies.values())
    plots.plot_accuracy_curves(curves, os.path.join(out, "accuracy.png"))
    plots.plot_lr_schedules(lr_curves, total_steps, os.path.join(out, "lr.png"))
    plots.plot_batch_schedule(batch_policies.get("warmadabatch", batch_policies["fixed"]),
                              config.epochs, os.path.join(out, "batch.png"))
    header = (f"FasTrCaps study, preset {config.preset}: {config.dataset}, "
              f"{num_examples} training / {count(datasets[1])} "
              f"{evaluation_split(config)} examples, "
              f"{config.epochs} epochs, baseline (fixed) max accuracy {baseline:.4f}.\n\n")
    summary = {"rows": rows, "baseline_max_accuracy": baseline, "curves": curves,
               "preset": config.preset, "dataset": config.dataset,
               "train_examples": num_examples, "epochs": config.epochs}
    config.write(out)
    return write_study(out, header + table + "\n", summary)


__all__ = ["POLICIES", "FastrcapsStudyConfig", "fastrcaps_study", "paper_decay_steps"]
