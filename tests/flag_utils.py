"""absl flag values as a plain dict, for calling the binaries' run() functions in tests."""

from absl import flags


def flag_defaults(define_flags):
    """Defines a binary's flags (idempotent) and returns {flag name: default value}."""
    define_flags()
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["prog"])
    return {name: flags.FLAGS[name].value for name in flags.FLAGS}
