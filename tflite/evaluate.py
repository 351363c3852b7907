r"""Evaluates TFLite CapsNets: accuracy, size, TFLite Micro arena, latency, LiteRT/TFLM agreement.

    python -m tflite.evaluate --tflite=runs/demo/model_int8.tflite --dataset=fashion_mnist
    python -m tflite.evaluate --model=runs/demo/model.keras --report=runs/demo/tflite_report.md

`--help` lists every option. The library is keras_caps.lite.evaluate, the command line
keras_caps.lite.cli.evaluate_main (console script keras-caps-evaluate).
"""

from keras_caps.lite.cli import evaluate_cli

if __name__ == "__main__":
    evaluate_cli()
