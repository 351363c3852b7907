"""Training: compile/fit helpers, resumable checkpoints, callbacks."""

from keras_caps.training.callbacks import ResumableCheckpoint
from keras_caps.training.loop import accuracy_key, compile_capsnet, fit_capsnet, model_io

__all__ = ["ResumableCheckpoint", "accuracy_key", "compile_capsnet", "fit_capsnet", "model_io"]

# Distillation and transfer learning (paper 000, Sec. 3.3-3.5).
from keras_caps.training.distillation import Distiller, LengthCrossentropy, fit_distiller  # noqa: E402
from keras_caps.training.transfer import (  # noqa: E402
    GradualUnfreezing,
    default_stages,
    init_student_from_teacher,
    replace_head,
    with_l2_regularization,
)

__all__ += [
    "Distiller",
    "GradualUnfreezing",
    "LengthCrossentropy",
    "default_stages",
    "fit_distiller",
    "init_student_from_teacher",
    "replace_head",
    "with_l2_regularization",
]
