r"""What an embedded project compiles: the model as C source, its op resolver and constants.

    python -m tflite.c_source MODEL.tflite --out=DIR [--dataset=fashion_mnist] [--name=model]
    python -m tflite.export --model=... --mode=int8 --out=m.tflite --c_source=DIR

Writes into DIR:
    model_data.h / model_data.cc   `alignas(16) const unsigned char g_model_data[]` and
                                   `g_model_data_len`; the arena size, input / output
                                   quantization and class labels as constants;
    model_ops.h                    `BuildModelOpResolver(resolver)` registering exactly the
                                   model's ops on a `tflite::MicroMutableOpResolver<N>`
                                   (N = the number of distinct ops), and `ModelOpResolver`.
The arena constant is the smallest arena the TFLite Micro host interpreter allocates the model
in (`keras_caps.lite.evaluate.tflm_arena_bytes`) plus a margin (ARENA_MARGIN_FRACTION of it, at least
ARENA_MARGIN_BYTES): a device build's kernels (CMSIS-NN scratch buffers, alignment) may need
somewhat more than the host's reference kernels.
"""

from __future__ import annotations

import math
import os
import re

from keras_caps.errors import UserError

#: Class names of the named datasets (the order of their integer labels).
CLASS_LABELS = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(i) for i in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
    "svhn_cropped": tuple(str(i) for i in range(10)),
}

#: The arena margin over the measured arena: this fraction of it, at least ARENA_MARGIN_BYTES.
ARENA_MARGIN_FRACTION = 0.10
ARENA_MARGIN_BYTES = 1024

#: TFLite builtin op name -> `tflite::MicroMutableOpResolver` method (TFLite Micro API).
RESOLVER_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv", "EXPAND_DIMS": "AddExpandDims",
    "FULLY_CONNECTED": "AddFullyConnected", "LOGISTIC": "AddLogistic", "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MUL": "AddMul",
    "PACK": "AddPack", "PAD": "AddPad", "QUANTIZE": "AddQuantize", "RELU": "AddRelu",
    "RESHAPE": "AddReshape", "RSQRT": "AddRsqrt", "SOFTMAX": "AddSoftmax",
    "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub",
    "SUM": "AddSum", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "UNPACK": "AddUnpack",
}


class CSourceError(UserError):
    """The model cannot be written as C source (an op TFLite Micro has no resolver entry for)."""


def model_ops(flatbuffer):
    """The distinct builtin ops of the model, in order of first use."""
    from keras_caps.lite.compare import op_names, read_model

    return list(dict.fromkeys(op_names(read_model(flatbuffer))))


