r"""The binaries' entry functions: define the flags, parse them, make one library call.

    python -m train.train_capsnet ...   keras-caps-train ...       train_capsnet()
    python -m train.distill ...         keras-caps-distill ...     distill()
    python -m train.finetune ...        keras-caps-finetune ...    finetune()
    python -m train.prune ...           keras-caps-prune ...       prune()
    python -m train.quantize ...        keras-caps-quantize ...    quantize()
    python -m train.pipeline ...        keras-caps-pipeline ...    pipeline()
    python -m train.kd_study ...        keras-caps-kd-study ...    kd_study()
    python -m train.fastrcaps_study ... keras-caps-fastrcaps-study ...  fastrcaps_study()
    python -m train.vanishing_study ... keras-caps-vanishing-study ...  vanishing_study()
    python -m train.demo ...            keras-caps-demo ...        demo()

Each entry function defines its binary's flags (keras_caps.runs.flags), marks the required
ones and runs its `*_main` through `keras_caps.cli.run_main` (absl parses argv; a user error
is one line `error: ...` and exit status 2). Each `*_main(argv)` turns the parsed flags into
the binary's config, calls its run function once and prints its summary.

Example:
    >>> from keras_caps.runs import cli
    >>> cli.train_capsnet(["keras-caps-train", "--model_dir=runs/q", "--preset=quick"])  # doctest: +SKIP
"""

from __future__ import annotations

import json

from absl import flags

from keras_caps.cli import run_main
from keras_caps.runs import flags as run_flags

#: train.demo's settings for the flags not given: a small CapsNet (conv 64, 8 primary types
#: x 8D, 10 x 16D class capsules, reduced decoder) that trains in a few minutes on 2 CPU cores.
DEMO_DEFAULTS = dict(dataset="fashion_mnist", model="capsnet", conv_filters=64,
                     primary_capsules=8, primary_dim=8, class_dim=16, decoder="reduced",
                     batch_size=64, learning_rate=1e-3, epochs=2, augment_shift=0,
                     model_dir="runs/demo")


def quiet_retracing_warnings():
    """Hides TensorFlow's "triggered tf.function retracing" warnings: binaries that score many
    models (quantization searches, the pipeline) build a new predict function per model."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def _summary(metrics, *dropped):
    return json.dumps({k: v for k, v in metrics.items() if k not in dropped}, indent=2)


# ----------------------------------------------------------------------------- mains


def train_capsnet_main(argv=None):
    """train.train_capsnet: trains; prints the metrics (without the history)."""
    from keras_caps.runs.train import train

    print(_summary(train(run_flags.train_config()), "history"))


def demo_main(argv=None):
    """train.demo: train_capsnet with DEMO_DEFAULTS; prints a short summary."""
    from keras_caps.runs.train import TrainConfig, train

    config = run_flags.config_from_flags(TrainConfig, defaults=DEMO_DEFAULTS, presets=False)
    metrics = train(config)
    minutes = metrics["train_time_s"] / 60
    print()
    name = "Fashion-MNIST" if config.dataset == "fashion_mnist" else config.dataset
    scored = (f"the first {config.test_examples:,} test images" if config.test_examples
              else "the whole test split")
    print(f"keras-caps demo: small CapsNet on {name}")
    print(f"  parameters     {metrics['params']:,}")
    print(f"  epochs         {metrics['epochs']} ({minutes:.1f} min of training)")
    print(f"  test accuracy  {metrics['test_accuracy']:.4f} ({scored})")
    print(f"  artifacts      {config.model_dir}/ (model.keras, best.keras, history.csv, "
          "metrics.json, logs/, checkpoints/)")


def distill_main(argv=None):
    """train.distill: distils; prints the metrics (without the history)."""
    from keras_caps.runs.distill import distill

    print(_summary(distill(run_flags.distill_config()), "history"))


def finetune_main(argv=None):
    """train.finetune: fine-tunes; prints the metrics (without the history and stages)."""
    from keras_caps.runs.finetune import finetune

    print(_summary(finetune(run_flags.finetune_config()), "history", "unfreezing"))


def prune_main(argv=None):
    """train.prune: the pruning flow; prints the ratio and the reductions."""
    from keras_caps.runs.prune import prune

    metrics = prune(run_flags.prune_config())
    print(json.dumps({k: metrics[k] for k in ("pruning_ratio", "params_reduction",
                                              "flops_reduction")}))


def quantize_main(argv=None):
    """train.quantize: the bit-width searches (their table is printed with --verbose)."""
    from keras_caps.runs.quantize import quantize

    quiet_retracing_warnings()
    quantize(run_flags.quantize_config())


def pipeline_main(argv=None):
    """train.pipeline: the stages; prints the summary table of the report."""
    from keras_caps.runs.pipeline import pipeline

    quiet_retracing_warnings()
    results = pipeline(run_flags.pipeline_config())
    if "report" in results:
        with open(results["report"]["summary_md"]) as f:
            print(f.read())


def kd_study_main(argv=None):
    """train.kd_study: the study; prints its wall time."""
    from keras_caps.runs.kd_study import kd_study

    summary = kd_study(run_flags.kd_study_config())
    print(json.dumps({"wall_time_s": summary["wall_time_s"]}))


def fastrcaps_study_main(argv=None):
    """train.fastrcaps_study: the study; prints the baseline's max accuracy."""
    from keras_caps.runs.fastrcaps_study import fastrcaps_study

    summary = fastrcaps_study(run_flags.fastrcaps_study_config())
    print(json.dumps({"baseline_max_accuracy": summary["baseline_max_accuracy"]}))


