r"""Channel pruning of a (deep) CapsNet, the flow of paper 003 (Sec. 3.4-3.5).

    1. base:    train the base model with the margin loss (or --base_model=PATH)
    2. ccm:     retrain it with margin - alpha * sum_l CCM_l (backbone ReLU maps + PrimaryCaps)
    3. scores:  CHIP channel-independence scores of every backbone / PrimaryCaps channel
    4. prune:   drop the lowest-CI channels at --pruning_ratio (counts rounded up to a multiple
                of D, PrimaryCaps by whole capsule types), rebuild the smaller model with a
                fresh ClassCaps (or --class_caps=transfer)
    5. retrain: the pruned model with the margin loss; best.keras keeps the best epoch
    6. report:  params, FLOPs and accuracy before and after (metrics.json, report.md)

Examples:
    python -m train.prune --model_dir=runs/prune --preset=quick
    python -m train.prune --model_dir=runs/prune_full --preset=full --pruning_ratio=0.25
    python -m train.prune --model_dir=runs/p2 --preset=quick --base_model=runs/prune/base/best.keras

Presets (explicit flags win):
    quick: for 2 CPU cores: Fashion-MNIST 5,000 train / 1,000 test, deep_capsnet C=8, D=4,
           backbone (16, 32, 32), class_dim 8, no decoder, 2 base + 1 CCM + 2 retraining epochs.
    full:  the paper's CIFAR-10 set-up: CapsNet[C=20, D=8] on all 50k/10k images, backbone
           (64, 128, 128), class_dim 16, 30 + 10 + 30 epochs, CI over every training batch.
Accuracy is on the test split (as in the paper, which keeps the best test epoch). Each stage
lives in its own folder (base/, ccm/, pruned/) and resumes; scores.json caches the CI scores.
"""

from __future__ import annotations

import json
import os
import types

from absl import flags

from train import train_capsnet

FLAGS = flags.FLAGS

PRESETS = {
    "quick": dict(
        dataset="fashion_mnist", model="deep_capsnet", num_capsules=8, capsule_dim=4,
        num_intermediate=0, backbone_filters=["16", "32", "32"], class_dim=8, decoder="none",
        epochs=2, ccm_epochs=1, retrain_epochs=2, batch_size=64, train_examples=5000,
        test_examples=1000, ci_batches=4, ci_batch_size=64, learning_rate=1e-3,
        lr_policy="fixed", augment_shift=0, init_length=0.0,
    ),
    "full": dict(
        dataset="cifar10", model="deep_capsnet", num_capsules=20, capsule_dim=8,
        num_intermediate=0, backbone_filters=["64", "128", "128"], class_dim=16, decoder="none",
        epochs=30, ccm_epochs=10, retrain_epochs=30, batch_size=64, train_examples=None,
        test_examples=None, ci_batches=0, ci_batch_size=128, learning_rate=1e-3,
        lr_policy="fixed", augment_shift=0, init_length=0.0,
    ),
}


def define_flags():
    """Defines this binary's flags (idempotent)."""
    train_capsnet.define_flags()
    if "pruning_ratio" in FLAGS:
        return
    flags.DEFINE_string("base_model", None, "A trained .keras model to prune (skips stage 1).")
    flags.DEFINE_float("pruning_ratio", 0.25, "PR in [0, 1): fraction of channels to prune.")
    flags.DEFINE_float("ccm_alpha", 0.1, "Weight alpha of the CCM term (eq. 5).")
    flags.DEFINE_enum("ccm_reduction", "sample", ["sample", "batch"],
                      "CCM correlations per sample over H*W, or pooled over B*H*W.")
    flags.DEFINE_integer("ccm_epochs", 1, "Epochs of CCM retraining (0: skip).")
    flags.DEFINE_integer("retrain_epochs", 2, "Epochs of retraining the pruned model.")
    flags.DEFINE_integer("ci_batches", 4, "Training batches to average CI scores over (0: all).")
    flags.DEFINE_integer("ci_batch_size", 64, "Batch size for the CI scores.")
    flags.DEFINE_enum("class_caps", "fresh", ["fresh", "transfer"],
                      "Pruned ClassCaps: new (paper) or the kept rows of the old kernel.")
    flags.DEFINE_bool("run_eagerly", False, "Run the CCM / pruned / deep models' steps eagerly "
                      "(debugging; faster than tracing only for tiny models).")
    flags.DEFINE_bool("control", True, "Also retrain the unpruned (CCM) parent exactly as the "
                      "pruned model is retrained (PR 0, same class_caps, epochs and seed): the "
                      "equal-training control the pruned accuracy is compared with.")
    flags.DEFINE_enum("intermediate_caps", "prune", ["prune", "keep", "fresh"],
                      "IntermediateCaps of a deep model: kept types in and out (paper: same C "
                      "as PrimaryCaps), all output types kept, or rebuilt fresh.")


