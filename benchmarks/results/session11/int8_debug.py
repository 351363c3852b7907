"""Where does the int8 M model lose accuracy? LiteRT's QuantizationDebugger, per op.

    python benchmarks/results/session11/int8_debug.py NAME [N_EVAL]

NAME a pretrained model (fashion_mnist_mcu_m). Traces the one-grid integer form (no squash
ranges: the form before session 11, whose loss this located; the op names of the groups below
are that graph's), calibrates on 200 training images like the export, then prints per op: the RMSE of the int8 output against the float output, in int8
steps (rmse / scale), and the accuracy of selective models in which one op at a time is
left in float (on the last N_EVAL training images: a diagnosis, not a test-split choice).
"""
import csv
import io
import sys
import tempfile

import numpy as np
import tensorflow as tf

from keras_caps import data as data_lib
from keras_caps.capsule_ops import integer_form
from keras_caps.lite import export as ex
from keras_caps.models import pretrained

name = sys.argv[1]
n_eval = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
model = pretrained(name)
train = data_lib.load_arrays("fashion_mnist", "train")
calib = train[0][:50000]
evx, evy = train[0][-n_eval:], train[1][-n_eval:]
form = ex.export_form(model)
tmp = tempfile.mkdtemp()
with integer_form(True):
    conv = ex.converter_for(form, tmp)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = ex.representative_dataset(calib, 200)
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

debug_x = ex.unit_images(evx[:100])


def debug_gen():
    for x in debug_x:
        yield [x[None].astype("float32")]


dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=debug_gen)
dbg.run()
buf = io.StringIO()
dbg.layer_statistics_dump(buf)
rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
print("op_name tensor scale rmse/scale max_abs/scale")
for r in rows:
    scale = float(r["scale"])
    rmse = float(r["mean_squared_error"]) ** 0.5
    print(f"{r['op_name']:16s} {r['tensor_name'][-60:]:60s} {scale:.4g} {rmse / scale:7.2f} "
          f"{float(r['max_abs_error']) / scale:7.1f}")


def accuracy(flat):
    interp = tf.lite.Interpreter(model_content=flat, experimental_op_resolver_type=(
        tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    x = ex.unit_images(evx)
    hits = 0
    for k in range(len(x)):
        xi = x[k:k + 1]
        if i["dtype"] == np.int8:
            sc, zp = i["quantization"]
            xi = np.clip(np.round(xi / sc + zp), -128, 127).astype(np.int8)
        interp.set_tensor(i["index"], xi.astype(i["dtype"]))
        interp.invoke()
        hits += int(np.argmax(interp.get_tensor(o["index"])[0]) == evy[k])
    return hits / len(x)


names = [r["tensor_name"] for r in rows]
groups = {
    "none": [],
    "primary squash": [n for n in names if "primary_caps" in n and "conv" not in n],
    "class squash it1": [n for n in names if "class_caps" in n and n.split("/")[-1] in (
        "MatMul_1", "Add", "Rsqrt", "Mul_3", "Sub", "Maximum", "Rsqrt_1", "Mul_4", "Mul_2", "Mul_5")],
    "class squash it3 + length": [n for n in names if "class_caps" in n and n.split("/")[-1] in (
        "MatMul_5", "Add_3", "Rsqrt_4", "Mul_17", "Sub_6", "Maximum_2", "Rsqrt_5", "Mul_18",
        "Mul_16", "Mul_19") or "length" in n],
    "votes": [n for n in names if n.endswith("class_caps_1/MatMul")],
    "agreements": [n for n in names if "class_caps" in n and n.split("/")[-1] in (
        "Mul_7", "Mean_1", "Mul_14", "Mean_2", "Add_2")],
}
groups["all capsule ops"] = [n for n in names if "caps" in n or "length" in n]
for label, nodes in groups.items():
    opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes) if nodes else None
    d = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=debug_gen,
                                                  debug_options=opts)
    flat = d.get_nondebug_quantized_model()
    print(f"{label:28s} float-left ops {len(nodes):3d} accuracy {accuracy(flat):.4f}", flush=True)
