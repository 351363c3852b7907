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
    """Channels to prune from a layer: channels * ratio rounded up to a multiple of D.

    Layers with fewer than D channels are untouched (0). May equal `channels` (everything):
    the caller decides whether that is allowed.
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
    """Kept channel indices per layer under the paper's rule.

    Args:
        scores: {layer name: (C,) CI scores} (from `chip_scores`).
        ratio: pruning ratio PR in [0, 1).
        capsule_dim: D of the PrimaryCaps layer.
        primary_layers: names of layers whose channels form capsule types of D consecutive
            channels (pruned by whole types).
    Returns:
        {layer name: sorted int64 array of kept channel indices}. For a primary layer these
        are the channels of the kept types (a multiple of D).
    Raises:
        ValueError: PR outside [0, 1); a primary layer whose channel count is not a multiple
            of D; or a pruning that would leave a layer without channels or the PrimaryCaps
            without a capsule type.
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
    """Rows {"layer", "channels", "kept", "pruned"} for reports."""
    return [
        {"layer": name, "channels": int(np.asarray(scores[name]).size),
         "kept": int(len(kept[name])),
         "pruned": int(np.asarray(scores[name]).size - len(kept[name]))}
        for name in scores
    ]


__all__ = ["PRIMARY_LAYERS", "num_pruned", "pruning_summary", "select_channels"]
