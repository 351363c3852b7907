"""Vanishing activations in deep CapsNets and channel pruning (paper 003, Sec. 4).

    (a) pruning ratios   the base CapsNet[C, D] (I = 0) trained, CCM-retrained, CHIP-scored,
                         and pruned + retrained at each of pruning_ratios (Table 1)
    (b) depth            IntermediateCaps added one at a time (I = 1 .. max_intermediate),
                         each model trained from scratch until the best test accuracy falls to
                         collapse_accuracy; at that depth (or the deepest tried) fresh
                         IntermediateCaps + ClassCaps grafted on the pruned base models of (a)
                         at each of recovery_ratios (0: the unpruned base, the control) (Tables
                         2-3, Sec. 3.5)
    (c) collapse rate    with collapse_seeds, the recovery depth trained from scratch per
                         width C over seeds

`VanishingConfig` checks the settings, `vanishing_study` runs (a)-(c) and
keras_caps.runs.vanishing_report writes study.md; the command line and what the quick runs
showed: train/vanishing_study.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import ClassVar

from keras_caps.runs.config import Config, ConfigError, as_tuple, set_field
from keras_caps.runs.prune import PruneConfig

RATIOS = ("0", "0.125", "0.25", "0.375", "0.5", "0.625", "0.75")

_RECIPE = dict(model="deep_capsnet", decoder="none", batch_size=64, lr_policy="fixed",
               augment_shift=0, init_length=0.0, pruning_ratios=RATIOS)


@dataclasses.dataclass(frozen=True)
class VanishingOptions(Config):
    """The study's own fields.

    pruning_ratios: (a) ratios in [0, 1) (0 = the unpruned base). max_intermediate (>= 1):
    (b) deepest I to try; deep_epochs: epochs per deep model (None: epochs);
    collapse_accuracy: best test accuracy <= this = collapsed; recovery_ratios: ratios in
    [0, 1) grafted at the collapse depth. init_gain / init_std (at most one): the
    IntermediateCaps init ("capsule" form with this gain / a truncated normal with this std;
    neither: the library's "capsule" initializer). dead_batches: test batches (of
    ci_batch_size) for the dead-capsule counts. collapse_seeds (>= 0; 0: skip (c)) and
    collapse_widths (>= 1 each; empty: num_capsules and the pruned C of each recovery ratio).
    graft_length: scale each grafted fresh capsule layer to this mean capsule length on 256
    training images (0: the plain initialisation).
    """

    pruning_ratios: tuple = RATIOS
    max_intermediate: int = 10
    deep_epochs: int | None = None
    collapse_accuracy: float = 0.2
    recovery_ratios: tuple = ("0.125", "0.25", "0.375")
    init_gain: float | None = None
    init_std: float | None = None
    dead_batches: int = 4
    collapse_seeds: int = 0
    collapse_widths: tuple = ()
    graft_length: float = 0.5

    def _check(self):
        set_field(self, "pruning_ratios", as_tuple("pruning_ratios", self.pruning_ratios, float))
        set_field(self, "recovery_ratios",
                  as_tuple("recovery_ratios", self.recovery_ratios, float))
        set_field(self, "collapse_widths", as_tuple("collapse_widths", self.collapse_widths, int))
        for r in self.pruning_ratios + self.recovery_ratios:
            if not 0.0 <= r < 1.0:
                raise ConfigError(f"pruning ratios must lie in [0, 1), got {r}.")
        if self.max_intermediate < 1:
            raise ConfigError(f"--max_intermediate must be >= 1, got {self.max_intermediate}.")
        if self.init_std is not None and self.init_gain is not None:
            raise ConfigError("give at most one of --init_std and --init_gain.")
        if self.collapse_seeds < 0:
            raise ConfigError(f"--collapse_seeds must be >= 0, got {self.collapse_seeds}.")
        if any(c < 1 for c in self.collapse_widths):
            raise ConfigError(f"--collapse_widths must all be >= 1, got "
                              f"{[str(c) for c in self.collapse_widths]}.")


@dataclasses.dataclass(frozen=True)
class VanishingConfig(VanishingOptions, PruneConfig):
    """The study's config: VanishingOptions, and PruneConfig's fields (the base model, CCM,
    CHIP scores and retraining of (a)); the model must be a deep_capsnet.

    Presets (explicit flags win):
        quick: Fashion-MNIST 5,000 / 1,000, C=8, D=4, backbone (16, 32, 32), class_dim 8,
               init_std 0.5 (at initialisation C=8 is dead from ~4-5 layers, C=6 from ~6-7),
               2 epochs per training stage (1 for CCM), I up to 6, ratios 0 .. 0.75.
        full:  CIFAR-10 as in the paper: CapsNet[C=20, D=8], backbone (64, 128, 128),
               class_dim 16, 30 epochs per stage, I up to 10, the library initializer.

    Example:
        >>> config = VanishingConfig.from_preset("quick", model_dir="runs/vanishing")
        >>> summary = vanishing_study(config)  # doctest: +SKIP
    """

    MODEL_DIR_HELP: ClassVar[str] = "the study folder."
    PRESETS: ClassVar[dict] = {
        "quick": dict(
            _RECIPE, dataset="fashion_mnist", num_capsules=8, capsule_dim=4,
            backbone_filters=["16", "32", "32"], class_dim=8, epochs=2, ccm_epochs=1,
            retrain_epochs=2, deep_epochs=2, train_examples=5000, test_examples=1000,
            ci_batches=4, ci_batch_size=64, max_intermediate=6, init_std=0.5, dead_batches=4,
        ),
        "full": dict(
            _RECIPE, dataset="cifar10", num_capsules=20, capsule_dim=8,
            backbone_filters=["64", "128", "128"], class_dim=16, epochs=30, ccm_epochs=10,
            retrain_epochs=30, deep_epochs=30, train_examples=None, test_examples=None,
            ci_batches=0, ci_batch_size=128, max_intermediate=10, init_std=None,
            dead_batches=20,
        ),
    }

    def _check(self):
        if self.model != "deep_capsnet":
            raise ConfigError("the vanishing study needs --model=deep_capsnet.")

    def base_config(self):
        """The PruneConfig of (a): the base model without IntermediateCaps, trained here
        (no base_model), scored once for the largest ratio."""
        return PruneConfig.from_config(
            self, num_intermediate=0, base_model=None,
            pruning_ratio=max(self.pruning_ratios + self.recovery_ratios, default=0.0))


# ----------------------------------------------------------------------------- models


def intermediate_initializer(config, num_capsules, capsule_dim, kernel_size=3):
    """The IntermediateCaps kernel initializer the config asks for ("capsule" by default).

    init_std: a truncated normal with that std; init_gain g: the "capsule" form
    std = g * C / sqrt(k * k * C * D) with gain g instead of the library's 3.
    """
    import keras

    if config.init_std is not None:
        std = float(config.init_std)
    elif config.init_gain is not None:
        n = kernel_size**2 * num_capsules
        std = float(config.init_gain) * num_capsules / (n * capsule_dim) ** 0.5
    else:
        return "capsule"
    return keras.initializers.TruncatedNormal(stddev=std)


def build_deep(config, input_shape, num_classes, num_intermediate, backbone_filters=None,
               num_capsules=None):
    """deep_capsnet of the config (widths overridable), IntermediateCaps init per the config."""
    from keras_caps.models import deep_capsnet
    from keras_caps.runs.models import deep_capsnet_arguments

    arguments = deep_capsnet_arguments(config, input_shape, num_classes)
    num_capsules = num_capsules or config.num_capsules
    arguments.update(
        num_capsules=num_capsules, num_intermediate=num_intermediate,
        backbone_filters=tuple(int(f) for f in (backbone_filters or config.backbone_filters)),
        intermediate_initializer=intermediate_initializer(config, num_capsules,
                                                          config.capsule_dim),
    )
    return deep_capsnet(**arguments)


def dead_probe(config, datasets):
    """The evaluation images the dead-capsule counts read: the first dead_batches x
    ci_batch_size (decoded from disk for a `StreamedSplit`)."""
    from keras_caps.runs.datasets import head_images

    return head_images(datasets[1], int(config.dead_batches) * int(config.ci_batch_size))


def graft_init(config, model, copied, datasets, path, probe):
    """Initialises a graft's fresh capsule layers and records their state before training.

    With graft_length > 0 the fresh IntermediateCaps and ClassCaps (every capsule layer not
    in `copied`) are scaled to that mean capsule length on 256 training images. Writes `path`:
    {"lengths": calibration report or null, "dead": dead-capsule percentages at
    initialisation on `probe`, the `dead_probe` images}.
    """
    from keras_caps.analysis.activations import capsule_activations, dead_percentages
    from keras_caps.io_utils import write_json
    from keras_caps.runs.datasets import head_images
    from keras_caps.training.length_init import CALIBRATED_LAYERS, calibrate_capsule_lengths

    lengths = None
    if config.graft_length:
        fresh = [layer.name for layer in model.layers
                 if isinstance(layer, CALIBRATED_LAYERS) and layer.name not in copied]
        lengths = calibrate_capsule_lengths(model, head_images(datasets[0]), fresh,
                                            target_length=config.graft_length)
    acts = capsule_activations(model, probe, config.dead_batches, config.ci_batch_size)
    write_json(path, {"lengths": lengths, "dead": dead_percentages(acts)})


def train_deep(config, datasets, out_dir, heatmap_dir, num_intermediate, graft_from=None):
    """Trains one deep model (optionally grafted on the backbone + PrimaryCaps of the model
    at `graft_from`) with a dead-capsule logger; returns its result row."""
    from keras_caps.analysis.activations import DeadCapsuleLogger
    from keras_caps.pruning import architecture, copy_matching_weights
    from keras_caps.runs import optimization
    from keras_caps.runs.datasets import dataset_info, split_shape
    from keras_caps.runs.measure import model_stats
    from keras_caps.runs.models import load_capsnet
    from keras_caps.runs.prune import compiled, fit
    from keras_caps.training.loop import num_examples

    input_shape = split_shape(datasets[0])
    probe = dead_probe(config, datasets)
    num_classes = dataset_info(config).num_classes
    epochs = config.deep_epochs or config.epochs
    run_config = dataclasses.replace(config, epochs=epochs)
    batch_policy = optimization.batch_policy(run_config)

    graft_init_path = os.path.join(out_dir, "graft_init.json")

    def build():
        if graft_from is None:
            model = build_deep(config, input_shape, num_classes, num_intermediate)
        else:
            source = load_capsnet(graft_from)
            arch = architecture(source)
            model = build_deep(config, input_shape, num_classes, num_intermediate,
                               arch["backbone_filters"], arch["num_capsules"])
            copied = copy_matching_weights(source, model)
            graft_init(config, model, copied, datasets, graft_init_path, probe)
        optimizer = optimization.make_optimizer(run_config, num_examples(datasets[0]),
                                                batch_policy)
        return compiled(config, model, optimizer)

    logger = DeadCapsuleLogger(probe, num_batches=config.dead_batches,
                               batch_size=config.ci_batch_size,
                               csv_path=os.path.join(out_dir, "dead_capsules.csv"),
                               heatmap_dir=heatmap_dir)
    metrics = fit(config, build, datasets, out_dir, epochs, batch_policy, callbacks=[logger])
    dead = logger.history[-1] if logger.history else {}
    if logger.last_activations is None:  # resumed after the last epoch: recompute once
        from keras_caps.analysis.activations import (
            capsule_activations,
            dead_percentages,
            write_heatmaps,
        )

        acts = capsule_activations(load_capsnet(metrics["model_path"]), probe,
                                   config.dead_batches, config.ci_batch_size)
        write_heatmaps(acts, heatmap_dir)
        dead = {f"dead_{k}": v for k, v in dead_percentages(acts).items()}
    stats = model_stats(load_capsnet(metrics["model_path"]))
    at_init = {}
    if graft_from is not None and os.path.exists(graft_init_path):
        with open(graft_init_path) as f:
            at_init = json.load(f)
    return {
        "dead_at_init": at_init.get("dead", {}).get("all"),
        "graft_lengths": at_init.get("lengths"),
        "num_intermediate": num_intermediate,
        "best_accuracy": metrics["best_test_accuracy"],
        "final_accuracy": metrics["test_accuracy"],
        "dead": {k[len("dead_"):]: float(v) for k, v in dead.items() if k.startswith("dead_")},
        "dead_history": [r.get("dead_all") for r in logger.history],
        **stats,
    }


# ----------------------------------------------------------------------------- stages


def ratio_name(ratio):
    """The folder name of a pruning ratio's run: pr_0.25."""
    return f"pr_{ratio:g}"