def apply_preset(flags_obj):
    """Sets the preset's values on flags not given explicitly (absl FLAGS only)."""
    train_capsnet.apply_preset(flags_obj, PRESETS)


def with_overrides(flags_obj, **overrides):
    values = {k: getattr(flags_obj, k) for k in dir(flags_obj) if not k.startswith("_")}
    values.update(overrides)
    return types.SimpleNamespace(**values)


def dataset_num_classes(flags_obj):
    return train_capsnet.dataset_info(flags_obj).num_classes


def compiled(flags_obj, model, optimizer):
    """compile_capsnet with the flags' reconstruction weight (and --run_eagerly)."""
    from keras_caps.training import compile_capsnet

    model = compile_capsnet(model, optimizer, recon_weight=flags_obj.recon_weight)
    model.run_eagerly = bool(getattr(flags_obj, "run_eagerly", False))
    return model


def evaluate(model, test_data, num_classes, batch_size=256):
    """Test accuracy of a (compiled) model."""
    from keras_caps import data as data_lib
    from keras_caps.training import accuracy_key, model_io

    ds = data_lib.make_dataset(*test_data, batch_size=batch_size, num_classes=num_classes)
    results = model.evaluate(ds.map(model_io(model)), verbose=0, return_dict=True)
    return float(results[accuracy_key(model)])


def model_stats(model):
    """{"params", "flops"} of a capsnet (per example, forward)."""
    from keras_caps.analysis import total_flops
    from keras_caps.pruning import unwrap

    model = unwrap(model)
    return {"params": int(model.count_params()), "flops": int(total_flops(model))}


def load_capsnet(path):
    """A saved capsnet (a saved CCMTrainer is unwrapped)."""
    import keras_caps.pruning  # noqa: F401  (registers CCMTrainer)
    from keras_caps import validation
    from keras_caps.pruning import unwrap

    return validation.check_capsnet(unwrap(validation.load_keras_model(path, "model file")),
                                    f"model {path!r}")


def train_base(flags_obj, datasets, out_dir):
    """Stage 1: the base model (train_capsnet.run in <out_dir>); returns (path, metrics)."""
    metrics = train_capsnet.run(with_overrides(flags_obj, model_dir=out_dir),
                                datasets_override=datasets)
    return os.path.join(out_dir, "best.keras"), metrics


def train_ccm(flags_obj, datasets, base_path, out_dir):
    """Stage 2: CCM retraining of the model at `base_path`; returns (best capsnet path, metrics).

    The best CCM epoch (test accuracy) is saved unwrapped as <out_dir>/capsnet.keras.
    """
    from keras_caps.io_utils import save_model
    from keras_caps.pruning import CCMTrainer

    run_flags = with_overrides(flags_obj, epochs=flags_obj.ccm_epochs)
    batch_policy = train_capsnet.batch_policy_from_flags(run_flags)

    def build():
        trainer = CCMTrainer(load_capsnet(base_path), alpha=flags_obj.ccm_alpha,
                             reduction=flags_obj.ccm_reduction)
        optimizer = train_capsnet.optimizer_from_flags(run_flags, len(datasets[0][0]),
                                                       batch_policy)
        return compiled(flags_obj, trainer, optimizer)

    metrics = train_capsnet_fit(flags_obj, build, datasets, out_dir, flags_obj.ccm_epochs,
                                batch_policy)
    path = os.path.join(out_dir, "capsnet.keras")
    save_model(load_capsnet(os.path.join(out_dir, "best.keras")), path)
    return path, metrics


