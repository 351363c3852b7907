"""The shipped model's int8 export with the weight-shared votes as one FULLY_CONNECTED per
capsule type (UNPACK, 8 x FULLY_CONNECTED, PACK; per-tensor weights with UNSTACK=1 PT=1, the
defaults): tried, not adopted (LiteRT reference and TFLite Micro then part on 0.16 % of the test
images, agree10k_votes_fc.jsonl).

    python benchmarks/results/session12/votes_fc_export.py fashion_mnist_mcu_s OUT.tflite
"""
import os
import sys

from keras import ops

import keras_caps.capsule_ops as co
import keras_caps.layers.dense_capsule as dc
import keras_caps.lite.export as ex
from keras_caps import data
from keras_caps.models import pretrained

UNSTACK = os.environ.get("UNSTACK", "1") == "1"
PER_TENSOR = os.environ.get("PT", "1") == "1"
shared = co.predict_votes_shared
converter_for = ex.converter_for


def fc_votes(u, kernel):
    if not co.in_integer_form():
        return shared(u, kernel)
    t, j, din, dout = kernel.shape
    p, b = u.shape[1], co._batch(u)
    us = ops.unstack(u, axis=2) if UNSTACK else [u[:, :, k, :] for k in range(t)]
    outs = []
    for k in range(t):
        w = ops.reshape(ops.transpose(kernel[k], (1, 0, 2)), (din, j * dout))  # (Din, J*Dout)
        outs.append(ops.matmul(ops.reshape(us[k], (-1, din)), w))  # (B*P, J*Dout)
    v = ops.reshape(ops.stack(outs, 1), (b, p, t, j, dout))
    return ops.reshape(ops.transpose(v, (0, 3, 1, 2, 4)), (b, j, p * t, dout))


def per_tensor_converter(*args, **kwargs):
    conv = converter_for(*args, **kwargs)
    conv._experimental_disable_per_channel_quantization_for_dense_layers = PER_TENSOR
    return conv


dc.predict_votes_shared = fc_votes
ex.converter_for = per_tensor_converter
x, _ = data.load_arrays("fashion_mnist", "train", max_examples=2000)
fb = ex.convert(pretrained(sys.argv[1]), "int8", x)
open(sys.argv[2], "wb").write(fb)
print(len(fb))
