"""keras_caps: efficient Capsule Networks in Keras 3.

Train them fast, distil them into small students, prune and quantize them, and export them as
integer TFLite models that run on microcontrollers.
"""

from keras_caps import capsule_ops, layers, losses, models

__version__ = "0.1.0"

__all__ = ["capsule_ops", "layers", "losses", "models", "__version__"]