def train_capsnet_fit(flags_obj, build, datasets, out_dir, epochs, batch_policy, callbacks=()):
    """fit_capsnet with the flags' strategy, shift augmentation, seed and verbosity."""
    from keras_caps.training import fit_capsnet

    return fit_capsnet(
        build, datasets[0], datasets[1], out_dir, epochs=epochs, batch_policy=batch_policy,
        strategy=train_capsnet.make_strategy(flags_obj.distribution_strategy),
        augment_shift=flags_obj.augment_shift, seed=flags_obj.seed, verbose=flags_obj.verbose,
        callbacks=callbacks,
    )


def channel_scores(flags_obj, model_path, train_data, out_path):
    """Stage 3: CI scores of the model at `model_path` (cached in `out_path`)."""
    import numpy as np

    from keras_caps.io_utils import write_json
    from keras_caps.pruning import chip_scores

    if os.path.exists(out_path):
        with open(out_path) as f:
            cached = json.load(f)
        if cached.get("model") == os.path.abspath(model_path):
            return {k: np.asarray(v) for k, v in cached["scores"].items()}
    num_batches = flags_obj.ci_batches or None
    scores = chip_scores(load_capsnet(model_path), train_data[0], num_batches=num_batches,
                         batch_size=flags_obj.ci_batch_size)
    write_json(out_path, {"model": os.path.abspath(model_path), "num_batches": num_batches,
                          "batch_size": flags_obj.ci_batch_size,
                          "scores": {k: v.tolist() for k, v in scores.items()}})
    return scores


def prune_and_retrain(flags_obj, datasets, model_path, scores, ratio, out_dir, callbacks=()):
    """Stages 4-5 at one pruning ratio; returns a result dict (metrics, kept, accuracies)."""
    from keras_caps.io_utils import write_json
    from keras_caps.pruning import architecture, prune_model, pruning_summary, select_channels

    source = load_capsnet(model_path)
    kept = select_channels(scores, ratio, architecture(source)["capsule_dim"])
    num_classes = dataset_num_classes(flags_obj)
    run_flags = with_overrides(flags_obj, epochs=flags_obj.retrain_epochs)
    batch_policy = train_capsnet.batch_policy_from_flags(run_flags)

    def build():
        import keras

        keras.utils.set_random_seed(flags_obj.seed)  # the same fresh ClassCaps every build
        pruned = prune_model(load_capsnet(model_path), kept, class_caps=flags_obj.class_caps,
                             intermediate_caps=flags_obj.intermediate_caps)
        optimizer = train_capsnet.optimizer_from_flags(run_flags, len(datasets[0][0]),
                                                       batch_policy)
        return compiled(flags_obj, pruned, optimizer)

    before = build()  # the model fit_capsnet trains (same seed) unless it resumes
    accuracy_before = evaluate(before, datasets[1], num_classes)
    stats = model_stats(before)
    write_json(os.path.join(out_dir, "kept.json"),
               {"pruning_ratio": ratio, "kept": {k: v.tolist() for k, v in kept.items()},
                "summary": pruning_summary(scores, kept)})
    del before
    metrics = train_capsnet_fit(flags_obj, build, datasets, out_dir, flags_obj.retrain_epochs,
                                batch_policy, callbacks)
    return {
        "pruning_ratio": ratio,
        "kept": {k: int(len(v)) for k, v in kept.items()},
        "summary": pruning_summary(scores, kept),
        "architecture": architecture(load_capsnet(os.path.join(out_dir, "best.keras"))),
        "accuracy_before_retraining": accuracy_before,
        "best_accuracy": metrics["best_test_accuracy"],
        "final_accuracy": metrics["test_accuracy"],
        "history": metrics["history"],
        "best_model": os.path.join(out_dir, "best.keras"),
        **stats,
    }


def check_flags(flags_obj):
    if not flags_obj.model_dir:
        raise ValueError("--model_dir is required: the folder for every stage and the report.")
    if not 0.0 <= flags_obj.pruning_ratio < 1.0:
        raise ValueError(f"--pruning_ratio must lie in [0, 1), got {flags_obj.pruning_ratio}.")
    if flags_obj.ccm_epochs < 0 or flags_obj.retrain_epochs < 1:
        raise ValueError("--ccm_epochs must be >= 0 and --retrain_epochs >= 1.")
    if flags_obj.ccm_alpha < 0:
        raise ValueError(f"--ccm_alpha must be >= 0, got {flags_obj.ccm_alpha}.")


