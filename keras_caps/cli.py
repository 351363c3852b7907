"""One `__main__` wrapper for every binary: user errors as one line, bugs with a traceback.

    run_main(main)                  # absl binaries (keras_caps.runs.cli, behind train/)
    run_main(main, use_absl=False)  # argparse binaries (keras_caps.lite.cli, behind tflite/):
                                    # main(argv) -> exit code

A user error prints `error: <message>` on stderr and exits with status 2 (absl's own flag
errors exit with 1 and print the flag's message). A user error is a
`keras_caps.errors.UserError`, a ValueError raised by this project's own code (its validation
messages), or a missing / unreadable file. Anything else is unexpected and keeps its full
traceback. Set KERAS_CAPS_TRACEBACK=1 to get tracebacks for user errors too.
"""

from __future__ import annotations

import os
import sys

from keras_caps.errors import UserError

USER_ERROR_STATUS = 2
_OS_USER_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
# the folders of this project's packages: a ValueError raised by code here is a validation
# message written for users; one raised inside Keras / TensorFlow / numpy is not
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROJECT_DIRS = tuple(os.path.join(_ROOT, name) + os.sep
                      for name in ("keras_caps", "train", "tflite", "benchmarks"))


def _raised_in_project(err):
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    filename = os.path.abspath(last.tb_frame.f_code.co_filename)
    return filename.startswith(_PROJECT_DIRS)


def is_user_error(err):
    """Whether `err` is reported as a one-line user error (see the module docstring)."""
    if isinstance(err, UserError) or isinstance(err, _OS_USER_ERRORS):
        return True
    return type(err) is ValueError and _raised_in_project(err)


def user_message(err):
    """The one-line message of a user error."""
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    return " ".join(text.split())


def guarded(main):
    """`main` wrapped so that user errors exit with status 2 and one line on stderr."""

    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("error: interrupted; run the same command again to resume from the last "
                  "checkpoint.", file=sys.stderr, flush=True)
            sys.exit(130)
        except Exception as err:  # noqa: BLE001 - sorted into user errors and bugs below
            if not is_user_error(err) or os.environ.get("KERAS_CAPS_TRACEBACK"):
                raise
            print(f"error: {user_message(err)}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_STATUS)

    wrapper.__name__ = getattr(main, "__name__", "main")
    wrapper.__doc__ = getattr(main, "__doc__", None)
    return wrapper


def run_main(main, use_absl=True, argv=None):
    """Runs a binary's `main`: through `absl.app.run` (flags) or directly (argparse mains
    that take argv and return an exit status)."""
    if use_absl:
        from absl import app

        app.run(guarded(main), argv=argv)
    else:
        sys.exit(guarded(main)(argv))


__all__ = ["USER_ERROR_STATUS", "guarded", "is_user_error", "run_main", "user_message"]
