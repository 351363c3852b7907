"""The pipeline's report: report.md, summary.md, summary.json and PNGs in <model_dir>/report/.

Written by the "report" stage of keras_caps.runs.pipeline.

One row per stage artefact (teacher, distilled student, pruned student, its power-of-two
simulation, the int8 TFLite model): accuracy, parameters, FLOPs, model bytes, TFLM arena and
latency, each with where it came from. Sizes ("bytes"): float32 weights of the inference head
(4 x params) for Keras models, weight memory of the spec for the PoT simulation (bits / 8,
exponents included), the flatbuffer for TFLite.
"""

from __future__ import annotations

import os

from keras_caps.io_utils import markdown_table, write_json, write_text
from keras_caps.runs.datasets import evaluation_split
from keras_caps.schedules import steps_for_epochs

COLUMNS = [
    ("stage", "stage", "s"), ("model", "model", "s"), ("accuracy", "test acc.", ".4f"),
    ("tflm_accuracy", "TFLM test acc. (microcontroller)", ".4f"),
    ("params", "params", ",d"), ("flops", "FLOPs", ",d"), ("bytes", "bytes", ",d"),
    ("arena_bytes", "TFLM arena", ",d"), ("latency_ms", "ms / image (1 thread)", ".3f"),
    ("seconds", "stage time (s)", ".0f"),
]


def columns(split="test"):
    """COLUMNS with "test" replaced by the evaluated split ("validation" with
    --validation_examples)."""
    return [(key, head.replace("test", split), fmt) for key, head, fmt in COLUMNS]


def data_line(config):
    """Which images the run trained and evaluated on, e.g. "20000 training and 2000 test
    images" or, with --validation_examples, "20000 training and 2000 validation images (the
    last 2000 of the first 22000 training images; the test split was not read)"."""
    held = config.validation_examples
    if not held:
        return (f"{config.train_examples or 'all'} training and {config.test_examples or 'all'} "
                "test images")
    first = f"the first {config.train_examples}" if config.train_examples else "all the"
    trained = f"{config.train_examples - held}" if config.train_examples else f"all but {held}"
    return (f"{trained} training and {held} validation images (the last {held} of {first} "
            "training images; the test split was not read)")


def teacher_gap_line(results, split="test"):
    """"The teacher scores T on the same N <split> images: int8 in TFLite Micro is D points
    below it." ("" when the evaluate stage has no teacher accuracy, e.g. an older run)."""
    ev = results.get("evaluate", {})
    teacher, tflm = ev.get("teacher_accuracy"), ev.get("int8", {}).get("tflm_accuracy")
    if teacher is None or tflm is None:
        return ""
    gap = 100.0 * (teacher - tflm)
    side = f"{gap:.2f} points below it" if gap >= 0 else f"{-gap:.2f} points above it"
    return (f"The teacher scores {teacher:.4f} on the same {ev.get('examples', 0):,} {split} "
            f"images as the int8 rows: int8 in TFLite Micro ({tflm:.4f}) is {side}.")


def final_student(results):
    """What the quantize / export rows describe: "pruned student", or "student" when the prune
    stage passed it through (--pruning_ratio=0)."""
    return "student" if results.get("prune", {}).get("skipped") else "pruned student"


