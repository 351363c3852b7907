"""One run from a dataset to a microcontroller model: `PipelineConfig` and `pipeline`.

Stages, each under <model_dir>/<stage>/ with a done.json when finished (the command line and
its presets: train/pipeline.py):

    teacher   `train` (the FasTrCaps WarmAdaBatch policy in the presets) -> teacher/best.keras
    student   distillation (`distill`; quick: into the S mcu_capsnet, full: transfer + KD into
              the Sabour-style student) -> student/best.keras
    prune     `prune` of the student (CCM, CHIP, pruning, retraining) -> prune/pruned/best.keras
    quantize  `quantize` (power-of-two bit-width search) of the pruned student
    export    int8 and int8_pot (power-of-two scales) TFLite, each audited, labels.txt
    evaluate  LiteRT and TFLite Micro accuracy, latency, arena, agreement, confusion matrices
    report    report.md, summary.md, summary.json and PNGs (keras_caps.runs.pipeline_report)

With --stream (a folder:PATH dataset larger than memory) the teacher, student and prune
stages train from disk (`keras_caps.data_sources.StreamedSplit`: training, CCM, CI scores and
retraining batch by batch); the stages after them read the first
`datasets.stream_sample_size` training images (int8 and PoT calibration, QAT) and the test split
(bound it with --test_examples) into memory.

A stage is marked done only when the stages it reads from are done and every file its result
names exists and is not empty; `report` only when every other stage is. A rerun skips done
stages and resumes an interrupted training stage from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import ClassVar

from keras_caps.runs.config import Config, ConfigError, as_tuple, set_field
from keras_caps.runs.distill import DistillConfig, DistillOptions, StudentConfig
from keras_caps.runs.prune import PruneConfig, PruneOptions
from keras_caps.runs.quantize import QuantizeConfig, QuantizeOptions
from keras_caps.runs.train import TrainConfig

STAGES = ("teacher", "student", "prune", "quantize", "export", "evaluate", "report")
OUTPUT_EXTENSIONS = (".keras", ".json", ".tflite", ".md", ".png")

# Student of the full preset = the Sabour-style microcontroller student of
# train/configs/mcu_student.flags, initialised from the teacher (transfer) and distilled.
_STUDENT = dict(student_conv_filters=16, student_primary_capsules=4, student_primary_dim=8,
                student_class_dim=8, student_weight_sharing=True, student_decoder="none",
                transfer_init=True, temperature=3.0, alpha=1.0, beta=1.0)
# The quick preset scores on the whole test split (the PoT search on its first 1,000 images, the
# int8 rows on the other 9,000): on 1,000 images the int8-vs-teacher gap moved by 1-2 points
# between runs (BENCHMARKS.md, Session 13).
# Student of the quick preset = the S microcontroller CapsNet (keras_caps.models.mcu_capsnet),
# distilled with its capsule-length init; the teacher's channels do not map onto its backbone,
# so no transfer. Chosen by measurement (BENCHMARKS.md, "make demo"): 8 student epochs, CCM
# at alpha 0.01 (alpha 0.1 cost the S student 6.5 points in its one CCM epoch), 3 retraining
# epochs of the pruned model.
_MCU_STUDENT = dict(student_model="mcu_capsnet", student_mcu_size="S", student_init_length=0.5,
                    student_decoder="none", transfer_init=False, temperature=3.0, alpha=1.0,
                    beta=1.0)

# The cpu preset (2 CPU cores, about an hour): the teacher of `train --preset=cpu` (mcu_capsnet
# M, 32 epochs; or --teacher=pretrained:fashion_mnist_mcu_m, the shipped one) and the S
# student trained with the shipped S model's recipe on all 60,000 images. alpha 0: at
# convergence KD with T 3 / alpha 1 cost the S student 1.0 point (BENCHMARKS.md, "Distillation
# at convergence"), so the student learns from the labels alone and the teacher is the
# reference the report compares with. transfer_init: conv1-3 and their BNs start from the
# M teacher's most important channels: +0.5 points on a validation split with a teacher
# trained on the other 50,000 images (0.9295 vs 0.9244), and the cpu pipeline's int8 model
# in TFLite Micro 0.9260 vs 0.9200 from scratch (BENCHMARKS.md, "Session 8"). pruning_ratio 0: pruning the converged S student at 0.25
# cost it 2.4 points (0.9257 -> 0.9017, BENCHMARKS.md "Session 6"), more than its 1.8x size
# saving is worth on a microcontroller that holds the S model (--pruning_ratio=0.25 prunes).
_CPU_RECIPE = dict(dataset="fashion_mnist", decoder="none", batch_size=64, batch_policy="fixed",
                   learning_rate=2e-3, lr_policy="cosine", lr_min=1e-5, augment_shift=2,
                   init_length=0.5, train_examples=None, test_examples=None)
_CPU = dict(_CPU_RECIPE, model="mcu_capsnet", mcu_size="M", epochs=32, student_epochs=30,
            **dict(_MCU_STUDENT, alpha=0.0, transfer_init=True), pruning_ratio=0.0, ccm_epochs=1, ccm_alpha=0.01,
            retrain_epochs=6, ci_batches=8, approach="C", tolerance=0.3,
            calibration_batches=8, search_examples=5000, tflite_examples=None,
            latency_repeats=50)


@dataclasses.dataclass(frozen=True)
class PipelineOptions(Config):
    """stages: the subset to run (of STAGES). student_epochs: distillation epochs (None:
    epochs). search_examples: test images the quantization search uses (the rest of the test
    split reports). tflite_examples: test images of the TFLite evaluation (None: all).
    latency_repeats: latency measurements per model."""

    stages: tuple = STAGES
    student_epochs: int | None = None
    search_examples: int = 5000
    tflite_examples: int | None = None
    latency_repeats: int = 50

    def _check(self):
        set_field(self, "stages", as_tuple("stages", self.stages, str))
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"unknown --stages {unknown}; choose from {list(STAGES)}.")
        if self.teacher:
            from keras_caps.runs.models import model_file

            model_file(self.teacher, "teacher")  # a clear error now, not after loading data


@dataclasses.dataclass(frozen=True)
class PipelineConfig(PipelineOptions, QuantizeOptions, PruneOptions, DistillOptions,
                     StudentConfig, TrainConfig):
    """The pipeline's config: every field of TrainConfig, DistillConfig, PruneConfig and
    QuantizeConfig, and the pipeline's own (PipelineOptions). Each stage runs the config of
    its binary made from this one (e.g. `PruneConfig.from_config(config, ...)`).

    Presets: "quick" (the default; 2 CPU cores, minutes), "cpu" (2 CPU cores, about an hour:
    the microcontroller model at convergence) and "full" (paper scale, a GPU).

    Example:
        >>> config = PipelineConfig.from_preset("quick", model_dir="runs/pipeline")
        >>> results = pipeline(config)  # doctest: +SKIP
        >>> results["evaluate"]["int8"]["tflm_accuracy"]  # doctest: +SKIP
    """

    MODEL_DIR_HELP: ClassVar[str] = "the folder for every stage and the report."
    DEFAULT_PRESET: ClassVar[str] = "quick"
    PRESETS: ClassVar[dict] = {
        "quick": dict(
            dataset="fashion_mnist", model="capsnet", conv_filters=64, primary_capsules=8,
            primary_dim=8, class_dim=16, decoder="reduced", train_examples=20000,
            test_examples=None, epochs=2, student_epochs=8, batch_policy="warmadabatch",
            batch_warmup_size=32, batch_warmup_epochs=1, batch_exponent=7, learning_rate=1e-3,
            lr_min=1e-4, pruning_ratio=0.25, ccm_epochs=1, ccm_alpha=0.01, retrain_epochs=3,
            ci_batches=4, approach="C", tolerance=0.5, calibration_batches=4,
            search_examples=1000, tflite_examples=None, latency_repeats=20, **_MCU_STUDENT,
        ),
        "cpu": _CPU,
        "full": dict(
            dataset="fashion_mnist", model="capsnet", conv_filters=256, primary_capsules=32,
            primary_dim=8, class_dim=16, decoder="full", train_examples=None,
            test_examples=None, epochs=30, student_epochs=30, batch_policy="warmadabatch",
            batch_warmup_size=16, batch_warmup_epochs=3, batch_exponent=7, learning_rate=1e-3,
            lr_min=1e-5, pruning_ratio=0.25, ccm_epochs=5, retrain_epochs=10, ci_batches=0,
            approach="all", tolerance=0.1, qat_epochs=1, calibration_batches=32,
            search_examples=5000, tflite_examples=None, latency_repeats=100, **_STUDENT,
        ),
    }


# ----------------------------------------------------------------------------- done.json


def _done_path(out, stage):
    return os.path.join(out, stage, "done.json")


def load_done(out, stage):
    """The result of a finished stage (its done.json); UserError when it has not finished or
    its outputs are gone."""
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


def mark_done(root, stage, result):
    """Writes <stage>/done.json after checking that every output the result names exists."""
    from keras_caps.errors import UserError
    from keras_caps.io_utils import write_json

    missing = _missing_outputs(result)
    if missing:
        raise UserError(f"stage {stage!r} did not write its outputs {missing}; it is not marked "
                        "done. See the messages above and run it again.")
    write_json(_done_path(root, stage), result)


# ----------------------------------------------------------------------------- stages


def stage_teacher(config, out, data, training=None):
    """`train` of the teacher in `out` on `training` (default: data; the streamed splits with
    --stream), or the given --teacher (a .keras file or pretrained:NAME) copied there and
    scored on the pipeline's test split."""
    from keras_caps.runs.measure import classifier_stats
    from keras_caps.runs.train import train
    from keras_caps.training.loop import num_examples

    if config.teacher:
        return _given_teacher(config, out, data)
    training = training or data
    metrics = train(TrainConfig.from_config(config, model_dir=out), datasets_override=training)
    path = os.path.join(out, "best.keras")
    return {"model": path, "accuracy": metrics["best_test_accuracy"],
            "train_time_s": metrics["train_time_s"],
            "train_examples": num_examples(training[0]), **classifier_stats(path)}


