"""Which channels to keep: the paper's pruning-ratio rule on CHIP scores (paper 003 Sec. 3.4).

For a layer with C channels and pruning ratio PR, the number pruned is C * PR rounded **up**
to a multiple of the capsule dimension D (the paper's example: C = 12, PR = 0.25, D = 4 -> 3
rounded up to 4), the lowest-CI channels go, and a layer with fewer than D channels is left
untouched.

PrimaryCaps: its channel k is component k % D of capsule type k // D, so it is pruned by
whole capsule types: the C * D channels are grouped into C types of D consecutive channels,
each type is scored by the mean CI of its D channels, and the (number pruned) / D lowest
types go. (Mean and sum rank types identically since every type has D channels.) This keeps
every remaining capsule whole, which is what "pruning in multiples of D" is for: pruning
single channels of the primary convolution would leave capsules with mixed components.
"""

from __future__ import annotations

import math

import numpy as np

PRIMARY_LAYERS = ("primary_caps",)


def _check_ratio(ratio):
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)):
        raise ValueError(f"pruning ratio must be a number in [0, 1), got {ratio!r}.")
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(
            f"pruning ratio must lie in [0, 1), got {ratio}: 0 prunes nothing and 1 would "
            "remove every channel."
        )
    return ratio


def num_pruned(channels, ratio, capsule_dim):
    """Channels to prune from a layer: `channels * ratio` rounded up to a multiple of D.

    Layers with fewer than D channels are untouched (0). The result may equal `channels`
    (everything): the caller decides whether that is allowed.

    Args:
        channels: int, the layer's channels C.
        ratio: float, the pruning ratio PR in [0, 1).
        capsule_dim: int, D >= 1.
    Returns:
        int, a multiple of D in [0, channels].
    Raises:
        ValueError: `ratio` outside [0, 1) or `capsule_dim` < 1.

    Example:

    ```python
    from keras_caps.pruning import num_pruned

    assert num_pruned(12, 0.25, 4) == 4  # the paper's example: 3 rounded up to 4
    assert num_pruned(3, 0.5, 4) == 0  # fewer than D channels: untouched
    assert num_pruned(64, 0.0, 8) == 0
    ```
    """
    ratio = _check_ratio(ratio)
    d = int(capsule_dim)
    if d < 1:
        raise ValueError(f"capsule_dim must be >= 1, got {capsule_dim}.")
    if channels < d or ratio == 0.0:
        return 0
    ideal = channels * ratio
    return min(channels, d * math.ceil(ideal / d - 1e-9))  # tolerance for 0.6 * 20 = 12.0000001


def select_channels(scores, ratio, capsule_dim, primary_layers=PRIMARY_LAYERS):
    """Kept channel indices per layer under the paper's pruning-ratio rule.

    Args:
        scores: {layer name: (C,) CI scores} (from `chip_scores`).
        ratio: float, the pruning ratio PR in [0, 1).
        capsule_dim: int, D of the PrimaryCaps layer.
        primary_layers: names of the layers whose channels form capsule types of D
            consecutive channels (pruned by whole types). Defaults to `PRIMARY_LAYERS`,
            ("primary_caps",).
    Returns:
        {layer name: sorted int64 array of kept channel indices}. For a primary layer these
        are the channels of the kept types (a multiple of D).
    Raises:
        ValueError: PR outside [0, 1); a primary layer whose channel count is not a multiple
            of D; or a pruning that would leave a layer without channels or the PrimaryCaps
            without a capsule type.

    Example:

    ```python
    import numpy as np
    from keras_caps.pruning import select_channels

    scores = {
        "relu1": np.array([5.0, 1.0, 4.0, 3.0, 0.5, 6.0, 2.0, 7.0]),  # 8 channels
        "primary_caps": np.array([1.0, 1.0, 9.0, 9.0, 2.0, 2.0, 8.0, 8.0]),  # 4 types x D = 2
    }
    kept = select_channels(scores, ratio=0.25, capsule_dim=2)
    assert kept["relu1"].tolist() == [0, 2, 3, 5, 6, 7]  # the 2 lowest (4, 1) pruned
    assert kept["primary_caps"].tolist() == [2, 3, 4, 5, 6, 7]  # type 0 (mean 1.0) pruned
    ```
    """
    ratio = _check_ratio(ratio)
    d = int(capsule_dim)
    if d < 1:
        raise ValueError(f"capsule_dim must be >= 1, got {capsule_dim}.")
    kept = {}
    for name, layer_scores in scores.items():
        s = np.asarray(layer_scores, dtype=np.float64).reshape(-1)
        c = s.size
        if c == 0:
            raise ValueError(f"layer {name!r} has no scores.")
        prune = num_pruned(c, ratio, d)
        if name in primary_layers:
            if c % d:
                raise ValueError(
                    f"primary layer {name!r} has {c} channels, not a multiple of D = {d}: its "
                    "channels cannot form capsule types."
                )
            types = c // d
            drop_types = prune // d
            if drop_types >= types:
                raise ValueError(
                    f"pruning ratio {ratio} with D = {d} would remove all {types} capsule types "
                    f"of {name!r} ({prune} of {c} channels), leaving no capsule; use a smaller "
                    "ratio."
                )
            type_scores = s.reshape(types, d).mean(axis=1)  # (C_types,)
            order = np.argsort(type_scores, kind="stable")
            kept_types = np.sort(order[drop_types:])
            kept[name] = (kept_types[:, None] * d + np.arange(d)[None, :]).reshape(-1)
        else:
            if prune >= c:
                raise ValueError(
                    f"pruning ratio {ratio} with D = {d} would remove all {c} channels of "
                    f"{name!r}, leaving no capsule input; use a smaller ratio."
                )
            order = np.argsort(s, kind="stable")
            kept[name] = np.sort(order[prune:])
        kept[name] = kept[name].astype(np.int64)
    return kept


def pruning_summary(scores, kept):
    """One report row per layer: its channels, how many are kept and how many pruned.

    Args:
        scores: {layer name: (C,) scores}, as given to `select_channels`.
        kept: {layer name: kept indices}, as `select_channels` returns.
    Returns:
        list of {"layer", "channels", "kept", "pruned"} dicts, in the order of `scores`.

    Example:

    ```python
    import numpy as np
    from keras_caps.pruning import pruning_summary, select_channels

    scores = {"relu1": np.arange(8.0)}
    rows = pruning_summary(scores, select_channels(scores, 0.5, capsule_dim=4))
    assert rows == [{"layer": "relu1", "channels": 8, "kept": 4, "pruned": 4}]
    ```
    """
    return [
        {"layer": name, "channels": int(np.asarray(scores[name]).size),
         "kept": int(len(kept[name])),
         "pruned": int(np.asarray(scores[name]).size - len(kept[name]))}
        for name in scores
    ]


__all__ = ["PRIMARY_LAYERS", "num_pruned", "pruning_summary", "select_channels"]
