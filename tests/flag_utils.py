"""Parsing a binary's command line into absl flags, for tests of flags -> config."""

import contextlib

from absl import flags


@contextlib.contextmanager
def parsed_flags(define, argv):
    """Defines a binary's flags (idempotent), parses `argv` (without the program name) into
    absl.flags.FLAGS, and resets every flag to its default on exit."""
    define()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", *argv])
    try:
        yield flags.FLAGS
    finally:
        flags.FLAGS.unparse_flags()
