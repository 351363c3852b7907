"""Split names with TFDS-style slices: "train", "test[:10%]", "train[1000:2000]"."""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """A parsed split: base name plus optional TFDS-style slice bounds (ints or percents)."""

    base: str
    start: int | None = None
    stop: int | None = None
    start_percent: bool = False
    stop_percent: bool = False

    @property
    def sliced(self):
        return self.start is not None or self.stop is not None

    def indices(self, n):
        """The Python slice this split selects from `n` examples."""

        def resolve(bound, percent):
            if bound is None or not percent:
                return bound
            return int(round(n * bound / 100.0))

        return slice(resolve(self.start, self.start_percent), resolve(self.stop, self.stop_percent))


_SPLIT_RE = re.compile(r"(\w+)(?:\[(?:(-?\d+)(%?))?:(?:(-?\d+)(%?))?\])?")


def parse_split(split, valid=("train", "test")):
    """Parses "train", "test", "train[:1000]", "train[1000:2000]", "test[:10%]", "train[-10%:]".

    Returns a SplitSpec; ValueError for any other form or a base name not in `valid`.
    """
    m = _SPLIT_RE.fullmatch(str(split).replace(" ", ""))
    if not m or m.group(1) not in valid:
        raise ValueError(
            f"bad split {split!r}: use one of {list(valid)}, optionally sliced like "
            "'train[:1000]', 'train[1000:2000]' or 'test[:10%]'."
        )
    base, start, start_pct, stop, stop_pct = m.groups()
    for bound, pct in ((start, start_pct), (stop, stop_pct)):
        if pct and bound is not None and abs(int(bound)) > 100:
            raise ValueError(f"bad split {split!r}: percentages must lie in [-100, 100].")
    return SplitSpec(
        base,
        None if start is None else int(start),
        None if stop is None else int(stop),
        bool(start_pct),
        bool(stop_pct),
    )