def _given_teacher(config, out, data):
    import shutil

    from keras_caps.models.compiling import compile_capsnet
    from keras_caps.runs import datasets
    from keras_caps.runs.measure import accuracy, classifier_stats
    from keras_caps.runs.models import check_loaded_model, load_capsnet, model_file

    (_, _), (xte, yte) = data
    source = model_file(config.teacher, "teacher")
    model = load_capsnet(source)
    num_classes = datasets.dataset_info(config).num_classes
    check_loaded_model(model, config.teacher, "teacher", config.dataset,
                       datasets.image_shape_of(xte), num_classes)
    path = os.path.join(out, "best.keras")
    shutil.copyfile(source, path)
    compile_capsnet(model)
    return {"model": path, "source": config.teacher,
            "accuracy": accuracy(model, (xte, yte), num_classes), "train_time_s": None,
            "train_examples": None, **classifier_stats(path)}


def stage_student(config, out, data, teacher, training=None):
    """`distill` of the teacher into the student in `out` on `training` (default: data; the
    streamed splits with --stream)."""
    from keras_caps.runs.distill import distill
    from keras_caps.runs.measure import classifier_stats

    epochs = config.student_epochs or config.epochs
    metrics = distill(DistillConfig.from_config(config, model_dir=out, teacher=teacher["model"],
                                                epochs=epochs),
                      datasets_override=training or data)
    path = os.path.join(out, "best.keras")
    recipe = "transfer + KD" if config.transfer_init else "KD"
    if not config.alpha:
        recipe = "transfer, no KD" if config.transfer_init else "from scratch (alpha 0)"
    name = (f"mcu_capsnet {config.student_mcu_size}" if config.student_model == "mcu_capsnet"
            else "capsnet")
    return {"model": path, "accuracy": metrics["best_test_accuracy"],
            "train_time_s": metrics.get("train_time_s"),
            "label": f"student ({name}), {recipe} (float32)", **classifier_stats(path)}


