"""Channel pruning of a (deep) CapsNet, the flow of paper 003 (Sec. 3.4-3.5): `PruneConfig`, `prune`.

    1. base:    train the base model with the margin loss (or base_model=PATH)
    2. ccm:     retrain it with margin - alpha * sum_l CCM_l (backbone ReLU maps + PrimaryCaps)
    3. scores:  CHIP channel-independence scores of every backbone / PrimaryCaps channel
    4. prune:   drop the lowest-CI channels at pruning_ratio (counts rounded up to a multiple
                of D, PrimaryCaps by whole capsule types), rebuild the smaller model with a
                fresh ClassCaps (or class_caps="transfer")
    5. retrain: the pruned model with the margin loss; best.keras keeps the best epoch
    6. report:  params, FLOPs and accuracy before and after (metrics.json, report.md)

Each stage lives in its own folder under model_dir (base/, ccm/, pruned/, control/) and
resumes; scores.json caches the CI scores. `prepare` (stages 1-3) and `prune_and_retrain`
(4-5) are also the building blocks of the vanishing-activations study.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import ClassVar

from keras_caps.runs.config import Config, ConfigError, check_choice
from keras_caps.runs.models import load_capsnet
from keras_caps.runs.train import TrainConfig

_PRUNE_RECIPE = dict(model="deep_capsnet", num_intermediate=0, decoder="none", batch_size=64,
                     learning_rate=1e-3, lr_policy="fixed", augment_shift=0, init_length=0.0)


@dataclasses.dataclass(frozen=True)
class PruneOptions(Config):
    """The pruning flow's own fields.

    base_model: a trained .keras model to prune (skips stage 1). pruning_ratio: PR in [0, 1).
    ccm_alpha (>= 0): weight of the CCM term (eq. 5); ccm_reduction: correlations per "sample"
    over H*W or pooled over the "batch"; ccm_epochs (>= 0, 0: skip CCM); retrain_epochs (>= 1).
    ci_batches (0: all) training batches of ci_batch_size for the CI scores. class_caps:
    "fresh" (paper; with init_length its capsule lengths are calibrated like a fresh model's)
    or "transfer" (the kept rows of the old kernel). intermediate_caps of a
    deep model: "prune", "keep" or "fresh". control: also retrain the unpruned parent the same
    way (the equal-training control). run_eagerly: eager steps (debugging, tiny models).
    """

    base_model: str | None = None
    pruning_ratio: float = 0.25
    ccm_alpha: float = 0.1
    ccm_reduction: str = "sample"
    ccm_epochs: int = 1
    retrain_epochs: int = 2
    ci_batches: int = 4
    ci_batch_size: int = 64
    class_caps: str = "fresh"
    run_eagerly: bool = False
    control: bool = True
    intermediate_caps: str = "prune"

    def _check(self):
        if not 0.0 <= self.pruning_ratio < 1.0:
            raise ConfigError(f"--pruning_ratio must lie in [0, 1), got {self.pruning_ratio}.")
        if self.ccm_epochs < 0 or self.retrain_epochs < 1:
            raise ConfigError("--ccm_epochs must be >= 0 and --retrain_epochs >= 1.")
        if self.ccm_alpha < 0:
            raise ConfigError(f"--ccm_alpha must be >= 0, got {self.ccm_alpha}.")
        check_choice("ccm_reduction", self.ccm_reduction, ("sample", "batch"))
        check_choice("class_caps", self.class_caps, ("fresh", "transfer"))
        check_choice("intermediate_caps", self.intermediate_caps, ("prune", "keep", "fresh"))


@dataclasses.dataclass(frozen=True)
class PruneConfig(PruneOptions, TrainConfig):
    """`prune`'s config: the pruning fields and TrainConfig's (the base model's training).

    Presets (explicit flags win):
        quick: for 2 CPU cores: Fashion-MNIST 5,000 train / 1,000 test, deep_capsnet C=8, D=4,
               backbone (16, 32, 32), class_dim 8, no decoder, 2 base + 1 CCM + 2 retraining
               epochs.
        full:  the paper's CIFAR-10 set-up: CapsNet[C=20, D=8] on all 50k/10k images, backbone
               (64, 128, 128), class_dim 16, 30 + 10 + 30 epochs, CI over every training batch.

    Example:
        >>> config = PruneConfig.from_preset("quick", model_dir="runs/prune", pruning_ratio=0.5)
        >>> metrics = prune(config)  # doctest: +SKIP
    """

    MODEL_DIR_HELP: ClassVar[str] = "the folder for every stage and the report."
    PRESETS: ClassVar[dict] = {
        "quick": dict(
            _PRUNE_RECIPE, dataset="fashion_mnist", num_capsules=8, capsule_dim=4,
            backbone_filters=["16", "32", "32"], class_dim=8, epochs=2, ccm_epochs=1,
            retrain_epochs=2, train_examples=5000, test_examples=1000, ci_batches=4,
            ci_batch_size=64,
        ),
        "full": dict(
            _PRUNE_RECIPE, dataset="cifar10", num_capsules=20, capsule_dim=8,
            backbone_filters=["64", "128", "128"], class_dim=16, epochs=30, ccm_epochs=10,
            retrain_epochs=30, train_examples=None, test_examples=None, ci_batches=0,
            ci_batch_size=128,
        ),
    }


# ----------------------------------------------------------------------------- stages


def compiled(config, model, optimizer):
    """compile_capsnet with the config's recon_weight (and run_eagerly)."""
    from keras_caps.training import compile_capsnet

    model = compile_capsnet(model, optimizer, recon_weight=config.recon_weight)
    model.run_eagerly = bool(config.run_eagerly)
    return model


def fit(config, build, datasets, out_dir, epochs, batch_policy, callbacks=()):
    """fit_capsnet with the config's strategy, shift augmentation, seed and verbosity."""
    from keras_caps.runs.optimization import make_strategy
    from keras_caps.training import fit_capsnet

    return fit_capsnet(
        build, datasets[0], datasets[1], out_dir, epochs=epochs, batch_policy=batch_policy,
        strategy=make_strategy(config.distribution_strategy),
        augment_shift=config.augment_shift, seed=config.seed, verbose=config.verbose,
        callbacks=callbacks,
    )


def train_base(config, datasets, out_dir):
    """Stage 1: the base model (`train` in `out_dir`); returns (best.keras path, metrics)."""
    from keras_caps.runs.train import train

    metrics = train(TrainConfig.from_config(config, model_dir=out_dir),
                    datasets_override=datasets)
    return os.path.join(out_dir, "best.keras"), metrics


def train_ccm(config, datasets, base_path, out_dir):
    """Stage 2: CCM retraining of the model at `base_path`; returns (best capsnet path, metrics).

    The best CCM epoch (test accuracy) is saved unwrapped as <out_dir>/capsnet.keras.
    """
    from keras_caps.io_utils import save_model
    from keras_caps.pruning import CCMTrainer
    from keras_caps.runs import optimization
    from keras_caps.training.loop import num_examples

    run_config = dataclasses.replace(config, epochs=config.ccm_epochs)
    batch_policy = optimization.batch_policy(run_config)

    def build():
        trainer = CCMTrainer(load_capsnet(base_path), alpha=config.ccm_alpha,
                             reduction=config.ccm_reduction)
        optimizer = optimization.make_optimizer(run_config, num_examples(datasets[0]),
                                                batch_policy)
        return compiled(config, trainer, optimizer)

    metrics = fit(config, build, datasets, out_dir, config.ccm_epochs, batch_policy)
    path = os.path.join(out_dir, "capsnet.keras")
    save_model(load_capsnet(os.path.join(out_dir, "best.keras")), path)
    return path, metrics


def channel_scores(config, model_path, train_data, out_path):
    """Stage 3: CHIP CI scores {layer: (channels,)} of the model at `model_path` over
    config.ci_batches (0: all) batches of config.ci_batch_size training images (the first
    ones, unshuffled; `train_data` arrays or a `StreamedSplit` read from disk), cached in
    `out_path` (reused while it names the same model)."""
    import numpy as np

    from keras_caps.data_sources import StreamedSplit, streamed_errors
    from keras_caps.io_utils import write_json
    from keras_caps.pruning import chip_scores

    if os.path.exists(out_path):
        with open(out_path) as f:
            cached = json.load(f)
        if cached.get("model") == os.path.abspath(model_path):
            return {k: np.asarray(v) for k, v in cached["scores"].items()}
    num_batches = config.ci_batches or None
    images = (train_data.dataset(batch_size=config.ci_batch_size)
              if isinstance(train_data, StreamedSplit) else train_data[0])
    with streamed_errors(train_data):
        scores = chip_scores(load_capsnet(model_path), images, num_batches=num_batches,
                             batch_size=config.ci_batch_size)
    write_json(out_path, {"model": os.path.abspath(model_path), "num_batches": num_batches,
                          "batch_size": config.ci_batch_size,
                          "scores": {k: v.tolist() for k, v in scores.items()}})
    return scores


def prune_and_retrain(config, datasets, model_path, scores, ratio, out_dir, callbacks=()):
    """Stages 4-5 at one pruning ratio.

    Args:
        config: a PruneConfig (class_caps, intermediate_caps, retrain_epochs, training).
        datasets: ((x_train, y_train), (x_test, y_test)), either split possibly a
            `StreamedSplit` (read from disk).
        model_path: the scored (CCM-retrained) parent.
        scores: its CI scores (`channel_scores`).
        ratio: the pruning ratio.
        out_dir: the run folder of the retraining (kept.json, best.keras, ...).
    Returns:
        {"pruning_ratio", "kept", "summary", "architecture", "accuracy_before_retraining",
         "best_accuracy", "final_accuracy", "history", "best_model", "params", "flops"}.
    """
    from keras_caps.io_utils import write_json
    from keras_caps.pruning import architecture, prune_model, pruning_summary, select_channels
    from keras_caps.runs import datasets as datasets_lib
    from keras_caps.runs import optimization
    from keras_caps.runs.measure import accuracy, model_stats
    from keras_caps.training.loop import num_examples

    source = load_capsnet(model_path)
    kept = select_channels(scores, ratio, architecture(source)["capsule_dim"])
    num_classes = datasets_lib.dataset_info(config).num_classes
    run_config = dataclasses.replace(config, epochs=config.retrain_epochs)
    batch_policy = optimization.batch_policy(run_config)

    def build():
        import keras

        keras.utils.set_random_seed(config.seed)  # the same fresh ClassCaps every build
        pruned = prune_model(load_capsnet(model_path), kept, class_caps=config.class_caps,
                             intermediate_caps=config.intermediate_caps)
        if config.class_caps == "fresh" and config.init_length:
            # a fresh ClassCaps starts saturated like any fresh model (train's --init_length)
            from keras_caps.training.length_init import calibrate_capsule_lengths

            calibrate_capsule_lengths(pruned, datasets_lib.head_images(datasets[0]),
                                      layer_names=["class_caps"],
                                      target_length=config.init_length)
        optimizer = optimization.make_optimizer(run_config, num_examples(datasets[0]),
                                                batch_policy)
        return compiled(config, pruned, optimizer)

    before = build()  # the model fit_capsnet trains (same seed) unless it resumes
    accuracy_before = accuracy(before, datasets[1], num_classes)
    stats = model_stats(before)
    write_json(os.path.join(out_dir, "kept.json"),
               {"pruning_ratio": ratio, "kept": {k: v.tolist() for k, v in kept.items()},
                "summary": pruning_summary(scores, kept)})
    del before
    metrics = fit(config, build, datasets, out_dir, config.retrain_epochs, batch_policy,
                  callbacks)
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


def prepare(config, datasets):
    """Stages 1-3 under config.model_dir; returns {"base_path", "base_accuracy", "base"
    (params, flops), "ccm_path", "ccm_accuracy", "ccm_final", "scores"}."""
    from keras_caps.runs import datasets as datasets_lib
    from keras_caps.runs.measure import accuracy, model_stats
    from keras_caps.runs.models import check_loaded_model
    from keras_caps.training import compile_capsnet

    out = config.model_dir
    num_classes = datasets_lib.dataset_info(config).num_classes
    if config.base_model:
        base_path = config.base_model
        base = load_capsnet(base_path)
        check_loaded_model(base, base_path, "base_model", config.dataset,
                           datasets_lib.split_shape(datasets[1]), num_classes)
        base = compile_capsnet(base)
        base_accuracy = accuracy(base, datasets[1], num_classes)
    else:
        base_path, base_metrics = train_base(config, datasets, os.path.join(out, "base"))
        base_accuracy = base_metrics["best_test_accuracy"]
        base = load_capsnet(base_path)
    base_stats = model_stats(base)
    if config.ccm_epochs:
        ccm_path, ccm_metrics = train_ccm(config, datasets, base_path, os.path.join(out, "ccm"))
        ccm_accuracy = ccm_metrics["best_test_accuracy"]
        last = ccm_metrics["history"][-1]
        ccm_value = last.get("ccm")
    else:
        ccm_path, ccm_accuracy, ccm_value = base_path, None, None
    scores = channel_scores(config, ccm_path, datasets[0], os.path.join(out, "scores.json"))
    return {"base_path": base_path, "base_accuracy": base_accuracy, "base": base_stats,
            "ccm_path": ccm_path, "ccm_accuracy": ccm_accuracy, "ccm_final": ccm_value,
            "scores": scores}


# ----------------------------------------------------------------------------- report


def target_check(prep, result, control=None, min_reduction=0.25):
    """Issue 5's target: >= 25 % fewer parameters than the parent at equal or better accuracy.

    The parent is the unpruned model the channels were scored on (CCM-retrained, or the base
    when ccm_epochs=0); the pruned model trains retrain_epochs more, so with a control
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


def report_markdown(config, prep, results, control=None, target=None):
    """report.md text: the base model, the control (if any) and one row per pruning ratio."""
    from keras_caps.io_utils import markdown_table
    from keras_caps.runs.datasets import evaluation_split

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
    split = evaluation_split(config)
    split_size = (config.validation_examples if split == "validation"
                  else config.test_examples or "all")
    header = (f"# Channel pruning (paper 003)\n\n{config.dataset}, "
              f"{config.train_examples or 'all'} training / "
              f"{split_size} {split} examples; base {config.epochs} epochs, CCM "
              f"{config.ccm_epochs} "
              f"epochs (alpha {config.ccm_alpha}), retraining {config.retrain_epochs} "
              f"epochs, class caps {config.class_caps}; CI over "
              f"{config.ci_batches or 'all'} batches of {config.ci_batch_size}. Accuracy "
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


# ----------------------------------------------------------------------------- the flow


def prune(config, datasets_override=None, echo=True):
    """Runs the whole flow; returns the metrics dict (also metrics.json / report.md).

    Args:
        config: a PruneConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading,
            or two `StreamedSplit`s (the pipeline's --stream); with config.stream the folder
            is streamed from disk (base, CCM and retraining batch by batch, CI scores over
            the first ci_batches batches).
        echo: also print report.md (the pipeline prints it only with --verbose=2).
    Returns:
        {"base", "ccm", "pruned", "pruning_ratio", "params_reduction", "flops_reduction",
         "scores", "control", "target"}.
    """
    import keras

    from keras_caps.io_utils import write_study
    from keras_caps.runs.datasets import load_datasets

    keras.utils.set_random_seed(config.seed)
    datasets = load_datasets(config, datasets_override, seed=config.seed, stream_ok=True)
    out = config.model_dir
    prep = prepare(config, datasets)
    result = prune_and_retrain(config, datasets, prep["ccm_path"], prep["scores"],
                               config.pruning_ratio, os.path.join(out, "pruned"))
    control = None
    if config.control:
        control = prune_and_retrain(config, datasets, prep["ccm_path"], prep["scores"], 0.0,
                                    os.path.join(out, "control"))
    metrics = {
        "base": {**prep["base"], "accuracy": prep["base_accuracy"], "path": prep["base_path"]},
        "ccm": {"accuracy": prep["ccm_accuracy"], "final_ccm": prep["ccm_final"],
                "path": prep["ccm_path"], "alpha": config.ccm_alpha},
        "pruned": {k: v for k, v in result.items() if k != "history"},
        "pruning_ratio": config.pruning_ratio,
        "params_reduction": 1.0 - result["params"] / prep["base"]["params"],
        "flops_reduction": 1.0 - result["flops"] / prep["base"]["flops"],
        "scores": {k: [float(s) for s in v] for k, v in prep["scores"].items()},
        "control": None if control is None else {k: v for k, v in control.items()
                                                 if k != "history"},
    }
    metrics["target"] = target_check(prep, result, control)
    config.write(out)
    return write_study(out, report_markdown(config, prep, [result], control,
                                            metrics["target"]), metrics,
                       stem=("report", "metrics"), echo=echo)


__all__ = ["PruneConfig", "PruneOptions", "channel_scores", "compiled", "fit", "prepare",
           "prune", "prune_and_retrain", "report_markdown", "target_check", "train_base",
           "train_ccm"]
