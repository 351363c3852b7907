"""Silencing the C++ runtimes: their prints go to file descriptors 1 and 2, not sys.stdout.

`quiet_fds` drops them while active; `tf_log_level_asks_quiet` says whether the user asked
TensorFlow for fewer C++ log lines (TF_CPP_MIN_LOG_LEVEL >= 1), which TensorFlow 2.21 does
not honour for the lines it writes while it is imported (`keras_caps/__init__.py` imports it
under `quiet_fds` then); `quiet_binary_default` makes that the default of the project's binaries.
"""

from __future__ import annotations

import os
import sys


class quiet_fds:
    """Redirects the process's file descriptors 1 and 2 to /dev/null while active.

    TFLite Micro's "Failed to allocate ..." lines during an arena search and TensorFlow's
    C++ log lines during a conversion are written by C++ code straight to the descriptors,
    so redirecting `sys.stdout` does not catch them. `enabled=False` makes it a no-op (for
    --verbose). Python-level writes inside are dropped too (both streams are flushed first).
    """

    def __init__(self, enabled=True):
        self.enabled = bool(enabled)
        self._saved = None

    def __enter__(self):
        if not self.enabled:
            return self
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        return self

    def __exit__(self, *exc):
        if self._saved is None:
            return False
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        self._saved = None
        return False


def tf_log_level_asks_quiet():
    """True when TF_CPP_MIN_LOG_LEVEL is set to 1 or more (e.g. by `make demo`)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0) >= 1
    except ValueError:
        return False


def quiet_binary_default():
    """Sets TF_CPP_MIN_LOG_LEVEL=2 when this process runs one of the project's binaries
    (`python -m train.X` / `tflite.X` / `benchmarks.X` of this checkout) and neither the
    variable nor the command line (`--verbose=2` or more, or the tflite tools' bare
    `--verbose`) asks for TensorFlow's C++ log lines. Returns whether it set it."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None) or ""
    path = getattr(main, "__file__", None) or ""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if (name.split(".")[0] not in ("train", "tflite", "benchmarks")
            or os.path.dirname(os.path.dirname(os.path.abspath(path))) != checkout
            or "TF_CPP_MIN_LOG_LEVEL" in os.environ):
        return False
    args = sys.argv[1:]
    levels = [args[i + 1] if a == "--verbose" and i + 1 < len(args) else a[len("--verbose="):]
              for i, a in enumerate(args) if a == "--verbose" or a.startswith("--verbose=")]
    if any(level not in ("0", "1") for level in levels):
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return True


def has_nvidia_driver():
    """Whether an NVIDIA kernel driver is loaded (without one, TensorFlow's CUDA probe fails
    with an "E0000 ... failed call to cuInit" line that is expected, not an error)."""
    return os.path.exists("/proc/driver/nvidia/version")


__all__ = ["has_nvidia_driver", "quiet_binary_default", "quiet_fds", "tf_log_level_asks_quiet"]