def pruning_ratios_stage(config, datasets):
    """(a): base model, CCM, CI scores, and every ratio > 0 of pruning_ratios and
    recovery_ratios pruned and retrained. Returns (prep, {ratio: prune_and_retrain result},
    rows of table (a))."""
    from keras_caps.runs.prune import prepare, prune_and_retrain

    base = config.base_config()
    ratios = sorted(set(config.pruning_ratios))
    print("== (a) base model, CCM, CI scores ==", flush=True)
    prep = prepare(base, datasets)
    pruned = {}
    for ratio in sorted(set(r for r in ratios + list(config.recovery_ratios) if r > 0)):
        print(f"== (a) pruning ratio {ratio} ==", flush=True)
        pruned[ratio] = prune_and_retrain(
            base, datasets, prep["ccm_path"], prep["scores"], ratio,
            os.path.join(config.model_dir, ratio_name(ratio)))
    rows = []
    for ratio in ratios:
        if ratio == 0:
            rows.append({"pr": 0.0, "accuracy": prep["base_accuracy"],
                         "params": prep["base"]["params"], "flops": prep["base"]["flops"]})
        else:
            r = pruned[ratio]
            rows.append({"pr": ratio, "accuracy": r["best_accuracy"], "params": r["params"],
                         "flops": r["flops"], "capsules": r["architecture"]["num_capsules"]})
    return prep, pruned, rows


