r"""Keras model -> TFLite (float32, dynamic_range, int8, int8_pot, int16x8), + labels.txt and C sources.

    python -m tflite.export --model=runs/student/model.keras --mode=int8 \
        --out=runs/student/model_int8.tflite [--dataset=fashion_mnist] [--c_source=DIR]

`--help` lists every option. The library is keras_caps.lite.export, the command line
keras_caps.lite.cli.export_main (console script keras-caps-export).
"""

from keras_caps.lite.cli import export_cli

if __name__ == "__main__":
    export_cli()
