"""Power-of-two scales for an int8 TFLite flatbuffer.

`to_power_of_two(flatbuffer)` rewrites a fully integer (int8) model so that every quantized
tensor's scale is an exact power of two, 2^k, and the model stays consistent:

- every activation scale s becomes 2^ceil(log2 s) ("up": the range only grows, nothing that
  fitted is clipped; precision drops by less than one bit) or 2^round(log2 s) ("nearest":
  at most a factor sqrt(2) either way, so the top of a range may clip). Zero points are kept.
  The map is deterministic, so tensors that must share a scale (RESHAPE / TRANSPOSE in and
  out) still do, and fixed kernel scales (SOFTMAX's 1/256) are already powers of two;
- constant int8 tensors (weights, per channel or per tensor, and quantized constants) get the
  same new scales and their integers are requantized: q' = round((q - z) s / s') + z;
- int32 biases of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED take the scale the kernels
  require, input scale x filter scale (a power of two again), and are requantized.

Every kernel derives its fixed-point multipliers from the tensors' scales when it is
prepared, so the result runs in LiteRT and TFLite Micro unchanged; with power-of-two scales
each multiplier ratio is itself a power of two: a shift. `tflite.audit --pot` checks the
result. The accuracy cost is measured by `tflite.evaluate` (mode "int8_pot").
"""

from __future__ import annotations

import numpy as np

ROUNDINGS = ("up", "nearest")
_BIAS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def pot_scale(scale, rounding="up"):
    """2^ceil(log2 s) ("up") or 2^round(log2 s) ("nearest"), elementwise."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}; choose one of {list(ROUNDINGS)}.")
    s = np.asarray(scale, np.float64)
    if np.any(s <= 0):
        raise ValueError("quantization scales must be positive.")
    k = np.ceil(np.log2(s)) if rounding == "up" else np.round(np.log2(s))
    return np.exp2(k)


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    return schema, flatbuffer_utils


def _op_names(model, schema):
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")
            for c in model.operatorCodes]


def _requantize(buffer, dtype, shape, old_scale, zero, new_scale, axis):
    data = np.frombuffer(bytes(bytearray(buffer.data)), dtype).reshape(shape).astype(np.float64)
    bshape = [1] * len(shape)
    if len(old_scale) > 1:
        bshape[axis] = len(old_scale)
    old = np.asarray(old_scale).reshape(bshape)
    new = np.asarray(new_scale).reshape(bshape)
    z = np.asarray(zero, np.float64).reshape(bshape if len(zero) > 1 else [1] * len(shape))
    info = np.iinfo(dtype)
    q = np.clip(np.round((data - z) * old / new + z), info.min, info.max).astype(dtype)
    buffer.data = np.frombuffer(q.tobytes(), np.uint8)


def _own_buffer(model, tensor, original, claimed, schema):
    """The tensor's constant data buffer; None if not constant. When another tensor already
    requantized the same (deduplicated) buffer with its own scale, the tensor first gets a
    new buffer holding the `original` bytes ({buffer index: data as read})."""
    buf = model.buffers[tensor.buffer]
    if buf.data is None or not len(buf.data):
        return None
    if tensor.buffer in claimed:
        buf = schema.BufferT()
        buf.data = original[tensor.buffer].copy()
        model.buffers.append(buf)
        tensor.buffer = len(model.buffers) - 1
    claimed.add(tensor.buffer)
    return buf


def to_power_of_two(flatbuffer, rounding="up"):
    """A copy of the int8 `flatbuffer` (bytes) with power-of-two scales (module docstring)."""
    schema, fbu = _schema()
    model = fbu.read_model_from_bytearray(bytearray(flatbuffer))
    ops = _op_names(model, schema)
    # constants shared by several tensors are requantized per tensor, from these bytes
    original = {i: np.array(b.data, np.uint8) for i, b in enumerate(model.buffers)
                if b.data is not None}
    claimed = set()  # buffers are global to the model, not per subgraph
    int8, int32 = schema.TensorType.INT8, schema.TensorType.INT32
    for graph in model.subgraphs:
        biases = {}
        for op in graph.operators:
            if ops[op.opcodeIndex] in _BIAS_OPS and len(op.inputs) > 2 and op.inputs[2] >= 0:
                biases[op.inputs[2]] = (op.inputs[0], op.inputs[1])
        for i, t in enumerate(graph.tensors):  # activations and int8 constants
            q = t.quantization
            if q is None or q.scale is None or len(q.scale) == 0 or i in biases:
                continue
            if t.type != int8:
                raise ValueError(
                    f"tensor {t.name!r} has type {t.type}; power-of-two rescaling supports "
                    "int8 models (export with mode='int8')."
                )
            old = np.asarray(q.scale, np.float64)
            new = pot_scale(old, rounding)
            buf = _own_buffer(model, t, original, claimed, schema)
            if buf is not None:
                _requantize(buf, np.int8, list(t.shape), old, q.zeroPoint, new,
                            q.quantizedDimension)
            q.scale = new.astype(np.float32)
        for b, (inp, filt) in biases.items():  # bias scale = input scale x filter scale
            t = graph.tensors[b]
            q = t.quantization
            if q is None or q.scale is None or t.type != int32:
                continue
            new = (np.asarray(graph.tensors[inp].quantization.scale, np.float64)
                   * np.asarray(graph.tensors[filt].quantization.scale, np.float64))
            new = np.broadcast_to(new, np.shape(q.scale)).copy()
            buf = _own_buffer(model, t, original, claimed, schema)
            if buf is not None:
                _requantize(buf, np.int32, list(t.shape), np.asarray(q.scale, np.float64),
                            [0], new, 0)
            q.scale = new.astype(np.float32)
    return bytes(fbu.convert_object_to_bytearray(model))


__all__ = ["ROUNDINGS", "pot_scale", "to_power_of_two"]
