"""Capsule layers. Every layer is registered for `.keras` saving under package "keras_caps"."""

from keras_caps.layers.conv_capsule import ConvCapsule
from keras_caps.layers.decoder import Decoder
from keras_caps.layers.dense_capsule import DenseCapsule
from keras_caps.layers.masking import Length, Mask
from keras_caps.layers.primary_capsule import PrimaryCapsule

__all__ = ["ConvCapsule", "Decoder", "DenseCapsule", "Length", "Mask", "PrimaryCapsule"]
