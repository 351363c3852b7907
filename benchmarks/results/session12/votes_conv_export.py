"""The shipped model's int8 export with the weight-shared votes as 1x1 CONV_2D over the
positions: FORM=grouped, one grouped CONV_2D (groups = capsule types); FORM=split, UNPACK +
one CONV_2D per type + PACK. A try of issue 14 item 5's CONV_2D form.

    FORM=grouped python benchmarks/results/session12/votes_conv_export.py fashion_mnist_mcu_s OUT.tflite
"""
import os
import sys

from keras import ops

import keras_caps.capsule_ops as co
import keras_caps.layers.dense_capsule as dc
from keras_caps import data
from keras_caps.lite.export import convert
from keras_caps.models import pretrained

FORM = os.environ.get("FORM", "grouped")
shared = co.predict_votes_shared


def conv_votes(u, kernel):
    if not co.in_integer_form():
        return shared(u, kernel)
    t, j, din, dout = kernel.shape
    p, b = u.shape[1], co._batch(u)
    w = ops.transpose(kernel, (0, 2, 1, 3))  # (T, Din, J, Dout)
    if FORM == "grouped":
        x = ops.reshape(u, (b, 1, p, t * din))  # channels t * Din + d
        k = ops.reshape(ops.transpose(w, (1, 0, 2, 3)), (1, 1, din, t * j * dout))
        v = ops.conv(x, k)  # (B, 1, P, T * J * Dout), groups = T
    else:
        xs = ops.unstack(ops.reshape(u, (b, 1, p, t, din)), axis=3)
        v = ops.stack([ops.conv(xs[i], ops.reshape(w[i], (1, 1, din, j * dout)))
                       for i in range(t)], 3)  # (B, 1, P, T, J * Dout)
    v = ops.reshape(v, (b, p, t, j, dout))
    return ops.reshape(ops.transpose(v, (0, 3, 1, 2, 4)), (b, j, p * t, dout))


dc.predict_votes_shared = conv_votes
x, _ = data.load_arrays("fashion_mnist", "train", max_examples=2000)
fb = convert(pretrained(sys.argv[1]), "int8", x)
open(sys.argv[2], "wb").write(fb)
print(len(fb))
