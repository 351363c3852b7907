r"""Vanishing activations in deep CapsNets and channel pruning (paper 003, Sec. 4).

    python -m train.vanishing_study --model_dir=runs/vanishing --preset=quick
    python -m train.vanishing_study --model_dir=runs/vanishing_full --preset=full

(a) Pruning ratios: the base CapsNet[C, D] (no IntermediateCaps) is trained, retrained with
    CCM, scored with CHIP, and pruned + retrained at each --pruning_ratios value (Table 1).
(b) Depth: IntermediateCaps are added one at a time (I = 1 .. --max_intermediate), each model
    trained from scratch for --deep_epochs, until the best test accuracy falls to
    --collapse_accuracy or below (Table 2). At the collapse depth (or the deepest one tried
    when nothing collapsed) the study then takes the backbone + PrimaryCaps of the pruned base
    models of (a) at each --recovery_ratios value, puts I fresh IntermediateCaps (with the
    pruned C) and a fresh ClassCaps on them and trains again (Table 3, Sec. 3.5). A 0 in
    --recovery_ratios grafts the unpruned base the same way (the control for grafting).
Dead capsules (activation |mean output| <= 0.01) are logged per layer and epoch on
--dead_batches test batches; heatmaps of the last epoch are written per run (figures 2/4/6).

Initialisation of the IntermediateCaps: the library's "capsule" initializer (gain 3, std
3 J / sqrt(N D)) is self-normalising, so deep stacks do not vanish at initialisation and the
collapse may need many layers. --init_gain=g uses the same form with gain g (activations
vanish with depth for g < 2, independent of C); --init_std=s uses a fixed std independent of C
and D, like framework defaults: then a wider layer (larger C, uniform first coupling 1/C) has
smaller activations, which is the mechanism behind the paper's observation that pruning C
lets the network go deeper. What the quick runs showed (Fashion-MNIST subset, 2 epochs):
from scratch with init_std 0.5, I = 5 is on the edge (one random draw collapsed to chance,
another trained to 0.62), while a trained backbone has much shorter primary capsules (mean
length ~0.2 against ~0.5 at initialisation), so fresh IntermediateCaps grafted on it start
two-thirds dead and stay dead. --graft_length (default 0.5) therefore scales the grafted fresh
capsule layers to that mean capsule length on training images first
(keras_caps.training.length_init, LSUV-style); --graft_length=0 reproduces the dead graft.
Compare the grafted PR 0 control with the pruned grafts.

Presets (explicit flags win):
    quick: Fashion-MNIST 5,000 / 1,000, C=8, D=4, backbone (16, 32, 32), class_dim 8,
           init_std 0.5 (at initialisation C=8 is dead from ~4-5 layers, C=6 from ~6-7),
           2 epochs per training stage (1 for CCM), I up to 6, ratios 0 .. 0.75.
    full:  CIFAR-10 as in the paper: CapsNet[C=20, D=8], backbone (64, 128, 128),
           class_dim 16, 30 epochs per stage, I up to 10, the library initializer.
Outputs in --model_dir: study.md, study.json, dead_capsules.png, heatmaps/<run>/*.png, and
one resumable folder per training run.
"""

from __future__ import annotations

import json
import os

from absl import flags

from train import prune as prune_lib
from train import train_capsnet

FLAGS = flags.FLAGS

RATIOS = ["0", "0.125", "0.25", "0.375", "0.5", "0.625", "0.75"]

