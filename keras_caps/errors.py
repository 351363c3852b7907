"""The project's error classes: what a user can fix, reported without a traceback.

Every error a user can act on (a bad flag value, a bad or damaged file, data outside its
valid range, a `--model_dir` that belongs to another run) is a `UserError`. It subclasses
ValueError, so code and tests that catch ValueError keep working. The binaries' `__main__`
(`keras_caps.cli.run_main`) prints a UserError as one line `error: ...` on stderr and exits
with status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Something the user handed in or asked for is wrong; the message says what to do."""


class InputDataError(UserError):
    """Images or labels with the wrong dtype, range, shape, or non-finite values."""


class FileKindError(UserError):
    """A file handed in is missing, damaged, or not the kind of file expected."""


class RunDirError(UserError):
    """A --model_dir that is locked by another run, damaged, or holds a different run."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


__all__ = ["FileKindError", "InputDataError", "NonFiniteLossError", "RunDirError", "UserError"]
