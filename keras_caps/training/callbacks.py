"""Training callbacks: resumable checkpoints, history files."""

from __future__ import annotations

import csv
import io
import json
import os

import keras

from keras_caps.io_utils import save_model, write_json, write_text

STATE_FILE = "state.json"
LAST_MODEL = "last.keras"


def history_csv(history):
    """History rows [{"epoch": e, metric: value}] -> CSV text (columns sorted, epoch first)."""
    keys = sorted({k for row in history for k in row if k != "epoch"})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["epoch"] + keys)
    for row in history:
        writer.writerow([row["epoch"]] + [row.get(k, "") for k in keys])
    return out.getvalue()


def read_state(checkpoint_dir):
    """The saved training state (completed epochs, history, best) or None if there is none."""
    path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.exists(path) or not os.path.exists(os.path.join(checkpoint_dir, LAST_MODEL)):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f"checkpoint state {path} is unreadable ({err}); delete {checkpoint_dir} to start "
            "over, or restore it from a backup."
        ) from err


def load_last_model(checkpoint_dir):
    """Loads the last checkpointed model (optimizer state included)."""
    return keras.saving.load_model(os.path.join(checkpoint_dir, LAST_MODEL))


class ResumableCheckpoint(keras.callbacks.Callback):
    """At the end of every epoch: saves the model with its optimizer state and the history.

    Writes atomically under `model_dir`:
        checkpoints/last.keras   model + optimizer (the resume point)
        checkpoints/state.json   {"epoch": completed epochs, "history": [...], "best": ...}
        history.csv              one row per completed epoch
        best.keras               the model with the best `monitor` so far (if monitored)

    A run interrupted at any point resumes from the last completed epoch; an epoch is never
    recorded twice because history lives in the same state file as the epoch counter.

    Args:
        model_dir: run folder.
        history: rows of already completed epochs (from a resumed state).
        monitor: metric for best.keras (e.g. "val_lengths_accuracy"); None to skip.
        mode: "max" or "min".
        best: best monitored value so far (resumed).
    """

    def __init__(self, model_dir, history=None, monitor=None, mode="max", best=None):
        super().__init__()
        self.model_dir = model_dir
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")
        self.history = list(history or [])
        self.monitor = monitor
        self.mode = mode
        self.best = best

    def _improved(self, value):
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": int(epoch) + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.history.append(row)
        if self.monitor and self.monitor in row and self._improved(row[self.monitor]):
            self.best = row[self.monitor]
            save_model(self.model, os.path.join(self.model_dir, "best.keras"))
        save_model(self.model, os.path.join(self.checkpoint_dir, LAST_MODEL))
        write_json(
            os.path.join(self.checkpoint_dir, STATE_FILE),
            {"epoch": int(epoch) + 1, "history": self.history, "best": self.best,
             "monitor": self.monitor},
        )
        write_text(os.path.join(self.model_dir, "history.csv"), history_csv(self.history))
