r"""The distillation loss terms of capsule networks (paper 000, Sec. 3.3-3.4).

The loss a `Distiller` (keras_caps.training.distillation) trains its student with:

    L = alpha * T^2 * KL(p_t(T) || p_s(T)) + beta * L_task(student, labels)
        [+ gamma * L_caps(teacher capsules, student capsules)]
        [+ L_recon(student reconstruction)]  [+ the student's own weight regularizers]

Class scores from capsule lengths (the mapping this module uses)
----------------------------------------------------------------
A CapsNet has no logits: class j is scored by the length |v_j| in [0, 1) of its class capsule.
The softmax inputs ("logits") are

    z_j = log(|v_j| + eps)                      (eps = `score_epsilon`, default 1e-6)
    p_j(T) = softmax(z / T)_j = (|v_j| + eps)^(1/T) / sum_k (|v_k| + eps)^(1/T)

Why the logarithm and not, e.g., z = |v| / T':
  * At T = 1 the distribution is the normalised lengths, p_j = |v_j| / sum_k |v_k|: if the
    scores already are probabilities (they sum to 1), softmax(z / 1) gives them back exactly
    (up to eps). So T = 1 means "no softening" as in Hinton et al., and T > 1 softens by a
    power, p_j ~ |v_j|^(1/T) (T = 3: cube roots).
  * It only depends on length *ratios*, so it is invariant to the overall scale of the
    lengths (margin-trained capsules sit near 0.9 / 0.1, squash never reaches 1).
  * Lengths are bounded in [0, 1), so z = |v| / T' spans at most 1 / T': even at T' = 1 the
    softmax of the lengths is nearly uniform (max ratio e^1 ~ 2.7) and the KL term is tiny
    whatever the teacher knows; the log mapping keeps the teacher's ratios (0.9 / 0.1 = 9).
  * Non-target lengths ("dark knowledge") keep their relative order and ratios.
The Distiller computes the lengths with `safe_length` from the `class_caps` outputs (|v|, never the
squared export form |v|^2, whatever the model's `Length` layer returns); `safe_length` is
>= sqrt(1e-7) ~ 3e-4, so z >= -8.1 and the gradients stay finite.

The KL is summed over classes and averaged over the batch ("batchmean"); the T^2 factor keeps
its gradients on the scale of the task loss when T changes (Hinton et al. 2015).

Task loss: "margin" (default; Sabour, m+ 0.9, m- 0.1, lambda 0.5) on the student lengths, or
"crossentropy": -sum_j y_j log p_j(1), the cross-entropy of the T = 1 distribution above.

Capsule matching (paper 3.3, "minimising the difference between the activations of the
corresponding capsules"): `capsule_weight` > 0 adds the mean squared error between the teacher's
and the student's class capsules (B, J, D), averaged over B, J and D, when both have the same
class-capsule dimension D; when the dimensions differ the capsule axes do not correspond, so it
falls back to the MSE between the lengths (B, J), averaged over B and J.

Reconstruction: when the student has a decoder its reconstruction loss is added
(`ReconstructionLoss`, recon_weight x sum of squared pixel errors, Sabour's 0.0005 by default).

Shapes: B batch, J classes, D class-capsule dimension, (H, W, C) image.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_caps.capsule_ops import safe_length

TASK_LOSSES = ("margin", "crossentropy")


def length_logits(lengths, epsilon=1e-6):
    """Class logits from capsule lengths: z = log(|v| + eps). (B, J) -> (B, J)."""
    return ops.log(ops.add(lengths, epsilon))


def soft_probabilities(lengths, temperature=3.0, epsilon=1e-6):
    """p(T) = softmax(log(|v| + eps) / T) = (|v| + eps)^(1/T) normalised. (B, J) -> (B, J)."""
    return ops.softmax(ops.divide(length_logits(lengths, epsilon), temperature), axis=-1)


def distillation_kl(teacher_lengths, student_lengths, temperature=3.0, epsilon=1e-6):
    """KL(p_t(T) || p_s(T)) per sample, summed over classes (without the T^2 factor).

    Args:
        teacher_lengths, student_lengths: capsule lengths (B, J).
    Returns:
        (B,) KL divergences (>= 0, zero when the two length vectors are proportional).
    """
    log_pt = ops.log_softmax(ops.divide(length_logits(teacher_lengths, epsilon), temperature))
    log_ps = ops.log_softmax(ops.divide(length_logits(student_lengths, epsilon), temperature))
    return ops.sum(ops.multiply(ops.exp(log_pt), ops.subtract(log_pt, log_ps)), axis=-1)


def length_crossentropy(y_true, lengths, epsilon=1e-6):
    """-sum_j y_j log p_j(1), p(1) = normalised lengths. y one-hot (B, J), lengths (B, J) -> (B,)."""
    log_p = ops.log_softmax(length_logits(lengths, epsilon), axis=-1)
    return -ops.sum(ops.multiply(ops.cast(y_true, log_p.dtype), log_p), axis=-1)


def capsule_matching_loss(teacher_caps, student_caps):
    """MSE between class capsules (B, J, D) if D matches, else between their lengths (B, J).

    Returns a scalar (mean over the batch and the matched axes).
    """
    if teacher_caps.shape[-1] == student_caps.shape[-1]:
        return ops.mean(ops.square(ops.subtract(teacher_caps, student_caps)))
    diff = ops.subtract(safe_length(teacher_caps), safe_length(student_caps))  # (B, J)
    return ops.mean(ops.square(diff))


def _one_hot(y, num_classes, dtype="float32"):
    """One-hot (B, J) or integer labels (B,) / (B, 1) -> one-hot (B, J)."""
    if len(y.shape) == 2 and y.shape[-1] == num_classes:
        return ops.cast(y, dtype)
    return ops.one_hot(ops.reshape(ops.cast(y, "int32"), (-1,)), num_classes, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_caps")
class LengthCrossentropy(keras.losses.Loss):
    """Cross-entropy of the normalised capsule lengths (the T = 1 distribution of this module).

    y_true: one-hot (B, J) or integer labels (B,); y_pred: capsule lengths (B, J).
    Returns (B,) per sample, averaged over the batch by the default reduction.
    """

    def __init__(self, epsilon=1e-6, name="length_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        return length_crossentropy(_one_hot(y_true, y_pred.shape[-1], y_pred.dtype), y_pred,
                                   self.epsilon)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


__all__ = [
    "LengthCrossentropy",
    "TASK_LOSSES",
    "capsule_matching_loss",
    "distillation_kl",
    "length_crossentropy",
    "length_logits",
    "soft_probabilities",
]
