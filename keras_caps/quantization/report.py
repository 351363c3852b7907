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
    """The bits of every layer of a spec as one line: "conv1 8/8/-, primary_caps 4/6/-, ...".

    Args:
        spec: a spec dict.
    Returns:
        str: "<layer> <weight>/<activation>/<routing>" per layer, "-" where a kind is float.

    Example:

    ```python
    from keras_caps.quantization.report import bits_string

    spec = {"layers": {"image": {"activation_bits": 8},
                       "class_caps": {"weight_bits": 4, "activation_bits": 8, "routing_bits": 6}}}
    assert bits_string(spec) == "image -/8/-, class_caps 4/8/6"
    ```
    """
    parts = []
    for name, entry in spec["layers"].items():
        w, a, r = (entry.get(f"{k}_bits") for k in ("weight", "activation", "routing"))
        parts.append(f"{name} {w or '-'}/{a or '-'}/{r or '-'}")
    return ", ".join(parts)


def result_row(result, test_accuracy=None, float_test_accuracy=None):
    """One `RESULT_COLUMNS` row of a `progressive.SearchResult`.

    Args:
        result: a `SearchResult`.
        test_accuracy: optional float, the spec's accuracy on the test split.
        float_test_accuracy: optional float, the float model's; with `test_accuracy` it
            gives the "test_delta" in points.
    Returns:
        dict keyed by the `RESULT_COLUMNS` keys (the QAT columns are left out).

    Example:

    ```python
    from keras_caps.quantization.progressive import SearchResult
    from keras_caps.quantization.report import result_row, results_table

    result = SearchResult(
        approach="A", spec={"layers": {"conv1": {"weight_bits": 6, "activation_bits": 6}}},
        accuracy=0.91, float_accuracy=0.92, tolerance=0.01, meets_tolerance=True,
        evaluations=4, seconds=12.0, trace=[],
        reductions={"weights": 5.3, "activations_total": 5.3, "activations_peak": 5.3})
    row = result_row(result, test_accuracy=0.905, float_test_accuracy=0.915)
    assert row["bits"] == "conv1 6/6/-" and abs(row["test_delta"] + 1.0) < 1e-9
    print(results_table([row]))
    ```
    """
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
    """A markdown table of `result_row` rows, with the `RESULT_COLUMNS` headers.

    Args:
        rows: list of dicts (missing keys print as "-").
    Returns:
        str, the markdown table.

    Example:

    ```python
    from keras_caps.quantization.report import results_table

    table = results_table([{"approach": "A", "bits": "conv1 8/8/-", "test_accuracy": 0.9}])
    assert table.splitlines()[2].startswith("| A | conv1 8/8/- | - | 0.9000 |")
    ```
    """
    return markdown_table(rows, RESULT_COLUMNS)


def layer_table(model, spec):
    """A markdown table of the per-layer bits and memory (KiB) of `spec` against float32.

    Args:
        model: a keras_caps model.
        spec: a spec dict.
    Returns:
        str, the markdown table (one row per layer of the inference model).

    Example:

    ```python
    from keras_caps.models import mcu_capsnet
    from keras_caps.quantization import uniform_spec
    from keras_caps.quantization.report import layer_table

    model = mcu_capsnet("S")
    table = layer_table(model, uniform_spec(model, 8))
    assert table.splitlines()[0].startswith("| Layer | Params | W bits |")
    print(table)
    ```
    """
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
