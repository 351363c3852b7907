import keras, tensorflow as tf, numpy as np
from keras_caps import data
from keras_caps.lite.quiet import quiet_fds
base = keras.models.load_model("runs/session10/cnn_s.keras")
xx, _ = data.load_arrays("fashion_mnist", "train", max_examples=2)
print("dtype", xx.dtype, xx.max())
inp = keras.Input((28, 28, 1)); m = keras.Model(inp, base(keras.layers.Rescaling(255.0)(inp)) if xx.dtype == np.uint8 else base(inp))
xtr, _ = data.load_arrays("fashion_mnist", "train", max_examples=2000)
rep = xtr[:200].astype("float32") / 255.0
c = tf.lite.TFLiteConverter.from_keras_model(m)
c.optimizations = [tf.lite.Optimize.DEFAULT]
c.representative_dataset = lambda: ([r[None]] for r in rep)
c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
c.inference_input_type = c.inference_output_type = tf.int8
with quiet_fds():
    open("runs/session10/cnn_s.tflite", "wb").write(c.convert())