PRESETS = {
    "quick": dict(
        dataset="fashion_mnist", model="deep_capsnet", num_capsules=8, capsule_dim=4,
        backbone_filters=["16", "32", "32"], class_dim=8, decoder="none", epochs=2,
        ccm_epochs=1, retrain_epochs=2, deep_epochs=2, batch_size=64, train_examples=5000,
        test_examples=1000, ci_batches=4, ci_batch_size=64, max_intermediate=6,
        init_std=0.5, dead_batches=4, pruning_ratios=RATIOS, lr_policy="fixed", augment_shift=0, init_length=0.0,
    ),
    "full": dict(
        dataset="cifar10", model="deep_capsnet", num_capsules=20, capsule_dim=8,
        backbone_filters=["64", "128", "128"], class_dim=16, decoder="none", epochs=30,
        ccm_epochs=10, retrain_epochs=30, deep_epochs=30, batch_size=64, train_examples=None,
        test_examples=None, ci_batches=0, ci_batch_size=128, max_intermediate=10,
        init_std=None, dead_batches=20, pruning_ratios=RATIOS, lr_policy="fixed", augment_shift=0, init_length=0.0,
    ),
}


def define_flags():
    prune_lib.define_flags()
    if "max_intermediate" in FLAGS:
        return
    flags.DEFINE_list("pruning_ratios", RATIOS, "(a) pruning ratios (0 = the unpruned base).")
    flags.DEFINE_integer("max_intermediate", 10, "(b) deepest I to try.")
    flags.DEFINE_integer("deep_epochs", None, "(b) epochs per deep model (default --epochs).")
    flags.DEFINE_float("collapse_accuracy", 0.2, "(b) best test accuracy <= this = collapsed.")
    flags.DEFINE_list("recovery_ratios", ["0.125", "0.25", "0.375"],
                      "(b) pruning ratios tried at the collapse depth; 0 grafts the unpruned "
                      "(CCM-retrained) base: the control for the effect of grafting itself.")
    flags.DEFINE_float("init_gain", None, "IntermediateCaps init: 'capsule' form with this gain.")
    flags.DEFINE_float("init_std", None, "IntermediateCaps init: truncated normal, fixed std.")
    flags.DEFINE_integer("dead_batches", 4, "Test batches (of --ci_batch_size) for dead capsules.")
    flags.DEFINE_integer("collapse_seeds", 0, "(c) train the model at the recovery depth from "
                         "scratch with this many seeds per width to measure how often it "
                         "collapses (0: skip (c)).")
    flags.DEFINE_list("collapse_widths", [], "(c) capsule types C to compare (default: "
                      "--num_capsules and the pruned C of each --recovery_ratios > 0).")
    flags.DEFINE_float("graft_length", 0.5, "(b) grafts: scale each fresh IntermediateCaps / "
                       "ClassCaps kernel so its mean capsule length on 256 training images is "
                       "this (keras_caps.training.length_init); 0 keeps the plain "
                       "initialisation, under which grafts on a trained backbone start dead.")


def apply_preset(flags_obj):
    """Sets the preset's values on flags not given explicitly (absl FLAGS only)."""
    train_capsnet.apply_preset(flags_obj, PRESETS)


def intermediate_initializer(flags_obj, num_capsules, capsule_dim, kernel_size=3):
    """The IntermediateCaps kernel initializer the flags ask for ("capsule" by default).

    --init_std: a truncated normal with that std; --init_gain g: the "capsule" form
    std = g * C / sqrt(k * k * C * D) with gain g instead of the library's 3.
    """
    import keras

    if flags_obj.init_std is not None:
        std = float(flags_obj.init_std)
    elif flags_obj.init_gain is not None:
        n = kernel_size**2 * num_capsules
        std = float(flags_obj.init_gain) * num_capsules / (n * capsule_dim) ** 0.5
    else:
        return "capsule"
    return keras.initializers.TruncatedNormal(stddev=std)


