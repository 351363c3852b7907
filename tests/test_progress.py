"""Training progress: one line per epoch in a log, Keras' bar in a terminal, numbered against
the whole schedule."""

import io

import keras
import numpy as np

from keras_caps.training.progress import EpochProgress, epoch_line, interactive_output


def _fit(capsys, bar, verbose=1):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.ones((32, 4), "float32"), np.zeros((32,), "int32")
    progress = EpochProgress(total_epochs=7, bar=bar)
    for epoch in (2, 3):  # as the resumable loop fits: one epoch per call
        model.fit(x, y, batch_size=4, initial_epoch=epoch, epochs=epoch + 1,
                  validation_data=(x, y), verbose=verbose, callbacks=[progress])
    return capsys.readouterr().out


def test_a_log_gets_one_line_per_epoch_numbered_against_the_schedule(capsys):
    out = _fit(capsys, bar=False)
    lines = out.splitlines()  # splitlines splits at carriage returns too: no bar redraws
    assert len(lines) == 2, out
    assert lines[0].startswith("Epoch 3/7 - ") and lines[1].startswith("Epoch 4/7 - ")
    assert "val_accuracy: " in lines[0] and "loss: " in lines[0]
    assert "\r" not in out and "\x1b" not in out


def test_a_terminal_gets_keras_bar_with_the_schedule_epoch(capsys):
    out = _fit(capsys, bar=True)
    assert "Epoch 3/7" in out and "Epoch 4/7" in out and "Epoch 4/4" not in out
    assert "8/8" in out  # Keras' bar: steps done / steps


def test_verbose_zero_prints_nothing(capsys):
    assert _fit(capsys, bar=False, verbose=0) == ""
    assert _fit(capsys, bar=True, verbose=0) == ""


def test_epoch_line_leaves_out_zero_terms_and_the_timer():
    line = epoch_line(0, 30, {"loss": 0.25, "kd_loss": 0.0, "accuracy": 0.0, "time_s": 17.6})
    assert line == "Epoch 1/30 - 18s - loss: 0.2500 - accuracy: 0.0000"


def test_interactive_output_is_false_for_a_pipe_or_a_file():
    assert not interactive_output(io.StringIO())

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert interactive_output(Tty())
