"""int8 flatbuffer of runs/session10/cnn_s.keras (trained on 0-255 images: a Rescaling(255)
in front, so it takes image / 255 like the CapsNets), calibrated on 200 training images."""
import keras
import tensorflow as tf

from keras_caps import data
from keras_caps.lite.quiet import quiet_fds

base = keras.models.load_model("runs/session10/cnn_s.keras")
inp = keras.Input((28, 28, 1))
model = keras.Model(inp, base(keras.layers.Rescaling(255.0)(inp)))
rep = data.load_arrays("fashion_mnist", "train", max_examples=200)[0].astype("float32") / 255.0
c = tf.lite.TFLiteConverter.from_keras_model(model)
c.optimizations = [tf.lite.Optimize.DEFAULT]
c.representative_dataset = lambda: ([r[None]] for r in rep)
c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
c.inference_input_type = c.inference_output_type = tf.int8
with quiet_fds():
    flatbuffer = c.convert()
with open("runs/session10/cnn_s.tflite", "wb") as f:
    f.write(flatbuffer)
