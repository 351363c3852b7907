"""votes_ab.py with the converter's per-tensor quantization of dense layers."""
import sys

import tensorflow as tf

orig = tf.lite.TFLiteConverter.from_saved_model
def patched(*a, **k):
    c = orig(*a, **k)
    c._experimental_disable_per_channel_quantization_for_dense_layers = True
    return c
tf.lite.TFLiteConverter.from_saved_model = patched
sys.argv = sys.argv[:]
exec(open("/work/scratch/votes_ab.py").read())