def build_deep(flags_obj, input_shape, num_classes, num_intermediate, backbone_filters=None,
               num_capsules=None):
    """deep_capsnet from the flags (widths overridable), IntermediateCaps init per the flags."""
    from keras_caps.models import deep_capsnet

    decoder = None if flags_obj.decoder == "none" else flags_obj.decoder
    num_capsules = num_capsules or flags_obj.num_capsules
    return deep_capsnet(
        num_capsules, flags_obj.capsule_dim, num_intermediate,
        input_shape=input_shape, num_classes=num_classes,
        backbone_filters=tuple(int(f) for f in (backbone_filters or flags_obj.backbone_filters)),
        class_dim=flags_obj.class_dim, routings=flags_obj.routings, decoder=decoder,
        intermediate_initializer=intermediate_initializer(flags_obj, num_capsules,
                                                          flags_obj.capsule_dim),
    )


def train_deep(flags_obj, datasets, out_dir, heatmap_dir, num_intermediate, graft_from=None):
    """Trains one deep model (optionally on a pruned backbone); returns its result row."""
    from keras_caps.analysis.activations import DeadCapsuleLogger
    from keras_caps.pruning import architecture, copy_matching_weights

    input_shape = tuple(datasets[0][0].shape[1:])
    if len(input_shape) == 2:
        input_shape += (1,)
    num_classes = prune_lib.dataset_num_classes(flags_obj)
    epochs = flags_obj.deep_epochs or flags_obj.epochs
    run_flags = prune_lib.with_overrides(flags_obj, epochs=epochs)
    batch_policy = train_capsnet.batch_policy_from_flags(run_flags)

    graft_init_path = os.path.join(out_dir, "graft_init.json")

    def build():
        if graft_from is None:
            model = build_deep(flags_obj, input_shape, num_classes, num_intermediate)
        else:
            source = prune_lib.load_capsnet(graft_from)
            arch = architecture(source)
            model = build_deep(flags_obj, input_shape, num_classes, num_intermediate,
                               arch["backbone_filters"], arch["num_capsules"])
            copied = copy_matching_weights(source, model)
            graft_init(flags_obj, model, copied, datasets, graft_init_path)
        optimizer = train_capsnet.optimizer_from_flags(run_flags, len(datasets[0][0]),
                                                       batch_policy)
        return prune_lib.compiled(flags_obj, model, optimizer)

    logger = DeadCapsuleLogger(datasets[1][0], num_batches=flags_obj.dead_batches,
                               batch_size=flags_obj.ci_batch_size,
                               csv_path=os.path.join(out_dir, "dead_capsules.csv"),
                               heatmap_dir=heatmap_dir)
    metrics = prune_lib.train_capsnet_fit(flags_obj, build, datasets, out_dir, epochs,
                                          batch_policy, callbacks=[logger])
    dead = logger.history[-1] if logger.history else {}
    if logger.last_activations is None:  # resumed after the last epoch: recompute once
        from keras_caps.analysis.activations import (
            capsule_activations,
            dead_percentages,
            write_heatmaps,
        )

        acts = capsule_activations(prune_lib.load_capsnet(metrics["model_path"]),
                                   datasets[1][0], flags_obj.dead_batches,
                                   flags_obj.ci_batch_size)
        write_heatmaps(acts, heatmap_dir)
        dead = {f"dead_{k}": v for k, v in dead_percentages(acts).items()}
    stats = prune_lib.model_stats(prune_lib.load_capsnet(metrics["model_path"]))
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


