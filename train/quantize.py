r"""Power-of-two post-training quantization of a trained keras_caps model.

    python -m train.quantize --model_path=runs/demo/model.keras --approach=C --tolerance=0.1
    python -m train.quantize --model_path=runs/student/model.keras --approach=all --preset=full

Calibrates on --calibration_batches training batches, searches bit-widths (approach A uniform,
B layer-wise under a weight memory budget of float32 / --weight_reduction, C per-layer
refinement; see keras_caps.quantization.progressive) on the held-out --search_split, and
reports every found spec's accuracy on the disjoint --test_split. --tolerance is in accuracy
points (0.1 = 0.1 %) and is checked on the search split.

Writes to --output_dir (default: <model folder>/quantization): spec_<A|B|C>.json (complete:
every exponent fixed, load with keras_caps.quantization.load_spec), results.json, report.md
(the per-approach table and a per-layer table of bits and memory for each spec).

Presets (explicit flags win):
    quick: 4 calibration batches of 64, search on test[:2000], report on test[2000:4000].
    full:  32 calibration batches of 64, search on test[:5000], report on test[5000:].
"""

from keras_caps.runs.cli import quantize

if __name__ == "__main__":
    quantize()
