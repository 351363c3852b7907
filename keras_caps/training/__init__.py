"""Training: compile/fit helpers, resumable checkpoints, callbacks."""

from keras_caps.training.callbacks import ResumableCheckpoint
from keras_caps.training.loop import accuracy_key, compile_capsnet, fit_capsnet, model_io

__all__ = ["ResumableCheckpoint", "accuracy_key", "compile_capsnet", "fit_capsnet", "model_io"]