def collapse_rates(flags_obj, datasets, depth, pruned):
    """(c) How often CapsNet[C, D, depth] collapses from scratch, per width C, over seeds.

    Widths: --collapse_widths, or --num_capsules plus the C left by each pruned ratio.
    Returns one row per C: seeds, collapsed count, accuracies, dead % of the last layer.
    """
    import keras

    widths = [int(c) for c in flags_obj.collapse_widths] or sorted(
        {int(flags_obj.num_capsules)}
        | {int(r["architecture"]["num_capsules"]) for r in pruned.values()}, reverse=True)
    rows = []
    for width in widths:
        accuracies, dead_last = [], []
        for seed in range(int(flags_obj.collapse_seeds)):
            print(f"== (c) I = {depth}, C = {width}, seed {seed} ==", flush=True)
            run_flags = prune_lib.with_overrides(flags_obj, num_capsules=width, seed=seed)
            keras.utils.set_random_seed(seed)
            name = f"collapse_I{depth}_C{width}_s{seed}"
            row = train_deep(run_flags, datasets, os.path.join(flags_obj.model_dir, name),
                             os.path.join(flags_obj.model_dir, "heatmaps", name), depth)
            accuracies.append(row["best_accuracy"])
            dead_last.append(row["dead"].get(f"intermediate_caps_{depth}", 0.0))
        rows.append({
            "num_capsules": width, "seeds": len(accuracies),
            "collapsed": sum(a <= flags_obj.collapse_accuracy for a in accuracies),
            "mean_accuracy": sum(accuracies) / len(accuracies),
            "accuracies": ", ".join(f"{a:.3f}" for a in accuracies),
            "mean_dead_last": sum(dead_last) / len(dead_last),
        })
    return rows


def graft_init(flags_obj, model, copied, datasets, path):
    """Initialises a graft's fresh capsule layers and records their state before training.

    With --graft_length > 0 the fresh IntermediateCaps and ClassCaps (every capsule layer not
    in `copied`) are scaled to that mean capsule length on 256 training images. Writes `path`:
    {"lengths": calibration report or null, "dead": dead-capsule percentages at
    initialisation on --dead_batches test batches}.
    """
    from keras_caps.analysis.activations import capsule_activations, dead_percentages
    from keras_caps.io_utils import write_json
    from keras_caps.training.length_init import CALIBRATED_LAYERS, calibrate_capsule_lengths

    lengths = None
    if flags_obj.graft_length:
        fresh = [layer.name for layer in model.layers
                 if isinstance(layer, CALIBRATED_LAYERS) and layer.name not in copied]
        lengths = calibrate_capsule_lengths(model, datasets[0][0], fresh,
                                            target_length=flags_obj.graft_length)
    acts = capsule_activations(model, datasets[1][0], flags_obj.dead_batches,
                               flags_obj.ci_batch_size)
    write_json(path, {"lengths": lengths, "dead": dead_percentages(acts)})


def _ratio_name(ratio):
    return f"pr_{ratio:g}"


