"""Which ops' XNNPACK rounding makes the int8 model part from TFLite Micro? Runs the flatbuffer
op by op, each op alone, on XNNPACK (LiteRT default) when its type is in a chosen set and on
LiteRT's reference kernels (= TFLite Micro bit for bit) otherwise; reports the argmax
agreement of each mix with the reference kernels on the test images.

    python benchmarks/results/session13/hybrid.py MODEL.tflite [N] [MIX ...]

MIX: op types run on XNNPACK, comma-separated ("all": every op); default: all, each type
alone and all but each type.
"""
import json
import sys

import numpy as np

from keras_caps import data
from keras_caps.lite import compare as cmp

path = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
fb = open(path, "rb").read()
model_t = cmp.read_model(fb)
graph = model_t.subgraphs[0]
names = cmp.op_names(model_t)
x, y = data.load_arrays("fashion_mnist", "test", max_examples=n)
batches = cmp.quantized_inputs(fb, x)
ops = []
for i in range(len(graph.operators)):
    single, ins, outs = cmp.single_op_model(fb, i, model_t)
    ops.append((names[i], ins, outs, {k: cmp._Runner(k, single) for k in ("litert", "litert_ref")}))
graph_in, graph_out = int(graph.inputs[0]), int(graph.outputs[0])


def run(xnn_types, xb):
    values = {graph_in: xb}
    for name, ins, outs, runners in ops:
        res = runners["litert" if name in xnn_types else "litert_ref"].run([values[t] for t in ins])
        values.update(zip(outs, res))
    return np.argmax(values[graph_out], -1)


types = sorted(set(names))
mixes = [(), tuple(types)] + [(t,) for t in types] + [tuple(t for t in types if t != u) for u in types]
if len(sys.argv) > 3:
    mixes = [()] + [tuple(types) if m == "all" else tuple(m.split(",")) for m in sys.argv[3:]]
ref = np.concatenate([run((), xb) for xb in batches])
for mix in mixes[1:]:
    pred = np.concatenate([run(mix, xb) for xb in batches])
    print(json.dumps(dict(xnnpack_ops=list(mix), images=len(ref), agree_ref=float(np.mean(pred == ref)),
                          flips=int(np.sum(pred != ref)), accuracy=float(np.mean(pred == y[:len(pred)])))), flush=True)
print(json.dumps(dict(reference_accuracy=float(np.mean(ref == y[:len(ref)])), op_types=types)))
