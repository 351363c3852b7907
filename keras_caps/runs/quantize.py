"""Power-of-two post-training quantization of a trained model: `QuantizeConfig`, `quantize`.

Calibrates on calibration_batches training batches, searches bit-widths (approach A
uniform, B layer-wise under a weight memory budget of float32 / weight_reduction, C per-layer
refinement; keras_caps.quantization.progressive) on the held-out search_split, and reports
every found spec's accuracy on the disjoint test_split. tolerance is in accuracy points
(0.1 = 0.1 %) and is checked on the search split.

Writes to output_dir (default: <model folder>/quantization): spec_<A|B|C>.json (complete:
every exponent fixed, load with keras_caps.quantization.load_spec), results.json, report.md
(the per-approach table and a per-layer table of bits and memory for each spec), and with
qat_epochs the fine-tuned models qat_<A|B|C>.keras and qat_float_control.keras.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import ClassVar

from keras_caps.runs.config import CommonConfig, Config, ConfigError, DataConfig, check_choice


@dataclasses.dataclass(frozen=True)
class QuantizeOptions(Config):
    """The quantization fields.

    model_path: the trained .keras model. approach: "A", "B", "C" or "all". tolerance:
    allowed accuracy loss in points (>= 0). weight_reduction: B's budget, float32 / this.
    min_bits / max_bits: the fewest bits of any tensor / A's widest uniform width.
    rounding ("nearest", "truncate", "stochastic"), clipping ("maxabs", "percentile", "mse")
    with percentile, granularity ("tensor", "channel", "block") with block_size: how
    exponents are chosen. calibration_batches of calibration_batch_size training images.
    search_split / test_split: TFDS-style split strings of --dataset. output_dir. qat_epochs
    (0: post-training only), qat_examples, qat_learning_rate: quantization-aware fine-tuning of
    every found spec (and a float control).
    """

    model_path: str | None = None
    approach: str = "all"
    tolerance: float = 0.1
    weight_reduction: float = 7.02
    min_bits: int = 2
    max_bits: int = 16
    rounding: str = "nearest"
    clipping: str = "mse"
    percentile: float = 99.99
    granularity: str = "channel"
    block_size: int | None = None
    calibration_batches: int = 8
    calibration_batch_size: int = 64
    search_split: str = "test[:5000]"
    test_split: str = "test[5000:]"
    output_dir: str | None = None
    qat_epochs: int = 0
    qat_examples: int = 10000
    qat_learning_rate: float = 1e-4

    def _check(self):
        from keras_caps.quantization.pot import check_bit_range

        check_choice("approach", self.approach, ("A", "B", "C", "all"))
        check_choice("rounding", self.rounding, ("nearest", "truncate", "stochastic"))
        check_choice("clipping", self.clipping, ("maxabs", "percentile", "mse"))
        check_choice("granularity", self.granularity, ("tensor", "channel", "block"))
        if self.tolerance < 0:
            raise ConfigError(f"--tolerance must be >= 0 accuracy points, got {self.tolerance}.")
        check_bit_range(self.min_bits, self.max_bits)


@dataclasses.dataclass(frozen=True)
class QuantizeConfig(QuantizeOptions, DataConfig, CommonConfig):
    """`quantize`'s config: the quantization fields, the dataset (calibration, search and test
    splits), seed and verbosity.

    Presets (explicit flags win):
        quick: 4 calibration batches of 64, search on test[:2000], report on test[2000:4000].
        full:  32 calibration batches of 64, search on test[:5000], report on test[5000:].

    Example:
        >>> config = QuantizeConfig(model_path="runs/demo/model.keras", approach="C")
        >>> summary = quantize(config)  # doctest: +SKIP
    """

    seed: int = 0

    PRESETS: ClassVar[dict] = {
        "quick": dict(calibration_batches=4, search_split="test[:2000]",
                      test_split="test[2000:4000]"),
        "full": dict(calibration_batches=32, search_split="test[:5000]",
                     test_split="test[5000:]"),
    }


def load_model(path):
    """The saved keras_caps model to quantize, with a clear error for a bad path."""
    import keras_caps  # noqa: F401  (registers the layers)
    from keras_caps.runs.models import load_capsnet

    if not path:
        raise ValueError("--model_path is required: the trained .keras file to quantize.")
    if not os.path.isfile(path):
        raise ValueError(f"--model_path {path!r} does not exist; train one first (python -m "
                         "train.train_capsnet --model_dir=DIR writes DIR/model.keras).")
    return load_capsnet(path)


def _split(config, split):
    """One split string's images in [0, 1] and labels. Only the slice is read (a folder
    decodes just those files), so --stream needs nothing more here: the binary holds the
    calibration, search, test and QAT slices, never the whole training split."""
    from keras_caps import data

    x, y = data.load_arrays(config.dataset, split, data_dir=config.data_dir,
                            source=config.data_source, **config.data_options())
    return data.normalize(x), y


def _qat(config, model, spec, qat_data, test_data, out, name, say):
    """QAT of `spec` (float control for an empty spec); saves the tuned float model."""
    from keras_caps.io_utils import save_model
    from keras_caps.quantization import qat, simulate

    t0 = time.perf_counter()
    tuned, losses = qat.qat_finetune(model, spec, *qat_data, epochs=config.qat_epochs,
                                     learning_rate=config.qat_learning_rate,
                                     seed=config.seed, progress=say)
    path = os.path.join(out, f"qat_{name}.keras")
    save_model(tuned, path)
    result = {"model": path, "losses": losses, "seconds": time.perf_counter() - t0,
              "epochs": config.qat_epochs, "examples": int(len(qat_data[0]))}
    scored = simulate.quantized_model(tuned, spec) if spec["layers"] else tuned
    result["test_accuracy"] = simulate.accuracy(scored, *test_data)
    return result


def quantize(config, datasets_override=None, model=None, qat_override=None, echo=True):
    """Calibrates, searches and reports; returns the results dict (also results.json).

    Args:
        config: a QuantizeConfig.
        datasets_override: (calibration images, (search x, y), (test x, y)) arrays, already
            normalized to [0, 1], instead of loading config.dataset.
        model: an in-memory model instead of loading config.model_path.
        qat_override: (x, y) QAT training arrays instead of the last qat_examples training
            images.
        echo: print the search log and the results table (with verbose; the pipeline: only
            with --verbose=2).
    Returns:
        {"model", "dataset", "float_search_accuracy", "float_test_accuracy",
         "tolerance_points", "search_split", "test_split", "calibration_images",
         "evaluations", "seconds", "options", "results": {approach: ...}, "float_control"}.
    """
    import keras

    from keras_caps import validation
    from keras_caps.io_utils import write_json, write_text
    from keras_caps.quantization import progressive, report, simulate
    from keras_caps.quantization.spec import FORMAT, VERSION, save_spec
    from keras_caps.runs.datasets import dataset_info, image_shape_of
    from keras_caps.runs.models import check_loaded_model

    keras.utils.set_random_seed(config.seed)
    model = validation.check_capsnet(model or load_model(config.model_path), "the model")
    out = config.output_dir or os.path.join(
        os.path.dirname(os.path.abspath(config.model_path or ".")), "quantization")
    if datasets_override:
        calib, (xs, ys), (xt, yt) = datasets_override
    else:
        n = config.calibration_batches * config.calibration_batch_size
        calib, _ = _split(config, f"train[:{n}]")
        xs, ys = _split(config, config.search_split)
        xt, yt = _split(config, config.test_split)
    check_loaded_model(model, config.model_path or "(in memory)", "model_path", config.dataset,
                       image_shape_of(xs),
                       None if datasets_override else dataset_info(config).num_classes)
    num_classes = int(model.get_layer("length").output.shape[-1])
    calib = validation.check_images(calib, "calibration images")
    xs, ys = validation.check_dataset(xs, ys, num_classes, "search split")
    xt, yt = validation.check_dataset(xt, yt, num_classes, "test split")
    os.makedirs(out, exist_ok=True)
    say = print if config.verbose and echo else None  # the search log: the pipeline's --verbose=2
    t0 = time.perf_counter()
    cal = simulate.Calibration(model, calib, batch_size=config.calibration_batch_size,
                               seed=config.seed)
    ev = progressive.Evaluator(model, cal, xs, ys, progress=say)
    float_test = simulate.accuracy(simulate.inference_model(model), xt, yt)
    tol = config.tolerance / 100.0
    options = dict(rounding=config.rounding, clipping=config.clipping,
                   percentile=config.percentile, weight_granularity=config.granularity,
                   block_size=config.block_size)
    approaches = ["A", "B", "C"] if config.approach == "all" else [config.approach]
    base = progressive.uniform_search(ev, tol, max_bits=config.max_bits,
                                      min_bits=config.min_bits, **options)
    results, rows, specs = {}, [], {}
    qat_data = control = None
    if config.qat_epochs > 0:
        qat_data = qat_override or _split(config, f"train[-{config.qat_examples}:]")
        empty = {"format": FORMAT, "version": VERSION, "layers": {}}  # the float model
        control = _qat(config, model, empty, qat_data, (xt, yt), out, "float_control", say)
    for name in approaches:
        if name == "A":
            res = base
        elif name == "B":
            res = progressive.layerwise_search(ev, tol, config.weight_reduction, base=base,
                                               min_bits=config.min_bits)
        else:
            res = progressive.refinement_search(ev, tol, base=base, min_bits=config.min_bits)
        test_acc = simulate.accuracy(simulate.quantized_model(model, res.spec), xt, yt)
        save_spec(res.spec, os.path.join(out, f"spec_{name}.json"), model)
        specs[name] = res.spec
        rows.append(report.result_row(res, test_acc, float_test))
        results[name] = {**res.summary(), "test_accuracy": test_acc, "trace": res.trace}
        if config.qat_epochs > 0:
            qat = _qat(config, model, res.spec, qat_data, (xt, yt), out, name, say)
            results[name]["qat"] = qat
            rows[-1].update(qat_test_accuracy=qat["test_accuracy"],
                            qat_delta=100.0 * (qat["test_accuracy"] - control["test_accuracy"]))
    summary = {
        "model": config.model_path, "dataset": config.dataset,
        "float_search_accuracy": ev.float_accuracy, "float_test_accuracy": float_test,
        "tolerance_points": config.tolerance, "search_split": config.search_split,
        "test_split": config.test_split, "calibration_images": int(len(calib)),
        "evaluations": ev.evaluations, "seconds": time.perf_counter() - t0,
        "options": options, "results": results, "float_control": control,
    }
    config.write(out)
    write_json(os.path.join(out, "results.json"), summary)
    lines = [
        "# Power-of-two quantization", "",
        f"Model `{config.model_path}` on {config.dataset}: float accuracy "
        f"{ev.float_accuracy:.4f} on the search split `{config.search_split}`, "
        f"{float_test:.4f} on the test split `{config.test_split}`; tolerance "
        f"{config.tolerance} points; {len(calib)} calibration images; {ev.evaluations} "
        f"evaluations in {summary['seconds']:.0f} s. Options: {json.dumps(options)}.", "",
        report.results_table(rows), "",
    ]
    if control:
        lines += [
            f"QAT: {config.qat_epochs} epoch(s) on {control['examples']} training images, "
            f"Adam {config.qat_learning_rate}. Float control (the float model fine-tuned "
            f"the same way): test accuracy {control['test_accuracy']:.4f}; the QAT Δ column "
            "is against it.", ""]
    for name in approaches:
        lines += [f"## Approach {name}", "", report.layer_table(model, specs[name]), ""]
    write_text(os.path.join(out, "report.md"), "\n".join(lines))
    if config.verbose and echo:
        print(report.results_table(rows))
        print(f"wrote {out}/report.md, results.json, spec_*.json")
    return summary


__all__ = ["QuantizeConfig", "QuantizeOptions", "load_model", "quantize"]
