"""keras_caps: efficient Capsule Networks in Keras 3.

Train them fast, distil them into small students, prune and quantize them, and export them as
integer TFLite models that run on microcontrollers.
"""

from keras_caps.quiet import has_nvidia_driver as _has_nvidia_driver
from keras_caps.quiet import quiet_binary_default as _quiet_binary_default
from keras_caps.quiet import quiet_fds as _quiet_fds
from keras_caps.quiet import tf_log_level_asks_quiet as _asks_quiet

# TensorFlow writes its start-up INFO lines (oneDNN, CUDA stubs) from C++ before it reads
# TF_CPP_MIN_LOG_LEVEL; when that variable asks for quiet, they are dropped here, and on a
# machine without an NVIDIA driver so is the CUDA probe's expected "failed call to cuInit";
# the project's binaries (train/, tflite/, benchmarks/) ask for quiet by default
with _quiet_fds(_quiet_binary_default() or _asks_quiet()):
    import tensorflow as _tensorflow

    if not _has_nvidia_driver():
        _tensorflow.config.list_physical_devices("GPU")

# importing the package registers every serializable keras_caps object (layers, losses, LR
# schedules) so that `keras.saving.load_model` finds them in any process
from keras_caps import capsule_ops, layers, losses, models, schedules

__version__ = "0.1.0"

__all__ = ["capsule_ops", "layers", "losses", "models", "schedules", "__version__"]
