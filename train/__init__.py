"""The training binaries: thin absl binaries over keras_caps.runs (this folder is not installed)."""

import os as _os
import sys as _sys

# TensorFlow's C++ start-up lines (oneDNN, the CUDA probe, CPU features) are not the binary's
# output: they are hidden (keras_caps/__init__.py) unless TF_CPP_MIN_LOG_LEVEL is set or the
# command line asks for them (--verbose for the tflite tools, --verbose=2 for the runners)
_args = _sys.argv[1:]
_levels = [_args[i + 1] if a == "--verbose" and i + 1 < len(_args) else a[len("--verbose="):]
           for i, a in enumerate(_args) if a == "--verbose" or a.startswith("--verbose=")]
if not any(level not in ("0", "1") for level in _levels):
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
