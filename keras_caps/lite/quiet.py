"""`quiet_fds` for the TFLite tools (its home is keras_caps.quiet, the base layer)."""

from keras_caps.quiet import quiet_fds

__all__ = ["quiet_fds"]
