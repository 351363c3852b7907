r"""The command lines of the TFLite tools: argv -> exit status, one function per tool.

    python -m tflite.export ...      keras-caps-export ...     export_main(argv)
    python -m tflite.evaluate ...    keras-caps-evaluate ...   evaluate_main(argv)
    python -m tflite.audit ...       keras-caps-audit ...      audit_main(argv)
    python -m tflite.compare ...     keras-caps-compare ...    compare_main(argv)
    python -m tflite.c_source ...    keras-caps-c-source ...   c_source_main(argv)

Each `*_main(argv)` parses `argv` (None: sys.argv[1:]) with argparse, makes the library calls
of `keras_caps.lite` and returns the exit status (0: fine; audit / compare: 1 when the model
fails the check, 2 when it cannot be read). The `*_cli()` functions are the console entry
points (and what `python -m tflite.X` runs): each reports user errors (bad data, a model that
does not match it, a missing file) as one line `error: ...` with exit status 2
(keras_caps.cli.run_main), and otherwise exits with its main's status.

Example:
    >>> from keras_caps.lite.cli import audit_main
    >>> audit_main(["runs/demo/model_int8.tflite", "--int8"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_caps.cli import run_main


def _parser(module):
    return argparse.ArgumentParser(description=module.__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


# ----------------------------------------------------------------------------- export


def export_main(argv=None):
    """`tflite.export`: a .keras model -> a .tflite file (+ labels.txt, + C sources)."""
    from keras_caps import validation
    from keras_caps.lite import data_args, export
    from keras_caps.models.compat import check_model_data

    parser = _parser(export)
    parser.add_argument("--model", required=True, help=".keras model to export")
    parser.add_argument("--out", required=True, help="output .tflite path")
    parser.add_argument("--mode", choices=export.MODES, default="int8")
    # calibration data (training split; default fashion_mnist) and the class names
    data_args.add_data_arguments(parser, default=None)
    parser.add_argument("--num_calibration", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--lengths", choices=("squared", "plain"), default="squared")
    parser.add_argument("--c_source", default=None, metavar="DIR",
                        help="also write model_data.cc / model_data.h / model_ops.h for a "
                             "TFLite Micro project into DIR (integer modes)")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's and TFLite Micro's C++ log lines")
    args = parser.parse_args(argv)
    if not os.path.exists(args.model):
        parser.error(f"--model {args.model} does not exist")
    model = validation.load_keras_model(args.model, "--model")
    needs_data = args.mode in ("int8", "int8_pot", "int16x8")
    info = rep = None
    if needs_data or args.dataset:  # a float export without --dataset checks nothing
        args.dataset = args.dataset or "fashion_mnist"
        info = data_args.dataset_info(args)
    if needs_data:
        rep, _ = data_args.load(args, "train", max(args.num_calibration * 10, 1000))
    shape = tuple(rep.shape[1:]) if rep is not None else info and info.image_shape
    if shape:
        check_model_data(model, shape, info.num_classes, f"--model {args.model}",
                         f"--dataset={args.dataset}")
    size = export.export(model, args.out, args.mode, rep, batch_size=args.batch_size,
                         squared=args.lengths == "squared", num_calibration=args.num_calibration,
                         verbose=args.verbose)
    print(f"wrote {args.out} ({size:,} bytes, {args.mode})")
    if info is not None:
        labels = data_args.write_labels(args.out, info.class_names or range(info.num_classes))
        print(f"wrote {labels}")
    if args.c_source:
        from keras_caps.lite import c_source
        from keras_caps.lite.evaluate import tflm_arena_bytes

        with open(args.out, "rb") as f:
            flatbuffer = f.read()
        paths = c_source.write_c_sources(
            flatbuffer, args.c_source, (info.class_names if info is not None else None),
            arena_bytes=tflm_arena_bytes(flatbuffer, verbose=args.verbose))
        print("wrote " + ", ".join(paths))
    return 0


# ----------------------------------------------------------------------------- evaluate


def evaluate_main(argv=None):
    """`tflite.evaluate`: one .tflite file, or a .keras model exported in every mode."""
    import keras  # noqa: F401

    from keras_caps import data_sources, plots, validation
    from keras_caps.io_utils import write_json, write_text
    from keras_caps.lite import data_args, evaluate
    from keras_caps.models.compat import check_model_data

    parser = _parser(evaluate)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--tflite", help="a .tflite file to evaluate")
    src.add_argument("--model", help="a .keras model: export every mode and compare")
    data_args.add_data_arguments(parser)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument("--calibration_examples", type=int, default=2000)
    parser.add_argument("--latency_repeats", type=int, default=50)
    parser.add_argument("--modes", default=None, help="comma-separated modes (with --model)")
    parser.add_argument("--report", default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    if not args.tflite:
        validation.check_keras_file(args.model, "--model")
    info = data_args.dataset_info(args)
    images, labels = data_args.load(args, args.split, args.max_examples)
    shape = tuple(int(d) for d in images.shape[1:])

    def confusion_png(row, path):
        if row.get("confusion_matrix"):
            k = len(row["confusion_matrix"])
            row["confusion_png"] = plots.plot_confusion_matrix(
                row["confusion_matrix"], path, data_sources.class_names_for(info.class_names, k),
                title=f"{row['name']} on {args.dataset} {args.split}")

    if args.tflite:
        flatbuffer = validation.read_tflite_file(args.tflite, "--tflite")
        data_args.check_flatbuffer_data(flatbuffer, shape, info.num_classes,
                                        f"--tflite {args.tflite}", args.dataset)
        row = evaluate.evaluate(flatbuffer, images, labels, args.latency_repeats,
                                name=args.tflite)
        confusion_png(row, os.path.splitext(args.tflite)[0] + "_confusion.png")
        for k, v in row.items():
            if k != "confusion_matrix":
                print(f"{k:24s} {v}")
        return 0
    model = validation.load_keras_model(args.model, "--model")
    check_model_data(model, shape, info.num_classes, f"--model {args.model}",
                     f"--dataset={args.dataset}")
    calib, _ = data_args.load(args, "train", args.calibration_examples)
    out_dir = os.path.dirname(os.path.abspath(args.report or args.model))
    modes = args.modes.split(",") if args.modes else None
    rows, table = evaluate.report(model, calib, images, labels, modes, out_dir,
                                  args.latency_repeats)
    for row in rows:
        if row.get("confusion_matrix"):
            mode = row["name"].replace("TFLite ", "")
            confusion_png(row, os.path.join(out_dir, f"confusion_{mode}.png"))
    text = (f"TFLite evaluation of {args.model} on {args.dataset} {args.split} "
            f"({len(images)} examples)\n\n{table}\n")
    print(text)
    if args.report:
        write_text(args.report, text)
        write_json(os.path.splitext(args.report)[0] + ".json", rows)
    return 0


# ----------------------------------------------------------------------------- audit


def audit_main(argv=None):
    """`tflite.audit`: 0 when the model passes, 1 when it fails, 2 when it cannot be read."""
    from keras_caps.lite import audit

    parser = _parser(audit)
    parser.add_argument("model", help="path of the .tflite file")
    parser.add_argument("--int8", action="store_true", default=None,
                        help="enforce integer-only rules (default: when the input is int8/int16)")
    parser.add_argument("--pot", action="store_true", help="require power-of-two scales")
    args = parser.parse_args(argv)
    try:
        report = audit.audit(args.model, int8=args.int8, pot=args.pot)
    except (ValueError, OSError) as err:
        print(f"cannot read {args.model}: {err}", file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.ok else 1


# ----------------------------------------------------------------------------- compare


def compare_main(argv=None):
    """`tflite.compare`: 0 when the runtimes agree within --threshold, 1 when not, 2 when the
    model cannot be read."""
    import numpy as np

    from keras_caps.lite import compare, data_args

    parser = _parser(compare)
    parser.add_argument("model", help="path of the .tflite file")
    parser.add_argument("--images", type=int, default=20, help="number of test images")
    data_args.add_data_arguments(parser)  # --dataset=random: noise of the model's input shape
    parser.add_argument("--split", default="test")
    parser.add_argument("--threshold", type=float, default=1.0,
                        help="largest acceptable difference in quantized steps")
    parser.add_argument("--all", action="store_true",
                        help="list every op (default: only ops where some runtime differs)")
    parser.add_argument("--runtimes", default=",".join(compare.RUNTIMES),
                        help="comma-separated subset of " + ", ".join(compare.RUNTIMES)
                             + " (e.g. litert_nodelegate,litert_ref,tflm: the runtimes that "
                             "emulate a microcontroller)")
    args = parser.parse_args(argv)
    runtimes = tuple(r.strip() for r in args.runtimes.split(",") if r.strip())
    unknown = [r for r in runtimes if r not in compare.RUNTIMES]
    if unknown or len(runtimes) < 2:
        print(f"--runtimes: give at least two of {', '.join(compare.RUNTIMES)}; got "
              f"{args.runtimes!r}", file=sys.stderr)
        return 2
    try:
        with open(args.model, "rb") as f:
            flatbuffer = f.read()
        compare.read_model(flatbuffer)
    except Exception as err:  # noqa: BLE001 - any unreadable file
        print(f"cannot read {args.model}: {err}", file=sys.stderr)
        return 2
    if args.dataset == "random":
        shape = tuple(int(d) for d in compare.input_detail(flatbuffer)["shape"][1:])
        images = np.random.RandomState(0).randint(0, 256, (args.images,) + shape).astype("uint8")
    else:
        info = data_args.dataset_info(args)
        images, _ = data_args.load(args, args.split, args.images)
        data_args.check_flatbuffer_data(flatbuffer, tuple(int(d) for d in images.shape[1:]),
                                        info.num_classes, args.model, args.dataset)
    result = compare.compare(flatbuffer, images, args.threshold, runtimes=runtimes)
    print(result.text(only_diverging=not args.all))
    return 0 if result.ok else 1


# ----------------------------------------------------------------------------- c_source


def c_source_main(argv=None):
    """`tflite.c_source`: writes the C sources; 1 when the model cannot be written as C."""
    from keras_caps.lite import c_source, data_args

    parser = _parser(c_source)
    parser.add_argument("model", help="path of the .tflite file")
    parser.add_argument("--out", required=True, help="output folder")
    data_args.add_data_arguments(parser, default=None)
    parser.add_argument("--name", default="model", help="prefix of files and C identifiers")
    args = parser.parse_args(argv)
    with open(args.model, "rb") as f:
        flatbuffer = f.read()
    labels = None
    if args.dataset:  # class labels of --dataset, any spelling (folder names, TFDS names)
        info = data_args.dataset_info(args)
        data_args.check_flatbuffer_data(flatbuffer, info.image_shape, info.num_classes,
                                        args.model, args.dataset)
        labels = list(info.class_names)
    try:
        paths = c_source.write_c_sources(flatbuffer, args.out, labels, name=args.name)
    except (c_source.CSourceError, RuntimeError) as err:
        print(f"cannot write C sources: {err}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(paths))
    return 0


# ----------------------------------------------------------------------------- entry points


def export_cli(argv=None):
    """Console entry point `keras-caps-export` (= `python -m tflite.export`)."""
    run_main(export_main, use_absl=False, argv=argv)


def evaluate_cli(argv=None):
    """Console entry point `keras-caps-evaluate` (= `python -m tflite.evaluate`)."""
    run_main(evaluate_main, use_absl=False, argv=argv)


def audit_cli(argv=None):
    """Console entry point `keras-caps-audit` (= `python -m tflite.audit`)."""
    run_main(audit_main, use_absl=False, argv=argv)


def compare_cli(argv=None):
    """Console entry point `keras-caps-compare` (= `python -m tflite.compare`)."""
    run_main(compare_main, use_absl=False, argv=argv)


def c_source_cli(argv=None):
    """Console entry point `keras-caps-c-source` (= `python -m tflite.c_source`)."""
    run_main(c_source_main, use_absl=False, argv=argv)


__all__ = ["audit_cli", "audit_main", "c_source_cli", "c_source_main", "compare_cli",
           "compare_main", "evaluate_cli", "evaluate_main", "export_cli", "export_main"]
