"""CapsNet losses as Keras losses (each with get_config).

Shapes: B batch, J classes, (H, W, C) image.
"""

from __future__ import annotations

import keras
from keras import ops


def _one_hot_like(y_true, y_pred):
    """Accepts one-hot (B, J) or integer (B,) / (B, 1) labels; returns one-hot (B, J)."""
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1]:
        return ops.cast(y_true, y_pred.dtype)
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    return ops.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype)


def margin_loss(y_true, y_pred, m_plus=0.9, m_minus=0.1, down_weight=0.5):
    """Sabour's margin loss per sample, summed over the classes.

    L = sum_j T_j max(0, m+ - |v_j|)^2 + lambda (1 - T_j) max(0, |v_j| - m-)^2

    Args:
        y_true: one-hot labels (B, J), or integer labels (B,) / (B, 1).
        y_pred: capsule lengths |v_j|, (B, J).
        m_plus: float, m+, the length a present class should reach. Defaults to 0.9.
        m_minus: float, m-, the length an absent class should stay under. Defaults to 0.1.
        down_weight: float, lambda, the weight of the absent classes. Defaults to 0.5.
    Returns:
        The per-sample losses, (B,).

    Example:

    ```python
    import numpy as np
    from keras_caps.losses import margin_loss

    lengths = np.array([[0.95, 0.05], [0.5, 0.3]], "float32")  # (B, J)
    labels = np.array([0, 1])  # integer labels (B,)
    # sample 0 is right beyond both margins: 0; sample 1: (0.9 - 0.3)^2 + 0.5 (0.5 - 0.1)^2
    np.testing.assert_allclose(margin_loss(labels, lengths), [0.0, 0.44], atol=1e-6)
    ```
    """
    t = _one_hot_like(y_true, y_pred)
    present = ops.square(ops.relu(ops.subtract(m_plus, y_pred)))
    absent = ops.square(ops.relu(ops.subtract(y_pred, m_minus)))
    per_class = t * present + down_weight * (1.0 - t) * absent  # (B, J)
    return ops.sum(per_class, axis=-1)


@keras.saving.register_keras_serializable(package="keras_caps")
class MarginLoss(keras.losses.Loss):
    """Margin loss as a Keras loss: summed over the classes, mean over the batch.

    See `margin_loss` for the formula; the defaults are Sabour's m+ = 0.9, m- = 0.1,
    lambda = 0.5.

    Shapes (B batch, J classes): y_true one-hot (B, J) or integer labels (B,); y_pred capsule
    lengths (B, J).

    Args:
        m_plus: float, m+. Defaults to 0.9.
        m_minus: float, m-, with 0 <= m- < m+ <= 1. Defaults to 0.1.
        down_weight: float, lambda >= 0. Defaults to 0.5.
        name: str. Defaults to "margin_loss".
        **kwargs: other keyword arguments of `keras.losses.Loss` (`reduction`, `dtype`).
    Raises:
        ValueError: margins outside 0 <= m- < m+ <= 1, or a negative `down_weight`.

    Example:

    ```python
    import numpy as np
    from keras_caps.losses import MarginLoss

    loss = MarginLoss()
    lengths = np.array([[0.95, 0.05], [0.5, 0.3]], "float32")  # (B, J)
    one_hot = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")  # (B, J)
    np.testing.assert_allclose(loss(one_hot, lengths), 0.22, atol=1e-6)  # mean of 0 and 0.44

    # Compile a CapsNet with it (the model's output is {"lengths": ...}):
    from keras_caps.models import mcu_capsnet

    model = mcu_capsnet("S")
    model.compile(optimizer="adam", loss={"lengths": MarginLoss()})
    ```
    """

    def __init__(self, m_plus=0.9, m_minus=0.1, down_weight=0.5, name="margin_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= m_minus < m_plus <= 1.0:
            raise ValueError(f"need 0 <= m_minus < m_plus <= 1, got m_minus={m_minus}, m_plus={m_plus}.")
        if down_weight < 0:
            raise ValueError(f"down_weight must be >= 0, got {down_weight}.")
        self.m_plus = float(m_plus)
        self.m_minus = float(m_minus)
        self.down_weight = float(down_weight)

    def call(self, y_true, y_pred):
        return margin_loss(y_true, y_pred, self.m_plus, self.m_minus, self.down_weight)

    def get_config(self):
        config = super().get_config()
        config.update(m_plus=self.m_plus, m_minus=self.m_minus, down_weight=self.down_weight)
        return config


@keras.saving.register_keras_serializable(package="keras_caps")
class ReconstructionLoss(keras.losses.Loss):
    """Reconstruction loss: weight x sum of squared pixel errors per image (Sabour: 0.0005).

    This is the sum-of-squares form: for 28 x 28 x 1 images 0.0005 x SSE = 0.392 x MSE.
    The weight lives in the loss, so compile it with loss weight 1.

    Shapes (B batch, (H, W, C) image): y_true images (B, H, W, C) in [0, 1]; y_pred the
    reconstructions, same shape. Per sample (B,), averaged over the batch by the default
    reduction.

    Args:
        weight: float >= 0, the factor of the sum of squared errors. Defaults to 0.0005.
        name: str. Defaults to "reconstruction_loss".
        **kwargs: other keyword arguments of `keras.losses.Loss` (`reduction`, `dtype`).
    Raises:
        ValueError: a negative `weight`.

    Example:

    ```python
    import numpy as np
    from keras_caps.losses import ReconstructionLoss

    images = np.zeros((2, 28, 28, 1), "float32")  # (B, H, W, C)
    recon = np.full((2, 28, 28, 1), 0.5, "float32")
    sse = 28 * 28 * 0.25  # per image
    np.testing.assert_allclose(ReconstructionLoss()(images, recon), 0.0005 * sse, rtol=1e-5)
    ```
    """

    def __init__(self, weight=0.0005, name="reconstruction_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if weight < 0:
            raise ValueError(f"reconstruction weight must be >= 0, got {weight}.")
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        err = ops.subtract(ops.cast(y_true, y_pred.dtype), y_pred)
        axes = tuple(range(1, len(y_pred.shape)))
        return self.weight * ops.sum(ops.multiply(err, err), axis=axes)

    def get_config(self):
        config = super().get_config()
        config.update(weight=self.weight)
        return config
