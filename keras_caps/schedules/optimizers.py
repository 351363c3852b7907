"""Keras optimizers by name (the training binaries' --optimizer)."""

from __future__ import annotations

import keras

from keras_caps.schedules._checks import _lookup

_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "adagrad": keras.optimizers.Adagrad,
    "rmsprop": keras.optimizers.RMSprop,
}


def make_optimizer(name="adam", learning_rate=1e-3, **kwargs):
    """A Keras optimizer by name: "adam" (default), "sgd", "adagrad", "rmsprop".

    Args:
        learning_rate: a float or a LearningRateSchedule.
        **kwargs: passed on to the optimizer (e.g. momentum for SGD, clipnorm).
    """
    cls = _lookup("optimizer", _OPTIMIZERS, name)
    return cls(learning_rate=learning_rate, **kwargs)


__all__ = ["make_optimizer"]