def depth_stage(config, datasets, prep, pruned):
    """(b): deeper models from scratch until the collapse, then the grafts at that depth.
    Returns (rows of table (b), collapse depth or None, the recovery depth)."""
    out = config.model_dir
    rows, collapse = [], None
    for depth in range(1, config.max_intermediate + 1):
        print(f"== (b) I = {depth} ==", flush=True)
        row = train_deep(config, datasets, os.path.join(out, f"deep_I{depth}"),
                         os.path.join(out, "heatmaps", f"I{depth}"), depth)
        row["pr"] = 0.0
        rows.append(row)
        if row["best_accuracy"] <= config.collapse_accuracy:
            collapse = depth
            break
    target = collapse or config.max_intermediate
    for row in rows:
        row["backbone"] = "scratch"
    for ratio in config.recovery_ratios:
        print(f"== (b) I = {target}, pruning ratio {ratio} ==", flush=True)
        name = f"deep_I{target}_{ratio_name(ratio)}"
        source = prep["ccm_path"] if ratio == 0 else pruned[ratio]["best_model"]
        row = train_deep(config, datasets, os.path.join(out, name),
                         os.path.join(out, "heatmaps", name[len("deep_"):]), target,
                         graft_from=source)
        row["pr"] = ratio
        row["backbone"] = "grafted"
        rows.append(row)
    return rows, collapse, target