def run(flags_obj, datasets_override=None):
    """Runs (a) and (b); returns the study dict (also study.json / study.md)."""
    import keras

    from keras_caps import plots
    from keras_caps.io_utils import markdown_table, write_study

    if not flags_obj.model_dir:
        raise ValueError("--model_dir is required: the study folder.")
    ratios = sorted({float(r) for r in flags_obj.pruning_ratios})
    recovery = [float(r) for r in flags_obj.recovery_ratios]
    for r in ratios + recovery:
        if not 0.0 <= r < 1.0:
            raise ValueError(f"pruning ratios must lie in [0, 1), got {r}.")
    if flags_obj.max_intermediate < 1:
        raise ValueError(f"--max_intermediate must be >= 1, got {flags_obj.max_intermediate}.")
    if flags_obj.init_std is not None and flags_obj.init_gain is not None:
        raise ValueError("give at most one of --init_std and --init_gain.")
    if flags_obj.collapse_seeds < 0:
        raise ValueError(f"--collapse_seeds must be >= 0, got {flags_obj.collapse_seeds}.")
    if any(int(c) < 1 for c in flags_obj.collapse_widths):
        raise ValueError(f"--collapse_widths must all be >= 1, got {flags_obj.collapse_widths}.")
    if flags_obj.model != "deep_capsnet":
        raise ValueError("the vanishing study needs --model=deep_capsnet.")
    keras.utils.set_random_seed(flags_obj.seed)
    out = flags_obj.model_dir
    base_flags = prune_lib.with_overrides(flags_obj, num_intermediate=0, base_model=None,
                                 pruning_ratio=max(ratios + recovery, default=0.0))
    prune_lib.check_flags(base_flags)
    datasets = train_capsnet.load_datasets(flags_obj, datasets_override)

    # (a) pruning ratios on the base model
    print("== (a) base model, CCM, CI scores ==", flush=True)
    prep = prune_lib.prepare(base_flags, datasets)
    pruned = {}
    for ratio in sorted(set(r for r in ratios + recovery if r > 0)):
        print(f"== (a) pruning ratio {ratio} ==", flush=True)
        pruned[ratio] = prune_lib.prune_and_retrain(
            base_flags, datasets, prep["ccm_path"], prep["scores"], ratio,
            os.path.join(out, _ratio_name(ratio)))
    rows_a = []
    for ratio in ratios:
        if ratio == 0:
            rows_a.append({"pr": 0.0, "accuracy": prep["base_accuracy"],
                           "params": prep["base"]["params"], "flops": prep["base"]["flops"]})
        else:
            r = pruned[ratio]
            rows_a.append({"pr": ratio, "accuracy": r["best_accuracy"], "params": r["params"],
                           "flops": r["flops"],
                           "capsules": r["architecture"]["num_capsules"]})

    # (b) depth until collapse, then pruning at the collapse depth
    rows_b, collapse = [], None
    for depth in range(1, flags_obj.max_intermediate + 1):
        print(f"== (b) I = {depth} ==", flush=True)
        row = train_deep(flags_obj, datasets, os.path.join(out, f"deep_I{depth}"),
                         os.path.join(out, "heatmaps", f"I{depth}"), depth)
        row["pr"] = 0.0
        rows_b.append(row)
        if row["best_accuracy"] <= flags_obj.collapse_accuracy:
            collapse = depth
            break
    target = collapse or flags_obj.max_intermediate
    for row in rows_b:
        row["backbone"] = "scratch"
    for ratio in recovery:
        print(f"== (b) I = {target}, pruning ratio {ratio} ==", flush=True)
        name = f"deep_I{target}_{_ratio_name(ratio)}"
        source = prep["ccm_path"] if ratio == 0 else pruned[ratio]["best_model"]
        row = train_deep(flags_obj, datasets, os.path.join(out, name),
                         os.path.join(out, "heatmaps", name[len("deep_"):]), target,
                         graft_from=source)
        row["pr"] = ratio
        row["backbone"] = "grafted"
        rows_b.append(row)

    rows_c = collapse_rates(flags_obj, datasets, target, pruned) if flags_obj.collapse_seeds \
        else []

    curves = {f"I={r['num_intermediate']} PR={r['pr']:g}": r["dead_history"] for r in rows_b
              if r["dead_history"] and None not in r["dead_history"]}
    if curves:
        plots.plot_accuracy_curves(curves, os.path.join(out, "dead_capsules.png"),
                                   ylabel="dead capsules (%)", title="dead capsules per epoch")
    table_a = markdown_table(rows_a, [("pr", "PR", "g"), ("accuracy", "best test acc", ".4f"),
                                      ("params", "params", ",d"), ("flops", "FLOPs", ",d"),
                                      ("capsules", "C after pruning", "d")])
    for r in rows_b:
        r["dead_all"] = r["dead"].get("all")
        r["dead_last"] = r["dead"].get(f"intermediate_caps_{r['num_intermediate']}")
    table_b = markdown_table(rows_b, [
        ("num_intermediate", "I", "d"), ("pr", "PR", "g"), ("backbone", "backbone", "s"),
        ("best_accuracy", "best test acc", ".4f"), ("dead_all", "dead % (all caps layers)", ".1f"),
        ("dead_last", "dead % (last IntermediateCaps)", ".1f"),
        ("dead_at_init", "dead % at init (grafts)", ".1f"), ("params", "params", ",d")])
    init = ("library 'capsule' (gain 3)" if flags_obj.init_std is None and
            flags_obj.init_gain is None else
            f"std {flags_obj.init_std}" if flags_obj.init_std is not None else
            f"'capsule' form, gain {flags_obj.init_gain}")
    collapse_text = (f"collapsed (best acc <= {flags_obj.collapse_accuracy}) at I = {collapse}"
                     if collapse else
                     f"no collapse up to I = {flags_obj.max_intermediate}")
    warning = ""
    if prep["base_accuracy"] <= flags_obj.collapse_accuracy:
        warning = (f"**Warning:** the base model (I = 0) itself only reaches "
                   f"{prep['base_accuracy']:.4f} <= --collapse_accuracy "
                   f"{flags_obj.collapse_accuracy}: the models are undertrained, so a "
                   "\"collapse\" below says nothing about vanishing activations (look at the "
                   "dead-capsule percentages); train longer or on more data.\n\n")
    text = (
        f"# Vanishing activations study (paper 003), preset {flags_obj.preset}\n\n"
        f"{warning}"
        f"{flags_obj.dataset}, {len(datasets[0][0])} training / {len(datasets[1][0])} "
        f"{train_capsnet.evaluation_split(flags_obj)} "
        f"examples; CapsNet[C={flags_obj.num_capsules}, D={flags_obj.capsule_dim}], backbone "
        f"{list(flags_obj.backbone_filters)}; epochs: base {flags_obj.epochs}, CCM "
        f"{flags_obj.ccm_epochs}, pruned {flags_obj.retrain_epochs}, deep "
        f"{flags_obj.deep_epochs or flags_obj.epochs}; IntermediateCaps init: {init}.\n\n"
        f"## (a) accuracy vs pruning ratio (I = 0)\n\nPR > 0: the CCM-retrained base, pruned "
        f"and retrained for {flags_obj.retrain_epochs} epochs (so it trains longer than PR = 0)."
        f"\n\n{table_a}\n\n"
        f"## (b) IntermediateCaps and pruning\n\n{collapse_text}. Backbone \"scratch\": the "
        f"whole model trained from scratch; \"grafted\": at I = {target}, the backbone + "
        "PrimaryCaps of the pruned base model at that PR (PR 0: the unpruned CCM-retrained "
        "base) under fresh IntermediateCaps and ClassCaps"
        + (f", each scaled to mean capsule length {flags_obj.graft_length:g} on training "
           "images before training" if flags_obj.graft_length else
           " with the plain initialisation")
        + f".\n\n{table_b}\n\n"
        "Dead capsule: |mean capsule output| <= 0.01 over "
        f"{flags_obj.dead_batches} test batches. Heatmaps: heatmaps/<run>/.\n"
    )
    if rows_c:
        table_c = markdown_table(rows_c, [
            ("num_capsules", "C", "d"), ("seeds", "seeds", "d"),
            ("collapsed", "collapsed", "d"), ("mean_accuracy", "mean best test acc", ".4f"),
            ("accuracies", "best test acc per seed", "s"),
            ("mean_dead_last", "mean dead % (last IntermediateCaps)", ".1f")])
        text += (
            f"\n## (c) collapse rate at I = {target}\n\nThe same depth trained from scratch "
            f"with seeds 0..{flags_obj.collapse_seeds - 1} (initialisation and data order) for "
            "each width C (backbone unchanged); collapsed: best test acc <= "
            f"{flags_obj.collapse_accuracy}. Fewer capsule types is what pruning gives the "
            f"capsule layers.\n\n{table_c}\n")
    summary = {"preset": flags_obj.preset, "dataset": flags_obj.dataset,
               "ratios": rows_a, "depth": rows_b, "collapse_depth": collapse,
               "recovery_depth": target, "init": init, "collapse_rate": rows_c,
               "base_undertrained": bool(warning)}
    return write_study(out, text, summary)


def main(_):
    apply_preset(FLAGS)
    summary = run(FLAGS)
    print(json.dumps({"collapse_depth": summary["collapse_depth"]}))


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    run_main(main)
