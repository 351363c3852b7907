r"""Audits a .tflite model for TensorFlow Lite Micro: ops, dtypes, float islands, PoT scales.

    python -m tflite.audit model.tflite [--int8] [--pot]

Lists every op with its input / output dtypes. With --int8 (the default for models whose
input is int8) it fails, with a non-zero exit and a message naming each offending op, on:
    - an op with a float tensor (a float island the converter left in an "int8" model),
    - a DEQUANTIZE or QUANTIZE anywhere but at the model's input / output boundary,
    - an op outside the TFLite Micro int8 kernel set (TFLM_INT8_OPS),
    - an int16 / int8 op whose kernel TFLM has only in float (SQUARE, SQRT, EXP, LOG).
With --pot it also checks that every quantized tensor's scale is an exact power of two.
"""

from __future__ import annotations

import dataclasses
import math

#: Builtin ops with int8 kernels in TFLite Micro that capsule graphs use (DESIGN.md).
TFLM_INT8_OPS = frozenset({
    "ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D",
    "DEPTHWISE_CONV_2D", "DIV", "EXPAND_DIMS", "FULLY_CONNECTED", "LOGISTIC", "MAXIMUM",
    "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "QUANTIZE", "DEQUANTIZE", "RELU",
    "RESHAPE", "RSQRT", "SOFTMAX", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH",
    "TRANSPOSE", "UNPACK",
})

#: Ops that compute shapes at run time; TFLite Micro plans tensors at prepare time and fails on
#: the RESHAPEs they feed. Export with static shapes (fixed batch size) instead.
DYNAMIC_SHAPE_OPS = frozenset({"SHAPE", "GATHER"})

#: Ops TFLite Micro runs in float only: never acceptable in an integer model.
FLOAT_ONLY_OPS = frozenset({"SQUARE", "SQRT", "EXP", "LOG"})

_FLOAT = {"float32", "float16", "float64", "bfloat16"}


@dataclasses.dataclass
class OpInfo:
    index: int
    name: str
    inputs: list  # [(tensor name, dtype)]
    outputs: list

    def line(self):
        ins = ", ".join(d for _, d in self.inputs)
        outs = ", ".join(d for _, d in self.outputs)
        return f"{self.index:3d} {self.name:<18} ({ins}) -> ({outs})"


@dataclasses.dataclass
class AuditReport:
    ops: list
    problems: list
    scales: dict  # tensor name -> list of scales

    @property
    def ok(self):
        return not self.problems

    def op_counts(self):
        counts = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return dict(sorted(counts.items()))

    def text(self):
        lines = [op.line() for op in self.ops]
        lines.append("op counts: " + ", ".join(f"{k} x{v}" for k, v in self.op_counts().items()))
        if self.problems:
            lines.append(f"FAILED: {len(self.problems)} problem(s):")
            lines += ["  - " + p for p in self.problems]
        else:
            lines.append("OK")
        return "\n".join(lines)


def _interpreter(model):
    from ai_edge_litert.interpreter import Interpreter

    from keras_caps.validation import check_tflite_bytes, read_tflite_file

    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(check_tflite_bytes(model)))
    return Interpreter(model_content=bytes(read_tflite_file(str(model), "TFLite file")))


def is_power_of_two(x, rtol=0.0):
    """True when x = 2^k for an integer k (exactly, or within rtol)."""
    if not x > 0 or not math.isfinite(x):
        return False
    k = round(math.log2(x))
    return abs(x - 2.0**k) <= rtol * x


def audit(model, int8=None, pot=False):
    """Audits a .tflite file path or flatbuffer bytes.

    Args:
        model: path or bytes.
        int8: enforce the integer-only rules; None = when the model's input is int8/int16.
        pot: require power-of-two scales on every quantized tensor.
    Returns:
        AuditReport (`.ok`, `.problems`, `.text()`).
    """
    interp = _interpreter(model)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    input_ids = {d["index"] for d in interp.get_input_details()}
    output_ids = {d["index"] for d in interp.get_output_details()}
    if int8 is None:
        int8 = all(tensors[i]["dtype"].__name__ in ("int8", "int16") for i in input_ids)
    ops, problems, scales = [], [], {}

    def describe(ids):
        return [(tensors[i]["name"], tensors[i]["dtype"].__name__) for i in ids if i >= 0]

    for detail in interp._get_ops_details():  # the only API that lists the graph's ops
        op = OpInfo(detail["index"], detail["op_name"], describe(detail["inputs"]),
                    describe(detail["outputs"]))
        ops.append(op)
        if not int8:
            continue
        where = f"op {op.index} {op.name}"
        if op.name in FLOAT_ONLY_OPS:
            problems.append(f"{where}: TFLite Micro has only a float kernel for {op.name}.")
        elif op.name in DYNAMIC_SHAPE_OPS:
            problems.append(f"{where}: dynamic shape computation; TFLite Micro needs static "
                            "shapes (export with a fixed batch size).")
        elif op.name not in TFLM_INT8_OPS:
            problems.append(f"{where}: not in the TFLite Micro int8 op set.")
        boundary_in = op.name == "QUANTIZE" and set(detail["inputs"]) <= input_ids
        boundary_out = op.name == "DEQUANTIZE" and set(detail["outputs"]) <= output_ids
        if op.name in ("QUANTIZE", "DEQUANTIZE") and not (boundary_in or boundary_out):
            if op.name == "DEQUANTIZE" or any(d in _FLOAT for _, d in op.inputs):
                problems.append(f"{where}: a float island (DEQUANTIZE/QUANTIZE inside the graph).")
        elif not (boundary_in or boundary_out):
            floats = [n for n, d in op.inputs + op.outputs if d in _FLOAT]
            if floats:
                problems.append(f"{where}: float tensors {floats[:3]} in an integer model.")
    for t in tensors.values():
        q = t["quantization_parameters"]
        if len(q["scales"]):
            scales[t["name"]] = [float(s) for s in q["scales"]]
            if pot and t["dtype"].__name__ in ("int8", "int16"):
                bad = [s for s in q["scales"] if not is_power_of_two(float(s))]
                if bad:
                    problems.append(f"tensor {t['name']!r}: scale {bad[0]:.6g} is not a power of two.")
    return AuditReport(ops, problems, scales)


__all__ = ["DYNAMIC_SHAPE_OPS", "FLOAT_ONLY_OPS", "TFLM_INT8_OPS", "AuditReport", "audit", "is_power_of_two"]
