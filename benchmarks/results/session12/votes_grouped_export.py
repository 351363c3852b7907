"""The shipped model's int8 export with the weight-shared votes as a BATCH_MATMUL over groups of
G capsule types with a block-diagonal kernel (the same integer sums as the per-type
BATCH_MATMUL; fewer, larger batches): tried for speed, not adopted (slower on LiteRT).

    G=2 python benchmarks/results/session12/votes_grouped_export.py fashion_mnist_mcu_s OUT.tflite
"""
import os
import sys

from keras import ops

import keras_caps.capsule_ops as co
import keras_caps.layers.dense_capsule as dc
from keras_caps import data
from keras_caps.lite.export import convert
from keras_caps.models import pretrained

G = int(os.environ.get("G", "2"))
shared = co.predict_votes_shared


def grouped(u, kernel):
    if not co.in_integer_form() or G == 1:
        return shared(u, kernel)
    t, j, din, dout = kernel.shape
    p, b = u.shape[1], co._batch(u)
    rows = b * p if b != -1 else -1
    ng = t // G
    w = ops.reshape(ops.transpose(kernel, (0, 2, 1, 3)), (t, din, j * dout))  # (T, Din, J*Dout)
    eye = ops.reshape(ops.eye(G, dtype=w.dtype), (1, G, 1, G, 1))
    bd = ops.reshape(ops.multiply(ops.reshape(w, (ng, G, din, 1, j * dout)), eye),
                     (ng, G * din, G * j * dout))  # block-diagonal per group
    x = ops.transpose(ops.reshape(u, (rows, ng, G * din)), (1, 0, 2))  # (ng, B*P, G*Din)
    v = ops.reshape(ops.matmul(x, bd), (ng, b, p, G, j, dout))
    v = ops.transpose(v, (1, 4, 2, 0, 3, 5))  # (B, J, P, ng, G, Dout)
    return ops.reshape(v, (b, j, p * t, dout))


dc.predict_votes_shared = grouped
x, _ = data.load_arrays("fashion_mnist", "train", max_examples=2000)
fb = convert(pretrained(sys.argv[1]), "int8", x)
open(sys.argv[2], "wb").write(fb)
print(len(fb))
