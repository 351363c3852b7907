"""LiteRT 1-thread time of each op of a flatbuffer, run alone (compare.single_op_model), with
the default kernels (XNNPACK delegate where it takes the op) and without the delegate.

    python benchmarks/results/session12/op_profile.py MODEL.tflite [MODEL2.tflite ...]

Prints per op: index, name, output shape, us default, us no-delegate; then the sums by op name
and the whole model's time. Each op is timed as the median of 5 rounds x 200 invokes."""
import collections
import sys
import time

import numpy as np

from keras_caps.lite import compare, evaluate


def invoke_us(fb, kernels, n=200, rounds=5):
    it = evaluate.litert_interpreter(fb, num_threads=1, kernels=kernels)
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    for _ in range(20):
        it.invoke()
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            it.invoke()
        out.append((time.perf_counter() - t) / n * 1e6)
    return float(np.median(out))


for path in sys.argv[1:]:
    fb = open(path, "rb").read()
    model_t = compare.read_model(fb)
    names = compare.op_names(model_t)
    graph = model_t.subgraphs[0]
    by = collections.defaultdict(lambda: [0.0, 0.0, 0])
    print(path)
    for i, name in enumerate(names):
        sub, _, outs = compare.single_op_model(fb, i, model_t)
        shape = list(graph.tensors[outs[0]].shape)
        d, n = invoke_us(sub, "default"), invoke_us(sub, "nodelegate")
        by[name][0] += d
        by[name][1] += n
        by[name][2] += 1
        print(f"  {i:3d} {name:14s} {str(shape):22s} {d:7.2f} {n:7.2f}")
    for name, (d, n, c) in sorted(by.items(), key=lambda kv: -kv[1][0]):
        print(f"  sum {name:14s} x{c:<3d} {d:8.1f} {n:8.1f}")
    print(f"  sum of ops {sum(v[0] for v in by.values()):.1f} us default, "
          f"{sum(v[1] for v in by.values()):.1f} us no delegate; whole model "
          f"{invoke_us(fb, 'default'):.1f} / {invoke_us(fb, 'nodelegate'):.1f} us")
