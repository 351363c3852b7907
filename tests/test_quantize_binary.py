"""Power-of-two quantization (train/quantize.py) end to end on a tiny model with synthetic data."""

import json

import keras
import numpy as np
import pytest

from keras_caps.models import capsnet
from keras_caps.quantization import load_spec, simulate
from keras_caps.runs import QuantizeConfig
from keras_caps.runs.quantize import quantize


def _config(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path / "q"), verbose=0, preset="none", tolerance=2.0,
                  max_bits=16, weight_reduction=3.0, model_path=None)
    values.update(overrides)
    return QuantizeConfig(**values)


def _setup():
    keras.utils.set_random_seed(3)
    model = capsnet(input_shape=(12, 12, 1), conv_filters=6, conv_kernel=3, primary_capsules=3,
                    primary_dim=4, primary_kernel=3, class_dim=4, decoder=None)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (160, 12, 12, 1)).astype(np.float32)
    y = simulate.predict_classes(simulate.inference_model(model), x)
    return model, (x[:32], (x[32:96], y[32:96]), (x[96:], y[96:]))


@pytest.mark.slow
def test_quantize_writes_specs_results_and_report(tmp_path):
    model, data = _setup()
    summary = quantize(_config(tmp_path, approach="all"), datasets_override=data, model=model)
    out = tmp_path / "q"
    for name in ("spec_A.json", "spec_B.json", "spec_C.json", "results.json", "report.md"):
        assert (out / name).exists(), name
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {"A", "B", "C"}
    assert saved["float_search_accuracy"] == 1.0
    for name in ("A", "C"):
        res = saved["results"][name]
        assert res["meets_tolerance"] and res["accuracy"] >= 0.98
        spec = load_spec(str(out / f"spec_{name}.json"), model)  # complete and valid
        qm = simulate.quantized_model(model, spec)
        assert simulate.accuracy(qm, *data[2]) == pytest.approx(res["test_accuracy"])
    assert saved["results"]["B"]["reductions"]["weights"] >= 3.0
    report = (out / "report.md").read_text()
    assert "| A |" in report and "## Approach C" in report and "Weight mem." in report
    assert summary["evaluations"] >= 3


def test_quantize_rejects_a_missing_model_and_negative_tolerance(tmp_path):
    with pytest.raises(ValueError, match="does not exist; train one first"):
        quantize(_config(tmp_path, model_path=str(tmp_path / "none.keras")))
    with pytest.raises(ValueError, match="--tolerance must be >= 0"):
        quantize(_config(tmp_path, tolerance=-1.0))


@pytest.mark.slow
def test_quantize_with_qat_reports_a_float_control(tmp_path):
    model, data = _setup()
    x, y = data[1]
    fv = _config(tmp_path, approach="A", qat_epochs=1, max_bits=4, tolerance=100.0)
    summary = quantize(fv, datasets_override=data, model=model, qat_override=(x, y))
    qat = summary["results"]["A"]["qat"]
    assert qat["epochs"] == 1 and len(qat["losses"]) == 1 and 0 <= qat["test_accuracy"] <= 1
    assert (tmp_path / "q" / "qat_A.keras").exists()
    assert (tmp_path / "q" / "qat_float_control.keras").exists()
    assert "Float control" in (tmp_path / "q" / "report.md").read_text()
