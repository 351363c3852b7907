"""int8 measurements shared by the benchmarks: export, audit, arena, TFLite Micro accuracy."""

from __future__ import annotations

import numpy as np


def int8_measurements(model, train_images):
    """{"flatbuffer", "bytes", "arena_bytes", "float_ops"} of the int8 export of `model`."""
    from tflite.audit import audit
    from tflite.evaluate import tflm_arena_bytes
    from tflite.export import convert

    flatbuffer = convert(model, "int8", train_images)
    report = audit(flatbuffer, int8=True)
    return {"flatbuffer": flatbuffer, "bytes": len(flatbuffer),
            "arena_bytes": tflm_arena_bytes(flatbuffer), "audit_ok": report.ok,
            "audit_problems": len(report.problems)}


def tflm_accuracy(flatbuffer, images, labels, arena_bytes):
    """Top-1 accuracy of the int8 flatbuffer computed by TFLite Micro, one image at a time."""
    from tflite.evaluate import _litert, quantize_input, tflm_interpreter

    detail = _litert(flatbuffer).get_input_details()[0]
    micro = tflm_interpreter(flatbuffer, arena_bytes + 4096)
    x = quantize_input(images, detail)
    hits = 0
    for xi, yi in zip(x, labels):
        micro.set_input(xi[None], 0)
        micro.invoke()
        hits += int(np.argmax(micro.get_output(0)[0]) == yi)
    return hits / max(len(x), 1)