def collapse_rates(config, datasets, depth, pruned):
    """(c) How often CapsNet[C, D, depth] collapses from scratch, per width C, over seeds.

    Widths: collapse_widths, or num_capsules plus the C left by each pruned ratio.
    Returns one row per C: seeds, collapsed count, accuracies, dead % of the last layer.
    """
    import keras

    widths = [int(c) for c in config.collapse_widths] or sorted(
        {int(config.num_capsules)}
        | {int(r["architecture"]["num_capsules"]) for r in pruned.values()}, reverse=True)
    rows = []
    for width in widths:
        accuracies, dead_last = [], []
        for seed in range(int(config.collapse_seeds)):
            print(f"== (c) I = {depth}, C = {width}, seed {seed} ==", flush=True)
            run_config = dataclasses.replace(config, num_capsules=width, seed=seed)
            keras.utils.set_random_seed(seed)
            name = f"collapse_I{depth}_C{width}_s{seed}"
            row = train_deep(run_config, datasets, os.path.join(config.model_dir, name),
                             os.path.join(config.model_dir, "heatmaps", name), depth)
            accuracies.append(row["best_accuracy"])
            dead_last.append(row["dead"].get(f"intermediate_caps_{depth}", 0.0))
        rows.append({
            "num_capsules": width, "seeds": len(accuracies),
            "collapsed": sum(a <= config.collapse_accuracy for a in accuracies),
            "mean_accuracy": sum(accuracies) / len(accuracies),
            "accuracies": ", ".join(f"{a:.3f}" for a in accuracies),
            "mean_dead_last": sum(dead_last) / len(dead_last),
        })
    return rows


def vanishing_study(config, datasets_override=None):
    """Runs (a), (b) and (c); writes study.md, study.json and dead_capsules.png.

    Args:
        config: a VanishingConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays (or two
            `StreamedSplit`s) instead of loading. With --stream every model trains, and CCM
            and the CI scores read, from disk; the capsule-length init and the dead-capsule
            counts decode the few images they read.
    Returns:
        {"preset", "dataset", "ratios" (table a), "depth" (table b), "collapse_depth",
         "recovery_depth", "init", "collapse_rate" (table c), "base_undertrained"}.
    """
    import keras

    from keras_caps.io_utils import write_study
    from keras_caps.runs import vanishing_report
    from keras_caps.runs.datasets import load_datasets

    keras.utils.set_random_seed(config.seed)
    config.base_config()  # its settings are checked before anything trains
    datasets = load_datasets(config, datasets_override, seed=config.seed, stream_ok=True)
    prep, pruned, rows_a = pruning_ratios_stage(config, datasets)
    rows_b, collapse, target = depth_stage(config, datasets, prep, pruned)
    rows_c = collapse_rates(config, datasets, target, pruned) if config.collapse_seeds else []
    vanishing_report.plot_dead_capsules(rows_b, config.model_dir)
    text, summary = vanishing_report.report(config, datasets, prep, rows_a, rows_b, rows_c,
                                            collapse, target)
    config.write(config.model_dir)
    return write_study(config.model_dir, text, summary)


__all__ = ["RATIOS", "VanishingConfig", "VanishingOptions", "build_deep", "collapse_rates",
           "dead_probe", "depth_stage", "graft_init", "intermediate_initializer", "pruning_ratios_stage",
           "ratio_name", "train_deep", "vanishing_study"]
