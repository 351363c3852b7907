"""int8 measurements shared by the benchmarks: export, audit, arena, TFLite Micro accuracy."""

from __future__ import annotations

import numpy as np


def int8_measurements(model, train_images):
    """{"flatbuffer", "bytes", "arena_bytes", "float_ops"} of the int8 export of `model`."""
    from keras_caps.lite.audit import audit
    from keras_caps.lite.evaluate import tflm_arena_bytes
    from keras_caps.lite.export import convert

    flatbuffer = convert(model, "int8", train_images)
    report = audit(flatbuffer, int8=True)
    return {"flatbuffer": flatbuffer, "bytes": len(flatbuffer),
            "arena_bytes": tflm_arena_bytes(flatbuffer), "audit_ok": report.ok,
            "audit_problems": len(report.problems)}


def tflm_accuracy(flatbuffer, images, labels, arena_bytes):
    """Top-1 accuracy of the int8 flatbuffer computed by TFLite Micro on (images, labels)."""
    from keras_caps.lite.evaluate import compare_tflm_litert

    result = compare_tflm_litert(flatbuffer, images, arena_bytes + 4096)
    return float(np.mean(result["tflm_predictions"] == np.asarray(labels)[: result["examples"]]))
