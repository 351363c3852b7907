"""Per-tensor filters for the grouped CONV_2D of an int8 flatbuffer.

The integer export form computes the weight-shared votes as one grouped 1x1 CONV_2D
(`capsule_ops.predict_votes_shared`). The converter quantizes every CONV_2D filter per output
channel, which for the votes of the S model means 640 filter scales and zero points and a
640-channel int32 bias with as many more: +17 KB of flatbuffer, above the S model's 100 KB
budget. `per_tensor_grouped_convs(flatbuffer)` gives each grouped CONV_2D (filter input depth
smaller than the input's) one filter scale, as the BATCH_MATMUL form of the votes had:

- the filter's integers are requantized to the scale max |w| / 127 of the whole tensor
  (q' = round(q s_c / s)), its zero point stays 0;
- the bias takes the scale the kernels require, input scale x filter scale, and is
  requantized.

LiteRT (its reference and optimized kernels and XNNPACK) and TFLite Micro all accept a
per-tensor filter for an int8 CONV_2D; every kernel derives its multipliers from these
scales when it is prepared. Ungrouped convolutions keep their per-channel filters; a grouped
convolution of a user's own model (Conv2D(groups=...)) gets a per-tensor filter too.

Example:
    >>> from keras_caps.lite.grouped_conv import per_tensor_grouped_convs
    >>> smaller = per_tensor_grouped_convs(open("model_int8.tflite", "rb").read())  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from keras_caps.lite.pot import _op_names, _own_buffer, _requantize, _schema


def grouped_conv_ops(model, schema=None):
    """Indices of the CONV_2D ops of subgraph 0 of `model` (a ModelT) whose filter input
    depth is smaller than their input's depth (grouped convolutions)."""
    schema = schema or _schema()[0]
    names = _op_names(model, schema)
    graph = model.subgraphs[0]
    found = []
    for i, op in enumerate(graph.operators):
        if names[op.opcodeIndex] != "CONV_2D":
            continue
        x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
        if int(w.shape[-1]) < int(x.shape[-1]):
            found.append(i)
    return found


def per_tensor_grouped_convs(flatbuffer):
    """A copy of the int8 `flatbuffer` (bytes) whose grouped CONV_2D filters are quantized
    per tensor (module docstring); unchanged bytes when it has none."""
    schema, fbu = _schema()
    model = fbu.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    targets = grouped_conv_ops(model, schema)
    if not targets:
        return bytes(flatbuffer)
    original = {i: np.array(b.data, np.uint8) for i, b in enumerate(model.buffers)
                if b.data is not None}
    claimed = set()
    for i in targets:
        op = graph.operators[i]
        x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
        qw = w.quantization
        old = np.asarray(qw.scale, np.float64)
        if w.type != schema.TensorType.INT8 or old.size < 2:
            continue  # not int8, or already per tensor
        buf = _own_buffer(model, w, original, claimed, schema)
        if buf is None:
            continue  # a filter computed at run time: nothing to requantize
        q = np.frombuffer(bytes(bytearray(buf.data)), np.int8).reshape(list(w.shape))
        peak = np.max(np.abs(q.reshape(len(old), -1)).astype(np.float64) * old[:, None])
        new = max(peak, 1e-30) / 127.0
        _requantize(buf, np.int8, list(w.shape), old, qw.zeroPoint, np.full_like(old, new), 0)
        qw.scale, qw.zeroPoint, qw.quantizedDimension = [np.float32(new)], [0], 0
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = graph.tensors[op.inputs[2]]
            qb = bias.quantization
            old_b = np.asarray(qb.scale, np.float64)
            new_b = float(np.float32(x.quantization.scale[0])) * float(np.float32(new))
            bbuf = _own_buffer(model, bias, original, claimed, schema)
            if bbuf is not None:
                _requantize(bbuf, np.int32, list(bias.shape), old_b, [0],
                            np.full_like(old_b, new_b), 0)
            qb.scale, qb.zeroPoint, qb.quantizedDimension = [np.float32(new_b)], [0], 0
    return bytes(fbu.convert_object_to_bytearray(model))


__all__ = ["grouped_conv_ops", "per_tensor_grouped_convs"]