def arena_with_margin(arena_bytes):
    margin = max(ARENA_MARGIN_BYTES, int(math.ceil(arena_bytes * ARENA_MARGIN_FRACTION)))
    return int(-(-(arena_bytes + margin) // 16) * 16)  # a multiple of 16


def _io(flatbuffer):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(flatbuffer))
    return interp.get_input_details()[0], interp.get_output_details()[0]


def byte_array(data, per_line=12):
    rows = []
    for i in range(0, len(data), per_line):
        rows.append("    " + " ".join(f"0x{b:02x}," for b in data[i : i + per_line]))
    return "\n".join(rows)


def _c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _identifier(name):
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit():
        raise CSourceError(f"--name {name!r} is not a C identifier.")
    return ident


def c_sources(flatbuffer, labels=None, arena_bytes=None, name="model"):
    """The C source files as {file name: text}.

    Args:
        flatbuffer: the .tflite bytes (an integer model for microcontrollers).
        labels: class names (one per output); None: "class_0", ...
        arena_bytes: the measured TFLite Micro arena; None: measure it.
        name: prefix of the C identifiers (g_<name>_data, ...).
    """
    from keras_caps.lite.evaluate import tflm_arena_bytes

    ident = _identifier(name)
    up = ident.upper()
    ops = model_ops(flatbuffer)
    missing = [op for op in ops if op not in RESOLVER_METHODS]
    if missing:
        raise CSourceError(f"no TFLite Micro resolver entry for ops {missing}.")
    inp, out = _io(flatbuffer)
    num_classes = int(out["shape"][-1])
    labels = list(labels) if labels is not None else [f"class_{i}" for i in range(num_classes)]
    if len(labels) != num_classes:
        raise CSourceError(f"{len(labels)} labels for a model with {num_classes} outputs.")
    measured = int(arena_bytes) if arena_bytes is not None else tflm_arena_bytes(flatbuffer)
    arena = arena_with_margin(measured)
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    guard = f"{up}_DATA_H_"
    header = f"""// Generated by tflite.c_source: the TFLite model as a C array, and its constants.
#ifndef {guard}
#define {guard}

#include <cstddef>
#include <cstdint>

// The flatbuffer ({len(flatbuffer)} bytes), 16-byte aligned as TFLite Micro requires.
extern const unsigned char g_{ident}_data[];
extern const unsigned int g_{ident}_data_len;

// Tensor arena: {measured} bytes measured by the TFLite Micro host interpreter, plus a
// margin of {ARENA_MARGIN_FRACTION:.0%} (at least {ARENA_MARGIN_BYTES} bytes), rounded up to 16.
constexpr size_t k{_camel(ident)}ArenaMeasuredBytes = {measured};
constexpr size_t k{_camel(ident)}ArenaBytes = {arena};

// Input {tuple(int(d) for d in inp['shape'])} {inp['dtype'].__name__}: q = round(x / scale) + zero_point,
// x = pixel / 255.
constexpr float k{_camel(ident)}InputScale = {float(in_scale):.9g}f;
constexpr int32_t k{_camel(ident)}InputZeroPoint = {int(in_zero)};
// Output {tuple(int(d) for d in out['shape'])} {out['dtype'].__name__}: class scores, the class is the argmax.
constexpr float k{_camel(ident)}OutputScale = {float(out_scale):.9g}f;
constexpr int32_t k{_camel(ident)}OutputZeroPoint = {int(out_zero)};

constexpr int k{_camel(ident)}NumClasses = {num_classes};
extern const char* const k{_camel(ident)}Labels[{num_classes}];

#endif  // {guard}
"""
    source = f"""// Generated by tflite.c_source.
#include "{ident}_data.h"

alignas(16) const unsigned char g_{ident}_data[] = {{
{byte_array(flatbuffer)}
}};
const unsigned int g_{ident}_data_len = {len(flatbuffer)};

const char* const k{_camel(ident)}Labels[{num_classes}] = {{
{chr(10).join("    " + _c_string(label) + "," for label in labels)}
}};
"""
    guard = f"{up}_OPS_H_"
    adds = "\n".join(f"  if (resolver.{RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;"
                     for op in ops)
    ops_header = f"""// Generated by tflite.c_source: exactly the ops of the model, for TFLite Micro.
#ifndef {guard}
#define {guard}

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

// {len(ops)} ops: {", ".join(ops)}
constexpr int k{_camel(ident)}NumOps = {len(ops)};
using {_camel(ident)}OpResolver = tflite::MicroMutableOpResolver<k{_camel(ident)}NumOps>;

inline TfLiteStatus Build{_camel(ident)}OpResolver({_camel(ident)}OpResolver& resolver) {{
{adds}
  return kTfLiteOk;
}}

#endif  // {guard}
"""
    return {f"{ident}_data.h": header, f"{ident}_data.cc": source, f"{ident}_ops.h": ops_header}


def _camel(ident):
    return "".join(part[:1].upper() + part[1:] for part in ident.split("_") if part)


def write_c_sources(flatbuffer, out_dir, labels=None, arena_bytes=None, name="model"):
    """Writes `c_sources(...)` into `out_dir` (created); returns the paths written."""
    from keras_caps.io_utils import write_text

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for file_name, text in c_sources(flatbuffer, labels, arena_bytes, name).items():
        path = os.path.join(out_dir, file_name)
        write_text(path, text)
        paths.append(path)
    return paths


def parse_byte_array(source_text):
    """The bytes of the first `{ 0x.., ... }` array in a generated .cc (for round-trip checks)."""
    body = source_text[source_text.index("[] = {") + 6 : source_text.index("};")]
    return bytes(int(tok, 16) for tok in re.findall(r"0x([0-9a-fA-F]{2})", body))


def parse_resolver_ops(ops_header_text):
    """The op names a generated op-resolver header registers, in order."""
    methods = {v: k for k, v in RESOLVER_METHODS.items()}
    return [methods[m] for m in re.findall(r"resolver\.(Add\w+)\(\)", ops_header_text)]


__all__ = ["ARENA_MARGIN_BYTES", "ARENA_MARGIN_FRACTION", "CLASS_LABELS", "RESOLVER_METHODS",
           "CSourceError", "arena_with_margin", "c_sources", "model_ops", "parse_byte_array",
           "parse_resolver_ops", "write_c_sources"]
