"""keras_caps: efficient Capsule Networks in Keras 3.

Train them fast, distil them into small students, prune and quantize them, and export them as
integer TFLite models that run on microcontrollers.
"""

# importing the package registers every serializable keras_caps object (layers, losses, LR
# schedules) so that `keras.saving.load_model` finds them in any process
from keras_caps import capsule_ops, layers, losses, models, schedules

__version__ = "0.1.0"

__all__ = ["capsule_ops", "layers", "losses", "models", "schedules", "__version__"]
