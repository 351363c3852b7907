"""Training callbacks: resumable checkpoints, history files."""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile

import keras

from keras_caps.errors import NonFiniteLossError, RunDirError, UserError
from keras_caps.io_utils import atomic_path, history_csv, save_model, write_json, write_text

STATE_FILE = "state.json"
LAST_MODEL = "last.keras"
# the training state inside last.keras: model, optimizer and state are one atomic file, so they
# can never disagree; checkpoints/state.json is a readable copy written after it
STATE_ENTRY = "keras_caps_state.json"
RECOVERY_HINT = (
    "To keep the results, move {model_dir} away; to start this run over, pass --overwrite "
    "(it moves the previous results to a backup folder next to it) or use a new --model_dir."
)


def file_sha256(path, chunk=1 << 20):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _damaged(checkpoint_dir, what):
    model_dir = os.path.dirname(os.path.abspath(checkpoint_dir))
    return RunDirError(f"the checkpoint in {checkpoint_dir} is damaged or incomplete: {what}. "
                       + RECOVERY_HINT.format(model_dir=model_dir))


def save_checkpoint(model, checkpoint_dir, state):
    """Writes last.keras (model + optimizer + `state` inside it) atomically, then the readable
    copy state.json (with the SHA-256 of last.keras)."""
    path = os.path.join(checkpoint_dir, LAST_MODEL)
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(STATE_ENTRY, json.dumps(state, default=float))
    write_json(os.path.join(checkpoint_dir, STATE_FILE),
               {**state, "model_file": LAST_MODEL, "model_sha256": file_sha256(path)})


def read_state(checkpoint_dir):
    """The saved training state (completed epochs, history, best), or None if there is none.

    The state is read from inside last.keras (written with it in one atomic step); a
    checkpoint from before that (no state inside) uses state.json. Raises RunDirError with a
    recovery hint when the checkpoint is incomplete (state.json without last.keras or the
    other way round), damaged, or its files disagree.
    """
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    model_path = os.path.join(checkpoint_dir, LAST_MODEL)
    has_state, has_model = os.path.exists(state_path), os.path.exists(model_path)
    if not has_state and not has_model:
        return None
    if not has_model:
        raise _damaged(checkpoint_dir, f"{STATE_FILE} is there but {LAST_MODEL} is missing")
    try:
        with zipfile.ZipFile(model_path) as archive:
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("an entry fails its CRC check")
            embedded = (json.loads(archive.read(STATE_ENTRY))
                        if STATE_ENTRY in archive.namelist() else None)
    except (zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError) as err:
        raise _damaged(checkpoint_dir, f"{LAST_MODEL} is not a readable .keras archive "
                                       f"({err})") from err
    if embedded is not None:
        return embedded
    if not has_state:
        raise _damaged(checkpoint_dir, f"{LAST_MODEL} is there but {STATE_FILE} is missing")
    try:
        with open(state_path) as f:
            state = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise _damaged(checkpoint_dir, f"{STATE_FILE} is unreadable ({err})") from err
    digest = state.get("model_sha256")
    if digest and digest != file_sha256(model_path):
        raise _damaged(checkpoint_dir, f"{LAST_MODEL} is not the model {STATE_FILE} describes "
                                       "(checksum mismatch)")
    return state


def load_last_model(checkpoint_dir):
    """Loads the last checkpointed model (optimizer state included)."""
    path = os.path.join(checkpoint_dir, LAST_MODEL)
    try:
        return keras.saving.load_model(path)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any load failure of a checkpoint is reported
        first = " ".join(str(err).split())[:300]
        raise _damaged(checkpoint_dir, f"{LAST_MODEL} does not load ({type(err).__name__}: "
                                       f"{first})") from err


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training with a NonFiniteLossError as soon as a loss is NaN or infinite.

    Checked after every batch (the training loss) and at the end of every epoch (every loss in
    the logs, validation included) before the checkpoint callbacks run, so the last good
    checkpoint on disk is never replaced by a model with NaN weights. Put it first in the list.

    Args:
        checkpoint_dir: named in the message (where the last good checkpoint is).
    """

    def __init__(self, checkpoint_dir=None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)

    def _fail(self, key, value, where):
        keep = (f"the last good checkpoint (completed epochs) is kept in {self.checkpoint_dir}"
                if self.checkpoint_dir else "no checkpoint was written for this epoch")
        raise NonFiniteLossError(
            f"training stopped: {key} became {value} at epoch {self._epoch + 1}{where}; {keep}. "
            "Check the data for NaN/Inf or wrongly scaled values, or lower --learning_rate, "
            "then run again (it resumes from that checkpoint)."
        )

    @staticmethod
    def _bad(value):
        try:
            return not math.isfinite(float(value))
        except (TypeError, ValueError):
            return False

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is not None and self._bad(value):
            self._fail("the training loss", float(value), f", batch {int(batch) + 1}")

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if key.endswith("loss") and self._bad(value):
                self._fail(key, float(value), "")


class ResumableCheckpoint(keras.callbacks.Callback):
    """At the end of every epoch: saves the model with its optimizer state and the history.

    Writes atomically under `model_dir`:
        checkpoints/last.keras   model + optimizer (the resume point)
        checkpoints/state.json   {"epoch": completed epochs, "history": [...], "best": ...}
        history.csv              one row per completed epoch
        best.keras               the model (or `best_model(model)`) with the best `monitor`
                                 so far (if monitored)

    A run interrupted at any point resumes from the last completed epoch; an epoch is never
    recorded twice because history lives in the same state file as the epoch counter.

    Args:
        model_dir: run folder.
        history: rows of already completed epochs (from a resumed state).
        monitor: metric for best.keras (e.g. "val_lengths_accuracy"); None to skip.
        mode: "max" or "min".
        best: best monitored value so far (resumed).
        best_model: callable model -> the model saved as best.keras (None: the model itself;
            `fit_distiller` saves the Distiller's student).

    Example:

    ```python
    import numpy as np
    from keras_caps.models import capsnet

    def tiny(**kw):  # a CapsNet for 12 x 12 images
        return capsnet(input_shape=(12, 12, 1), conv_filters=8, conv_kernel=3, primary_capsules=4,
                       primary_dim=4, primary_kernel=3, class_dim=6, decoder=None, **kw)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)  # (N, H, W, C)
    labels = rng.integers(0, 10, 16)  # (N,)

    import os
    from keras_caps import data
    from keras_caps.training import ResumableCheckpoint, compile_capsnet, model_io

    model = compile_capsnet(tiny())
    ds = data.make_dataset(images, labels, batch_size=8).map(model_io(model))
    model.fit(ds, validation_data=ds, epochs=2, verbose=0,
              callbacks=[ResumableCheckpoint("run", monitor="val_accuracy")])
    assert os.path.exists("run/checkpoints/last.keras") and os.path.exists("run/best.keras")
    ```
    """

    def __init__(self, model_dir, history=None, monitor=None, mode="max", best=None,
                 best_model=None):
        super().__init__()
        self.model_dir = model_dir
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")
        self.history = list(history or [])
        self.monitor = monitor
        self.mode = mode
        self.best = best
        self.best_model = best_model

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
            best_model = self.best_model(self.model) if self.best_model else self.model
            save_model(best_model, os.path.join(self.model_dir, "best.keras"))
        save_checkpoint(self.model, self.checkpoint_dir,
                        {"epoch": int(epoch) + 1, "history": self.history, "best": self.best,
                         "monitor": self.monitor})
        write_text(os.path.join(self.model_dir, "history.csv"), history_csv(self.history))
