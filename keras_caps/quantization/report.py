"""Markdown tables of quantization results: one row per approach, one per layer of a spec."""

from __future__ import annotations

from keras_caps.io_utils import markdown_table
from keras_caps.quantization.memory import memory_table

RESULT_COLUMNS = [
    ("approach", "Approach", "s"), ("bits", "Bits (w / a / r per layer)", "s"),
    ("search_accuracy", "Search acc.", ".4f"), ("test_accuracy", "Test acc.", ".4f"),
    ("test_delta", "Δ test (points)", "+.2f"), ("meets_tolerance", "Within tol. (search)", "s"),
    ("weight_reduction", "Weight mem. ×", ".2f"), ("activation_reduction", "Act. mem. × (total)", ".2f"),
    ("peak_reduction", "Act. mem. × (peak)", ".2f"), ("evaluations", "Evals", "d"),
    ("seconds", "Time (s)", ".0f"), ("qat_test_accuracy", "QAT test acc.", ".4f"),
    ("qat_delta", "Δ QAT vs float control (points)", "+.2f"),
]


def bits_string(spec):
    """"conv1 8/8/-, primary_caps 4/6/-, ..." for the layers that have weights or routing."""
    parts = []
    for name, entry in spec["layers"].items():
        w, a, r = (entry.get(f"{k}_bits") for k in ("weight", "activation", "routing"))
        parts.append(f"{name} {w or '-'}/{a or '-'}/{r or '-'}")
    return ", ".join(parts)


def result_row(result, test_accuracy=None, float_test_accuracy=None):
    """One RESULT_COLUMNS row of a progressive.SearchResult."""
    red = result.reductions
    delta = None
    if test_accuracy is not None and float_test_accuracy is not None:
        delta = 100.0 * (test_accuracy - float_test_accuracy)
    return dict(
        approach=result.approach, bits=bits_string(result.spec),
        search_accuracy=result.accuracy, test_accuracy=test_accuracy, test_delta=delta,
        meets_tolerance="yes" if result.meets_tolerance else "no",
        weight_reduction=red["weights"], activation_reduction=red["activations_total"],
        peak_reduction=red["activations_peak"], evaluations=result.evaluations,
        seconds=result.seconds,
    )


def results_table(rows):
    return markdown_table(rows, RESULT_COLUMNS)


def layer_table(model, spec):
    """Per-layer bits and memory (KiB) of `spec` against float32."""
    floats = {r["name"]: r for r in memory_table(model)}
    rows = []
    for r in memory_table(model, spec):
        f = floats[r["name"]]
        rows.append(dict(
            name=r["name"], params=r["params"], weight_bits=r["weight_bits"],
            activation_bits=r["activation_bits"],
            routing_bits=r["routing_bits"] or None,
            weight_kib=r["weight_memory"] / 8192, weight_float_kib=f["weight_memory"] / 8192,
            act_kib=r["activation_memory"] / 8192, act_float_kib=f["activation_memory"] / 8192,
        ))
    return markdown_table(rows, [
        ("name", "Layer", "s"), ("params", "Params", ",d"), ("weight_bits", "W bits", "d"),
        ("activation_bits", "A bits", "d"), ("routing_bits", "R bits", "d"),
        ("weight_kib", "Weights KiB", ".1f"), ("weight_float_kib", "float32 KiB", ".1f"),
        ("act_kib", "Acts+routing KiB", ".1f"), ("act_float_kib", "float32 KiB", ".1f"),
    ])


__all__ = ["bits_string", "layer_table", "result_row", "results_table"]
