"""Channel pruning of paper 003 (CCM training, CHIP scores, selection, surgery) and
unstructured magnitude pruning for Keras 3 models."""

from keras_caps.pruning.ccm import CCMTrainer, ccm, channel_correlations, unwrap
from keras_caps.pruning.chip import channel_independence, chip_scores
from keras_caps.pruning.magnitude import (
    MagnitudePruning,
    prunable_kernels,
    sparsity_report,
    sparsity_schedule,
    strip_pruning,
)
from keras_caps.pruning.selection import num_pruned, pruning_summary, select_channels
from keras_caps.pruning.surgery import (
    architecture,
    copy_matching_weights,
    prune_model,
    zero_channels,
)

__all__ = [
    "CCMTrainer",
    "MagnitudePruning",
    "architecture",
    "ccm",
    "channel_correlations",
    "channel_independence",
    "chip_scores",
    "copy_matching_weights",
    "sparsity_schedule",
    "num_pruned",
    "prunable_kernels",
    "prune_model",
    "pruning_summary",
    "select_channels",
    "sparsity_report",
    "strip_pruning",
    "unwrap",
    "zero_channels",
]
