"""Model builders and sub-model views."""

from keras_caps.models.capsnet import capsnet
from keras_caps.models.deep_capsnet import deep_capsnet
from keras_caps.models.heads import (
    capsule_model,
    classifier,
    feature_layer_names,
    feature_model,
    has_decoder,
    image_input,
)

__all__ = [
    "capsnet",
    "capsule_model",
    "classifier",
    "deep_capsnet",
    "feature_layer_names",
    "feature_model",
    "has_decoder",
    "image_input",
]
