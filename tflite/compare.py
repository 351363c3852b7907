r"""Op-by-op comparison of one .tflite model on LiteRT (default kernels and without its delegate), LiteRT reference kernels and TFLite Micro.

    python -m tflite.compare MODEL.tflite [--images=20] [--dataset=fashion_mnist] [--threshold=1]

`--help` lists every option. The library is keras_caps.lite.compare, the command line
keras_caps.lite.cli.compare_main (console script keras-caps-compare).
"""

from keras_caps.lite.cli import compare_cli

if __name__ == "__main__":
    compare_cli()