def stage_prune(config, out, data, student, training=None):
    """`prune` of the student in `out` (a fresh ClassCaps) on `training` (default: data; the
    streamed splits with --stream: CCM, CI scores and retraining read the folder from disk).
    With --pruning_ratio=0 the student passes through unchanged (its model, accuracy and
    sizes; "skipped": True)."""
    from keras_caps.runs.measure import classifier_stats
    from keras_caps.runs.prune import prune

    if not config.pruning_ratio:
        keep = ("model", "accuracy", "params", "flops", "keras_bytes")
        return {**{k: student[k] for k in keep if k in student}, "skipped": True,
                "label": "student, not pruned (--pruning_ratio=0) (float32)"}
    t0 = time.perf_counter()
    metrics = prune(PruneConfig.from_config(config, model_dir=out, base_model=student["model"],
                                            class_caps="fresh"),
                    datasets_override=training or data,
                    echo=config.verbose >= 2)
    path = metrics["pruned"]["best_model"]
    return {"model": path, "accuracy": metrics["pruned"]["best_accuracy"],
            "ccm_accuracy": metrics["ccm"]["accuracy"], "train_time_s": time.perf_counter() - t0,
            "params_reduction": metrics["params_reduction"], **classifier_stats(path)}


def search_count(config, test_images):
    """Test images the PoT search uses (the first ones); the rest report PoT and int8."""
    return min(config.search_examples, len(test_images) // 2)


def best_quantized(summary):
    """The approach within tolerance with the largest weight reduction (else the most accurate)."""
    results = summary["results"]
    ok = [k for k, r in results.items() if r["meets_tolerance"]]
    if ok:
        return max(ok, key=lambda k: results[k]["reductions"]["weights"])
    return max(results, key=lambda k: results[k]["accuracy"])


def stage_quantize(config, out, data, pruned):
    """`quantize` of the pruned student on the pipeline's own arrays: search on the first
    `search_count` test images, report on the rest."""
    from keras_caps import data as data_lib
    from keras_caps.runs.quantize import quantize

    (xtr, ytr), (xte, yte) = data
    n = search_count(config, xte)
    calib = data_lib.normalize(xtr[: config.calibration_batches * config.calibration_batch_size])
    x = data_lib.normalize(xte)
    qat_data = (data_lib.normalize(xtr[-config.qat_examples:]), ytr[-config.qat_examples:])
    summary = quantize(
        QuantizeConfig.from_config(config, model_path=pruned["model"], output_dir=out,
                                   preset="none"),
        datasets_override=(calib, (x[:n], yte[:n]), (x[n:], yte[n:])), qat_override=qat_data,
        echo=config.verbose >= 2)
    best = best_quantized(summary)
    return {"spec": os.path.join(out, f"spec_{best}.json"), "approach": best,
            "float_test_accuracy": summary["float_test_accuracy"],
            "accuracy": summary["results"][best]["test_accuracy"],
            "weight_reduction": summary["results"][best]["reductions"]["weights"],
            "activation_reduction": summary["results"][best]["reductions"]["activations_total"],
            "weight_bits_total": summary["results"][best]["reductions"]["quantized"]["weights"],
            "seconds": summary["seconds"]}


def stage_export(config, out, data, pruned):
    """int8 and int8_pot (power-of-two scales) flatbuffers of the pruned student, audited."""
    from keras_caps.io_utils import write_bytes, write_json
    from keras_caps.lite import audit, data_args, export
    from keras_caps.lite.pot import to_power_of_two
    from keras_caps.models.compat import model_signature
    from keras_caps.runs.datasets import class_names
    from keras_caps.runs.models import load_capsnet

    model = load_capsnet(pruned["model"])
    int8 = export.convert(model, "int8", data[0][0][:2000])  # raw images, as evaluate
    names = class_names(config, model_signature(model)[1])
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


def stage_evaluate(config, out, data, exported, teacher=None):
    """LiteRT and TFLite Micro accuracy (every evaluated image), latency, TFLM arena and
    agreement of both flatbuffers; with `teacher` (its stage result) also the teacher's
    accuracy on the same images ("teacher_accuracy"), which the int8 rows are compared with."""
    import keras

    from keras_caps.io_utils import write_json
    from keras_caps.lite import evaluate

    (_, _), (xte, yte) = data
    xte, yte = xte[search_count(config, xte):], yte[search_count(config, xte):]  # as the PoT row
    n = min(config.tflite_examples or len(xte), len(xte))
    result = {"examples": int(n)}
    if teacher:
        model = keras.saving.load_model(teacher["model"], compile=False, safe_mode=True)
        result["teacher_accuracy"] = evaluate.keras_accuracy(model, xte[:n], yte[:n])
    for mode in ("int8", "int8_pot"):
        with open(exported[mode]["tflite"], "rb") as f:
            result[mode] = evaluate.evaluate(f.read(), xte[:n], yte[:n], config.latency_repeats,
                                             name=mode)
    write_json(os.path.join(out, "evaluation.json"), result)
    return result


def stage_report(config, out, results, data=None):
    """The report files (keras_caps.runs.pipeline_report.write_report)."""
    from keras_caps.runs.pipeline_report import write_report

    return write_report(config, out, results, data)


# ----------------------------------------------------------------------------- the run


def pipeline(config, datasets_override=None):
    """Runs config.stages (skipping finished ones); returns {stage: result}.

    Args:
        config: a PipelineConfig.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading.
    Returns:
        {stage: its result dict} for every finished stage (this run's or an earlier one's).
    """
    import keras

    from keras_caps.errors import UserError
    from keras_caps.training.run_dir import RunLock, move_previous, remove_if_only_scaffolding

    keras.utils.set_random_seed(config.seed)
    root = config.model_dir
    created = not os.path.exists(root)
    try:
        with RunLock(root):
            if config.overwrite:
                moved = move_previous(root)
                if moved and config.verbose:
                    print(f"--overwrite: moved the previous contents of {root} to {moved}")
                config = dataclasses.replace(config, overwrite=False)  # the stages start empty
            config.write(root)
            return _run_stages(config, root, datasets_override)
    except UserError:
        if created:  # bad data or --teacher: leave nothing behind (no result is ever removed)
            remove_if_only_scaffolding(root)
        raise


def _run_stages(config, root, datasets_override):
    from keras_caps.errors import UserError
    from keras_caps.runs.datasets import load_datasets

    needs_data = any(s in config.stages for s in STAGES[:-1]) or (
        "report" in config.stages and config.model == "deep_capsnet")  # heatmaps
    data = training = None
    if needs_data and config.stream and datasets_override is None:
        data, training = _streamed_data(config)
    elif needs_data:
        data = load_datasets(config, datasets_override, seed=config.seed)
    results = {}
    for stage in STAGES:
        out = os.path.join(root, stage)
        if stage not in config.stages or os.path.exists(_done_path(root, stage)):
            if os.path.exists(_done_path(root, stage)):
                results[stage] = load_done(root, stage)
                if config.verbose and stage in config.stages:
                    print(f"[pipeline] {stage}: done earlier, skipped")
            continue
        os.makedirs(out, exist_ok=True)
        if config.verbose:
            print(f"[pipeline] {stage} ...", flush=True)
        t0 = time.perf_counter()
        if stage == "teacher":
            result = stage_teacher(config, out, data, training)
        elif stage == "student":
            result = stage_student(config, out, data, _need(results, root, "teacher"), training)
        elif stage == "prune":
            result = stage_prune(config, out, data, _need(results, root, "student"), training)
        elif stage == "quantize":
            result = stage_quantize(config, out, data, _need(results, root, "prune"))
        elif stage == "export":
            result = stage_export(config, out, data, _need(results, root, "prune"))
        elif stage == "evaluate":
            result = stage_evaluate(config, out, data, _need(results, root, "export"),
                                    _need(results, root, "teacher"))
        else:
            finished = [s for s in STAGES[:-1] if s in results]
            if not finished:
                raise UserError(
                    f"--stages=report: no stage has finished in {root}, so there is nothing to "
                    "report; run the pipeline without --stages (or the earlier stages) first."
                )
            result = stage_report(config, out, results, data)
        result["stage_seconds"] = time.perf_counter() - t0
        results[stage] = result
        if stage == "report" and len(finished) < len(STAGES) - 1:
            if config.verbose:
                print(f"[pipeline] report: partial (stages {[s for s in STAGES[:-1] if s not in results]} "
                      "not done), so it is not marked done; a later run rewrites it.")
            continue
        mark_done(root, stage, result)
    return results


def _streamed_data(config):
    """(arrays, streamed) of a --stream run: the StreamedSplits the teacher and student train
    on, and in memory the first `stream_sample_size` training images and the evaluation split
    for the stages that read arrays."""
    from keras_caps.runs.datasets import in_memory, load_streamed, stream_sample_size

    streamed = load_streamed(config)
    arrays = in_memory(streamed, stream_sample_size(config))
    if config.verbose:
        print(f"[pipeline] --stream: training on {len(streamed[0]):,} images from disk; "
              f"{len(arrays[0][0]):,} training and {len(arrays[1][0]):,} evaluation images in "
              "memory", flush=True)
    return arrays, streamed


def _need(results, root, stage):
    return results.get(stage) or load_done(root, stage)


__all__ = ["OUTPUT_EXTENSIONS", "STAGES", "PipelineConfig", "PipelineOptions",
           "best_quantized", "load_done", "mark_done", "pipeline", "search_count",
           "stage_evaluate", "stage_export", "stage_prune", "stage_quantize", "stage_report",
           "stage_student", "stage_teacher"]