def summary_rows(results):
    """The summary table rows from the stage results that exist (no prune row when it was
    skipped: the student row is that model)."""
    rows = []
    name = final_student(results)
    for stage, label in (("teacher", "CapsNet teacher (float32)"),
                         ("student", "student, transfer + KD (float32)"),
                         ("prune", "student pruned + retrained (float32)")):
        r = results.get(stage)
        if r and not r.get("skipped"):
            rows.append(dict(stage=stage, model=r.get("label", label), accuracy=r["accuracy"],
                             params=r["params"], flops=r["flops"], bytes=4 * r["params"],
                             seconds=r.get("stage_seconds")))
    q, p = results.get("quantize"), results.get("prune")
    if q:
        rows.append(dict(
            stage="quantize",
            model=f"{name}, PoT approach {q['approach']} "
                  f"(weights x{q['weight_reduction']:.2f}, acts x{q['activation_reduction']:.2f})",
            accuracy=q["accuracy"], params=p["params"] if p else None,
            flops=p["flops"] if p else None, bytes=int(q["weight_bits_total"] // 8),
            seconds=q.get("stage_seconds")))
    e, x = results.get("evaluate"), results.get("export")
    for mode, label in (("int8", f"{name}, int8 TFLite (TFLM)"),
                        ("int8_pot", f"{name}, int8 TFLite, power-of-two scales")):
        if e and x and mode in e:
            rows.append(dict(
                stage=f"export+evaluate {mode}", model=label, accuracy=e[mode]["accuracy"],
                tflm_accuracy=e[mode].get("tflm_accuracy"),
                params=p["params"] if p else None, flops=p["flops"] if p else None,
                bytes=x[mode]["bytes"], arena_bytes=e[mode].get("arena_bytes"),
                latency_ms=e[mode].get("latency_ms_1t"),
                seconds=(x.get("stage_seconds") or 0) + (e.get("stage_seconds") or 0)))
    return rows


def dead_capsule_section(model_path, images, out, num_batches=4):
    """Heatmaps of a deep teacher's capsule activations and its dead percentages (lines)."""
    from keras_caps.analysis.activations import (
        capsule_activations,
        dead_percentages,
        write_heatmaps,
    )
    from keras_caps.runs.models import load_capsnet

    acts = capsule_activations(load_capsnet(model_path), images, num_batches=num_batches)
    write_heatmaps(acts, os.path.join(out, "heatmaps"), prefix="teacher_")
    dead = dead_percentages(acts)
    lines = ["Dead capsules of the teacher (|mean output| <= 0.01, "
             f"{num_batches} test batches): "
             + ", ".join(f"{name} {pct:.1f} %" for name, pct in dead.items())
             + ". Heatmaps: heatmaps/teacher_*.png.", ""]
    return lines, dead


def confusion_section(config, out, exported, evaluated):
    """Confusion-matrix PNGs of the int8 models (class names on the axes) and report lines."""
    from keras_caps import plots
    from keras_caps.runs.datasets import class_names

    pngs, figures = {}, []
    for mode in ("int8", "int8_pot"):
        matrix = evaluated.get(mode, {}).get("confusion_matrix")
        if not matrix:
            continue
        names = exported.get("class_names")
        if not names or len(names) != len(matrix):
            names = class_names(config, len(matrix))
        pngs[f"confusion_{mode}"] = plots.plot_confusion_matrix(
            matrix, os.path.join(out, f"confusion_{mode}.png"), names,
            title=f"{mode} TFLite on {config.dataset}")
        figures.append(f"![{mode} confusion matrix](confusion_{mode}.png)")
    lines = []
    if figures:
        names = exported.get("class_names")
        if names:
            lines += [f"Classes ({len(names)}; line i of export/labels.txt is class i): "
                      + ", ".join(names) + ".", ""]
        lines += [" ".join(figures), ""]
    return {"pngs": pngs, "lines": lines}


def pipeline_card(config, results):
    """The model card of the pipeline's int8 microcontroller model (the pruned student's
    export/model_int8.tflite), or None before export and evaluate have finished."""
    from keras_caps.runs.model_card import model_card
    from keras_caps.runs.models import load_capsnet
    from keras_caps.runs.train import recipe_text

    e, x, p = results.get("evaluate"), results.get("export"), results.get("prune")
    if not (e and x and p and "int8" in e):
        return None
    s, q = results.get("student", {}), results.get("quantize", {})
    int8 = e["int8"]
    accuracy = {"float": q.get("float_test_accuracy"), "int8_litert": int8.get("accuracy"),
                "int8_litert_nodelegate": int8.get("litert_nodelegate_accuracy"),
                "int8_tflm": int8.get("tflm_accuracy")}
    model = load_capsnet(p["model"])
    student = (f"mcu_capsnet_{config.student_mcu_size}" if config.student_model == "mcu_capsnet"
               else "capsnet")
    student_epochs = config.student_epochs or config.epochs
    pruning = ("not pruned" if p.get("skipped") else
               f"pruned at ratio {config.pruning_ratio:g} (CCM {config.ccm_epochs} epochs, "
               f"alpha {config.ccm_alpha:g}; retrained {config.retrain_epochs} epochs)")
    recipe = (f"teacher {config.model} ({recipe_text(config)}); {s.get('label', 'student')}, "
              f"{student_epochs} epochs, T={config.temperature:g}; {pruning}; int8 "
              "post-training quantization")
    return model_card(
        os.path.basename(os.path.normpath(config.model_dir)),
        model=f"{student} student, "
              + ("not pruned" if p.get("skipped") else f"pruned at ratio {config.pruning_ratio:g}"),
        dataset=config.dataset, class_names=x.get("class_names") or [],
        input_shape=model.input_shape[1:] if not isinstance(model.input_shape, list)
        else model.input_shape[0][1:],
        training_data=f"{results.get('teacher', {}).get('train_examples') or config.train_examples or 'all'} "
                      "training images",
        evaluation=f"{e.get('examples', '?')} {evaluation_split(config)} images the "
                   "quantization search did not use "
                   f"(float: the {final_student(results)} Keras model on the same images)",
        recipe=recipe, accuracy=accuracy, params=p["params"], flops=p.get("flops"),
        int8_bytes=x["int8"]["bytes"], arena_bytes=int8.get("arena_bytes"),
        float_ops_in_int8=0 if x["int8"].get("audit_ok") else None,
        files={"int8 model": x["int8"]["tflite"], "labels": x.get("labels"),
               "Keras model": p["model"]},
        config=os.path.join(config.model_dir, "config.json"))


def write_report(config, out, results, data=None):
    """Writes the report files into `out`.

    Args:
        config: the PipelineConfig (the run's settings, quoted in the report).
        out: the report folder.
        results: {stage: result} of the finished stages.
        data: the pipeline's ((x_train, y_train), (x_test, y_test)); with a deep_capsnet
            teacher its test images give the dead-capsule heatmaps.
    Returns:
        {"report", "summary_md", "rows", "pngs", "dead_percentages", "model_card" (the
        card's JSON path beside export/model_int8.tflite, None before export / evaluate)}.
    """
    from keras_caps import plots
    from keras_caps.runs import optimization

    os.makedirs(out, exist_ok=True)
    split = evaluation_split(config)
    rows = summary_rows(results)
    table = markdown_table(rows, columns(split))
    gap = teacher_gap_line(results, split)
    pngs = {}
    points = [(r["stage"], r["bytes"], r["accuracy"]) for r in rows if r.get("bytes")]
    if points:
        pngs["accuracy_vs_size"] = plots.plot_accuracy_vs_size(
            points, os.path.join(out, "accuracy_vs_size.png"))
    policy = optimization.batch_policy(config)
    pngs["batch_schedule"] = plots.plot_batch_schedule(
        policy, max(1, config.epochs), os.path.join(out, "batch_schedule.png"),
        title=f"teacher batch size ({config.batch_policy})")
    n = results.get("teacher", {}).get("train_examples") or config.train_examples or 60000
    schedule = optimization.lr_schedule(config, n, policy)
    steps = sum(steps_for_epochs(policy, n, config.epochs))
    pngs["lr_schedule"] = plots.plot_lr_schedules(
        {config.lr_policy if config.batch_policy != "warmadabatch" else "warmadabatch": schedule},
        steps, os.path.join(out, "lr_schedule.png"), title="teacher learning rate")
    tflite = results.get("export", {})
    ev = results.get("evaluate", {})
    confusion = confusion_section(config, out, tflite, ev)
    pngs.update(confusion["pngs"])
    lines = [
        "# keras-caps pipeline report", "",
        f"Dataset {config.dataset}: {data_line(config)}; preset {config.preset}; teacher "
        f"{config.epochs} epochs ({config.batch_policy}), student {config.student_epochs or config.epochs} "
        f"epochs ({results.get('student', {}).get('label', 'transfer + distillation')}, "
        f"T={config.temperature}), "
        + ("not pruned (pruning ratio 0)" if results.get("prune", {}).get("skipped") else
           f"pruning ratio {config.pruning_ratio} (CCM {config.ccm_epochs} + retrain "
           f"{config.retrain_epochs} epochs)")
        + f", PoT approach {config.approach} with tolerance {config.tolerance} points.", "",
        table, "",
        f"Accuracies: Keras rows on all the {split} images the pipeline used; the PoT and "
        f"int8 rows on the {split} images the bit-width search did not use "
        f"({ev.get('examples', '?')} for the TFLite rows, with LiteRT), where the "
        f"{final_student(results)} float model "
        f"scores {results.get('quantize', {}).get('float_test_accuracy', float('nan')):.4f}."
        + (f" {gap}" if gap else ""),
        "",
    ]
    for mode in ("int8", "int8_pot"):
        if mode in tflite:
            t = tflite[mode]
            lines.append(f"{mode} TFLite: `{t['tflite']}`, {t['bytes']:,} bytes, TFLite Micro op "
                         f"audit{' with power-of-two scales' if mode == 'int8_pot' else ''} "
                         f"{'passed' if t.get('audit_ok') else 'FAILED'}.")
        if mode in ev:
            arena = ev[mode].get("arena_bytes")
            lines.append(
                f"{mode} in TFLite Micro: arena {arena:,} bytes; accuracy "
                f"{ev[mode].get('tflm_accuracy', float('nan')):.4f} in TFLite Micro and "
                f"{ev[mode].get('accuracy', float('nan')):.4f} in LiteRT "
                f"({ev[mode].get('litert_nodelegate_accuracy', float('nan')):.4f} without its "
                "default XNNPACK delegate) on "
                f"{ev[mode].get('tflm_examples', ev.get('examples', 0)):,} {split} images; "
                f"TFLM = LiteRT argmax on "
                f"{ev[mode].get('tflm_argmax_agreement', float('nan')):.3f} of them."
                if arena else f"{mode}: TFLite Micro did not run: {ev[mode].get('tflm_error')}")
    lines.append("")
    lines += confusion["lines"]
    lines += ["![accuracy vs size](accuracy_vs_size.png)", "",
              "![batch schedule](batch_schedule.png) ![lr schedule](lr_schedule.png)", "",
              "Per-stage details: teacher/, student/ (metrics.json, history.csv), prune/report.md, "
              "quantize/report.md, export/audit.json, evaluate/evaluation.json.", ""]
    dead = None
    if config.model == "deep_capsnet" and data is not None and "teacher" in results:
        section, dead = dead_capsule_section(results["teacher"]["model"], data[1][0], out)
        lines += section
    card = pipeline_card(config, results)
    card_paths = {}
    if card:
        from keras_caps.runs.model_card import write_model_card

        card_paths = write_model_card(os.path.join(os.path.dirname(os.path.normpath(out)),
                                                   "export"), card)
        lines += [f"Model card of the int8 model: `{card_paths['md']}`.", ""]
    report_path = os.path.join(out, "report.md")
    write_text(report_path, "\n".join(lines))
    summary_path = os.path.join(out, "summary.md")
    write_text(summary_path, table + "\n" + (f"\n{gap}\n" if gap else ""))
    write_json(os.path.join(out, "summary.json"), rows)
    return {"report": report_path, "summary_md": summary_path, "rows": rows, "pngs": pngs,
            "dead_percentages": dead, "model_card": card_paths.get("json")}
