"""Model cards for the models a user trains: `model_card`, `write_model_card`.

A card has the keys of the shipped reference models' cards (keras_caps.models.reference), so a
model a user trains is described like the ones the package ships:

    name, model, dataset, class_names, input_shape, training_data, evaluation, recipe,
    command (the command line that wrote it), config (the run's config.json), date,
    accuracy {"float"[, "int8_litert", "int8_litert_nodelegate", "int8_tflm"]},
    params, flops[, int8_bytes, arena_bytes, float_ops_in_int8], files {role: path}

Written as <folder>/model_card.json and a readable <folder>/model_card.md by `train` (the
float model) and by the pipeline's report stage (the int8 microcontroller model, next to
export/model_int8.tflite).

Example:
    >>> card = model_card("my_model", model="mcu_capsnet_S", dataset="folder:my_images",
    ...                   class_names=["ok", "scratch"], input_shape=(28, 28, 1),
    ...                   training_data="800 training images", evaluation="test split, 200 images",
    ...                   recipe="15 epochs, Adam", accuracy={"float": 0.91}, params=65792)
    >>> card["accuracy"]["float"], card["class_names"]
    (0.91, ['ok', 'scratch'])
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys

#: accuracy keys, in the order the markdown lists them, with their labels
ACCURACY_LABELS = {"float": "float (Keras)", "int8_litert": "int8, LiteRT (XNNPACK)",
                   "int8_litert_nodelegate": "int8, LiteRT without its default delegate",
                   "int8_tflm": "int8, TFLite Micro (the microcontroller)"}


def command_line():
    """The command line of this process, as a user would type it (`python -m ...`)."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv[0] = "python"
    return shlex.join(argv)


def model_card(name, *, model, dataset, class_names, input_shape, training_data, evaluation,
               recipe, accuracy, params, flops=None, int8_bytes=None, arena_bytes=None,
               float_ops_in_int8=None, files=None, config=None, command=None):
    """A model card dict (see the module docstring for the keys).

    Args:
        name: the card's name (e.g. the run folder's name).
        model: the architecture (e.g. the Keras model's name, "mcu_capsnet_S").
        dataset: the --dataset spelling the model was trained on.
        class_names: class names, index i = class i.
        input_shape: (H, W, C).
        training_data: what it was trained on, in words (e.g. "20,000 training images").
        evaluation: what the accuracies were measured on, in words.
        recipe: how it was trained, in words.
        accuracy: {key of ACCURACY_LABELS: fraction}; keys outside ACCURACY_LABELS are an error.
        params, flops: of the inference model.
        int8_bytes, arena_bytes, float_ops_in_int8: of the int8 TFLite export, when there is one.
        files: {role: path} of the files the card describes.
        config: path of the run's config.json.
        command: the command line (default: this process's, `command_line()`).
    Returns:
        dict (JSON-serialisable).
    """
    unknown = sorted(set(accuracy) - set(ACCURACY_LABELS))
    if unknown:
        raise ValueError(f"model_card: unknown accuracy keys {unknown}; use "
                         f"{list(ACCURACY_LABELS)}.")
    card = {
        "name": name, "model": model, "dataset": dataset,
        "class_names": [str(c) for c in class_names],
        "input_shape": [int(d) for d in input_shape], "training_data": training_data,
        "evaluation": evaluation, "recipe": recipe,
        "accuracy": {k: float(accuracy[k]) for k in ACCURACY_LABELS if accuracy.get(k) is not None},
        "params": int(params), "command": command or command_line(),
        "date": datetime.date.today().isoformat(),
    }
    optional = {"flops": flops, "int8_bytes": int8_bytes, "arena_bytes": arena_bytes,
                "float_ops_in_int8": float_ops_in_int8, "files": files, "config": config}
    card.update({k: v for k, v in optional.items() if v is not None})
    return card


def card_markdown(card):
    """The card as a short markdown page."""
    lines = [f"# Model card: {card['name']}", "",
             f"- model: {card['model']}, {card['params']:,} parameters"
             + (f", {card['flops']:,} FLOPs" if card.get("flops") else ""),
             f"- data: {card['dataset']}, input {' x '.join(map(str, card['input_shape']))}, "
             f"{len(card['class_names'])} classes: {', '.join(card['class_names'])}",
             f"- trained on: {card['training_data']}",
             f"- recipe: {card['recipe']}",
             f"- evaluated on: {card['evaluation']}", ""]
    lines += ["| accuracy | value |", "|---|---|"]
    lines += [f"| {ACCURACY_LABELS[k]} | {v:.4f} |" for k, v in card["accuracy"].items()]
    lines.append("")
    if card.get("int8_bytes"):
        lines.append(f"- int8 TFLite: {card['int8_bytes']:,} bytes, TFLite Micro arena "
                     f"{card.get('arena_bytes') or 0:,} bytes, float ops "
                     f"{card.get('float_ops_in_int8', '?')}")
    for role, path in (card.get("files") or {}).items():
        lines.append(f"- {role}: `{path}`")
    lines += [f"- reproduce: `{card['command']}`"
              + (f" (settings: `{card['config']}`)" if card.get("config") else ""),
              f"- written: {card['date']}", ""]
    return "\n".join(lines)


def write_model_card(folder, card):
    """Writes <folder>/model_card.json and model_card.md; returns {"json": path, "md": path}."""
    from keras_caps.io_utils import write_json, write_text

    os.makedirs(folder, exist_ok=True)
    paths = {"json": os.path.join(folder, "model_card.json"),
             "md": os.path.join(folder, "model_card.md")}
    write_json(paths["json"], card)
    write_text(paths["md"], card_markdown(card))
    return paths


__all__ = ["ACCURACY_LABELS", "card_markdown", "command_line", "model_card", "write_model_card"]
