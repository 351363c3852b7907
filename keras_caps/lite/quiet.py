"""Silencing the C++ runtimes: their prints go to file descriptors 1 and 2, not sys.stdout."""

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


__all__ = ["quiet_fds"]
