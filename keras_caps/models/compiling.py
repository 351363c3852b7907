"""Compiling a keras_caps model for training: the margin loss (+ reconstruction) and accuracy.

`compile_capsnet` is what `keras_caps.training.fit_capsnet` and `models.pretrained(...,
compile=True)` use; `accuracy_key` names the accuracy in the logs of a model it compiled.
"""

from __future__ import annotations

import keras

from keras_caps.losses import MarginLoss, ReconstructionLoss
from keras_caps.models.heads import has_decoder


def accuracy_key(model):
    """Key of the class accuracy in the Keras logs of a `compile_capsnet` model.

    Keras prefixes metric names with the output name only when a model has several outputs:
    "lengths_accuracy" with a decoder, "accuracy" without ("val_" + key for validation).

    Args:
        model: a keras_caps model (or a `CCMTrainer` wrapping one).
    Returns:
        str.

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.models.compiling import accuracy_key

    assert accuracy_key(mcu_capsnet("S")) == "accuracy"
    assert accuracy_key(mcu_capsnet("S", decoder="reduced")) == "lengths_accuracy"
    ```
    """
    return "lengths_accuracy" if has_decoder(model) else "accuracy"


def compile_capsnet(model, optimizer=None, recon_weight=0.0005, m_plus=0.9, m_minus=0.1,
                    down_weight=0.5, jit_compile="auto", run_eagerly=False):
    """Compiles a keras_caps model with the margin loss (+ reconstruction loss with a decoder).

    Args:
        model: from `capsnet` / `deep_capsnet` / `mcu_capsnet` (or a `CCMTrainer`).
        optimizer: a Keras optimizer (default Adam(1e-3)).
        recon_weight: weight of the sum-of-squares reconstruction loss (Sabour: 0.0005).
        m_plus: margin-loss target length of the true class (Sabour: 0.9).
        m_minus: margin-loss bound on the other classes' lengths (Sabour: 0.1).
        down_weight: margin-loss weight lambda of the other classes (Sabour: 0.5).
        jit_compile: passed to `model.compile` ("auto": XLA only where Keras enables it).
        run_eagerly: train without tf.function (slow; for debugging a layer with pdb/print).
    Returns:
        The model, compiled; its accuracy is logged under `accuracy_key(model)`.

    Example:

    ```python
    import numpy as np
    from keras_caps.models import mcu_capsnet
    from keras_caps.models.compiling import compile_capsnet

    model = compile_capsnet(mcu_capsnet("S"))
    images = np.zeros((4, 28, 28, 1), "float32")  # (B, H, W, C)
    labels = np.eye(10, dtype="float32")[[0, 1, 2, 3]]  # one-hot (B, J)
    logs = model.evaluate(images, {"lengths": labels}, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    ```
    """
    losses = {"lengths": MarginLoss(m_plus, m_minus, down_weight)}
    if has_decoder(model):
        losses["reconstruction"] = ReconstructionLoss(recon_weight)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss=losses,
        metrics={"lengths": [keras.metrics.CategoricalAccuracy(name="accuracy")]},
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
    )
    return model


__all__ = ["accuracy_key", "compile_capsnet"]
