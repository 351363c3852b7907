"""The vanishing-activations study's report: study.md text, the study.json summary, the plot.

Written by keras_caps.runs.vanishing_study from its tables: (a) accuracy vs pruning ratio,
(b) depth, dead capsules and grafts, (c) collapse rate per width.
"""

from __future__ import annotations

import os

TABLE_A = [("pr", "PR", "g"), ("accuracy", "best test acc", ".4f"), ("params", "params", ",d"),
           ("flops", "FLOPs", ",d"), ("capsules", "C after pruning", "d")]
TABLE_B = [("num_intermediate", "I", "d"), ("pr", "PR", "g"), ("backbone", "backbone", "s"),
           ("best_accuracy", "best test acc", ".4f"),
           ("dead_all", "dead % (all caps layers)", ".1f"),
           ("dead_last", "dead % (last IntermediateCaps)", ".1f"),
           ("dead_at_init", "dead % at init (grafts)", ".1f"), ("params", "params", ",d")]
TABLE_C = [("num_capsules", "C", "d"), ("seeds", "seeds", "d"),
           ("collapsed", "collapsed", "d"), ("mean_accuracy", "mean best test acc", ".4f"),
           ("accuracies", "best test acc per seed", "s"),
           ("mean_dead_last", "mean dead % (last IntermediateCaps)", ".1f")]


def plot_dead_capsules(rows_b, out):
    """dead_capsules.png: the dead percentage per epoch of every (b) run that logged one."""
    from keras_caps import plots

    curves = {f"I={r['num_intermediate']} PR={r['pr']:g}": r["dead_history"] for r in rows_b
              if r["dead_history"] and None not in r["dead_history"]}
    if curves:
        plots.plot_accuracy_curves(curves, os.path.join(out, "dead_capsules.png"),
                                   ylabel="dead capsules (%)", title="dead capsules per epoch")


def init_description(config):
    """How the IntermediateCaps were initialised, in words."""
    if config.init_std is None and config.init_gain is None:
        return "library 'capsule' (gain 3)"
    if config.init_std is not None:
        return f"std {config.init_std}"
    return f"'capsule' form, gain {config.init_gain}"


def report(config, datasets, prep, rows_a, rows_b, rows_c, collapse, target):
    """(study.md text, study.json summary) of the study.

    Args:
        config: the VanishingConfig.
        datasets: the study's ((x_train, y_train), (x_eval, y_eval)).
        prep: the base model's stages 1-3 (keras_caps.runs.prune.prepare).
        rows_a, rows_b, rows_c: tables (a), (b), (c) (rows_b gains its dead_all / dead_last
            columns here).
        collapse: the collapse depth (None: none up to max_intermediate).
        target: the recovery depth of the grafts.
    """
    from keras_caps.io_utils import markdown_table
    from keras_caps.runs.datasets import evaluation_split
    from keras_caps.training.loop import num_examples

    table_a = markdown_table(rows_a, TABLE_A)
    for r in rows_b:
        r["dead_all"] = r["dead"].get("all")
        r["dead_last"] = r["dead"].get(f"intermediate_caps_{r['num_intermediate']}")
    table_b = markdown_table(rows_b, TABLE_B)
    init = init_description(config)
    collapse_text = (f"collapsed (best acc <= {config.collapse_accuracy}) at I = {collapse}"
                     if collapse else
                     f"no collapse up to I = {config.max_intermediate}")
    warning = ""
    if prep["base_accuracy"] <= config.collapse_accuracy:
        warning = (f"**Warning:** the base model (I = 0) itself only reaches "
                   f"{prep['base_accuracy']:.4f} <= --collapse_accuracy "
                   f"{config.collapse_accuracy}: the models are undertrained, so a "
                   "\"collapse\" below says nothing about vanishing activations (look at the "
                   "dead-capsule percentages); train longer or on more data.\n\n")
    backbone = [str(f) for f in config.backbone_filters]  # as the flag spells them
    text = (
        f"# Vanishing activations study (paper 003), preset {config.preset}\n\n"
        f"{warning}"
        f"{config.dataset}, {num_examples(datasets[0])} training / {num_examples(datasets[1])} "
        f"{evaluation_split(config)} "
        f"examples; CapsNet[C={config.num_capsules}, D={config.capsule_dim}], backbone "
        f"{backbone}; epochs: base {config.epochs}, CCM "
        f"{config.ccm_epochs}, pruned {config.retrain_epochs}, deep "
        f"{config.deep_epochs or config.epochs}; IntermediateCaps init: {init}.\n\n"
        f"## (a) accuracy vs pruning ratio (I = 0)\n\nPR > 0: the CCM-retrained base, pruned "
        f"and retrained for {config.retrain_epochs} epochs (so it trains longer than PR = 0)."
        f"\n\n{table_a}\n\n"
        f"## (b) IntermediateCaps and pruning\n\n{collapse_text}. Backbone \"scratch\": the "
        f"whole model trained from scratch; \"grafted\": at I = {target}, the backbone + "
        "PrimaryCaps of the pruned base model at that PR (PR 0: the unpruned CCM-retrained "
        "base) under fresh IntermediateCaps and ClassCaps"
        + (f", each scaled to mean capsule length {config.graft_length:g} on training "
           "images before training" if config.graft_length else
           " with the plain initialisation")
        + f".\n\n{table_b}\n\n"
        "Dead capsule: |mean capsule output| <= 0.01 over "
        f"{config.dead_batches} test batches. Heatmaps: heatmaps/<run>/.\n"
    )
    if rows_c:
        text += (
            f"\n## (c) collapse rate at I = {target}\n\nThe same depth trained from scratch "
            f"with seeds 0..{config.collapse_seeds - 1} (initialisation and data order) for "
            "each width C (backbone unchanged); collapsed: best test acc <= "
            f"{config.collapse_accuracy}. Fewer capsule types is what pruning gives the "
            f"capsule layers.\n\n{markdown_table(rows_c, TABLE_C)}\n")
    summary = {"preset": config.preset, "dataset": config.dataset,
               "ratios": rows_a, "depth": rows_b, "collapse_depth": collapse,
               "recovery_depth": target, "init": init, "collapse_rate": rows_c,
               "base_undertrained": bool(warning)}
    return text, summary


__all__ = ["init_description", "plot_dead_capsules", "report"]
