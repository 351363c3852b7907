"""Model analysis: FLOPs and parameters per layer, dead capsules and activation heatmaps."""

from keras_caps.analysis.activations import (
    DEAD_THRESHOLD,
    DeadCapsuleLogger,
    capsule_activations,
    dead_fraction,
    dead_percentages,
    plot_activation_heatmap,
    plot_activation_heatmaps,
    write_heatmaps,
)
from keras_caps.analysis.flops import format_profile, profile, total_flops

__all__ = [
    "DEAD_THRESHOLD",
    "DeadCapsuleLogger",
    "capsule_activations",
    "dead_fraction",
    "dead_percentages",
    "format_profile",
    "plot_activation_heatmap",
    "plot_activation_heatmaps",
    "profile",
    "total_flops",
    "write_heatmaps",
]
