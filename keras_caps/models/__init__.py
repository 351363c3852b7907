"""Model builders and sub-model views."""

from keras_caps.models.baseline import cnn_baseline, cnn_like
from keras_caps.models.capsnet import capsnet
from keras_caps.models.compiling import accuracy_key, compile_capsnet
from keras_caps.models.deep_capsnet import deep_capsnet
from keras_caps.models.heads import (
    capsule_model,
    classifier,
    feature_layer_names,
    feature_model,
    has_decoder,
    image_input,
)
from keras_caps.models.mcu_capsnet import MCU_SIZES, mcu_capsnet
from keras_caps.models.reference import pretrained, pretrained_card, pretrained_tflite

__all__ = [
    "MCU_SIZES",
    "mcu_capsnet",
    "pretrained",
    "pretrained_card",
    "pretrained_tflite",
    "accuracy_key",
    "capsnet",
    "cnn_baseline",
    "compile_capsnet",
    "cnn_like",
    "capsule_model",
    "classifier",
    "deep_capsnet",
    "feature_layer_names",
    "feature_model",
    "has_decoder",
    "image_input",
]
