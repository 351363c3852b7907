r"""Power-of-two post-training quantization of a trained keras_caps model.

    python -m train.quantize --model_path=runs/demo/model.keras --approach=C --tolerance=0.1
    python -m train.quantize --model_path=runs/student/model.keras --approach=all --preset=full

Calibrates on --calibration_batches training batches, searches bit-widths (approach A uniform,
B layer-wise under a weight memory budget of float32 / --weight_reduction, C per-layer
refinement; see keras_caps.quantization.progressive) on the held-out --search_split, and
reports every found spec's accuracy on the disjoint --test_split. --tolerance is in accuracy
points (0.1 = 0.1 %) and is checked on the search split.

Writes to --output_dir (default: <model folder>/quantization): spec_<A|B|C>.json (complete:
every exponent fixed, load with keras_caps.quantization.load_spec), results.json, report.md
(the per-approach table and a per-layer table of bits and memory for each spec).

Presets (explicit flags win):
    quick: 4 calibration batches of 64, search on test[:2000], report on test[2000:4000].
    full:  32 calibration batches of 64, search on test[:5000], report on test[5000:].
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from train.train_capsnet import quiet_retracing_warnings

FLAGS = flags.FLAGS

PRESETS = {
    "quick": dict(calibration_batches=4, search_split="test[:2000]",
                  test_split="test[2000:4000]"),
    "full": dict(calibration_batches=32, search_split="test[:5000]", test_split="test[5000:]"),
}


def define_flags():
    if "approach" in FLAGS:
        return
    from train import train_capsnet

    train_capsnet.define_flags()  # dataset, data_dir, data_source, seed, preset, verbose
    flags.DEFINE_string("model_path", None, "Trained .keras model to quantize (required). (--model "
                        "is the model builder of train.train_capsnet: binaries share absl flags.)")
    flags.DEFINE_enum("approach", "all", ["A", "B", "C", "all"], "Bit-width search approach.")
    flags.DEFINE_float("tolerance", 0.1, "Allowed accuracy loss in points (0.1 = 0.1 %).")
    flags.DEFINE_float("weight_reduction", 7.02, "B: weight memory budget, float32 / this.")
    flags.DEFINE_integer("min_bits", 2, "Fewest bits any tensor may get.")
    flags.DEFINE_integer("max_bits", 16, "A: the widest uniform bit-width tried.")
    flags.DEFINE_enum("rounding", "nearest", ["nearest", "truncate", "stochastic"],
                      "Rounding mode (stochastic applies to weights; activations round "
                      "to nearest).")
    flags.DEFINE_enum("clipping", "mse", ["maxabs", "percentile", "mse"],
                      "How exponents are chosen from the data.")
    flags.DEFINE_float("percentile", 99.99, "clipping=percentile: the percentile of |x|.")
    flags.DEFINE_enum("granularity", "channel", ["tensor", "channel", "block"],
                      "Weight exponent granularity.")
    flags.DEFINE_integer("block_size", None, "granularity=block: channels per block.")
    flags.DEFINE_integer("calibration_batches", 8, "Training batches used for calibration.")
    flags.DEFINE_integer("calibration_batch_size", 64, "Calibration batch size.")
    flags.DEFINE_string("search_split", "test[:5000]", "Held-out split the searches evaluate.")
    flags.DEFINE_string("test_split", "test[5000:]", "Disjoint split the results report.")
    flags.DEFINE_string("output_dir", None, "Output folder (default <model dir>/quantization).")
    flags.DEFINE_integer("qat_epochs", 0, "Quantization-aware fine-tuning epochs for every "
                         "found spec (0: post-training quantization only).")
    flags.DEFINE_integer("qat_examples", 10000, "Training images for QAT (and its float control).")
    flags.DEFINE_float("qat_learning_rate", 1e-4, "QAT learning rate (Adam).")


def load_model(path):
    """A saved keras_caps model, with a clear error for a bad path."""

    import keras_caps  # noqa: F401  (registers the layers)

    if not path:
        raise ValueError("--model_path is required: the trained .keras file to quantize.")
    if not os.path.isfile(path):
        raise ValueError(f"--model_path {path!r} does not exist; train one first (python -m "
                         "train.train_capsnet --model_dir=DIR writes DIR/model.keras).")
    from train.prune import load_capsnet

    return load_capsnet(path)


def _split(flags_obj, split):
    from keras_caps import data
    from train.train_capsnet import data_options

    x, y = data.load_arrays(flags_obj.dataset, split, data_dir=flags_obj.data_dir,
                            source=flags_obj.data_source, **data_options(flags_obj))
    return data.normalize(x), y


def _qat(flags_obj, model, spec, qat_data, test_data, out, name, say):
    """QAT of `spec` (float control for an empty spec); saves the tuned float model."""
    from keras_caps.io_utils import save_model
    from keras_caps.quantization import qat, simulate

    t0 = time.perf_counter()
    tuned, losses = qat.qat_finetune(model, spec, *qat_data, epochs=flags_obj.qat_epochs,
                                     learning_rate=flags_obj.qat_learning_rate,
                                     seed=flags_obj.seed, progress=say)
    path = os.path.join(out, f"qat_{name}.keras")
    save_model(tuned, path)
    result = {"model": path, "losses": losses, "seconds": time.perf_counter() - t0,
              "epochs": flags_obj.qat_epochs, "examples": int(len(qat_data[0]))}
    scored = simulate.quantized_model(tuned, spec) if spec["layers"] else tuned
    result["test_accuracy"] = simulate.accuracy(scored, *test_data)
    return result


def run(flags_obj, datasets_override=None, model=None, qat_override=None):
    """Calibrates, searches and reports as the flags say; returns the results dict.

    Args:
        flags_obj: parsed flags.
        datasets_override: (calibration images, (search x, y), (test x, y)) arrays, already
            normalized, instead of loading --dataset.
        model: an in-memory model instead of loading --model.
    """
    import keras

    from keras_caps import validation
    from keras_caps.io_utils import write_json, write_text
    from keras_caps.quantization import progressive, report, simulate
    from keras_caps.quantization.pot import check_bit_range
    from keras_caps.quantization.spec import FORMAT, VERSION, save_spec
    from train.train_capsnet import apply_preset, check_loaded_model, dataset_info, image_shape_of

    apply_preset(flags_obj, PRESETS)
    if flags_obj.tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0 accuracy points, got {flags_obj.tolerance}.")
    check_bit_range(flags_obj.min_bits, flags_obj.max_bits)
    keras.utils.set_random_seed(flags_obj.seed)
    model = validation.check_capsnet(model or load_model(flags_obj.model_path), "the model")
    out = flags_obj.output_dir or os.path.join(
        os.path.dirname(os.path.abspath(flags_obj.model_path or ".")), "quantization")
    if datasets_override:
        calib, (xs, ys), (xt, yt) = datasets_override
    else:
        n = flags_obj.calibration_batches * flags_obj.calibration_batch_size
        calib, _ = _split(flags_obj, f"train[:{n}]")
        xs, ys = _split(flags_obj, flags_obj.search_split)
        xt, yt = _split(flags_obj, flags_obj.test_split)
    check_loaded_model(model, flags_obj.model_path or "(in memory)", "model_path", flags_obj,
                       image_shape_of(xs),
                       None if datasets_override else dataset_info(flags_obj).num_classes)
    num_classes = int(model.get_layer("length").output.shape[-1])
    calib = validation.check_images(calib, "calibration images")
    xs, ys = validation.check_dataset(xs, ys, num_classes, "search split")
    xt, yt = validation.check_dataset(xt, yt, num_classes, "test split")
    os.makedirs(out, exist_ok=True)
    say = print if flags_obj.verbose else None
    t0 = time.perf_counter()
    cal = simulate.Calibration(model, calib, batch_size=flags_obj.calibration_batch_size,
                               seed=flags_obj.seed)
    ev = progressive.Evaluator(model, cal, xs, ys, progress=say)
    float_test = simulate.accuracy(simulate.inference_model(model), xt, yt)
    tol = flags_obj.tolerance / 100.0
    options = dict(rounding=flags_obj.rounding, clipping=flags_obj.clipping,
                   percentile=flags_obj.percentile, weight_granularity=flags_obj.granularity,
                   block_size=flags_obj.block_size)
    approaches = ["A", "B", "C"] if flags_obj.approach == "all" else [flags_obj.approach]
    base = progressive.uniform_search(ev, tol, max_bits=flags_obj.max_bits,
                                      min_bits=flags_obj.min_bits, **options)
    results, rows, specs = {}, [], {}
    qat_data = control = None
    if flags_obj.qat_epochs > 0:
        qat_data = qat_override or _split(flags_obj, f"train[-{flags_obj.qat_examples}:]")
        empty = {"format": FORMAT, "version": VERSION, "layers": {}}  # the float model
        control = _qat(flags_obj, model, empty, qat_data, (xt, yt), out, "float_control", say)
    for name in approaches:
        if name == "A":
            res = base
        elif name == "B":
            res = progressive.layerwise_search(ev, tol, flags_obj.weight_reduction, base=base,
                                               min_bits=flags_obj.min_bits)
        else:
            res = progressive.refinement_search(ev, tol, base=base, min_bits=flags_obj.min_bits)
        test_acc = simulate.accuracy(simulate.quantized_model(model, res.spec), xt, yt)
        save_spec(res.spec, os.path.join(out, f"spec_{name}.json"), model)
        specs[name] = res.spec
        rows.append(report.result_row(res, test_acc, float_test))
        results[name] = {**res.summary(), "test_accuracy": test_acc, "trace": res.trace}
        if flags_obj.qat_epochs > 0:
            qat = _qat(flags_obj, model, res.spec, qat_data, (xt, yt), out, name, say)
            results[name]["qat"] = qat
            rows[-1].update(qat_test_accuracy=qat["test_accuracy"],
                            qat_delta=100.0 * (qat["test_accuracy"] - control["test_accuracy"]))
    summary = {
        "model": flags_obj.model_path, "dataset": flags_obj.dataset,
        "float_search_accuracy": ev.float_accuracy, "float_test_accuracy": float_test,
        "tolerance_points": flags_obj.tolerance, "search_split": flags_obj.search_split,
        "test_split": flags_obj.test_split, "calibration_images": int(len(calib)),
        "evaluations": ev.evaluations, "seconds": time.perf_counter() - t0,
        "options": options, "results": results, "float_control": control,
    }
    write_json(os.path.join(out, "results.json"), summary)
    lines = [
        "# Power-of-two quantization", "",
        f"Model `{flags_obj.model_path}` on {flags_obj.dataset}: float accuracy "
        f"{ev.float_accuracy:.4f} on the search split `{flags_obj.search_split}`, "
        f"{float_test:.4f} on the test split `{flags_obj.test_split}`; tolerance "
        f"{flags_obj.tolerance} points; {len(calib)} calibration images; {ev.evaluations} "
        f"evaluations in {summary['seconds']:.0f} s. Options: {json.dumps(options)}.", "",
        report.results_table(rows), "",
    ]
    if control:
        lines += [
            f"QAT: {flags_obj.qat_epochs} epoch(s) on {control['examples']} training images, "
            f"Adam {flags_obj.qat_learning_rate}. Float control (the float model fine-tuned "
            f"the same way): test accuracy {control['test_accuracy']:.4f}; the QAT Δ column "
            "is against it.", ""]
    for name in approaches:
        lines += [f"## Approach {name}", "", report.layer_table(model, specs[name]), ""]
    write_text(os.path.join(out, "report.md"), "\n".join(lines))
    if flags_obj.verbose:
        print(report.results_table(rows))
        print(f"wrote {out}/report.md, results.json, spec_*.json")
    return summary


def main(argv):
    del argv
    quiet_retracing_warnings()
    run(FLAGS)


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    run_main(main)
