"""Training progress output: Keras' bar in a terminal or notebook, one line per epoch in a log.

Keras 3 draws its progress bar with carriage returns whenever it runs on a POSIX system, so
output piped to a file (`make demo > log`, `nohup ... &`) gets every redraw of every bar: a
60,000-image run writes hundreds of kilobytes a minute. `EpochProgress` replaces Keras' own
ProgbarLogger in the resumable fit loop (keras_caps.training.loop):

- on an interactive terminal or in a notebook it is Keras' bar, with the epoch counted against
  the whole schedule ("Epoch 3/30"; the loop fits one epoch at a time, so Keras alone would
  print "Epoch 3/3");
- otherwise it prints one line per epoch, e.g.
  `Epoch 3/30 - 18s - accuracy: 0.9123 - loss: 0.0812 - val_accuracy: 0.9050 - val_loss: 0.0701`
  (loss terms that are exactly 0, i.e. those a run does not use, are left out).

verbose 0 prints nothing either way (Keras passes `fit(verbose=...)` to the callback).

Example:

```python
import numpy as np
import keras
from keras_caps.training.progress import EpochProgress

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
x, y = np.zeros((8, 4), "float32"), np.zeros((8,), "int32")  # (N, 4), (N,)
progress = EpochProgress(total_epochs=5, bar=False)  # one line per epoch
model.fit(x, y, initial_epoch=2, epochs=3, verbose=1, callbacks=[progress])  # "Epoch 3/5 - ..."
```
"""

from __future__ import annotations

import sys
import time

import keras


def interactive_output(stream=None):
    """True when `stream` (default sys.stdout) is shown live: a terminal, or a Jupyter / Colab
    notebook (whose output is not a tty but renders the bar's redraws)."""
    stream = sys.stdout if stream is None else stream
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def epoch_line(epoch, total_epochs, logs, seconds=None):
    """The one-line summary of an epoch (see the module docstring).

    Args:
        epoch: the 0-based epoch that ended.
        total_epochs: the schedule's length.
        logs: Keras' epoch logs {name: value}; "time_s" (the loop's epoch timer) and the
            *_loss terms that are exactly 0 are left out.
        seconds: the epoch's wall time (None: logs["time_s"] if present).
    Returns:
        str, e.g. "Epoch 3/30 - 18s - accuracy: 0.9123 - loss: 0.0812".
    """
    logs = dict(logs or {})
    seconds = logs.pop("time_s", None) if seconds is None else seconds
    logs.pop("time_s", None)
    parts = [f"Epoch {epoch + 1}/{total_epochs}"]
    if seconds is not None:
        parts.append(f"{float(seconds):.0f}s")
    for name, value in logs.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if value != 0.0 or not name.endswith("_loss") or name == "val_loss":
            parts.append(f"{name}: {value:.4f}")
    return " - ".join(parts)


class EpochProgress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar numbered against the whole schedule, or one line per epoch.

    Args:
        total_epochs: the schedule's length (the loop fits one epoch per `fit` call).
        bar: True: Keras' bar; False: one line per epoch; None (default): the bar only when
            the output is interactive (`interactive_output`).
    """

    def __init__(self, total_epochs, bar=None):
        super().__init__()
        self.total_epochs = int(total_epochs)
        self.bar = interactive_output() if bar is None else bool(bar)
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        if not self.bar:
            return
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.total_epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.bar:
            super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar:
            super().on_epoch_end(epoch, logs)
            return
        if self.verbose:
            seconds = None
            if self._start is not None and "time_s" not in (logs or {}):
                seconds = time.perf_counter() - self._start
            print(epoch_line(epoch, self.total_epochs, logs, seconds), flush=True)


__all__ = ["EpochProgress", "epoch_line", "interactive_output"]