def prepare(flags_obj, datasets):
    """Stages 1-3 under flags_obj.model_dir: {"base_path", "ccm_path", "scores", rows...}."""
    from keras_caps.training import compile_capsnet

    out = flags_obj.model_dir
    num_classes = dataset_num_classes(flags_obj)
    if flags_obj.base_model:
        base_path = flags_obj.base_model
        base = load_capsnet(base_path)
        train_capsnet.check_loaded_model(base, base_path, "base_model", flags_obj,
                                         train_capsnet.image_shape_of(datasets[1][0]),
                                         num_classes)
        base = compile_capsnet(base)
        base_accuracy = evaluate(base, datasets[1], num_classes)
    else:
        base_path, base_metrics = train_base(flags_obj, datasets, os.path.join(out, "base"))
        base_accuracy = base_metrics["best_test_accuracy"]
        base = load_capsnet(base_path)
    base_stats = model_stats(base)
    if flags_obj.ccm_epochs:
        ccm_path, ccm_metrics = train_ccm(flags_obj, datasets, base_path, os.path.join(out, "ccm"))
        ccm_accuracy = ccm_metrics["best_test_accuracy"]
        last = ccm_metrics["history"][-1]
        ccm_value = last.get("ccm")
    else:
        ccm_path, ccm_accuracy, ccm_value = base_path, None, None
    scores = channel_scores(flags_obj, ccm_path, datasets[0], os.path.join(out, "scores.json"))
    return {"base_path": base_path, "base_accuracy": base_accuracy, "base": base_stats,
            "ccm_path": ccm_path, "ccm_accuracy": ccm_accuracy, "ccm_final": ccm_value,
            "scores": scores}


def report_markdown(flags_obj, prep, results, control=None, target=None):
    """report.md text: the base model, the control (if any) and one row per pruning ratio."""
    from keras_caps.io_utils import markdown_table

    rows = [{"model": "base", "params": prep["base"]["params"], "flops": prep["base"]["flops"],
             "acc": prep["base_accuracy"], "acc_ccm": prep["ccm_accuracy"]}]
    for r in ([] if control is None else [control]) + list(results):
        rows.append({
            "model": "control (PR=0)" if r is control else f"PR={r['pruning_ratio']}",
            "params": r["params"], "flops": r["flops"],
            "acc_before": r["accuracy_before_retraining"], "acc": r["best_accuracy"],
            "params_pct": 100.0 * r["params"] / prep["base"]["params"],
            "flops_pct": 100.0 * r["flops"] / prep["base"]["flops"],
        })
    columns = [("model", "model", "s"), ("params", "params", ",d"),
               ("params_pct", "params % of base", ".1f"), ("flops", "FLOPs", ",d"),
               ("flops_pct", "FLOPs % of base", ".1f"), ("acc_ccm", "acc after CCM", ".4f"),
               ("acc_before", "acc pruned, not retrained", ".4f"),
               ("acc", "best test acc", ".4f")]
    layers = ["| layer | channels | kept |", "|---|---:|---:|"]
    for r in results:
        for row in r["summary"]:
            layers.append(f"| PR={r['pruning_ratio']} {row['layer']} | {row['channels']} | "
                          f"{row['kept']} |")
    split = train_capsnet.evaluation_split(flags_obj)
    split_size = (flags_obj.validation_examples if split == "validation"
                  else flags_obj.test_examples or "all")
    header = (f"# Channel pruning (paper 003)\n\n{flags_obj.dataset}, "
              f"{flags_obj.train_examples or 'all'} training / "
              f"{split_size} {split} examples; base {flags_obj.epochs} epochs, CCM "
              f"{flags_obj.ccm_epochs} "
              f"epochs (alpha {flags_obj.ccm_alpha}), retraining {flags_obj.retrain_epochs} "
              f"epochs, class caps {flags_obj.class_caps}; CI over "
              f"{flags_obj.ci_batches or 'all'} batches of {flags_obj.ci_batch_size}. Accuracy "
              f"is the best {split}-split epoch.\n\n")
    text = header + markdown_table(rows, columns) + "\n\n" + "\n".join(layers) + "\n"
    if target is not None:
        yes = {True: "met", False: "not met"}
        text += (
            f"\nTarget (>= {100 * target['min_params_reduction']:.0f} % fewer parameters at "
            f"equal or better accuracy than the unpruned parent): "
            f"{100 * target['params_reduction']:.1f} % fewer parameters "
            f"({yes[target['size_met']]}); pruned {target['pruned_accuracy']:.4f} vs parent "
            f"{target['parent_accuracy']:.4f} ({yes[target['vs_parent_met']]})")
        if "control_accuracy" in target:
            text += (f", vs the parent retrained the same way {target['control_accuracy']:.4f} "
                     f"({yes[target['vs_control_met']]})")
        text += f". Overall: **{yes[target['met']]}**.\n"
    return text


