r"""One command from a dataset to a microcontroller model.

    python -m train.pipeline --model_dir=runs/pipeline --preset=quick
    python -m train.pipeline --model_dir=runs/pipeline_full --preset=full   # a GPU
    python -m train.pipeline --model_dir=runs/pipeline --stages=quantize,export,evaluate

Stages (each writes its artifacts under --model_dir/<stage>/ and a done.json when finished):

    teacher   train_capsnet with the FasTrCaps WarmAdaBatch policy (small-batch warm-up, then
              a large batch with a cosine LR) -> teacher/best.keras
    student   transfer (the teacher's most important channels) + distillation into the small
              weight-shared student -> student/best.keras
    prune     CCM retraining, CHIP scores, pruning at --pruning_ratio, retraining
              -> prune/pruned/best.keras
    quantize  power-of-two progressive bit-width search (approach --approach) on the pruned
              student -> quantize/spec_<A|B|C>.json, report.md
    export    fully integer int8 TFLite of the pruned student, and the same with every scale
              a power of two (tflite.pot), each with its op audit
              -> export/model_int8.tflite, model_int8_pot.tflite, audit_*.json, labels.txt
    evaluate  LiteRT and TFLite Micro accuracy, latency, TFLite Micro arena, TFLM-vs-LiteRT
              agreement, confusion matrices -> evaluate/evaluation.json
    report    report.md, summary.json and PNGs (accuracy vs size, the LR/batch schedule, the
              int8 models' confusion matrices with the class names, and dead-capsule heatmaps
              of the teacher when it is a deep_capsnet)

Data: --dataset takes every spelling of keras_caps.data_sources (a built-in name, any TFDS
image-classification dataset, folder:PATH, npz:PATH) with --image_size, --grayscale /
--channels and --test_fraction; the models take the data's image shape and class count, and
the int8 export calibrates on the same training images, e.g.
    python -m train.pipeline --model_dir=runs/mine --dataset=folder:my_images \
        --image_size=24 --grayscale
(the quick preset reads at most 20,000 training and 2,000 test images).

A stage is marked done (done.json) only when the stages it reads from are done and every
file it names in its result exists and is not empty; `report` is marked done only when every
other stage is (a partial report is written but redone later), and with no finished stage at
all it is an error. A re-run skips stages with a done.json and resumes an interrupted training stage from its
checkpoint. --stages runs a subset (their inputs must exist from an earlier run). Every flag
of train_capsnet / distill / prune / quantize is accepted; the preset sets the defaults below
and explicit flags win.

The quantize stage's mixed bit-width spec is a simulation (memory and accuracy of a
fixed-point implementation); the exported int8_pot model is 8-bit everywhere with the
converter's scales rounded up to powers of two.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from train import distill, prune, quantize, train_capsnet
from train.train_capsnet import quiet_retracing_warnings

FLAGS = flags.FLAGS

STAGES = ("teacher", "student", "prune", "quantize", "export", "evaluate", "report")
OUTPUT_EXTENSIONS = (".keras", ".json", ".tflite", ".md", ".png")

# Student = the microcontroller CapsNet of train/configs/mcu_student.flags.
_STUDENT = dict(student_conv_filters=16, student_primary_capsules=4, student_primary_dim=8,
                student_class_dim=8, student_weight_sharing=True, student_decoder="none",
                transfer_init=True, temperature=3.0, alpha=1.0, beta=1.0)
PRESETS = {
    "quick": dict(
        dataset="fashion_mnist", model="capsnet", conv_filters=64, primary_capsules=8,
        primary_dim=8, class_dim=16, decoder="reduced", train_examples=20000,
        test_examples=2000, epochs=2, student_epochs=2, batch_policy="warmadabatch",
        batch_warmup_size=32, batch_warmup_epochs=1, batch_exponent=7, learning_rate=1e-3,
        lr_min=1e-4, pruning_ratio=0.25, ccm_epochs=1, retrain_epochs=1, ci_batches=4,
        approach="C", tolerance=0.5, calibration_batches=4, search_examples=1000,
        tflite_examples=1000, latency_repeats=20, **_STUDENT,
    ),
    "full": dict(
        dataset="fashion_mnist", model="capsnet", conv_filters=256, primary_capsules=32,
        primary_dim=8, class_dim=16, decoder="full", train_examples=None, test_examples=None,
        epochs=30, student_epochs=30, batch_policy="warmadabatch", batch_warmup_size=16,
        batch_warmup_epochs=3, batch_exponent=7, learning_rate=1e-3, lr_min=1e-5,
        pruning_ratio=0.25, ccm_epochs=5, retrain_epochs=10, ci_batches=0, approach="all",
        tolerance=0.1, qat_epochs=1, calibration_batches=32, search_examples=5000,
        tflite_examples=None,
        latency_repeats=100, **_STUDENT,
    ),
}


def define_flags():
    distill.define_flags()
    prune.define_flags()
    quantize.define_flags()
    if "stages" in FLAGS:
        return
    flags.DEFINE_list("stages", list(STAGES), f"Stages to run, a subset of {list(STAGES)}.")
    flags.DEFINE_integer("student_epochs", None, "Distillation epochs (default --epochs).")
    flags.DEFINE_integer("search_examples", 5000, "Test images the quantization search uses; "
                         "the rest of the test split reports.")
    flags.DEFINE_integer("tflite_examples", None, "Test images for the TFLite evaluation "
                         "(default all).")
    train_capsnet.define_once(flags.DEFINE_integer, "latency_repeats", 50,
                              "Latency measurements per model.")


def _with(flags_obj, **overrides):
    return prune.with_overrides(flags_obj, **overrides)


def _done_path(out, stage):
    return os.path.join(out, stage, "done.json")


def _load_done(out, stage):
    from keras_caps.errors import UserError

    path = _done_path(out, stage)
    if not os.path.exists(path):
        raise UserError(
            f"stage {stage!r} has not finished in {out} (no {path}); run it first, e.g. "
            f"--stages={stage},... or without --stages."
        )
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is unreadable ({err}); delete it and run stage {stage!r} "
                        "again.") from err
    missing = _missing_outputs(result)
    if missing:
        raise UserError(
            f"stage {stage!r} is marked done in {out} but its outputs {missing} are missing or "
            f"empty; delete {path} and run --stages={stage} again."
        )
    return result


def _output_paths(result):
    """Every file path a stage result names (strings ending in a known extension)."""
    if isinstance(result, dict):
        return [p for v in result.values() for p in _output_paths(v)]
    if isinstance(result, (list, tuple)):
        return [p for v in result for p in _output_paths(v)]
    if isinstance(result, str) and result.endswith(OUTPUT_EXTENSIONS):
        return [result]
    return []


def _missing_outputs(result):
    return [p for p in _output_paths(result)
            if not os.path.isfile(p) or os.path.getsize(p) == 0]


def _mark_done(root, stage, result):
    """Writes <stage>/done.json after checking that every output the result names exists."""
    from keras_caps.errors import UserError
    from keras_caps.io_utils import write_json

    missing = _missing_outputs(result)
    if missing:
        raise UserError(f"stage {stage!r} did not write its outputs {missing}; it is not marked "
                        "done. See the messages above and run it again.")
    write_json(_done_path(root, stage), result)


def _model_stats(path):
    from keras_caps.analysis.flops import total_flops
    from keras_caps.models.heads import classifier

    model = prune.load_capsnet(path)
    return {"params": int(classifier(model).count_params()),
            "flops": int(total_flops(classifier(model))),
            "keras_bytes": os.path.getsize(path)}


def stage_teacher(fl, out, data):
    metrics = train_capsnet.run(_with(fl, model_dir=out), datasets_override=data)
    path = os.path.join(out, "best.keras")
    return {"model": path, "accuracy": metrics["best_test_accuracy"],
            "train_time_s": metrics["train_time_s"], "train_examples": len(data[0][0]),
            **_model_stats(path)}


def stage_student(fl, out, data, teacher):
    epochs = fl.student_epochs or fl.epochs
    metrics = distill.run(_with(fl, model_dir=out, teacher=teacher["model"], epochs=epochs),
                          datasets_override=data)
    path = os.path.join(out, "best.keras")
    return {"model": path, "accuracy": metrics["best_test_accuracy"],
            "train_time_s": metrics.get("train_time_s"), **_model_stats(path)}


def stage_prune(fl, out, data, student):
    t0 = time.perf_counter()
    metrics = prune.run(_with(fl, model_dir=out, base_model=student["model"],
                              class_caps="fresh"), datasets_override=data)
    path = metrics["pruned"]["best_model"]
    return {"model": path, "accuracy": metrics["pruned"]["best_accuracy"],
            "ccm_accuracy": metrics["ccm"]["accuracy"], "train_time_s": time.perf_counter() - t0,
            "params_reduction": metrics["params_reduction"], **_model_stats(path)}


def stage_quantize(fl, out, data, pruned):
    from keras_caps import data as data_lib

    (xtr, ytr), (xte, yte) = data
    n = _search_count(fl, xte)
    calib = data_lib.normalize(xtr[: fl.calibration_batches * fl.calibration_batch_size])
    x = data_lib.normalize(xte)
    qat_data = (data_lib.normalize(xtr[-fl.qat_examples:]), ytr[-fl.qat_examples:])
    summary = quantize.run(
        _with(fl, model_path=pruned["model"], output_dir=out, preset="none"),
        datasets_override=(calib, (x[:n], yte[:n]), (x[n:], yte[n:])), qat_override=qat_data)
    best = _best_quantized(summary)
    return {"spec": os.path.join(out, f"spec_{best}.json"), "approach": best,
            "float_test_accuracy": summary["float_test_accuracy"],
            "accuracy": summary["results"][best]["test_accuracy"],
            "weight_reduction": summary["results"][best]["reductions"]["weights"],
            "activation_reduction": summary["results"][best]["reductions"]["activations_total"],
            "weight_bits_total": summary["results"][best]["reductions"]["quantized"]["weights"],
            "seconds": summary["seconds"]}


def _search_count(fl, test_images):
    """Test images the PoT search uses (the first ones); the rest report PoT and int8."""
    return min(fl.search_examples, len(test_images) // 2)


def _best_quantized(summary):
    """The approach within tolerance with the largest weight reduction (else the most accurate)."""
    results = summary["results"]
    ok = [k for k, r in results.items() if r["meets_tolerance"]]
    if ok:
        return max(ok, key=lambda k: results[k]["reductions"]["weights"])
    return max(results, key=lambda k: results[k]["accuracy"])


def stage_export(fl, out, data, pruned):
    """int8 and int8_pot (power-of-two scales) flatbuffers of the pruned student, audited."""
    from keras_caps.io_utils import write_bytes, write_json
    from keras_caps.models.compat import model_signature
    from tflite import audit, data_args, export
    from tflite.pot import to_power_of_two

    model = prune.load_capsnet(pruned["model"])
    int8 = export.convert(model, "int8", data[0][0][:2000])  # raw images, as evaluate
    names = train_capsnet.class_names(fl, model_signature(model)[1])
    result = {"labels": data_args.write_labels(os.path.join(out, "model_int8.tflite"), names),
              "class_names": list(names)}
    for mode, flatbuffer in (("int8", int8), ("int8_pot", to_power_of_two(int8))):
        path = os.path.join(out, f"model_{mode}.tflite")
        write_bytes(path, flatbuffer)
        report = audit.audit(flatbuffer, int8=True, pot=mode == "int8_pot")
        write_json(os.path.join(out, f"audit_{mode}.json"),
                   {"ok": report.ok, "problems": report.problems, "text": report.text()})
        result[mode] = {"tflite": path, "bytes": len(flatbuffer), "audit_ok": bool(report.ok)}
    return result


def stage_evaluate(fl, out, data, exported):
    """LiteRT and TFLite Micro accuracy (every evaluated image), latency, TFLM arena and
    agreement of both flatbuffers."""
    from keras_caps.io_utils import write_json
    from tflite import evaluate

    (_, _), (xte, yte) = data
    xte, yte = xte[_search_count(fl, xte):], yte[_search_count(fl, xte):]  # as the PoT row
    n = min(fl.tflite_examples or len(xte), len(xte))
    result = {"examples": int(n)}
    for mode in ("int8", "int8_pot"):
        with open(exported[mode]["tflite"], "rb") as f:
            result[mode] = evaluate.evaluate(f.read(), xte[:n], yte[:n], fl.latency_repeats,
                                             name=mode)
    write_json(os.path.join(out, "evaluation.json"), result)
    return result


def stage_report(fl, out, results, data=None):
    from train.pipeline_report import write_report

    return write_report(fl, out, results, data)


def run(flags_obj, datasets_override=None):
    """Runs the requested stages; returns {stage: result}. See the module docstring."""
    import keras

    from keras_caps.training.run_dir import RunLock, move_previous

    if not flags_obj.model_dir:
        raise ValueError("--model_dir is required: the folder for every stage and the report.")
    unknown = [s for s in flags_obj.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown --stages {unknown}; choose from {list(STAGES)}.")
    keras.utils.set_random_seed(flags_obj.seed)
    root = flags_obj.model_dir
    with RunLock(root):
        if getattr(flags_obj, "overwrite", False):
            moved = move_previous(root)
            if moved and flags_obj.verbose:
                print(f"--overwrite: moved the previous contents of {root} to {moved}")
            flags_obj = _with(flags_obj, overwrite=False)  # the stages start in empty folders
        return _run_stages(flags_obj, root, datasets_override)


def _run_stages(flags_obj, root, datasets_override):
    from keras_caps.errors import UserError

    needs_data = any(s in flags_obj.stages for s in STAGES[:-1]) or (
        "report" in flags_obj.stages and flags_obj.model == "deep_capsnet")  # heatmaps
    data = train_capsnet.load_datasets(flags_obj, datasets_override) if needs_data else None
    results = {}
    for stage in STAGES:
        out = os.path.join(root, stage)
        if stage not in flags_obj.stages or os.path.exists(_done_path(root, stage)):
            if os.path.exists(_done_path(root, stage)):
                results[stage] = _load_done(root, stage)
                if flags_obj.verbose and stage in flags_obj.stages:
                    print(f"[pipeline] {stage}: done earlier, skipped")
            continue
        os.makedirs(out, exist_ok=True)
        if flags_obj.verbose:
            print(f"[pipeline] {stage} ...", flush=True)
        t0 = time.perf_counter()
        if stage == "teacher":
            result = stage_teacher(flags_obj, out, data)
        elif stage == "student":
            result = stage_student(flags_obj, out, data, _need(results, root, "teacher"))
        elif stage == "prune":
            result = stage_prune(flags_obj, out, data, _need(results, root, "student"))
        elif stage == "quantize":
            result = stage_quantize(flags_obj, out, data, _need(results, root, "prune"))
        elif stage == "export":
            result = stage_export(flags_obj, out, data, _need(results, root, "prune"))
        elif stage == "evaluate":
            result = stage_evaluate(flags_obj, out, data, _need(results, root, "export"))
        else:
            finished = [s for s in STAGES[:-1] if s in results]
            if not finished:
                raise UserError(
                    f"--stages=report: no stage has finished in {root}, so there is nothing to "
                    "report; run the pipeline without --stages (or the earlier stages) first."
                )
            result = stage_report(flags_obj, out, results, data)
        result["stage_seconds"] = time.perf_counter() - t0
        results[stage] = result
        if stage == "report" and len(finished) < len(STAGES) - 1:
            if flags_obj.verbose:
                print(f"[pipeline] report: partial (stages {[s for s in STAGES[:-1] if s not in results]} "
                      "not done), so it is not marked done; a later run rewrites it.")
            continue
        _mark_done(root, stage, result)
    return results


def _need(results, root, stage):
    return results.get(stage) or _load_done(root, stage)


def main(argv):
    del argv
    quiet_retracing_warnings()
    train_capsnet.apply_preset(FLAGS, PRESETS, default="quick")
    results = run(FLAGS)
    if "report" in results:
        print(open(results["report"]["summary_md"]).read())


if __name__ == "__main__":
    from keras_caps.cli import run_main

    define_flags()
    run_main(main)
