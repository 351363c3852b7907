r"""Audits a .tflite model for TensorFlow Lite Micro: ops, dtypes, float islands, PoT scales.

    python -m tflite.audit model.tflite [--int8] [--pot]

`--help` lists every option. The library is keras_caps.lite.audit, the command line
keras_caps.lite.cli.audit_main (console script keras-caps-audit).
"""

from keras_caps.lite.cli import audit_cli

if __name__ == "__main__":
    audit_cli()