def run(flags_obj, datasets_override=None):
    """Runs the whole flow; returns the metrics dict (also metrics.json / report.md)."""
    import keras

    from keras_caps.io_utils import write_study

    check_flags(flags_obj)
    keras.utils.set_random_seed(flags_obj.seed)
    datasets = train_capsnet.load_datasets(flags_obj, datasets_override)
    out = flags_obj.model_dir
    prep = prepare(flags_obj, datasets)
    result = prune_and_retrain(flags_obj, datasets, prep["ccm_path"], prep["scores"],
                               flags_obj.pruning_ratio, os.path.join(out, "pruned"))
    control = None
    if flags_obj.control:
        control = prune_and_retrain(flags_obj, datasets, prep["ccm_path"], prep["scores"], 0.0,
                                    os.path.join(out, "control"))
    metrics = {
        "base": {**prep["base"], "accuracy": prep["base_accuracy"], "path": prep["base_path"]},
        "ccm": {"accuracy": prep["ccm_accuracy"], "final_ccm": prep["ccm_final"],
                "path": prep["ccm_path"], "alpha": flags_obj.ccm_alpha},
        "pruned": {k: v for k, v in result.items() if k != "history"},
        "pruning_ratio": flags_obj.pruning_ratio,
        "params_reduction": 1.0 - result["params"] / prep["base"]["params"],
        "flops_reduction": 1.0 - result["flops"] / prep["base"]["flops"],
        "scores": {k: [float(s) for s in v] for k, v in prep["scores"].items()},
        "control": None if control is None else {k: v for k, v in control.items()
                                                 if k != "history"},
    }
    metrics["target"] = target_check(prep, result, control)
    return write_study(out, report_markdown(flags_obj, prep, [result], control,
                                            metrics["target"]), metrics,
                       stem=("report", "metrics"))


def target_check(prep, result, control=None, min_reduction=0.25):
    """Issue 5's target: >= 25 % fewer parameters than the parent at equal or better accuracy.

    The parent is the unpruned model the channels were scored on (CCM-retrained, or the base
    when --ccm_epochs=0); the pruned model trains --retrain_epochs more, so with a control
    (the parent retrained the same way) the accuracy is also compared with it.
    """
    parent = prep["ccm_accuracy"] if prep["ccm_accuracy"] is not None else prep["base_accuracy"]
    reduction = 1.0 - result["params"] / prep["base"]["params"]
    out = {"params_reduction": reduction, "min_params_reduction": min_reduction,
           "parent_accuracy": parent, "pruned_accuracy": result["best_accuracy"],
           "size_met": reduction >= min_reduction,
           "vs_parent_met": result["best_accuracy"] >= parent}
    if control is not None:
        out["control_accuracy"] = control["best_accuracy"]
        out["vs_control_met"] = result["best_accuracy"] >= control["best_accuracy"]
    out["met"] = out["size_met"] and out["vs_parent_met"] and out.get("vs_control_met", True)
    return out


def main(_):
    apply_preset(FLAGS)
    metrics = run(FLAGS)
    print(json.dumps({k: metrics[k] for k in ("pruning_ratio", "params_reduction",
                                              "flops_reduction")}))


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    flags.mark_flag_as_required("model_dir")
    run_main(main)