def vanishing_study_main(argv=None):
    """train.vanishing_study: the study; prints the collapse depth."""
    from keras_caps.runs.vanishing_study import vanishing_study

    summary = vanishing_study(run_flags.vanishing_study_config())
    print(json.dumps({"collapse_depth": summary["collapse_depth"]}))


# ----------------------------------------------------------------------------- entry points


def _entry(define, main, required=(), argv=None):
    define()
    for name in required:
        flags.mark_flag_as_required(name)
    run_main(main, argv=argv)


def train_capsnet(argv=None):
    """`keras-caps-train` = `python -m train.train_capsnet`."""
    _entry(run_flags.define_train_flags, train_capsnet_main, ("model_dir",), argv)


def demo(argv=None):
    """`keras-caps-demo` = `python -m train.demo`."""
    _entry(run_flags.define_train_flags, demo_main, (), argv)


def distill(argv=None):
    """`keras-caps-distill` = `python -m train.distill`."""
    _entry(run_flags.define_distill_flags, distill_main, ("model_dir", "teacher"), argv)


def finetune(argv=None):
    """`keras-caps-finetune` = `python -m train.finetune`."""
    _entry(run_flags.define_finetune_flags, finetune_main, ("model_dir", "pretrained"), argv)


def prune(argv=None):
    """`keras-caps-prune` = `python -m train.prune`."""
    _entry(run_flags.define_prune_flags, prune_main, ("model_dir",), argv)


def quantize(argv=None):
    """`keras-caps-quantize` = `python -m train.quantize`."""
    _entry(run_flags.define_quantize_flags, quantize_main, (), argv)


def pipeline(argv=None):
    """`keras-caps-pipeline` = `python -m train.pipeline`."""
    _entry(run_flags.define_pipeline_flags, pipeline_main, (), argv)


def kd_study(argv=None):
    """`keras-caps-kd-study` = `python -m train.kd_study`."""
    _entry(run_flags.define_kd_study_flags, kd_study_main, (), argv)


def fastrcaps_study(argv=None):
    """`keras-caps-fastrcaps-study` = `python -m train.fastrcaps_study`."""
    _entry(run_flags.define_fastrcaps_study_flags, fastrcaps_study_main, (), argv)


def vanishing_study(argv=None):
    """`keras-caps-vanishing-study` = `python -m train.vanishing_study`."""
    _entry(run_flags.define_vanishing_study_flags, vanishing_study_main, (), argv)


__all__ = ["DEMO_DEFAULTS", "demo", "demo_main", "distill", "distill_main", "fastrcaps_study",
           "fastrcaps_study_main", "finetune", "finetune_main", "kd_study", "kd_study_main",
           "pipeline", "pipeline_main", "prune", "prune_main", "quantize", "quantize_main",
           "quiet_retracing_warnings", "train_capsnet", "train_capsnet_main",
           "vanishing_study", "vanishing_study_main"]
