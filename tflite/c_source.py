r"""The C sources of a TFLite Micro project: the model array, its op resolver and constants.

    python -m tflite.c_source MODEL.tflite --out=DIR [--dataset=fashion_mnist] [--name=model]

`--help` lists every option. The library is keras_caps.lite.c_source, the command line
keras_caps.lite.cli.c_source_main (console script keras-caps-c-source).
"""

from keras_caps.lite.cli import c_source_cli

if __name__ == "__main__":
    c_source_cli()
